"""Drift against a baseline: each case's score then → now, the mean change per scene, and the drops.

``--judge-max-drop`` fails on :func:`drops_beyond`; :func:`no_shared_cases` is the warning every
output gives when the baseline and the run have nothing in common.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pandas as pd

from .table import NO_SCENE, coerce, isna, short_text

DRIFT_COLUMNS = ("key", "nodeid", "question", "model", "scene", "score_then", "score_now", "change", "status",
                 "max_score")
"""The per-case drift table's columns (also the ``<stem>.drift<suffix>`` file's)."""
SCENE_DRIFT_COLUMNS = ("scene", "cases", "mean_then", "mean_now", "mean_change")
"""The per-scene drift table's columns."""
COMPARED_STATUSES = ("down", "up", "same", "unscored")
"""Drift statuses of a case found in both the baseline and this run."""
DRIFT_STATUSES = ("down", "up", "same", "new", "gone", "not run", "unscored")
"""Every drift status, in the order the summaries count them."""


def compute_drift(baseline_df: pd.DataFrame, current_df: pd.DataFrame, *, ran: Collection[str] | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score then → now per case, and the mean change per scene; both sorted biggest drop first.

    Case key: a test (``nodeid``) judged once in both runs is one case. A test with several judged
    assertions in either run is split by ``question``, and repeats of the same question within a
    test by their order (``#2``, ``#3``…). So adding a second assertion to a test keeps the first
    one comparable as long as its question is unchanged.

    ``status`` is ``down`` / ``up`` / ``same`` when both runs have a score, ``unscored`` when one
    lacks it (pairwise verdicts, judge errors), ``new`` when the case is in this run only. A baseline
    case missing from this run is ``not run`` when its test did not run (deselected with ``-k``, not
    selected, skipped, or the run stopped first) and ``gone`` when its test ran without it. ``ran``
    names the tests that ran (the plugin knows them from pytest's reports); without it, a test with
    no row in this run counts as not run. Neither is ever a drop. ``change`` is in points of the case's
own scale (``max_score``); the per-scene means keep each scale apart (in a scene with /5 and /10
cases, the /10 ones are a row of their own, ``scene (/10)``).
    """
    base = coerce(baseline_df)
    cur = coerce(current_df)
    base_counts = base["nodeid"].value_counts()
    cur_counts = cur["nodeid"].value_counts()
    singles = {n for n in set(base_counts.index) | set(cur_counts.index)
               if base_counts.get(n, 0) <= 1 and cur_counts.get(n, 0) <= 1}

    def keyed(df: pd.DataFrame) -> pd.DataFrame:
        out = df[["nodeid", "question", "model", "scene", "score", "max_score"]].copy()
        out["question"] = out["question"].fillna("")
        out["_occ"] = out.groupby(["nodeid", "question"]).cumcount()
        single = out["nodeid"].isin(singles)
        out["_q"] = out["question"].where(~single, "")
        out["_o"] = out["_occ"].where(~single, 0)
        return out

    b, c = keyed(base), keyed(cur)
    present = set(cur["nodeid"].dropna()) | set(ran or ())
    merged = b.merge(c, on=["nodeid", "_q", "_o"], how="outer", suffixes=("_then", "_now"), indicator=True,
                     sort=False)
    rows = []
    for rec in merged.to_dict(orient="records"):
        then, now = _num(rec.get("score_then")), _num(rec.get("score_now"))
        side = rec["_merge"]
        if side == "left_only":
            status = "gone" if rec["nodeid"] in present else "not run"
        elif side == "right_only":
            status = "new"
        elif then is None or now is None:
            status = "unscored"
        else:
            status = "down" if now < then else "up" if now > then else "same"
        run = "_then" if side == "left_only" else "_now"  # the run whose question / model / scene the row shows
        question = rec["question" + run]
        key = rec["nodeid"]
        if rec["nodeid"] not in singles:
            key += f" [{short_text(question, 60)}]" + (f" #{int(rec['_o']) + 1}" if rec["_o"] else "")
        rows.append({
            "key": key, "nodeid": rec["nodeid"], "question": question or None,
            "model": _str_or_none(rec["model" + run]), "scene": _str_or_none(rec["scene" + run]),
            "score_then": then, "score_now": now,
            "change": (now - then) if then is not None and now is not None else None, "status": status,
            "max_score": _num(rec.get("max_score" + run)),
        })
    per_case = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    per_case = per_case.astype({"key": "string", "nodeid": "string", "question": "string", "model": "string",
                                "scene": "string", "score_then": "float64", "score_now": "float64",
                                "change": "float64", "status": "string", "max_score": "float64"})
    per_case = per_case.sort_values(["change", "key"], na_position="last", kind="stable").reset_index(drop=True)

    compared = per_case[per_case["change"].notna()].copy()
    compared["scene"] = compared["scene"].fillna(NO_SCENE)
    # one row per scene AND scale: a /10 and a /5 case are never averaged together
    scales = compared.groupby("scene")["max_score"].transform("nunique")
    off_scale = compared["max_score"].notna() & (compared["max_score"] != 5) & (scales > 1)
    compared.loc[off_scale, "scene"] = [f"{scene} (/{int(top)})" for scene, top in
                                        zip(compared.loc[off_scale, "scene"], compared.loc[off_scale, "max_score"])]
    per_scene = (compared.groupby("scene", sort=True)
                 .agg(cases=("change", "size"), mean_then=("score_then", "mean"), mean_now=("score_now", "mean"),
                      mean_change=("change", "mean"))
                 .reset_index())
    per_scene = per_scene.reindex(columns=list(SCENE_DRIFT_COLUMNS))
    per_scene = per_scene.astype({"scene": "string", "cases": "int64", "mean_then": "float64",
                                  "mean_now": "float64", "mean_change": "float64"})
    per_scene = per_scene.sort_values(["mean_change", "scene"], kind="stable").reset_index(drop=True)
    return per_case, per_scene


def no_shared_cases(per_case: pd.DataFrame) -> str | None:
    """The warning to show when the baseline and this run have no case in common, else None.

    Then nothing was compared and ``--judge-max-drop`` cannot fail, which must not pass silently
    (typically a baseline written from another rootdir, so every node id differs).
    """
    status = per_case["status"]
    if status.isin(COMPARED_STATUSES).any():
        return None
    then, now = int(status.isin(["gone", "not run"]).sum()), int((status == "new").sum())
    return (f"the baseline shares no case with this run ({then} in the baseline, {now} in this run), so nothing "
            f"was compared. Cases match by test node id, which is relative to the rootdir: was the baseline "
            f"written by these tests, run from the same rootdir?")


def drops_beyond(per_case: pd.DataFrame, max_drop: float) -> pd.DataFrame:
    """The cases whose score fell by more than ``max_drop`` points (what ``--judge-max-drop`` fails on)."""
    return per_case[per_case["change"].notna() & (-per_case["change"] > max_drop + 1e-9)]


def _num(value: Any) -> float | None:
    return None if isna(value) else float(value)


def _str_or_none(value: Any) -> str | None:
    return None if isna(value) else str(value)
