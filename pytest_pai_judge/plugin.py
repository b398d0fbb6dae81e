"""pytest hooks of pytest-pai-judge, in lifecycle order. State lives in one JudgeSession.

Registered through the ``pytest11`` entry point ``pai_judge``; ``-p no:pai_judge`` disables it.
Heavy imports (openai, pandas, the server) happen on first use, never at startup.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from .session import CACHE_MODES, MODES, JudgeSession

if TYPE_CHECKING:  # pragma: no cover
    from .assertions import Judge

SESSION_KEY = pytest.StashKey[JudgeSession]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add the plugin's own hookspecs (pytest_judge_request, _parse_reply, _verdict, _results)."""
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """One option group, one prefix; every option also has an ini key. Defaults of None keep precedence visible."""
    group = parser.getgroup("pai-judge", "judge-model assertions (pytest-pai-judge)")

    def option(name: str, ini_type: str | None = None, help: str = "", **kwargs: Any) -> None:  # noqa: A002
        dest = name.replace("-", "_")
        group.addoption(f"--{name}", dest=dest, default=kwargs.pop("default", None), help=help, **kwargs)
        parser.addini(dest, help=help, type=ini_type, default=None)  # type: ignore[arg-type]

    option("judge-model", "string", "judge model name (default: pai-judge; markers may override per test)")
    option("judge-base-url", "string", "judge API base URL, e.g. https://aiservice.cn-hangzhou.aliyuncs.com/v1 "
           "(env JUDGE_MODEL_BASE_URL). Unset: an embedded local server with the offline lexical engine. "
           "The token comes from env JUDGE_MODEL_TOKEN only")
    option("judge-min-score", "string", "minimum score for assert_judge_score (default 4)", type=float)
    option("judge-timeout", "string", "seconds to wait for one judge reply, per attempt (default 60)", type=float)
    option("judge-retries", "string", "retries of a judge call after a 408, 409, 429, 5xx, timeout or connection error, with "
           "backoff (default 3); after 2 calls in a row could not reach the judge, later ones fail fast", type=int)
    option("judge-cache", "string", "verdict cache: use (read+write, default), refresh (write only), off, "
           "replay (read only; a miss fails the test - for offline CI)", choices=CACHE_MODES)
    option("judge-cache-dir", "string", "verdict cache directory (default: <rootdir>/.pai_judge_cache)")
    group.addoption("--judge-cache-prune", dest="judge_cache_prune", action="store_true", default=None,
                    help="after a complete run, drop cache entries that no test used in it (skipped when tests "
                         "were deselected, only some paths or node ids were given, or the run stopped early)")
    group.addoption("--no-judge-cache-prune", dest="judge_cache_prune", action="store_false",
                    help="do not prune, even if the ini file sets judge_cache_prune = true")
    parser.addini("judge_cache_prune", type="bool", default=False, help="like --judge-cache-prune")
    option("judge-mode", "string", "immediate (default): judge inside each test; deferred: hold tests and judge "
           "with concurrent online calls; batch: one PAI batch job for the whole run", choices=MODES)
    option("judge-concurrency", "string", "deferred mode: judge calls in flight at once (default 8)", type=int)
    option("judge-batch-timeout", "string", "batch mode: seconds to wait for the batch job (default 86400)",
           type=float)
    option("judge-batch-poll", "string", "batch mode: seconds between status polls (default 2)", type=float)
    group.addoption("--judge-batch-resume", dest="judge_batch_resume", default=None, metavar="BATCH_ID",
                    help="collect the results of an earlier, interrupted batch job instead of submitting a new one "
                         "(the last run's job is resumed automatically)")
    option("judge-batch-fallback", "string", "deferred/batch mode: what a judge verdict read as a value in the "
           "test body does: error (default) or immediate (a synchronous call)", choices=("error", "immediate"))
    try:
        from .report.plugin import add_options
    except ImportError:  # pragma: no cover - reporting not installed
        return
    add_options(group, parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and build the session (and, in deferred / batch mode, the settler)."""
    config.addinivalue_line(
        "markers", "judge(min_score=None, model=None, defer=None): judge thresholds and model for a test, class "
                   "or module (precedence: argument > marker > --judge-min-score > ini > 4); defer=False judges "
                   "this test's assertions synchronously in deferred / batch mode")
    session = JudgeSession(config)
    config.stash[SESSION_KEY] = session
    session.push()
    if session.run_mode != "immediate":
        from .deferred import DeferredSettler

        settler = DeferredSettler(session)
        session.deferred = settler
        config.pluginmanager.register(settler, "pai_judge_deferred")
    try:
        from .report.plugin import JudgeReporting
    except ImportError:  # pragma: no cover
        return
    config.pluginmanager.register(JudgeReporting(config, lambda: session.records), "pai_judge_reporting")


def pytest_report_header(config: pytest.Config) -> str:
    """Say once which judge this run talks to."""
    session = config.stash[SESSION_KEY]
    return (f"pai-judge: {session.describe_target()}; model={session.model}, min_score={session.min_score:g}, "
            f"mode={session.run_mode}, cache={session.cache_mode}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse judge markers with unknown or ill-typed arguments before anything runs."""
    session = config.stash[SESSION_KEY]
    for item in items:
        session.check_markers(item)


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


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Judge:
    """Verdicts as values: ``judge.score(q, a)``, ``judge.compare(q, a1, a2)``, ``judge.custom(messages)``."""
    from .assertions import Judge

    session = request.config.stash[SESSION_KEY]
    return Judge(session, request.node if isinstance(request.node, pytest.Item) else None)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the records a worker judged, for the summary and reports."""
    from .records import JudgeRecord

    session = node.config.stash[SESSION_KEY]
    output = getattr(node, "workeroutput", None) or {}
    for row in output.get("pai_judge_records", []):
        session.records.append(JudgeRecord(**row))
    for key, value in output.get("pai_judge_stats", {}).items():
        session.stats[key] = session.stats.get(key, 0) + value
    for message in output.get("pai_judge_warnings", []):  # e.g. an unusable cache: every worker saw it
        if message not in session.warnings:
            session.warnings.append(message)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist worker: hand records and counts to the controller; otherwise prune the cache if asked."""
    config = session.config
    judge_session = config.stash[SESSION_KEY]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        if judge_session._cache is not None:
            judge_session._cache.flush()  # the controller may prune as soon as this worker reports back
        workeroutput["pai_judge_records"] = [r.to_dict() for r in judge_session.records]
        workeroutput["pai_judge_stats"] = dict(judge_session.stats)
        cache_warning = judge_session._cache.warning if judge_session._cache is not None else None
        workeroutput["pai_judge_warnings"] = ([cache_warning] if cache_warning else []) + list(judge_session.warnings)
    else:
        judge_session.pruned = judge_session.prune_cache(session)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Judged tests, cached vs fresh verdicts, tokens, and the lowest scores against their thresholds."""
    session = config.stash[SESSION_KEY]
    cache_warning = session._cache.warning if session._cache is not None else None
    for message in dict.fromkeys(([cache_warning] if cache_warning else []) + session.warnings):  # once each
        prefix = "" if message.startswith("pai-judge") else "pai-judge warning: "
        terminalreporter.write_line(f"{prefix}{message}", yellow=True)
    if not session.records:
        return
    records = session.records
    tests = {r.nodeid for r in records}
    failed = sum(1 for r in records if (r.passed is False and not r.xfail) or r.error)
    values = sum(1 for r in records if r.assertion == "value")
    parts = [_plural(len(records) - values, "judged assertion")] if len(records) > values else []
    if values:
        parts.append(f"{_plural(values, 'verdict')} read as {'a value' if values == 1 else 'values'}")
    judged = " and ".join(parts)
    terminalreporter.section("pai-judge summary")
    terminalreporter.write_line(
        f"{judged} in {_plural(len(tests), 'test')} ({failed} not met); verdicts: "
        f"{session.stats.get('fresh', 0)} fresh, {session.stats.get('cached', 0)} from cache; "
        f"tokens used: {session.stats.get('tokens', 0)}; mode: {session.run_mode}")
    scored = sorted((r for r in records if r.score is not None and r.assertion == "score"),
                    key=lambda r: (r.score / (r.max_score or 5), r.nodeid))[:5]
    if scored:
        terminalreporter.write_line("lowest scores:")
        for r in scored:
            mark = "ok   " if r.passed else ("xfail" if r.xfail else "FAIL ")
            threshold = f" (min {r.threshold:g})" if r.threshold is not None else ""
            terminalreporter.write_line(f"  {mark} {r.score:g}/{r.max_score}{threshold}  {r.nodeid}")
    pruned = getattr(session, "pruned", None)
    if pruned:
        terminalreporter.write_line(f"cache: pruned {pruned} entries no test used")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the client, flush the cache, stop the embedded server."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
