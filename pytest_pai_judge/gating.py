"""The gates' pytest side: ``--judge-gate`` / ini ``judge_gates``, evaluated once at session finish.

Parsed at configure (a bad gate is a usage error before anything is judged); evaluated by the
controller over every report row (xdist workers hand theirs over first); a failed gate makes the
exit status 1, like ``--judge-max-drop``. Results go to the terminal summary, to the Markdown /
HTML reports and a ``<report>.gates.json`` sidecar (through :class:`~.report.plugin.JudgeReporting`),
and to junitxml as properties of the test suite. The grammar and the statistics: :mod:`.gates`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from .gates import EXAMPLE, GateError, GateResult, parse_gates
from .pytest_compat import add_suite_property
from .records import JudgeRecord


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption("--judge-gate", dest="judge_gate", action="append", default=None, metavar="EXPR",
                    help=f"a suite gate, e.g. {EXAMPLE.replace('%', '%%')!r} (repeatable; replaces the ini list): "
                         "pass_rate, error_rate, inconclusive_rate or mean_score (5-point scale) against a number, "
                         "optionally '@ 95%%' (the interval must clear it) and 'for scene=|model=|group=NAME'; a "
                         "failed gate fails the run; see the README's 'Gates and regressions'")
    parser.addini("judge_gates", type="linelist", default=[], help="suite gates, one per line (see --judge-gate)")


class JudgeGates:
    """Evaluates the run's gates once, on the controller, before junitxml and the reports are written."""

    def __init__(self, config: pytest.Config, get_records: Callable[[], Sequence[JudgeRecord]]) -> None:
        self.config = config
        self.get_records = get_records
        self.is_worker = hasattr(config, "workerinput")
        cli = config.getoption("judge_gate", None)
        texts, source = (cli, "--judge-gate") if cli else (config.getini("judge_gates") or [], "judge_gates (ini)")
        try:
            self.gates = parse_gates(texts)
        except GateError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
        self.results: list[GateResult] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker or not self.gates or self.config.option.collectonly:
            return
        from .gates import evaluate

        self.results = evaluate(self.gates, [r.to_dict() for r in self.get_records()])
        if any(r.failed for r in self.results) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        for i, result in enumerate(self.results, 1):
            add_suite_property(self.config, f"judge_gate_{i}", result.text())
            add_suite_property(self.config, f"judge_gate_{i}_status", result.status)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.results:
            return
        tr = terminalreporter
        tr.section("pai-judge gates")
        for result in self.results:
            if result.status == "held":
                tr.write_line(f"held   {result.text()}", green=True)
            elif result.status == "failed":
                tr.write_line(f"FAILED {result.text()}", red=True, bold=True)
            else:
                tr.write_line(f"NO DATA {result.text()} (it checked nothing: is the scope right?)", yellow=True,
                              bold=True)
        failed = sum(r.failed for r in self.results)
        if failed:
            tr.write_line(f"{failed} of {len(self.results)} judge gates failed: the run fails", red=True, bold=True)
