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
from typing import Any

import pytest

from ..pytest_compat import fixture_value, may_rerun, run_unlogged, used_fixture
from .held import PENDING, PHASE, SCOPED, Held, Pending
from .run import DeferredRun, emit

IN_OUR_PROTOCOL = pytest.StashKey[bool]()
INHERITED = pytest.StashKey[list[Pending]]()
"""Held assertions of wider-scoped fixture values this test reused."""
INHERITED_FROM = pytest.StashKey[list[Pending]]()


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
        item.stash[IN_OUR_PROTOCOL] = True
        try:
            reports = run_unlogged(item, nextitem)
        finally:
            item.stash[IN_OUR_PROTOCOL] = False
        pending = item.stash.get(INHERITED, []) + item.stash.get(PENDING, [])
        for own, fixturedef in item.stash.get(SCOPED, []):
            if fixture_value(fixturedef) is not None:  # still set up: later tests in its scope reuse it
                self.shared.append((fixturedef, fixture_value(fixturedef), own))
        for key in (INHERITED, INHERITED_FROM, PENDING):  # nothing left on a test the run keeps
            if key in item.stash:
                del item.stash[key]
        if SCOPED in item.stash:
            del item.stash[SCOPED]
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
        item.stash[PHASE] = "setup"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        item.stash[PHASE] = "call"
        self._inherit(item, "setup")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self._inherit(item, "call")  # fixtures the body fetched with request.getfixturevalue()
        item.stash[PHASE] = "teardown"

    def _inherit(self, item: pytest.Item, when: str) -> None:
        """Take over the held assertions of wider-scoped fixture values this test reused.

        A new param value, a new scope instance or an overriding fixture is a different value.
        """
        if not self.shared:
            return
        self.shared = [(fd, value, p) for fd, value, p in self.shared if fixture_value(fd) is value]
        inherited = item.stash.setdefault(INHERITED, [])
        taken = {id(p) for p in item.stash.get(INHERITED_FROM, [])}
        for fd, _value, p in self.shared:
            if id(p) not in taken and used_fixture(item, fd):
                inherited.append(dataclasses.replace(p, when=when, shared=True))
                item.stash.setdefault(INHERITED_FROM, []).append(p)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Another plugin ran the protocol (e.g. rerunfailures): judge held assertions now, never pass unjudged."""
        report = yield
        if call.when != "call" or item.stash.get(IN_OUR_PROTOCOL, False):
            return report
        return self.run.judge_now(item, report)

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

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Stop the background loop if a run ended without settling (e.g. a usage error)."""
        self.run.close()
