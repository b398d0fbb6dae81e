"""pytest hooks of pytest-pai-judge, in lifecycle order; each delegates to the module that does the work.

Registered through the ``pytest11`` entry point ``pai_judge``; ``-p no:pai_judge`` disables it.
State lives in one :class:`~pytest_pai_judge.session.JudgeSession` per process, in ``config.stash``.
Heavy imports (openai, pandas, the server) happen on first use, never at startup.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import options, terminal
from .outcomes import TestOutcomes
from .records import JudgeRecord
from .session import ESTIMATED, JudgeSession

if TYPE_CHECKING:  # pragma: no cover
    from .assertions import Judge

SESSION_KEY = pytest.StashKey[JudgeSession]()
OUTCOMES_KEY = pytest.StashKey[TestOutcomes]()
RECORDS_KEY = "pai_judge_records"
STATS_KEY = "pai_judge_stats"
WARNINGS_KEY = "pai_judge_warnings"
CHECKS_KEY = "pai_judge_checks"
ESTIMATE_KEY = "pai_judge_estimate"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add the plugin's own hookspecs (pytest_judge_request, _parse_reply, _verdict, _results)."""
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    from .gating import add_options as add_gate_options
    from .report.plugin import add_options as add_report_options
    from .spending import add_options as add_spending_options

    group = options.add_options(parser)
    add_report_options(group, parser)
    add_gate_options(group, parser)
    add_spending_options(group, parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and build the session (and, in deferred / batch mode, the deferred run)."""
    config.addinivalue_line(
        "markers", "judge(min_score=None, model=None, samples=None, defer=None, group=None): judge thresholds, "
                   "model and samples for a test, class or module (precedence: argument > marker > "
                   "--judge-min-score > ini > 4); defer=False judges this test's assertions synchronously in "
                   "deferred / batch mode; group=NAME names the tests a '--judge-gate ... for group=NAME' covers")
    session = JudgeSession(config)
    config.stash[SESSION_KEY] = session
    session.push()
    if session.options.run_mode is not options.RunMode.IMMEDIATE:
        from .deferred import install

        session.deferred = install(session)
    outcomes = config.stash[OUTCOMES_KEY] = TestOutcomes(config)
    config.pluginmanager.register(outcomes, "pai_judge_outcomes")
    from .gating import JudgeGates
    from .report.plugin import JudgeReporting

    gates = JudgeGates(config, lambda: outcomes.fill(session.records))
    config.pluginmanager.register(gates, "pai_judge_gates")
    config.pluginmanager.register(JudgeReporting(config, lambda: outcomes.fill(session.records), outcomes.ran,
                                                 get_gates=lambda: gates.results, get_checks=lambda: session.checks),
                                "pai_judge_reporting")


def pytest_report_header(config: pytest.Config) -> str:
    return terminal.report_header(config.stash[SESSION_KEY].options)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse judge markers with unknown or ill-typed arguments before anything runs."""
    for item in items:
        options.check_markers(item)


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Remember deselection: pruning after a partial run would drop the other tests' verdicts."""
    if items:
        items[0].config.stash[SESSION_KEY].deselected += len(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Judge assertions find their test through the session while it runs."""
    __tracebackhide__ = True  # a fixture's error must not show this frame
    item.config.stash[SESSION_KEY].current_item = item
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Keep the item current through teardown, then forget it."""
    __tracebackhide__ = True
    try:
        return (yield)
    finally:
        item.config.stash[SESSION_KEY].current_item = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """``--judge-estimate``: a test whose judge assertions were counted, not judged, is skipped ("estimate")."""
    report = yield
    if report.when == "call" and item.stash.get(ESTIMATED, False) and not report.skipped:
        path, line, _ = item.location
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (line or 0) + 1, "Skipped: estimate")
    return report


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Judge:
    """Verdicts as values: ``judge.score(q, a)``, ``judge.compare(q, a1, a2)``, ``judge.custom(messages)``."""
    from .assertions import Judge

    session = request.config.stash[SESSION_KEY]
    return Judge(session, request.node if isinstance(request.node, pytest.Item) else None)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the rows, counts and warnings a worker judged, for the summary and reports."""
    session = node.config.stash[SESSION_KEY]
    output = getattr(node, "workeroutput", None) or {}
    session.records.extend(JudgeRecord(**row) for row in output.get(RECORDS_KEY, []))
    session.checks.extend(output.get(CHECKS_KEY, []))
    if session.judging.estimate is not None and output.get(ESTIMATE_KEY):
        session.judging.estimate.merge(output[ESTIMATE_KEY])
    for key, value in output.get(STATS_KEY, {}).items():
        session.stats[key] = session.stats.get(key, 0) + value
    for message in output.get(WARNINGS_KEY, []):  # e.g. an unusable cache: every worker saw it
        if message not in session.warnings:
            session.warnings.append(message)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist worker: hand rows and counts to the controller; otherwise prune the cache if asked."""
    config = session.config
    judge_session = config.stash[SESSION_KEY]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        judge_session.judging.flush_cache()  # the controller may prune as soon as this worker reports back
        workeroutput[RECORDS_KEY] = [r.to_dict() for r in judge_session.records]
        workeroutput[CHECKS_KEY] = judge_session.checks
        if judge_session.judging.estimate is not None:
            workeroutput[ESTIMATE_KEY] = judge_session.judging.estimate.to_dict()
        workeroutput[STATS_KEY] = dict(judge_session.stats)
        workeroutput[WARNINGS_KEY] = judge_session.all_warnings()
    else:
        judge_session.pruned = judge_session.prune_cache(session)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Judged tests by pytest's outcome, assertions by verdict, calls, cached verdicts, tokens, the lowest scores."""
    session = config.stash[SESSION_KEY]
    records = config.stash[OUTCOMES_KEY].fill(session.records)
    terminal.write_summary(terminalreporter, records, session.all_warnings(), session.options, session.pruned,
                           session.checks)
    judging = session.judging
    if judging.spending.priced and records and judging.estimate is None and not hasattr(config, "workerinput"):
        prompt = sum(r.prompt_tokens for r in records)
        completion = sum(r.tokens for r in records) - prompt
        terminalreporter.write_line(f"pai-judge cost this run: {judging.spending.cost(prompt, completion):,.4f} "
                                    f"({prompt:,} prompt and {completion:,} completion tokens, at "
                                    f"judge_price_per_1k_input / _output)")
    if judging.estimate is not None:
        terminalreporter.section("pai-judge estimate")
        for line in judging.estimate.lines(judging.spending, str(session.options.run_mode), judging.history.source()):
            terminalreporter.write_line(line)
    elif judging.budget is not None and not hasattr(config, "workerinput"):
        terminalreporter.write_line(f"pai-judge {judging.budget.line()}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the client, flush the cache, stop the embedded server."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
