"""What the plugin prints: the report header, progress lines while verdicts settle, and the summary.

Every line the user reads goes through here, so counts are worded (and pluralised) one way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import pytest

from .client import TOKEN_ENV
from .options import Options
from .pytest_compat import current_line_width
from .records import JudgeRecord

PROGRESS_EVERY_S = 5.0
"""Without a terminal (CI logs), a progress line at most this often."""
LOWEST_SHOWN = 5


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


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

    def line(self, text: str) -> None:
        if self.tr is None:
            return
        self.end()
        self.tr.ensure_newline()
        if current_line_width(self.tr):  # -q progress characters
            self.tr.write("\n")
        self.tr.write_line(text)

    def progress(self, text: str, *, force: bool = False) -> None:
        if self.tr is None:
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


def write_summary(tr: Any, records: Sequence[JudgeRecord], stats: dict[str, int], warnings: Sequence[str],
                  options: Options, pruned: int) -> None:
    """Warnings once each, then judged tests, cached vs fresh verdicts, tokens, and the lowest scores."""
    for message in dict.fromkeys(warnings):
        prefix = "" if message.startswith("pai-judge") else "pai-judge warning: "
        tr.write_line(f"{prefix}{message}", yellow=True)
    if not records:
        return
    tests = {r.nodeid for r in records}
    inconclusive = sum(1 for r in records if r.decision == "inconclusive" and not r.error and not r.xfail)
    failed = sum(1 for r in records if ((r.passed is False and not r.xfail) or r.error)
                 and not (r.decision == "inconclusive" and not r.error))
    undecided = f", {inconclusive} inconclusive" if inconclusive else ""
    values = sum(1 for r in records if r.assertion == "value")
    parts = [plural(len(records) - values, "judged assertion")] if len(records) > values else []
    if values:
        parts.append(f"{plural(values, 'verdict')} read as {'a value' if values == 1 else 'values'}")
    tr.section("pai-judge summary")
    tr.write_line(
        f"{' and '.join(parts)} in {plural(len(tests), 'test')} ({failed} not met{undecided}); verdicts: "
        f"{stats.get('fresh', 0)} fresh, {stats.get('cached', 0)} from cache; "
        f"tokens used: {stats.get('tokens', 0)}; mode: {options.run_mode}")
    scored = sorted((r for r in records if r.score is not None and r.assertion == "score"),
                    key=lambda r: ((r.score or 0) / (r.max_score or 5), r.nodeid))[:LOWEST_SHOWN]
    if scored:
        tr.write_line("lowest scores:")
        for r in scored:
            mark = ("?    " if r.decision == "inconclusive" else "ok   ") if r.passed else \
                "xfail" if r.xfail else "?    " if r.decision == "inconclusive" else "FAIL "
            threshold = f" (min {r.threshold:g})" if r.threshold is not None else ""
            sampled = f" (median of {r.samples} samples)" if r.samples > 1 else ""
            tr.write_line(f"  {mark} {r.score:g}/{r.max_score}{threshold}{sampled}  {r.nodeid}")
    if pruned:
        tr.write_line(f"cache: pruned {pruned} entries no test used")
