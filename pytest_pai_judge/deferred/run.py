"""Settling: the held tests of a run get their verdicts, then their reports are decided and logged.

:class:`DeferredRun` is what the session talks to in deferred and batch mode: it holds an
assertion whose verdicts are not cached (:meth:`DeferredRun.hold`) and, at the end of the run
loop, asks its verdict source for every verdict still missing, decides each held test phase by
phase exactly as immediate mode would have met its assertions, and logs it. Which source
(concurrent online calls or one batch job) is decided once, when the run is built.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .. import errors
from ..client import JudgeReply
from ..expectation import Expectation
from ..options import defer_marker
from ..pytest_compat import fixture_scope, may_rerun, running_fixture, stepwise, xdist_workers
from ..request import JudgeRequest
from ..terminal import Console, plural
from .callsite import capture_callsite, failure_repr
from .ctrl_c import hold_ctrl_c
from .held import PHASES, Held, NodeProperties, Pending, RawOutcome, Running
from .held_spool import PendingSpool
from .replies import Outcomes
from .rounds import SampleRounds
from .sources import HeldRequests, VerdictSource, Wanted

if TYPE_CHECKING:  # pragma: no cover
    from ..session import JudgeSession
    from .xdist import WorkerSpool

def needs_verdict_now(item: pytest.Item) -> bool:
    """Tests whose outcome pytest decides while they run are judged synchronously in deferred/batch mode.

    Every test under ``--sw`` (it stops at, and next time resumes from, the first failure);
    xfail-marked tests (the xfail verdict needs the exception); tests using ``subtests`` and
    unittest ``TestCase`` tests (subtest reports and ``expectedFailure`` are decided inside the
    test); tests pytest-rerunfailures may rerun (a rerun needs the failure now); and
    ``@pytest.mark.judge(defer=False)`` (e.g. ``pytest.raises(JudgeAssertionError)`` around an assertion).
    """
    defer = defer_marker(item)
    if defer is not None:
        return not defer
    if item.get_closest_marker("xfail") is not None or "subtests" in getattr(item, "fixturenames", ()):
        return True
    if stepwise(item.config):
        return True
    import sys

    unittest = sys.modules.get("unittest")
    cls = getattr(item, "cls", None)
    if unittest is not None and isinstance(cls, type) and issubclass(cls, unittest.TestCase):
        return True
    return may_rerun(item)


class DeferredRun:
    """Holds tests whose judge assertions wait for verdicts and settles them at the end of the run.

    One per pytest process in deferred and batch mode. ``-x``, ``--maxfail``, ``--sw`` and
    ``--pdb`` cannot react to a deferred failure until the end of the run.
    """

    def __init__(self, session: JudgeSession, source: VerdictSource, *, is_worker: bool) -> None:
        self.session = session
        self.config = session.config
        self.source = source
        self.is_worker = is_worker
        self.held: list[Held] = []
        self.results = Outcomes()
        """Raw outcome per cache key: fresh replies (deferred calls, batch lines, xdist workers) and errors
        (the replies' text in a temp file: 20,000 of them would otherwise wait in memory)."""
        self.requests: dict[str, tuple[JudgeRequest, str]] = {}
        """Requests a held test waits for: cache key -> (request, the first node id that asked). Every one for
        a source that judges early; otherwise only the calls of several samples (the rest are read back from
        the held tests, in the order they ran)."""
        self.pending_spool = PendingSpool()
        """Where kept tests' held assertions wait until the run settles (out of memory)."""
        self.spool: WorkerSpool | None = None
        """xdist worker: where each held test is also written, in case the worker crashes."""
        self.adopt_leftovers: Any = None
        """xdist controller: takes over the spools of workers that never reported back (set by the xdist side)."""
        self.running: defaultdict[str, Running] = defaultdict(Running)
        """Node id -> the held-assertion state of a test while it runs (see :class:`.held.Running`)."""
        self.used: set[str] = set()
        """Keys whose fresh reply a test already used: later tests read it back from the cache."""
        self._stored: set[str] = set()
        self.rounds = SampleRounds(self)
        self.settled = False
        self.console: Console | None = None
        """The settler's voice; the lines it held back while tests were logged print after the run loop."""
        self.logged = 0
        """Held tests logged so far (in the order they ran): some while the verdicts still come in."""
        self._uses: Counter[str] | None = None

    # ------------------------------------------------------------------ called by JudgeSession

    def can_hold(self, item: pytest.Item) -> bool:
        return not needs_verdict_now(item)

    def hold(self, expectation: Expectation, keys: list[str], item: pytest.Item) -> None:
        """Record a judge assertion whose verdicts are not cached; the test body continues."""
        __tracebackhide__ = True
        running = self.running[item.nodeid]
        pending = Pending(expectation, list(keys), capture_callsite(item), running.phase)
        running.pending.append(pending)
        fixturedef = running_fixture() if pending.when != "teardown" else None  # call: request.getfixturevalue
        if fixturedef is not None and fixture_scope(fixturedef) != "function":
            running.scoped.append((pending, fixturedef))
        if expectation.samples > 1:  # the first round's calls, for the samples not in the cache
            for key, call in self.rounds.plan(pending, expectation.rounds()[0]):
                self.requests.setdefault(key, (call, item.nodeid))
                if key not in self.results:
                    self.source.submit(key, call)
            return
        for key, request in pending.requests():
            if self.source.early:
                self.requests.setdefault(key, (request, item.nodeid))
            if key not in self.results and self.session.judging.peek(key) is None:
                self.source.submit(key, request)

    # ------------------------------------------------------------------ held tests

    def keep(self, held: Held) -> None:
        """A test ran to its end with held assertions: keep it (and spool it, on an xdist worker)."""
        if self.spool is not None:
            self.spool.write(held)
        held.pending = self.pending_spool.keep(held.pending)
        self.held.append(held)

    def adopt(self, held: Held) -> None:
        """Take over a held test an xdist worker shipped (or spooled before it crashed)."""
        for entry in held.pending:
            if entry.expectation.samples > 1:
                for i, indices, *_kept in entry.calls:
                    key, call = self.rounds.call(entry, i, indices)
                    self.requests.setdefault(key, (call, held.nodeid))
                continue
            for key, request in entry.requests():
                if self.source.early:
                    self.requests.setdefault(key, (request, held.nodeid))
        held.pending = self.pending_spool.keep(held.pending)
        self.held.append(held)

    # ------------------------------------------------------------------ settle

    def finish(self, *, interrupted: bool = False) -> None:
        """End of the run loop: a worker ships its held tests; a controller or single process settles."""
        if self.settled:
            return
        self.settled = True
        try:
            if self.spool is not None:
                self.spool.ship(self, interrupted)
            else:
                self.settle(interrupted=interrupted)
        finally:
            self.close()

    def take(self, resolved: MutableMapping[str, RawOutcome]) -> None:
        """Keep a source's outcomes (a spool of them is copied and let go)."""
        self.results.update(resolved)
        if isinstance(resolved, Outcomes):
            resolved.close()

    def close(self) -> None:
        self.results.close()
        self.pending_spool.close()
        self.source.close()
        if self.spool is not None:
            self.spool.close()

    def settle(self, *, interrupted: bool = False) -> None:
        """Get every missing verdict from the source, then log each held test."""
        if self.adopt_leftovers is not None:
            self.adopt_leftovers()
        held, self.held = self.held, []
        if not held:
            return
        console = self.console = Console(self.config)
        unavailable: str | None = None
        if interrupted:
            unavailable = "the run was interrupted (Ctrl-C) before its deferred verdicts were judged"
            self.drain()
        else:
            wanted = self._wanted(held)
            stop: KeyboardInterrupt | None = None
            if not wanted and self.source.calls_on_workers and xdist_workers(self.config):
                console.line(f"pai-judge: {plural(len(held), 'held test')} settled with the verdicts the xdist "
                             "workers judged (each worker waited for its own calls)")
            try:
                if wanted:
                    needed = len({k for test in held for entry in test.pending for k in self.rounds.wait_keys(entry)})
                    self.take(self.source.resolve(wanted, console, needed=needed,
                                                  on_progress=lambda: self._progress(held, console),
                                                  store=self.store))
                    wanted = {}  # let go of every request of the run (each is read back from its test when used)
                    self.drain()
                if self.logged < len(held):  # tests wait for more rounds of samples: their progress shows again
                    console.release()
                self.rounds.second_round(held, console)
            except KeyboardInterrupt as exc:
                stop = exc
            except Exception as exc:  # noqa: BLE001 - never let a held test pass unjudged
                unavailable = str(exc) if isinstance(exc, errors.JudgeError) else f"{type(exc).__name__}: {exc}"
            console.end()
            if stop is not None:  # logged outside the except block: no "during handling" chain in reports
                self.drain()
                self._log(held, self.source.interrupted_text())
                raise stop
        with hold_ctrl_c():  # a Ctrl-C while the verdicts are being logged waits the few ms until all are
            self._log(held, unavailable)

    def _wanted(self, held: list[Held]) -> Wanted:
        """Requests the held tests wait for that have neither an outcome nor a cached verdict.

        For a source that judges at the end, read back from their held tests when used (:class:`.sources.
        HeldRequests`), unless an assertion draws several samples: then all at hand, in the order asked."""
        if not self.source.early and not any(e.expectation.samples > 1 for test in held for e in test.pending):
            lazy = HeldRequests()
            for test in held:
                for entry in test.pending:
                    for key, _request in entry.requests():
                        if key not in lazy and self._missing(key):
                            lazy.add(key, test.pending, test.nodeid)
            return lazy
        wanted: dict[str, tuple[JudgeRequest, str]] = {}
        for test in held:
            for entry in test.pending:
                if entry.expectation.samples > 1:
                    for i, indices, *_kept in entry.calls:
                        key, call = self.rounds.call(entry, i, indices)
                        if key not in wanted and key not in self.results and self.source.outcome(key) is None:
                            wanted[key] = self.requests.get(key) or (call, test.nodeid)
                    continue
                for key, request in entry.requests():
                    if key not in wanted and self._missing(key):
                        wanted[key] = self.requests.get(key) or (request, test.nodeid)
        return wanted

    def _missing(self, key: str) -> bool:
        """No outcome and no cached verdict yet for this request."""
        if key in self.results or self.source.outcome(key) is not None:
            return False
        return self.session.judging.peek(key) is None

    def store(self, key: str, request: JudgeRequest, reply: JudgeReply, *, choice: int = 0) -> None:
        """Keep a fresh reply in the cache once (a failed write must not change any outcome)."""
        if key in self._stored:
            return
        self._stored.add(key)
        try:
            self.session.judging.store(key, request, reply, None, choice=choice)
        except Exception:  # noqa: BLE001 - the verdict is still used for this run
            pass

    def keep_reply(self, key: str, reply: JudgeReply) -> None:
        """Store an answered call at once (called from the judging thread): a kill later loses nothing answered."""
        if self.rounds.keep_reply(key, reply):
            return
        entry = self.requests.get(key)
        if entry is not None:
            self.store(key, entry[0], reply)

    def drain(self) -> None:
        """Move the source's finished calls into ``results`` and the cache (main thread only)."""
        for key, outcome in self.source.drain():
            if key in self.results:
                continue
            self.results[key] = outcome
            if isinstance(outcome, JudgeReply) and key in self.requests:
                self.store(key, self.requests[key][0], outcome)

    # ------------------------------------------------------------------ outcomes -> reports

    def _outcome(self, key: str, request: JudgeRequest, item: pytest.Item | None, unavailable: str | None) -> Any:
        """The verdict (or exception) a held request resolves to, exactly as immediate mode would get it.

        The first test to use a fresh reply stores it and parses it; later tests read it back from
        the cache (so they see a cached verdict, as in immediate mode) or, without a cache, reuse it.
        """
        raw = self.results.get(key)
        if raw is None:
            raw = self.source.outcome(key)
        if key not in self.used and raw is not None:
            self.used.add(key)
            if isinstance(raw, BaseException):
                return raw
            self.store(key, request, raw)
            return self._parse(raw, request)
        try:
            hit = self.session.judging.lookup(key, request, item)
        except Exception as exc:  # noqa: BLE001 - UnreadableVerdict from a cached reply
            return exc
        if hit is not None:
            return hit
        if raw is None:
            return errors.verdict_unavailable(unavailable or "no verdict came back for this request",
                                              batch=self.source.batch)
        if isinstance(raw, BaseException):
            return raw
        return self._parse(raw, request)

    def _entry_outcomes(self, entry: Pending, item: pytest.Item | None, unavailable: str | None) -> list[Any]:
        """One outcome per request (one sample), or every drawn sample per request (several)."""
        if entry.expectation.samples == 1:
            return [self._outcome(k, r, item, unavailable) for k, r in entry.requests()]
        return self.rounds.entry_outcomes(entry, item, unavailable)

    def _parse(self, raw: JudgeReply, request: JudgeRequest) -> Any:
        __tracebackhide__ = True
        try:
            return self.session.judging.parse(raw, request)
        except Exception as exc:  # noqa: BLE001 - UnreadableVerdict: the test fails showing the raw text
            return exc

    def _progress(self, held: list[Held], console: Console) -> None:
        """While verdicts come in: log the tests whose verdicts are all in, in the order they ran (pytest's own
        progress then shows instead of the settler's line), so that little is left to do after the last answer."""
        self.drain()
        if self.logged < len(held) and self._ready(held[self.logged].pending):
            console.end()
            console.muted = True
            with hold_ctrl_c():  # the tests ready now are decided and logged whole
                self._log(held, None, ready_only=True)

    def _ready(self, pending: Sequence[Pending]) -> bool:
        """Every verdict of these held assertions is in (several samples: only once all rounds are)."""
        return all(e.expectation.samples == 1 and all(k in self.results for k in e.keys) for e in pending)

    def _log(self, held: list[Held], unavailable: str | None, *, ready_only: bool = False) -> None:
        """Decide and log the held tests not logged yet, in the order they ran (``ready_only``: up to the first
        whose verdicts are not all in); a reply no later test needs is let go."""
        if self._uses is None:
            self._uses = Counter(key for test in held for entry in test.pending if entry.expectation.samples == 1
                                 for key in entry.keys)
        uses = self._uses
        while self.logged < len(held):
            test = held[self.logged]
            pending = list(test.pending)  # one read of a spooled test's held assertions
            if ready_only and not self._ready(pending):
                return
            try:
                self._decide(test, unavailable, pending)
            except Exception as exc:  # noqa: BLE001 - a bug here must fail the test, not pass it
                report = next((r for r in test.reports if r.when == "call"), test.reports[0])
                report.outcome = "failed"
                report.longrepr = f"pytest-pai-judge could not settle this test: {type(exc).__name__}: {exc}"
                if hasattr(report, "wasxfail"):
                    del report.wasxfail
            self.logged += 1
            emit(test.item.ihook if test.item is not None else self.config.hook, test.nodeid, test.location,
                 test.reports)
            for key in (k for entry in pending if entry.expectation.samples == 1 for k in entry.keys):
                uses[key] -= 1
                if uses[key] == 0:  # 20,000 held replies would otherwise stay until the run ends
                    self.results.pop(key, None)
                    self.requests.pop(key, None)

    def _decide(self, test: Held, unavailable: str | None, pending: list[Pending]) -> None:
        """Evaluate a held test's assertions phase by phase, as immediate mode would have met them."""
        item = test.item
        sink: Any = item if item is not None else NodeProperties(test.nodeid)
        first_property = len(sink.user_properties)
        failures: dict[str, tuple[BaseException, Pending]] = {}
        for when in PHASES:
            if when == "call" and "setup" in failures:
                continue  # immediate mode never runs the body of a test whose setup failed
            for entry in (e for e in pending if e.phase == when):
                outcomes = self._entry_outcomes(entry, item, unavailable)
                if entry.shared:  # an inherited fixture assertion was counted with the test that made it
                    failure = entry.expectation.evaluate(outcomes)[1]
                else:
                    failure = self.session.conclude(entry.expectation, outcomes, sink)
                if failure is not None:  # immediate mode stops a phase at its first failing assertion
                    failures[when] = (failure, entry)
                    break
        added = list(sink.user_properties[first_property:])
        for report in test.reports:
            if report.when in ("call", "teardown"):
                report.user_properties = list(report.user_properties) + added
        for when, (failure, entry) in failures.items():
            phase_report = next((r for r in test.reports if r.when == when), None)
            if phase_report is None or (when == "teardown" and phase_report.failed):
                continue  # a teardown that failed anyway keeps its own error
            if isinstance(failure, pytest.skip.Exception):  # --judge-inconclusive=skip: skipped where it was made
                phase_report.outcome = "skipped"
                line = next((int(f[1]) for f in entry.callsite[:1]), (test.location[1] or 0) + 1)
                phase_report.longrepr = (test.location[0], line, f"Skipped: {failure.msg}")
            else:
                phase_report.outcome = "failed"
                phase_report.longrepr = failure_repr(self.config, test.item, failure, entry.callsite, when)
            if hasattr(phase_report, "wasxfail"):  # pytest.xfail() after the assertion: never reached
                del phase_report.wasxfail
        if "setup" in failures:
            test.reports[:] = [r for r in test.reports if r.when != "call"]


def emit(hook: Any, nodeid: str, location: tuple[str, int | None, str], reports: list[pytest.TestReport]) -> None:
    """Log a test as pytest's own protocol does: logstart, each phase's report, logfinish."""
    hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
    for report in reports:
        hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)
