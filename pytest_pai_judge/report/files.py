"""Writing reports: the suffix picks the format, and every file is written atomically.

``.csv`` ``.json`` ``.jsonl`` ``.parquet`` hold the results table (``criteria`` stays a nested
object in JSON / JSONL and is JSON text in CSV and Parquet) and can be read back with
:func:`~pytest_pai_judge.report.table.read_report`; ``.md`` and ``.html`` are rendered pages (a
``.md`` too large for a GitHub step summary leaves cases out and its whole text goes to
``<stem>.full.md``). A reader never sees half a file: each is written to a temporary file next to
it, then renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..gates import GateResult
from .formats import REPORT_SUFFIXES
from .html import render_html
from .markdown import MARKDOWN_LIMIT_BYTES, render_markdown
from .table import coerce, isna

if TYPE_CHECKING:  # pragma: no cover
    from .regression import Regression


def write_report(df: pd.DataFrame, path: str | os.PathLike[str],
                 drift: tuple[pd.DataFrame, pd.DataFrame] | None = None, *, baseline: str | None = None,
                 max_drop: float | None = None, gates: Sequence[GateResult] = (),
                 regression: Regression | None = None, checks: Sequence[dict[str, Any]] = ()) -> Path:
    """Write the table to ``path`` in the format its suffix names; atomic (a reader never sees half a file).

    ``drift`` is :func:`~pytest_pai_judge.report.drift.compute_drift`'s result: Markdown and HTML show
    it as a section; next to a machine-readable report it is written as ``<stem>.drift<suffix>`` (one
    row per case), so the report itself keeps exactly the results columns and can serve as the next
    baseline. ``regression`` (``--judge-regression``'s result) is shown at the top of Markdown and HTML
    pages and written next to a machine-readable report as ``<stem>.regression.json``; ``gates``
    (``--judge-gate``'s results) likewise, as a Gates section and ``<stem>.gates.json``; ``checks``
    (the judge checks' figures: agreement with labels, bias probes) as a "Judge calibration" section
    and ``<stem>.calibration.json``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ValueError(f"unknown report format {path.suffix or '(no suffix)'!r} for {str(path)!r}; "
                         f"use one of {', '.join(REPORT_SUFFIXES)}")
    df = coerce(df)
    if suffix == ".html":
        _write_text(path, render_html(df, drift, baseline=baseline, max_drop=max_drop, gates=gates,
                                      regression=regression, checks=checks))
    elif suffix == ".md":
        _write_markdown(df, path, drift, baseline=baseline, max_drop=max_drop, gates=gates,
                        regression=regression, checks=checks)
    else:
        _write_table(df, path, suffix)
        if drift is not None:
            _write_table(drift[0], path.with_name(f"{path.stem}.drift{path.suffix}"), suffix)
        if regression is not None:
            _write_text(path.with_name(f"{path.stem}.regression.json"),
                        json.dumps(regression.to_json(), ensure_ascii=False, indent=1) + "\n")
        if gates:
            _write_text(path.with_name(f"{path.stem}.gates.json"),
                        json.dumps([g.to_dict() for g in gates], ensure_ascii=False, indent=2) + "\n")
        if checks:
            _write_text(path.with_name(f"{path.stem}.calibration.json"),
                        json.dumps({"checks": list(checks)}, ensure_ascii=False, indent=1) + "\n")
    return path


def _write_markdown(df: pd.DataFrame, path: Path, drift: tuple[pd.DataFrame, pd.DataFrame] | None, *,
                    baseline: str | None, max_drop: float | None, gates: Sequence[GateResult] = (),
                    regression: Regression | None = None, checks: Sequence[dict[str, Any]] = ()) -> None:
    """A page that fits a GitHub step summary; when cases had to be left out, the whole page goes to
    ``<stem>.full.md`` next to it, and the page's note names that file."""
    full = render_markdown(df, drift, baseline=baseline, max_drop=max_drop, limit_bytes=None, gates=gates,
                           regression=regression, checks=checks)
    if len(full.encode("utf-8")) <= MARKDOWN_LIMIT_BYTES:
        _write_text(path, full)
        return
    whole = path.with_name(f"{path.stem}.full{path.suffix}")
    _write_text(whole, full)
    _write_text(path, render_markdown(df, drift, baseline=baseline, max_drop=max_drop,
                                      limit_bytes=MARKDOWN_LIMIT_BYTES, full_report=whole.name, gates=gates,
                                      regression=regression, checks=checks))


def _write_table(df: pd.DataFrame, path: Path, suffix: str) -> None:
    flat = df.copy()
    if suffix in (".csv", ".parquet"):
        for column, empty in (("criteria", {}), ("scores", [])):
            if column in flat.columns:
                flat[column] = flat[column].map(lambda v, empty=empty: json.dumps(
                    v if isinstance(v, (dict, list)) else empty, ensure_ascii=False))
        if "criteria2" in flat.columns:  # JSON text for pairwise rows, empty elsewhere
            flat["criteria2"] = flat["criteria2"].map(
                lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else None)

    def write(tmp: str) -> None:
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

    _atomic_write(path, write)


def _write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    _atomic_write(path, write)


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write`` a temporary file next to ``path``, give it the usual mode, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _publishable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _publishable(tmp: str) -> None:
    """mkstemp makes 0600 files; a report is meant to be shared, so give it the usual umask mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isna(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
