"""The pytest hooks that hold tests: run each test unlogged, hold it if it awaits verdicts, settle at the end.

A ``tryfirst`` ``pytest_runtest_protocol`` runs the test without logging; a test with held
assertions keeps its reports until the innermost ``pytest_runtestloop`` wrapper settles every
held test and logs it *inside* the loop, so the terminal, ``session.testsfailed`` (the exit
status), ``--lf`` and junitxml all see the final outcome.

A module / class / session fixture whose held assertion fails errors every later test that
reused that very value (as pytest re-raises a cached fixture error), in setup or, for
``request.getfixturevalue()``, in the body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from ..pytest_compat import fixture_value, may_rerun, run_unlogged, used_fixture
from .callsite import locate
from .held import Held, Pending, Running
from .run import DeferredRun, emit

if TYPE_CHECKING:  # pragma: no cover
    from ..session import JudgeSession


class HoldingHooks:
    """Registered in deferred and batch mode (one per pytest process)."""

    def __init__(self, run: DeferredRun) -> None:
        self.run = run
        self.shared: list[tuple[Any, Any, Pending]] = []
        """(FixtureDef, its value when the assertion was held, the held assertion)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        """Run the test unlogged; hold it if judge assertions await verdicts, else log it at once."""
        if may_rerun(item):
            return None  # pytest-rerunfailures runs it; its judge assertions are synchronous (needs_verdict_now)
        self.run.running[item.nodeid].ours = True
        try:
            reports = run_unlogged(item, nextitem)
        finally:
            running = self.run.running.pop(item.nodeid, Running())  # nothing left of a test the run keeps
        pending = running.inherited + running.pending
        for own, fixturedef in running.scoped:
            if fixture_value(fixturedef) is not None:  # still set up: later tests in its scope reuse it
                self.shared.append((fixturedef, fixture_value(fixturedef), own))
        if pending:
            # Held whatever the phases' outcomes: a judge assertion that fails before a failure, a skip
            # or an imperative xfail is what immediate mode would have stopped at, so it decides.
            self.run.keep(Held(item.nodeid, item.location, reports, pending, None if self.run.is_worker else item))
        else:
            emit(item.ihook, item.nodeid, item.location, reports)
        self.run.drain()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.run.running[item.nodeid].phase = "setup"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.run.running[item.nodeid].phase = "call"
        self._inherit(item, "setup")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self._inherit(item, "call")  # fixtures the body fetched with request.getfixturevalue()
        self.run.running[item.nodeid].phase = "teardown"

    def _inherit(self, item: pytest.Item, when: str) -> None:
        """Take over the held assertions of wider-scoped fixture values this test reused.

        A new param value, a new scope instance or an overriding fixture is a different value.
        """
        if not self.shared:
            return
        self.shared = [(fd, value, p) for fd, value, p in self.shared if fixture_value(fd) is value]
        running = self.run.running[item.nodeid]
        taken = {id(p) for p in running.inherited_from}
        for fd, _value, p in self.shared:
            if id(p) not in taken and used_fixture(item, fd):
                running.inherited.append(dataclasses.replace(p, when=when, shared=True))
                running.inherited_from.append(p)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Another plugin ran the protocol (e.g. rerunfailures): judge held assertions now, never pass unjudged."""
        report = yield
        running = self.run.running.get(item.nodeid)
        if call.when != "call" or running is None or running.ours:
            return report
        del self.run.running[item.nodeid]
        return judge_now(self.run.session, item, report, running.pending)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        """Another plugin's protocol ended a test: forget what its hooks noted (the holding protocol already did)."""
        running = self.run.running.get(nodeid)
        if running is not None and not running.ours:
            del self.run.running[nodeid]

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """Innermost wrapper: settle before the terminal ends the progress line and before the exit status."""
        try:
            result = yield
        except pytest.Session.Interrupted:  # a KeyboardInterrupt subclass: --sw, xdist's -x; nobody pressed Ctrl-C
            self.run.finish()
            raise
        except KeyboardInterrupt:
            self.run.finish(interrupted=True)
            raise
        except BaseException:
            self.run.finish()  # e.g. -x / --maxfail (session.Failed): the held tests still get their verdicts
            raise
        self.run.finish()
        return result

    @pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_runtestloop")
    def pytest_runtestloop_release(self, session: pytest.Session) -> Generator[None, object, object]:
        """Outermost: lines the settler held back while it logged tests print after pytest's final ``[100%]``
        (pytest reads only methods named ``pytest_*``; ``specname`` names the hook)."""
        try:
            return (yield)
        finally:
            if self.run.console is not None:
                self.run.console.release()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Stop the background loop if a run ended without settling (e.g. a usage error)."""
        self.run.close()


def judge_now(session: JudgeSession, item: pytest.Item, report: pytest.TestReport, pending: list[Pending]
              ) -> pytest.TestReport:
    """Another plugin ran the protocol (e.g. rerunfailures): judge held assertions now, never pass unjudged."""
    for entry in pending:
        if entry.expectation.samples > 1:
            drawn = session.draw_rounds(entry.expectation, entry.requests(), item)
            failure = session.conclude(entry.expectation, drawn, item)
        else:
            outcomes: list[Any] = []
            for _key, request in entry.requests():
                try:
                    outcomes.append(session.judging.verdict(request, item))
                except Exception as exc:  # noqa: BLE001 - the test's outcome, as in immediate mode
                    outcomes.append(exc)
            failure = session.conclude(entry.expectation, outcomes, item, count=False)
        report.user_properties = list(item.user_properties)
        if failure is not None and not report.failed:
            report.outcome = "failed"
            report.longrepr = item.repr_failure(pytest.ExceptionInfo.from_exception(locate(failure, entry.callsite)))
            break
    return report
