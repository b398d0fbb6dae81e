"""The run's verdicts as a pandas DataFrame: build it, write it by suffix, read it back, compare to a baseline.

This module imports pandas at import time, so only import it when a run has records or a
report / baseline option was given (pytest startup must not pay for pandas).

Formats (the suffix picks): ``.csv`` ``.json`` ``.jsonl`` ``.parquet`` are machine-readable and
can be read back with :func:`read_report` (so any of them can be the next run's baseline);
``.md`` and ``.html`` are for people. ``criteria`` (per-criterion scores, a dict) stays a nested
object in JSON / JSONL and is JSON text in CSV, Parquet and Markdown; :func:`read_report` turns it
back into a dict. CSV cannot tell an empty text from a missing one: an empty ``question`` /
``answer`` / ``scene`` reads back as missing (``reasons`` reads back as ``""``).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .records import JudgeRecord

COLUMNS: tuple[str, ...] = (
    "nodeid", "mode", "kind", "assertion", "model", "scene", "question", "answer", "score", "max_score",
    "threshold", "passed", "winner", "criteria", "reasons", "tokens", "cached", "latency_s", "error",
    "answer2", "score2", "xfail",
)
"""The results table's columns, in order (``mode`` is the record's ``run_mode``; the pairwise-only
``answer2`` / ``score2`` and ``xfail`` come last so that reports written before they existed line up:
read back, a missing ``xfail`` is False)."""

TEXT_COLUMNS = ("nodeid", "mode", "kind", "assertion", "model", "scene", "question", "answer", "winner",
                "reasons", "error", "answer2")
DTYPES: dict[str, str] = {
    **{c: "string" for c in TEXT_COLUMNS},
    "score": "float64", "score2": "float64", "max_score": "Int64", "threshold": "float64", "passed": "boolean",
    "tokens": "int64", "cached": "bool", "latency_s": "float64", "xfail": "bool",
}
"""Nullable pandas dtypes, so a missing score / verdict stays missing (never 0 or False) after a round trip."""

READABLE_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
REPORT_SUFFIXES = READABLE_SUFFIXES + (".md", ".html")

DRIFT_COLUMNS = ("key", "nodeid", "question", "model", "scene", "score_then", "score_now", "change", "status")
SCENE_DRIFT_COLUMNS = ("scene", "cases", "mean_then", "mean_now", "mean_change")
NO_SCENE = "(no scene)"

_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(value: Any) -> str:
    """Judge text is untrusted: drop ANSI escapes and control characters (newlines and tabs stay)."""
    if value is None or _isna(value):
        return ""
    return _CONTROL.sub("", str(value).replace("\r\n", "\n"))


# --------------------------------------------------------------------------- building


def records_to_frame(records: Iterable[JudgeRecord]) -> pd.DataFrame:
    """One row per judged assertion, columns exactly :data:`COLUMNS`, nullable dtypes."""
    rows = []
    for r in records:
        row = r.to_dict()
        row["mode"] = row.pop("run_mode")
        row["criteria"] = dict(row.get("criteria") or {})
        rows.append({c: row.get(c) for c in COLUMNS})
    return _coerce(pd.DataFrame(rows, columns=list(COLUMNS)))


def _coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Give every known column its dtype, add missing ones as missing; extra columns are kept after ours."""
    df = df.copy()
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    for col, dtype in DTYPES.items():
        series = df[col]
        if col == "reasons":
            series = series.where(series.notna(), "")
        elif col in ("tokens",):
            series = pd.to_numeric(series, errors="coerce").fillna(0)
        elif col in ("cached", "xfail"):
            series = series.map(_to_bool).fillna(False).astype(bool)
        elif col == "passed":
            series = series.map(_to_bool)
        elif col in TEXT_COLUMNS:
            series = series.map(lambda v: None if _isna(v) else str(v))
        elif dtype in ("float64", "Int64"):
            series = pd.to_numeric(series, errors="coerce")
        df[col] = series.astype(dtype)
    df["criteria"] = df["criteria"].map(_to_criteria).astype(object)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def _isna(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _to_bool(value: Any) -> bool | None:
    if _isna(value):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        return None
    return bool(value)


def _to_criteria(value: Any) -> dict[str, float | None]:
    if isinstance(value, dict):
        return {str(k): (None if _isna(v) else float(v)) for k, v in value.items()}
    if value is None or (not isinstance(value, str) and _isna(value)):
        return {}
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        return _to_criteria(json.loads(text))
    raise ValueError(f"criteria must be a dict or JSON text, got {value!r}")


# --------------------------------------------------------------------------- writing / reading


def write_report(df: pd.DataFrame, path: str | os.PathLike[str],
                 drift: tuple[pd.DataFrame, pd.DataFrame] | None = None, *, baseline: str | None = None,
                 max_drop: float | None = None) -> Path:
    """Write the table to ``path`` in the format its suffix names; atomic (a reader never sees half a file).

    ``drift`` is :func:`compute_drift`'s result: Markdown and HTML show it as a section; next to a
    machine-readable report it is written as ``<stem>.drift<suffix>`` (one row per case), so the
    report itself keeps exactly the results columns and can serve as the next baseline.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ValueError(f"unknown report format {path.suffix or '(no suffix)'!r} for {str(path)!r}; "
                         f"use one of {', '.join(REPORT_SUFFIXES)}")
    df = _coerce(df)
    if suffix == ".html":
        from .html_report import render_html
        _atomic_write_text(path, render_html(df, drift, baseline=baseline, max_drop=max_drop))
    elif suffix == ".md":
        _atomic_write_text(path, render_markdown(df, drift, baseline=baseline, max_drop=max_drop))
    else:
        _write_table(df, path, suffix)
        if drift is not None:
            _write_table(drift[0], path.with_name(f"{path.stem}.drift{path.suffix}"), suffix)
    return path


def _write_table(df: pd.DataFrame, path: Path, suffix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = df.copy()
    if "criteria" in flat.columns and suffix in (".csv", ".parquet"):
        flat["criteria"] = flat["criteria"].map(lambda c: json.dumps(c or {}, ensure_ascii=False))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".csv":
            flat.to_csv(tmp, index=False, encoding="utf-8")
        elif suffix == ".parquet":
            flat.to_parquet(tmp, index=False, engine="pyarrow")
        else:
            rows = [{k: _jsonable(v) for k, v in row.items()} for row in flat.to_dict(orient="records")]
            with open(tmp, "w", encoding="utf-8") as fh:
                if suffix == ".jsonl":
                    for row in rows:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                else:
                    json.dump(rows, fh, ensure_ascii=False, indent=1)
                    fh.write("\n")
        _publishable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if _isna(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _publishable(tmp: str) -> None:
    """mkstemp makes 0600 files; a report is meant to be shared, so give it the usual umask mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _publishable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_report(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a machine-readable report (``.csv`` ``.json`` ``.jsonl`` ``.parquet``) back into the results table.

    Missing columns come back as missing values (so a hand-made baseline with just ``nodeid`` and
    ``score`` works); extra columns are kept.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""],
                         encoding="utf-8")
    elif suffix == ".parquet":
        df = pd.read_parquet(path, engine="pyarrow")
    elif suffix in (".json", ".jsonl"):
        if path.stat().st_size == 0:
            df = pd.DataFrame(columns=list(COLUMNS))
        else:
            # pandas < 3 converts date-looking columns unless told not to; pandas 3 deprecates the flag.
            legacy = {"convert_dates": False} if int(pd.__version__.split(".")[0]) < 3 else {}
            df = pd.read_json(path, orient="records", lines=suffix == ".jsonl", dtype=False, encoding="utf-8",
                              **legacy)
    else:
        raise ValueError(f"cannot read {str(path)!r}: a report to read back must be one of "
                         f"{', '.join(READABLE_SUFFIXES)} (.md and .html are for people)")
    return _coerce(df)


# --------------------------------------------------------------------------- drift


def compute_drift(baseline_df: pd.DataFrame, current_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score then → now per case, and the mean change per scene; both sorted biggest drop first.

    Case key: a test (``nodeid``) judged once in both runs is one case. A test with several judged
    assertions in either run is split by ``question``, and repeats of the same question within a
    test by their order (``#2``, ``#3``…). So adding a second assertion to a test keeps the first
    one comparable as long as its question is unchanged.

    ``status`` is ``down`` / ``up`` / ``same`` when both runs have a score, ``unscored`` when one
    lacks it (pairwise verdicts, judge errors), ``new`` / ``gone`` when the case is in one run only
    (e.g. a ``-k`` subset: gone cases are never a drop). ``change`` is in score points.
    """
    base = _coerce(baseline_df)
    cur = _coerce(current_df)
    base_counts = base["nodeid"].value_counts()
    cur_counts = cur["nodeid"].value_counts()
    singles = {n for n in set(base_counts.index) | set(cur_counts.index)
               if base_counts.get(n, 0) <= 1 and cur_counts.get(n, 0) <= 1}

    def keyed(df: pd.DataFrame) -> pd.DataFrame:
        out = df[["nodeid", "question", "model", "scene", "score"]].copy()
        out["question"] = out["question"].fillna("")
        out["_occ"] = out.groupby(["nodeid", "question"]).cumcount()
        single = out["nodeid"].isin(singles)
        out["_q"] = out["question"].where(~single, "")
        out["_o"] = out["_occ"].where(~single, 0)
        return out

    b, c = keyed(base), keyed(cur)
    merged = b.merge(c, on=["nodeid", "_q", "_o"], how="outer", suffixes=("_then", "_now"), indicator=True,
                     sort=False)
    rows = []
    for rec in merged.to_dict(orient="records"):
        then, now = _num(rec.get("score_then")), _num(rec.get("score_now"))
        side = rec["_merge"]
        if side == "left_only":
            status = "gone"
        elif side == "right_only":
            status = "new"
        elif then is None or now is None:
            status = "unscored"
        else:
            status = "down" if now < then else "up" if now > then else "same"
        question = rec["question_now"] if side != "left_only" else rec["question_then"]
        key = rec["nodeid"]
        if rec["nodeid"] not in singles:
            key += f" [{_short(question, 60)}]" + (f" #{int(rec['_o']) + 1}" if rec["_o"] else "")
        pick = (lambda name: rec[f"{name}_now"] if side != "left_only" else rec[f"{name}_then"])
        rows.append({
            "key": key, "nodeid": rec["nodeid"], "question": question or None, "model": _str_or_none(pick("model")),
            "scene": _str_or_none(pick("scene")), "score_then": then, "score_now": now,
            "change": (now - then) if then is not None and now is not None else None, "status": status,
        })
    per_case = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    per_case = per_case.astype({"key": "string", "nodeid": "string", "question": "string", "model": "string",
                                "scene": "string", "score_then": "float64", "score_now": "float64",
                                "change": "float64", "status": "string"})
    per_case = per_case.sort_values(["change", "key"], na_position="last", kind="stable").reset_index(drop=True)

    compared = per_case[per_case["change"].notna()].copy()
    compared["scene"] = compared["scene"].fillna(NO_SCENE)
    per_scene = (compared.groupby("scene", sort=True)
                 .agg(cases=("change", "size"), mean_then=("score_then", "mean"), mean_now=("score_now", "mean"),
                      mean_change=("change", "mean"))
                 .reset_index())
    per_scene = per_scene.reindex(columns=list(SCENE_DRIFT_COLUMNS))
    per_scene = per_scene.astype({"scene": "string", "cases": "int64", "mean_then": "float64",
                                  "mean_now": "float64", "mean_change": "float64"})
    per_scene = per_scene.sort_values(["mean_change", "scene"], kind="stable").reset_index(drop=True)
    return per_case, per_scene


COMPARED_STATUSES = ("down", "up", "same", "unscored")
"""Drift statuses of a case found in both the baseline and this run."""


def no_shared_cases(per_case: pd.DataFrame) -> str | None:
    """The warning to show when the baseline and this run have no case in common, else None.

    Then nothing was compared and ``--judge-max-drop`` cannot fail, which must not pass silently
    (typically a baseline written from another rootdir, so every node id differs).
    """
    status = per_case["status"]
    if status.isin(COMPARED_STATUSES).any():
        return None
    then, now = int((status == "gone").sum()), int((status == "new").sum())
    return (f"the baseline shares no case with this run ({then} in the baseline, {now} in this run), so nothing "
            f"was compared. Cases match by test node id, which is relative to the rootdir: was the baseline "
            f"written by these tests, run from the same rootdir?")


def drops_beyond(per_case: pd.DataFrame, max_drop: float) -> pd.DataFrame:
    """The cases whose score fell by more than ``max_drop`` points (what ``--judge-max-drop`` fails on)."""
    return per_case[per_case["change"].notna() & (-per_case["change"] > max_drop + 1e-9)]


def _num(value: Any) -> float | None:
    return None if _isna(value) else float(value)


def _str_or_none(value: Any) -> str | None:
    return None if _isna(value) else str(value)


def _short(text: Any, limit: int) -> str:
    text = " ".join(clean_text(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- summaries


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers shared by the Markdown and HTML reports.

    Verdicts of xfail-marked tests count as ``xfailed`` / ``xpassed``, never as failed or passed, so
    a known-bad case kept as an expected failure does not lower the pass rate (as pytest counts it).
    """
    n = len(df)
    statuses = pd.Series([status_of(r) for r in df.to_dict(orient="records")], dtype=object)
    counts = statuses.value_counts()
    passed = int(counts.get("passed", 0))
    failed = int(counts.get("failed", 0) + counts.get("error", 0))
    judged = passed + failed
    scores = df["score"].dropna()
    return {
        "verdicts": n,
        "passed": passed,
        "failed": failed,
        "xfailed": int(counts.get("xfailed", 0)),
        "xpassed": int(counts.get("xpassed", 0)),
        "no_threshold": int(counts.get("no threshold", 0)),
        "errors": int(df["error"].notna().sum()),
        "pass_rate": (passed / judged) if judged else None,
        "mean_score": float(scores.mean()) if len(scores) else None,
        "tokens": int(df["tokens"].sum()),
        "cached": int(df["cached"].sum()),
        "fresh": int((~df["cached"]).sum()),
        "models": sorted(df["model"].dropna().unique().tolist()),
        "modes": sorted(df["mode"].dropna().unique().tolist()),
        "mean_latency_s": float(df["latency_s"].dropna().mean()) if df["latency_s"].notna().any() else None,
    }


def status_of(row: dict[str, Any]) -> str:
    """``error``, ``failed``, ``passed``, ``no threshold`` (a verdict read as a value), or for a test
    marked xfail ``xfailed`` / ``xpassed`` (an unavailable verdict stays ``error``: the judge broke)."""
    if not _isna(row.get("error")):
        return "error"
    passed = row.get("passed")
    if _isna(passed):
        return "no threshold"
    if _to_bool(row.get("xfail")):
        return "xpassed" if passed else "xfailed"
    return "passed" if passed else "failed"


def failing_first(df: pd.DataFrame) -> pd.DataFrame:
    """Errors, then failures (lowest score first), xpassed (a known-bad case that now passes), xfailed,
    verdicts without a threshold, then passes."""
    order = {"error": 0, "failed": 1, "xpassed": 2, "xfailed": 3, "no threshold": 4, "passed": 5}
    ranked = df.assign(_rank=[order[status_of(r)] for r in df.to_dict(orient="records")])
    return ranked.sort_values(["_rank", "score", "nodeid"], na_position="first", kind="stable") \
        .drop(columns="_rank").reset_index(drop=True)


def fmt_score(value: Any, digits: int = 2) -> str:
    if _isna(value):
        return "–"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def fmt_change(value: Any) -> str:
    if _isna(value):
        return "–"
    value = float(value)
    return "±0" if abs(value) < 1e-9 else f"{value:+.2f}".rstrip("0").rstrip(".")


def render_markdown(df: pd.DataFrame, drift: tuple[pd.DataFrame, pd.DataFrame] | None = None, *,
                    baseline: str | None = None, max_drop: float | None = None) -> str:
    """A GitHub-flavoured Markdown page (e.g. for ``$GITHUB_STEP_SUMMARY``); judge text is escaped."""
    df = _coerce(df)
    s = summarize(df)
    lines = ["# pai-judge results", ""]
    rate = f"{s['pass_rate']:.0%}" if s["pass_rate"] is not None else "–"
    expected = "".join(f" · {s[k]} {k}" for k in ("xfailed", "xpassed") if s[k])
    lines.append(f"**{s['verdicts']}** verdicts · **{s['passed']}** passed · **{s['failed']}** failed{expected} "
                 f"· {s['no_threshold']} without threshold · pass rate **{rate}** · mean score "
                 f"{fmt_score(s['mean_score'])} · {s['tokens']:,} tokens · {s['cached']} cached / {s['fresh']} fresh")
    lines.append("")
    if drift is not None:
        per_case, per_scene = drift
        lines += [f"## Drift vs baseline{f' `{_md(baseline)}`' if baseline else ''}", ""]
        warning = no_shared_cases(per_case)
        if warning:
            limit = f" `--judge-max-drop={fmt_score(max_drop)}` checked nothing." if max_drop is not None else ""
            lines += [f"> **Warning:** {_md(warning)}{limit}", ""]
        lines += ["| scene | cases | mean then | mean now | change |", "|---|---:|---:|---:|---:|"]
        for r in per_scene.to_dict(orient="records"):
            lines.append(f"| {_md(r['scene'])} | {r['cases']} | {fmt_score(r['mean_then'])} | "
                         f"{fmt_score(r['mean_now'])} | {fmt_change(r['mean_change'])} |")
        lines += ["", "| case | then | now | change | status |", "|---|---:|---:|---:|---|"]
        beyond = set(drops_beyond(per_case, max_drop)["key"]) if max_drop is not None else set()
        for r in per_case.to_dict(orient="records"):
            status = r["status"] + (f" **(more than {fmt_score(max_drop)})**" if r["key"] in beyond else "")
            lines.append(f"| {_md(r['key'])} | {fmt_score(r['score_then'])} | {fmt_score(r['score_now'])} | "
                         f"{fmt_change(r['change'])} | {status} |")
        lines.append("")
    lines += ["## Verdicts", "",
              "| status | test | model | scene | score | threshold | winner | criteria | tokens | cached | reasons |",
              "|---|---|---|---|---:|---:|---|---|---:|---|---|"]
    for r in failing_first(df).to_dict(orient="records"):
        score = fmt_score(r["score"]) + (f" vs {fmt_score(r['score2'])}" if not _isna(r["score2"]) else "") \
            + (f"/{r['max_score']}" if not _isna(r["max_score"]) else "")
        criteria = ", ".join(f"{k} {fmt_score(v)}" for k, v in (r["criteria"] or {}).items())
        why = r["error"] if not _isna(r["error"]) else r["reasons"]
        lines.append(
            f"| {status_of(r)} | {_md(r['nodeid'])} | {_md(r['model'])} | {_md(r['scene'])} | {score} | "
            f"{fmt_score(r['threshold'])} | {_md(r['winner'])} | {_md(criteria)} | {r['tokens']} | "
            f"{'yes' if r['cached'] else 'no'} | {_md(_short(why, 300))} |")
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    """A Markdown table cell: HTML-escaped, one line, pipes escaped."""
    text = " ".join(clean_text(value).split())
    return html.escape(text, quote=False).replace("|", "\\|")
