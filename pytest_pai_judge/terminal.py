"""What the plugin prints: the report header, progress lines while verdicts settle, and the summary.

Every line the user reads goes through here, so counts are worded (and pluralised) one way.
"""

from __future__ import annotations

import heapq
import os
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import pytest

from .client import TOKEN_ENV
from .counts import count_rows, describe_assertions, describe_scales, describe_tests, plural, row_status
from .options import Options
from .pytest_compat import current_line_width
from .records import JudgeRecord

PROGRESS_EVERY_S = 5.0
"""Without a terminal (CI logs), a progress line at most this often."""
LOWEST_SHOWN = 5


def describe_target(options: Options) -> str:
    if options.base_url is None:
        unused = f"; ${TOKEN_ENV} is set but unused: no base URL" if os.environ.get(TOKEN_ENV) else ""
        return f"embedded local server (lexical engine, offline; started on first judge call{unused})"
    return options.base_url


def report_header(options: Options) -> str:
    """Say once which judge this run talks to."""
    return (f"pai-judge: {describe_target(options)}; model={options.model}, min_score={options.min_score:g}, "
            f"mode={options.run_mode}, cache={options.cache_mode}")


class Console:
    """The settler's voice: one line before settling, then progress rewritten in place (or throttled lines)."""

    def __init__(self, config: pytest.Config) -> None:
        self.tr = config.pluginmanager.get_plugin("terminalreporter")
        self.tty = bool(self.tr is not None and self.tr.isatty())
        self._open = False
        self._last = 0.0
        self._last_text: str | None = None
        self.muted = False
        """Tests are being logged while the verdicts come in: pytest's own progress shows instead of the progress
        line, and lines wait until :meth:`release` (after the last test), not to break pytest's line of dots."""
        self._later: list[str] = []

    def line(self, text: str) -> None:
        if self.tr is None:
            return
        if self.muted:
            self._later.append(text)
            return
        self.end()
        self.tr.ensure_newline()
        if current_line_width(self.tr):  # -q progress characters
            self.tr.write("\n")
        self.tr.write_line(text)

    def progress(self, text: str, *, force: bool = False) -> None:
        if self.tr is None or self.muted:
            return
        if self.tty:
            self.tr.rewrite(text, erase=True)
            self.tr.flush()
            self._open = True
            return
        now = time.monotonic()
        if force or (text != self._last_text and now - self._last >= PROGRESS_EVERY_S):
            self.tr.write_line(text)
            self._last, self._last_text = now, text

    def end(self) -> None:
        if self._open and self.tr is not None:
            self.tr.write("\n")
            self._open = False

    def release(self) -> None:
        """Print the lines that waited while tests were being logged, and speak up again."""
        self.muted = False
        later, self._later = self._later, []
        for text in later:
            self.line(text)


MARKS = {"passed": "ok", "failed": "FAIL", "error": "ERROR", "xfailed": "xfail", "xpassed": "XPASS", "skipped": "skip",
         "no threshold": "value"}
"""A row's status in the "lowest scores" list."""


def write_summary(tr: Any, records: Sequence[JudgeRecord], warnings: Sequence[str], options: Options,
                  pruned: int, checks: Sequence[dict[str, Any]] = ()) -> None:
    """Warnings once each, then the counts of :mod:`~pytest_pai_judge.counts` and the lowest scores."""
    for message in dict.fromkeys(warnings):
        prefix = "" if message.startswith("pai-judge") else "pai-judge warning: "
        tr.write_line(f"{prefix}{message}", yellow=True)
    if not len(records):
        return
    counts = count_rows(r.row() for r in records)
    assertions = counts["assertions"]
    values = counts["values"]
    judged = counts["rows"] - values - counts["check_rows"]
    tr.ensure_newline()
    tr.section("pai-judge summary")
    tr.write_line(f"{plural(counts['judged_tests'], 'judged test')} (as pytest counts them): "
                  f"{describe_tests(counts['tests'])}")
    line = f"{plural(judged, 'judged assertion')}: {describe_assertions(assertions)}" if judged else ""
    if values:
        line += ("; " if line else "") + f"{plural(values, 'verdict')} read as {'a value' if values == 1 else 'values'}"
        if counts["value_errors"]:
            line += f" ({counts['value_errors']} without a verdict)"
    if counts["check_rows"]:
        line += ("; " if line else "") + f"{plural(counts['check_rows'], 'row')} of judge checks"
    tr.write_line(line)
    for check in checks:
        tr.write_line(check_line(check))
    tr.write_line(
        f"verdicts: {counts['fresh_verdicts']:,} fresh, {counts['cached_verdicts']:,} from cache; "
        f"fresh calls: {counts['calls']:,}; report rows: {counts['rows']:,}; tokens: {counts['tokens_spent']:,} spent "
        f"this run, {counts['tokens_cached']:,} recorded with cached verdicts; mode: {options.run_mode}")
    if any(s["scored"] for s in counts["scales"]):
        tr.write_line(f"mean score per scale: {describe_scales(counts['scales'])}")
    scored = heapq.nsmallest(LOWEST_SHOWN, (r.row() for r in records if r.score is not None and r.assertion == "score"),
                             key=lambda r: ((r["score"] or 0) / (r["max_score"] or 5), r["nodeid"]))
    if scored:
        tr.write_line("lowest scores:")
        for r in scored:
            status = row_status(r)
            mark = "?" if r["decision"] == "inconclusive" and status in ("passed", "failed") else MARKS[status]
            threshold = f" (min {r['threshold']:g})" if r["threshold"] is not None else ""
            sampled = f" (median of {r['samples']} samples)" if r["samples"] > 1 else ""
            strict = "  [strict XPASS: the test failed]" if status == "failed" and r["passed"] else ""
            tr.write_line(f"  {mark:<5} {r['score']:g}/{r['max_score']}{threshold}{sampled}  {r['nodeid']}{strict}")
    if pruned:
        tr.write_line(f"cache: pruned {pruned} entries no test used")


def check_line(check: dict[str, Any]) -> str:
    """One judge check in a line: ``judge check (test): kappa 0.33 [0.05, 0.61] ...; missed: ...``."""
    if check.get("check") == "probes":
        shown = [f"{e['probe']} {_figure(e['value'])}" + ("" if e["within"] else " (beyond its limit)")
                 for e in check["effects"].values()]
        return f"judge bias probes ({check['nodeid']}): {', '.join(shown)}"
    figures = [f"{name} {_figure(f['value'])}" + (f" [{f['low']:.2f}, {f['high']:.2f}]"
                                                   if f["low"] is not None and f["high"] is not None else "")
               for name, f in check["figures"].items()]
    rows = len(check.get("rows") or [])
    if check.get("error"):
        return f"judge agreement with {rows} labelled rows ({check['nodeid']}): not measured: {check['error']}"
    missed = f"; missed: {'; '.join(check['misses'])}" if check.get("misses") else ""
    return f"judge agreement with {rows} labelled rows ({check['nodeid']}): {', '.join(figures)}{missed}"


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (CJK) characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (``str.ljust`` counts characters, not columns)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill
