"""The run: one JudgeSession per pytest process, from configure to unconfigure.

It routes each judge assertion (decide now, or hand it to the deferred run), concludes
expectations into report rows, keeps the rows and warnings, and prunes the cache after a
complete run. Kept in ``config.stash``; the module-level assertion functions find it through
:func:`active_session`, a stack so that pytester's in-process inner runs nest cleanly.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from . import errors
from .cache import CacheMode
from .counts import assertion_status, cost_columns
from .decision import decide_winner
from .expectation import (
    Comparison,
    Expectation,
    Outcome,
    consensus,
    failure_columns,
    majority_comparison,
    median_of,
    nearest_median,
    no_verdict,
    nodeid_of,
    readable_pairs,
    readable_scores,
    spread_of,
)
from .interning import shared
from .judging import Judging
from .options import Options, Settings, ValueFallback, group_of
from .pytest_compat import expects_failure, run_id
from .record_store import RecordStore
from .records import JudgeRecord
from .request import JudgeRequest

if TYPE_CHECKING:  # pragma: no cover
    from .verdict import Verdict


class Holder(Protocol):
    """What the session needs of deferred / batch mode (``deferred.DeferredRun``)."""

    def can_hold(self, item: pytest.Item) -> bool: ...

    def hold(self, expectation: Expectation, keys: list[str], item: pytest.Item) -> None: ...


class PropertySink(Protocol):
    """Where report rows' ``user_properties`` go: a test item, or a stand-in on the xdist controller."""

    nodeid: str
    user_properties: list[tuple[str, object]]


_SESSIONS: list[JudgeSession] = []


def active_session() -> JudgeSession:
    if not _SESSIONS:
        raise RuntimeError("pytest-pai-judge is not active: judge assertions run inside a pytest session with the "
                           "plugin enabled (this is not one: the code runs outside pytest, or pytest ran with "
                           "-p no:pai_judge)")
    return _SESSIONS[-1]


class JudgeSession:
    """Everything the judge needs for one pytest process (controller or xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options = Options.from_config(config)
        self.run_id = run_id(config)
        self.judging = Judging(config, self.options, self.run_id)
        self.warnings: list[str] = list(self.options.warnings)
        self.records = RecordStore()
        """The report rows, waiting in a temporary file (:mod:`.record_store`)."""
        self.checks: list[dict[str, Any]] = []
        """The judge checks' figures (agreement with labels, bias probes), as JSON-safe dicts, in order."""
        self.current_item: pytest.Item | None = None
        self.deselected = 0
        self.pruned = 0
        self.deferred: Holder | None = None
        """Set in deferred / batch mode: holds assertions whose verdicts are not cached."""
        self._rerun_paths: dict[str, str] = {}

    @property
    def stats(self) -> dict[str, int]:
        return self.judging.stats

    # ------------------------------------------------------------------ lifecycle

    def push(self) -> None:
        _SESSIONS.append(self)

    def close(self) -> None:
        if self in _SESSIONS:
            _SESSIONS.remove(self)
        self.judging.close()

    def warn_once(self, message: str) -> None:
        """A warning for the summary, printed once however often it is raised (the first one's text)."""
        head = message.split(" (", 1)[0]
        if not any(w.split(" (", 1)[0] == head for w in self.warnings):
            self.warnings.append(message)

    def all_warnings(self) -> list[str]:
        """The cache's warning (if any) first, then the run's, each once."""
        cache_warning = self.judging.cache_warning
        return list(dict.fromkeys(([cache_warning] if cache_warning else []) + self.warnings))

    def prune_cache(self, session: pytest.Session) -> int:
        """Drop cache entries no test of this run used (all xdist workers share the run id).

        Only after a complete run: with deselected tests (-k, -m, --lf) or an interrupted / -x run,
        the entries of the tests that did not run would go too.
        """
        if not self.options.prune or not self.options.cache_mode.writes:
            return 0
        reason = None
        if self.deselected:
            reason = f"{self.deselected} tests were deselected"
        elif session.shouldstop or session.shouldfail:
            reason = "the run stopped early"
        elif self.config.getoption("lf", False) or self.config.getoption("keyword", "") or \
                self.config.getoption("markexpr", ""):
            reason = "only some tests were selected"
        if reason is None:
            reason = partial_selection(self.config)
        if reason:
            self.warnings.append(f"--judge-cache-prune skipped: {reason}, so unused entries cannot be told apart")
            return 0
        return self.judging.cache.prune_unused(self.run_id)

    # ------------------------------------------------------------------ settings

    def settings_for(self, item: pytest.Item | None) -> Settings:
        return self.options.settings_for(item)

    def rerun_id(self, item: pytest.Item) -> str:
        """The node id as the user types it: relative to the directory pytest was started in, not the rootdir."""
        path, sep, rest = item.nodeid.partition("::")
        rel = self._rerun_paths.get(path)
        if rel is None:  # once per file: relpath costs more than the rest of a cached assertion
            try:
                rel = os.path.relpath(Path(self.config.rootpath, path), self.config.invocation_params.dir)
            except ValueError:  # another drive (Windows)
                rel = path
            rel = self._rerun_paths[path] = rel.replace(os.sep, "/")
        return item.nodeid if rel == path else rel + sep + rest  # the same text: one string, not two

    def holds(self, item: pytest.Item | None) -> bool:
        """Whether this test's verdicts are deferred to the end of the run (never in an estimate: nothing is)."""
        return (self.deferred is not None and item is not None and self.judging.estimate is None
                and self.deferred.can_hold(item))

    # ------------------------------------------------------------------ assertions

    def submit(self, expectation: Expectation, item: pytest.Item | None, *, now: bool = False) -> list[Outcome]:
        """Judge now and raise on failure, or hand the expectation to the deferred run (returns []).

        ``now``: judge it now in every mode (a value the test reads, such as ``judge.agreement``)."""
        __tracebackhide__ = True
        expectation.run_mode = self.options.run_mode.value
        expectation.confidence = self.options.confidence
        expectation.inconclusive = self.options.inconclusive.value
        if item is not None:
            expectation.labels.setdefault("rerun", self.rerun_id(item))
            group = group_of(item)
            if group is not None:
                expectation.labels["group"] = group
        if expectation.samples > 1 and expectation.requests[0].params.get("temperature") == 0:
            self.warn_once(f"samples={expectation.samples} at temperature=0 ({nodeid_of(item)}): a judge that does "
                           "not sample gives the same score every time, so the extra samples cost calls and decide "
                           "nothing a single verdict would not")
        if self.judging.estimate is not None:
            self._estimate(expectation, item)
            return []
        outcomes: list[Outcome] = []
        if not now and self.holds(item) and self.options.cache_mode is not CacheMode.REPLAY:  # replay: a miss fails now
            assert item is not None and self.deferred is not None
            keys = [self._prepare(expectation, request, item, outcomes) for request in expectation.requests]
            if expectation.samples > 1:  # held whole: its rounds are settled at the end of the run
                self.deferred.hold(expectation, keys, item)
                return []
            for key, request in zip(keys, expectation.requests):
                outcomes.append(self._quietly(self.judging.lookup, key, request, item))
            if any(v is None for v in outcomes):
                self.deferred.hold(expectation, keys, item)
                return []
        elif expectation.samples > 1:
            keys = [self._prepare(expectation, request, item, outcomes) for request in expectation.requests]
            outcomes = self.draw_rounds(expectation, list(zip(keys, expectation.requests)), item)
        else:
            for request in expectation.requests:  # one request after the other, each through the whole pipeline
                try:
                    key = self._prepare(expectation, request, item, outcomes)
                except errors.REFUSED_BEFORE_SENDING:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. a hook's error or a local model check: the outcome
                    outcomes.append(exc)
                    continue
                outcomes.append(self._quietly(self.judging.resolve, key, request, item))
        failure = self.conclude(expectation, outcomes, item)
        if failure is not None:
            raise failure
        return outcomes

    def _estimate(self, expectation: Expectation, item: pytest.Item | None) -> None:
        """``--judge-estimate``: count what the assertion's requests would cost (every sample); send nothing.

        The test runs on (the assertion returns None, as when deferred) and is reported as skipped."""
        __tracebackhide__ = True
        self._count_estimate(expectation.requests, item, expectation.samples)
        mark_estimated(item)

    def _count_estimate(self, requests: list[JudgeRequest], item: pytest.Item | None, samples: int) -> None:
        __tracebackhide__ = True
        estimate = self.judging.estimate
        assert estimate is not None
        for request in requests:
            key = self.judging.prepare(request, item)
            if samples > 1:
                outcomes = self.judging.draw(request, key, list(range(samples)), item)
            else:
                outcomes = [self._quietly(self.judging.resolve, key, request, item)]
            estimate.cached += sum(1 for o in outcomes if not isinstance(o, BaseException) or
                                   getattr(o, "judge_cached", False))

    def estimate_values(self, requests: list[JudgeRequest], item: pytest.Item | None, samples: int = 1) -> None:
        """``--judge-estimate`` and a verdict read as a value: count every request it would judge, then skip the
        test (its value is not known). In deferred / batch mode a value the real run would refuse
        (``--judge-batch-fallback=error``) is not counted."""
        __tracebackhide__ = True
        refused = (self.deferred is not None and item is not None and self.deferred.can_hold(item)
                   and self.options.value_fallback is not ValueFallback.IMMEDIATE)
        if not refused:
            self._count_estimate(requests, item, samples)
        mark_estimated(item)
        pytest.skip("estimate" + (f": --judge-mode={self.options.run_mode} refuses a verdict read as a value "
                                  "(see --judge-batch-fallback)" if refused else ""))

    def _prepare(self, expectation: Expectation, request: JudgeRequest, item: pytest.Item | None,
                 so_far: list[Outcome]) -> str:
        """The request's cache key; a request refused before sending is still a row (and a "not met")."""
        __tracebackhide__ = True
        try:
            return self.judging.prepare(request, item)
        except errors.REFUSED_BEFORE_SENDING as exc:
            for outcome in so_far:  # the orders judged before it were paid for
                self.judging.observe(outcome, item)
            self.add_records([expectation.record(expectation.requests[0], None, **failure_columns([exc]))], item)
            raise

    def draw_rounds(self, expectation: Expectation, pairs: list[tuple[str, JudgeRequest]], item: pytest.Item | None
                     ) -> list[list[Outcome]]:
        """Draw a multi-sample assertion's samples round by round, stopping as soon as they decide it."""
        per_request: list[list[Outcome]] = [[] for _ in pairs]
        __tracebackhide__ = True
        rounds = expectation.rounds()
        for number, indices in enumerate(rounds):
            for drawn, (key, request) in zip(per_request, pairs):
                drawn += self.judging.draw(request, key, indices, item)
            if expectation.decided(per_request, final=number == len(rounds) - 1):
                break
        return per_request

    @staticmethod
    def _quietly(get: Callable[..., Outcome], *args: Any) -> Outcome:
        """A verdict, or the exception that is this assertion's outcome (a judge error, an unreadable reply)."""
        __tracebackhide__ = True
        try:
            return get(*args)
        except Exception as exc:  # noqa: BLE001 - the outcome, as the test will see it
            return exc

    def conclude(self, expectation: Expectation, outcomes: list[Outcome], item: pytest.Item | PropertySink | None,
                 *, count: bool = True) -> BaseException | None:
        """Count the outcomes, evaluate the expectation, keep its report rows; return the failure (None: it holds)."""
        if count:
            flat = [o for samples in outcomes for o in samples] if expectation.samples > 1 else outcomes
            for outcome in flat:
                self.judging.observe(outcome, item if isinstance(item, pytest.Item) else None)
        records, failure = expectation.evaluate(outcomes)
        self.add_records(records, item)
        check = expectation.judge_check()
        if check is not None:
            self.checks.append(check)
        return failure

    def add_records(self, records: list[JudgeRecord], item: pytest.Item | PropertySink | None) -> None:
        if isinstance(item, pytest.Item) and expects_failure(item, errors.JudgeAssertionError):
            for record in records:
                record.xfail = True  # reports show it as xfailed / xpassed, not as a failure
        self.records.extend(records)
        if item is not None:
            for record in records:
                properties = [("judge_score", record.score), ("judge_model", record.model),
                              ("judge_assertion", assertion_status(record.row())), ("judge_tokens", record.tokens),
                              ("judge_cached", record.cached)]
                if record.threshold is not None:
                    properties.append(("judge_threshold", record.threshold))
                if record.winner is not None:
                    properties.append(("judge_winner", record.winner))
                item.user_properties.extend(shared(p) for p in properties)  # equal tuples: one object

    # ------------------------------------------------------------------ verdicts as values

    def value(self, request: JudgeRequest, item: pytest.Item | None, *, record: bool = True,
              samples: int = 1) -> Verdict:
        """A verdict the test body reads as a value (the ``judge`` fixture).

        In deferred / batch mode this is an error (or, with the fallback, a synchronous call) whether
        or not the verdict is cached, so a test does not pass or fail with the cache's contents.
        ``record=False`` leaves the report row to the caller (``Judge.compare`` writes one for both orders).
        """
        __tracebackhide__ = True
        if self.judging.estimate is not None:
            self.estimate_values([request], item, samples)
        self.check_value_now(request, item)
        if samples > 1:
            return self.sampled_value(request, item, samples)
        return self.value_now(request, item, record=record)

    def check_value_now(self, request: JudgeRequest, item: pytest.Item | None) -> None:
        """In deferred / batch mode a value cannot wait for the end of the run: refuse it (unless the fallback)."""
        __tracebackhide__ = True
        if self.holds(item):
            self.judging.prepare(request, item)  # a request the judge would refuse is refused now, whatever the mode
            if self.options.value_fallback is not ValueFallback.IMMEDIATE:
                refused = errors.DeferredVerdictError(
                    f"this test reads a judge verdict as a value ({request.describe()}), but "
                    f"--judge-mode={self.options.run_mode} defers verdicts to the end of the run, so it is not known "
                    "yet. Use assert_judge_score / assert_judge_prefers / assert_judge_not_worse (they are "
                    "deferred), mark this test @pytest.mark.judge(defer=False) to judge it synchronously, or pass "
                    "--judge-batch-fallback=immediate to judge every value read in a test body with a synchronous "
                    "call.")
                self.record_value_failure(request, refused, item)  # a row: the reports count it as an error
                raise refused

    def sampled_comparison(self, forward: JudgeRequest, backward: JudgeRequest, item: pytest.Item | None,
                           samples: int) -> Comparison:
        """``judge.compare`` with several samples: each judges both orders; the winner has a strict majority."""
        __tracebackhide__ = True
        if self.judging.estimate is not None:
            self.estimate_values([forward, backward], item, samples)
        self.check_value_now(forward, item)
        drawn = [self.judging.draw(r, self.judging.prepare(r, item), list(range(samples)), item)
                 for r in (forward, backward)]
        flat = [o for orders in drawn for o in orders]
        for outcome in flat:
            self.judging.observe(outcome, item)
        pairs = readable_pairs(*drawn)
        failure = no_verdict(flat, pairs)
        if failure is not None:
            self.record_value(forward, None, item, samples=samples, **failure_columns(flat, drawn))
            raise failure
        votes = [consensus(f, b).winner for f, b in pairs]
        result = majority_comparison(pairs, decide_winner(votes, samples, final=True), votes)
        scores = [s for f, b in pairs if (s := consensus(f, b).score1) is not None]
        self.record_value(forward, pairs[0][0], item, winner=result.winner, samples=samples, scores=scores,
                          score=median_of(scores),
                          score2=median_of([consensus(f, b).score2 for f, b in pairs]),
                          spread=spread_of(scores), **cost_columns(drawn))
        return result

    def sampled_value(self, request: JudgeRequest, item: pytest.Item | None, samples: int) -> Verdict:
        """A verdict read as a value from ``samples`` samples (all drawn: no threshold to stop at)."""
        __tracebackhide__ = True
        key = self.judging.prepare(request, item)
        drawn = self.judging.draw(request, key, list(range(samples)), item)
        for outcome in drawn:
            self.judging.observe(outcome, item)
        readable, scores = readable_scores(drawn)
        failure = no_verdict(drawn, readable)
        if failure is not None:
            self.record_value(request, None, item, samples=samples, **failure_columns(drawn, [drawn]))
            raise failure
        verdict = replace(nearest_median(readable, scores), score=statistics.median(scores), samples=tuple(scores),
                          usage={"total_tokens": sum(int((v.usage or {}).get("total_tokens") or 0) for v in readable)},
                          cached=all(v.cached for v in readable))
        self.record_value(request, verdict, item, samples=samples, scores=scores, spread=spread_of(scores),
                          **cost_columns([drawn]))
        return verdict

    def value_now(self, request: JudgeRequest, item: pytest.Item | None, *, record: bool = True) -> Verdict:
        """The cached or a fresh verdict, read now (immediate mode, or deferred mode's fallback)."""
        __tracebackhide__ = True
        try:
            verdict = self.judging.verdict(request, item)
        except errors.Estimated:  # --judge-estimate: counted; without its value the test cannot go on
            mark_estimated(item)
            pytest.skip("estimate")
        except Exception as exc:  # an unreadable reply or a judge error: a row that says so, then the error
            if record:
                self.record_value_failure(request, exc, item)
            raise
        if record:
            self.record_value(request, verdict, item)
        return verdict

    def record_value_failure(self, request: JudgeRequest, exc: BaseException, item: pytest.Item | None) -> None:
        """A value read that got no verdict is a report row too (not for a request refused before sending)."""
        if not isinstance(exc, errors.REFUSED_BEFORE_SENDING):
            self.record_value(request, None, item, **failure_columns([exc]))

    def record_value(self, request: JudgeRequest, verdict: Verdict | None, item: pytest.Item | None,
                     **columns: Any) -> None:
        """A verdict read as a value is reported too (no threshold, so neither passed nor failed)."""
        group = group_of(item)
        expectation = Expectation("score", [request], None, nodeid_of(item), run_mode=self.options.run_mode.value,
                                  labels={"group": group} if group is not None else {})
        self.add_records([expectation.record(request, verdict, passed=None, assertion="value", **columns)], item)


ESTIMATED = pytest.StashKey[bool]()
"""A test whose judge assertions ``--judge-estimate`` counted: reported as skipped, reason "estimate"."""


def mark_estimated(item: pytest.Item | None) -> None:
    if item is not None:
        item.stash[ESTIMATED] = True
        session = active_session()
        if session.judging.estimate is not None:
            session.judging.estimate.tests.add(item.nodeid)


def partial_selection(config: pytest.Config) -> str | None:
    """Why the paths on the command line select less than the whole suite, or None when they do not.

    The whole suite is what a bare ``pytest`` in the rootdir runs: its ``testpaths``, or the rootdir.
    """
    rootpath = Path(config.rootpath).resolve()
    given = [a for a in config.invocation_params.args if isinstance(a, str)]
    narrowing = next((a.split("=")[0] for a in given if a.split("=")[0] in ("--ignore", "--ignore-glob")), None)
    if narrowing:  # in addopts they shape the suite; on the command line they leave part of it out
        return f"{narrowing} left part of the suite out"
    source = getattr(config, "args_source", None)
    if source == pytest.Config.ArgsSource.TESTPATHS:
        return None
    if source == pytest.Config.ArgsSource.INVOCATION_DIR:
        invoked = Path(config.invocation_params.dir).resolve()
        return None if invoked == rootpath else f"pytest ran from {invoked}, below the rootdir {rootpath}"
    testpaths = [Path(rootpath, p).resolve() for p in (config.getini("testpaths") or [])] or [rootpath]
    for arg in config.args:
        if "::" in arg:
            return f"{arg} names single tests"
        path = Path(config.invocation_params.dir, arg).resolve()
        if not any(path == t or t.is_relative_to(path) for t in testpaths):
            return f"{arg} is only part of the suite (if it is the whole suite, say so with testpaths in the ini)"
    return None


