"""Held multi-sample assertions: the calls each round of samples needs, and each sample's outcome.

A held assertion with ``samples`` > 1 waits for its first round (the fewest samples that can
decide) like any held request; at settling, the cases those samples leave undecided draw the
rest in a second round (in batch mode: a second, smaller job). Each round's missing samples of
a request are ONE call (``n`` = how many, see :mod:`..sampling`); the calls are recorded on the
held assertion (JSON-safe), so an xdist controller can settle a worker's held tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import errors
from ..cache import cache_key
from ..client import JudgeReply
from ..request import JudgeRequest
from ..sampling import blocks, draw_request, sample_key
from ..terminal import Console, plural
from .held import Held, Pending

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .run import DeferredRun


class SampleRounds:
    """Plans the calls of held multi-sample assertions and reads their samples back."""

    def __init__(self, run: DeferredRun) -> None:
        self.run = run
        self.sample_calls: dict[str, tuple[str, list[int], list[int], JudgeRequest]] = {}
        """Calls drawing several samples: call key -> (the request's key, the samples it draws, those it
        keeps (not cached before), the call)."""
        self.decided: dict[int, list[list[Any]]] = {}
        """id(held assertion) -> its samples per request, once its rounds are done (read by the settler)."""

    def second_round(self, held: list[Held], console: Console) -> None:
        """Held multi-sample assertions the first round left undecided draw the rest of their samples."""
        undecided: list[tuple[Held, Pending, list[list[Any]]]] = []
        for test in held:
            for entry in test.pending:
                if entry.expectation.samples == 1 or entry.shared:
                    continue
                rounds = entry.expectation.rounds()
                drawn = self.samples(entry, rounds[0], test.item, None)
                self.decided[id(entry)] = drawn
                if len(rounds) > 1 and not entry.expectation.decided(drawn, final=False):
                    undecided.append((test, entry, drawn))
        if not undecided:
            return
        wanted: dict[str, tuple[JudgeRequest, str]] = {}
        for test, entry, _drawn in undecided:
            for key, call in self.plan(entry, entry.expectation.rounds()[1]):
                self.run.requests.setdefault(key, (call, test.nodeid))
                wanted.setdefault(key, (call, test.nodeid))
        if wanted:
            console.line(f"pai-judge: second round: {plural(len(undecided), 'undecided case')} draw the rest of "
                         "their samples")
            self.run.take(self.run.source.resolve(wanted, console, needed=len(wanted), on_progress=self.run.drain,
                                                  store=self.run.store))
            self.run.drain()
        for test, entry, drawn in undecided:
            for samples, more in zip(drawn, self.samples(entry, entry.expectation.rounds()[1], test.item,
                                                                None)):
                samples += more

    def entry_outcomes(self, pending: Pending, item: pytest.Item | None, unavailable: str | None) -> list[list[Any]]:
        """Every drawn sample of a held assertion, per request (as decided, unless its verdicts never came)."""
        drawn = self.decided.get(id(pending))
        if drawn is not None and unavailable is None:
            return drawn
        indices = sorted({j for entry in pending.calls for j in entry[-1]} | set(pending.expectation.rounds()[0]))
        return self.samples(pending, indices, item, unavailable)

    def keep_reply(self, key: str, reply: JudgeReply) -> bool:
        """Store each choice of an answered call of several samples under its sample's key; False: not one."""
        drawn = self.sample_calls.get(key)
        if drawn is None:
            return False
        base_key, indices, kept, call = drawn
        for choice, index in enumerate(indices[:len(reply.texts)]):
            if index in kept:
                self.run.store(sample_key(base_key, index), call, reply.choice(choice), choice=choice)
        return True

    def call(self, pending: Pending, request_index: int, indices: list[int]) -> tuple[str, JudgeRequest]:
        """The call drawing ``indices`` of one request, and its key (the key of exactly that request body)."""
        _base_key, request = pending.requests()[request_index]
        call = draw_request(request, indices)
        return cache_key(call.body(), self.run.session.options.cache_identity), call

    def plan(self, pending: Pending, indices: list[int]) -> list[tuple[str, JudgeRequest]]:
        """Record (and return) the calls that draw the samples ``indices`` not in the cache yet."""
        planned = []
        for request_index, (base_key, _request) in enumerate(pending.requests()):
            missing = [j for j in indices if self.run.session.judging.peek(sample_key(base_key, j)) is None]
            for drawn in blocks(missing):
                kept = [j for j in drawn if j in missing]  # a sample already cached stays as it is
                pending.calls.append([request_index, drawn, kept])
                key, call = self.call(pending, request_index, drawn)
                self.sample_calls[key] = (base_key, drawn, kept, call)
                planned.append((key, call))
        return planned

    def wait_keys(self, pending: Pending) -> list[str]:
        """The keys of every call a held assertion waits for."""
        if pending.expectation.samples == 1:
            return list(pending.keys)
        return [self.call(pending, entry[0], entry[1])[0] for entry in pending.calls]

    def samples(self, pending: Pending, indices: list[int], item: pytest.Item | None, unavailable: str | None
                ) -> list[list[Any]]:
        """The outcomes of samples ``indices`` of every request, as immediate mode would get them."""
        return [[self.sample(pending, i, j, item, unavailable) for j in indices] for i in range(len(pending.keys))]

    def sample(self, pending: Pending, request_index: int, index: int, item: pytest.Item | None,
               unavailable: str | None) -> Any:
        """Sample ``index`` of one request: first use from its call's reply (stored, then parsed), else the cache."""
        run = self.run
        base_key, request = pending.requests()[request_index]
        key = sample_key(base_key, index)
        drawn = next(((entry[0], entry[1]) for entry in pending.calls
                      if entry[0] == request_index and index in entry[-1]), None)
        raw = None
        call: JudgeRequest | None = None
        choice = 0
        if drawn is not None:
            call_key, call = self.call(pending, request_index, drawn[1])
            choice = drawn[1].index(index)
            raw = run.results.get(call_key) or run.source.outcome(call_key)
        if raw is not None and key not in run.used:
            run.used.add(key)
            return self._from_reply(raw, choice, key, call, request)
        try:
            hit = run.session.judging.lookup(key, request, item)
        except Exception as exc:  # noqa: BLE001 - an unreadable cached sample is that sample's outcome
            return exc
        if hit is not None:
            return hit
        if raw is not None:  # no cache: the reply itself, read again
            return self._from_reply(raw, choice, None, call, request)
        return errors.verdict_unavailable(unavailable or "no verdict came back for this sample",
                                          batch=run.source.batch)

    def _from_reply(self, raw: Any, choice: int, key: str | None, call: JudgeRequest | None,
                    request: JudgeRequest) -> Any:
        if isinstance(raw, BaseException):
            return raw
        texts = raw.texts
        if choice >= len(texts):
            return errors.JudgeError(f"the judge returned {len(texts)} choices; sample {choice + 1} of the call is "
                                     "missing", code="MissingChoice")
        one = raw.choice(choice)
        if key is not None and call is not None:
            self.run.store(key, call, one, choice=choice)
        try:
            return self.run.session.judging.parse(one, request)
        except Exception as exc:  # noqa: BLE001 - an unreadable sample is missing data, not a vote
            return exc
