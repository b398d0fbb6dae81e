"""The results table: the run's verdicts as a pandas DataFrame, its columns and dtypes, and reading it back.

Also the values every report shows (a row's status, the failing-first order, the headline numbers)
and the small helpers to format and clean them. This module imports pandas at import time: import
it only when a run has records or a report / baseline option was given.

``criteria`` (per-criterion scores) is a dict in the table; :func:`read_report` turns its JSON text
back into one. CSV cannot tell an empty text from a missing one: an empty ``question`` /
``answer`` / ``scene`` reads back as missing (``reasons`` reads back as ``""``).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..counts import ROW_STATUSES, count_rows, describe_scales, row_status
from ..records import JudgeRecord
from .formats import READABLE_SUFFIXES

COLUMNS: tuple[str, ...] = (
    "nodeid", "mode", "kind", "assertion", "model", "scene", "question", "answer", "score", "max_score",
    "threshold", "passed", "winner", "criteria", "reasons", "tokens", "cached", "latency_s", "error",
    "answer2", "score2", "xfail", "samples", "scores", "spread", "decision",
    "outcome", "status", "verdicts", "cached_verdicts", "calls", "cached_tokens",
    "ref_answer", "scene_desc", "metric", "score_desc", "steps", "template", "params", "confidence", "criteria2",
    "group", "case", "human", "prompt_tokens", "contradiction",
)
"""The results table's columns, in order (``mode`` is the record's ``run_mode``). Columns added
later come last so that reports written before they existed line up: read back, a missing
``xfail`` is False, a missing ``samples`` is 1 and ``scores`` is ``[score]``. ``scores`` holds
every sample's score (a list); ``decision`` is met / not met / inconclusive. ``outcome`` is the
test's outcome as pytest reported it and ``status`` the row's (see :mod:`pytest_pai_judge.counts`);
``tokens`` were spent this run, ``cached_tokens`` are those recorded with the cached verdicts;
``template`` (a custom template's messages) and ``params`` (generation parameters) are JSON text.
``case`` and ``human`` belong to the rows of judge checks: the labelled row's id and its human label
(``assert_judge_agrees``), or the probe (``assert_judge_unbiased``). ``contradiction`` says where a
pairwise judge's winner words disagreed with its own scores (the words were taken)."""

TEXT_COLUMNS = ("nodeid", "mode", "kind", "assertion", "model", "scene", "question", "answer", "winner",
                "reasons", "error", "answer2", "decision", "outcome", "status", "ref_answer", "scene_desc", "metric",
                "score_desc", "steps", "template", "params", "group", "case", "human", "contradiction")
DTYPES: dict[str, str] = {
    **{c: "string" for c in TEXT_COLUMNS},
    "score": "float64", "score2": "float64", "max_score": "Int64", "threshold": "float64", "passed": "boolean",
    "tokens": "int64", "cached": "bool", "latency_s": "float64", "xfail": "bool", "samples": "Int64",
    "spread": "float64", "verdicts": "Int64", "cached_verdicts": "Int64", "calls": "Int64",
    "cached_tokens": "Int64", "confidence": "float64", "prompt_tokens": "Int64",
}
"""Nullable pandas dtypes, so a missing score / verdict stays missing (never 0 or False) after a round trip."""

NO_SCENE = "(no scene)"
"""The group name of rows without a scene, in per-scene drift and charts."""

_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# --------------------------------------------------------------------------- building and reading


def records_to_frame(records: Iterable[JudgeRecord]) -> pd.DataFrame:
    """One row per judged assertion, columns exactly :data:`COLUMNS`, nullable dtypes."""
    rows = []
    for r in records:
        row = r.to_dict()
        row["mode"] = row.pop("run_mode")
        row["criteria"] = dict(row.get("criteria") or {})
        row["criteria2"] = dict(row["criteria2"]) if isinstance(row.get("criteria2"), dict) else None
        rows.append({c: row.get(c) for c in COLUMNS})
    return coerce(pd.DataFrame(rows, columns=list(COLUMNS)))


def coerce(df: pd.DataFrame) -> pd.DataFrame:
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
            series = series.map(to_bool).fillna(False).astype(bool)
        elif col == "passed":
            series = series.map(to_bool)
        elif col in TEXT_COLUMNS:
            series = series.map(lambda v: None if isna(v) else str(v))
        elif dtype in ("float64", "Int64"):
            series = pd.to_numeric(series, errors="coerce")
        df[col] = series.astype(dtype)
    df["criteria"] = df["criteria"].map(_to_criteria).astype(object)
    df["criteria2"] = pd.Series([_to_criteria(v) if _given(v) else None for v in df["criteria2"]], index=df.index,
                                dtype=object)  # pairwise rows only: None elsewhere, never {}
    missing_samples = df["samples"].isna()
    df["scores"] = [_to_scores(v, s) for v, s in zip(df["scores"], df["score"])]
    df["scores"] = df["scores"].astype(object)
    df.loc[missing_samples, "samples"] = 1  # a report written before samples existed: one sample each
    df["status"] = pd.Series([row_status(r) for r in df.to_dict(orient="records")], index=df.index,
                             dtype="string")  # derived: always the rule of this version
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def _given(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, str) and bool(value.strip()))


def _to_criteria(value: Any) -> dict[str, float | None]:
    if isinstance(value, dict):
        return {str(k): (None if isna(v) else float(v)) for k, v in value.items()}
    if isna(value):
        return {}
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        return _to_criteria(json.loads(text))
    raise ValueError(f"criteria must be a dict or JSON text, got {value!r}")


def _to_scores(value: Any, score: Any) -> list[float]:
    """Every sample's score as a list of floats; an older report's single ``score`` is its one sample."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else None
    if value is None or (not isinstance(value, (list, tuple)) and not hasattr(value, "tolist") and isna(value)):
        return [] if isna(score) else [float(score)]
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    return [float(v) for v in items if not isna(v)]


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
    return coerce(df)


# --------------------------------------------------------------------------- what the reports show


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers shared by the Markdown and HTML reports: :func:`pytest_pai_judge.counts.count_rows`.

    ``tests`` counts judged tests by pytest's outcome (a strict XPASS is failed, as pytest counts it);
    ``passed`` / ``failed`` / ``xfailed`` / ``xpassed`` count rows by :func:`status_of`, so a known-bad
    case kept as an expected failure does not lower the pass rate. ``cached`` / ``fresh`` are
    verdicts, ``calls`` fresh calls, ``tokens`` those spent this run and ``tokens_cached`` those
    recorded with cached verdicts; ``scales`` gives the mean score per ``max_score`` (``mean_score``
    only when every score is on one scale: /5 and /10 are never averaged together).
    """
    rows = df.to_dict(orient="records")
    counts = count_rows(rows)
    statuses = counts["statuses"]
    passed = statuses["passed"]
    failed = statuses["failed"] + statuses["error"]
    judged = passed + failed
    found = counts["scales"]
    return {
        **counts,
        "verdicts": counts["rows"],
        "passed": passed,
        "failed": failed,
        "xfailed": statuses["xfailed"],
        "xpassed": statuses["xpassed"],
        "skipped": statuses["skipped"],
        "no_threshold": statuses["no threshold"],
        "pass_rate": (passed / judged) if judged else None,
        "mean_score": found[0]["mean"] if len(found) == 1 else None,
        "mean_scores": describe_scales(found),
        "tokens": counts["tokens_spent"],
        "cached": counts["cached_verdicts"],
        "fresh": counts["fresh_verdicts"],
        "models": sorted(df["model"].dropna().unique().tolist()),
        "modes": sorted(df["mode"].dropna().unique().tolist()),
        "mean_latency_s": float(df["latency_s"].dropna().mean()) if df["latency_s"].notna().any() else None,
    }


def status_of(row: dict[str, Any]) -> str:
    """``error``, ``failed``, ``passed``, ``no threshold`` (a verdict read as a value), ``skipped``, or for a
    test marked xfail ``xfailed`` / ``xpassed`` -- seen through pytest's outcome of the test, so a strict
    XPASS is ``failed`` (:func:`pytest_pai_judge.counts.row_status`)."""
    return row_status(row)


def samples_text(row: dict[str, Any]) -> str:
    """A case's samples for people: ``median of 5 samples: 4, 3, 4, 4, 4 (sd 0.45); inconclusive``; "" for one."""
    samples = row.get("samples")
    if samples is None or isna(samples) or int(samples) <= 1:
        return ""
    scores = ", ".join(fmt_score(s) for s in (row.get("scores") or []))
    spread = row.get("spread")
    sd = f" (sd {spread:.2f})" if not isna(spread) else ""
    decision = row.get("decision")
    return f"median of {int(samples)} samples: {scores}{sd}" + (f"; {decision}" if not isna(decision) else "")


def failing_first(df: pd.DataFrame) -> pd.DataFrame:
    """Errors, then failures (lowest score first), xpassed (a known-bad case that now passes), xfailed,
    verdicts without a threshold, then passes."""
    order = {status: rank for rank, status in enumerate(ROW_STATUSES)}
    ranked = df.assign(_rank=[order[status_of(r)] for r in df.to_dict(orient="records")])
    return ranked.sort_values(["_rank", "score", "nodeid"], na_position="first", kind="stable") \
        .drop(columns="_rank").reset_index(drop=True)


# --------------------------------------------------------------------------- values


def isna(value: Any) -> bool:
    """A missing cell: ``None``, ``pd.NA`` or a float NaN (a dict or list is a value, where ``pd.isna`` would
    answer element by element)."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def to_bool(value: Any) -> bool | None:
    """A cell as a bool (text ``true`` / ``1`` / ``yes`` or ``false`` / ``0`` / ``no``); None when missing
    or other text."""
    if isna(value):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        return None
    return bool(value)


def clean_text(value: Any) -> str:
    """Judge text is untrusted: drop ANSI escapes and control characters (newlines and tabs stay)."""
    if isna(value):
        return ""
    return _CONTROL.sub("", str(value).replace("\r\n", "\n"))


def html_text(value: Any) -> str:
    """Clean and escape one value for HTML text or an attribute (judge and test text is untrusted)."""
    return html.escape(clean_text(value), quote=True)


def md_cell(value: Any) -> str:
    """A Markdown table cell: HTML-escaped (GitHub renders raw HTML), one line, pipes escaped."""
    return html.escape(" ".join(clean_text(value).split()), quote=False).replace("|", "\\|")


def short_text(value: Any, limit: int) -> str:
    """Cleaned text on one line (whitespace runs become one space), cut to ``limit`` characters with ``…``."""
    text = " ".join(clean_text(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_score(value: Any, digits: int = 2) -> str:
    """A score for people: ``8``, ``7.5``, ``6.33``; ``–`` when missing."""
    if isna(value):
        return "–"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def fmt_points(value: Any) -> str:
    """A number of score points for people: ``1 point``, ``0.5 points``, ``2 points``."""
    return f"{fmt_score(value)} point{'' if not isna(value) and float(value) == 1 else 's'}"


def fmt_change(value: Any) -> str:
    """A score change for people: ``+1``, ``-0.5``, ``±0``; ``–`` when missing."""
    if isna(value):
        return "–"
    value = float(value)
    return "±0" if abs(value) < 1e-9 else f"{value:+.2f}".rstrip("0").rstrip(".")
