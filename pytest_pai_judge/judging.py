"""One request through the pipeline: prepare -> cache lookup -> judge call -> store -> parse -> count.

:class:`Judging` owns what the pipeline needs for one pytest process: the client (and the
embedded server behind it when no base URL is given), the verdict cache, the run's counts of
fresh and cached verdicts and tokens, and the fail-fast rule for a judge that cannot be reached.
Immediate mode runs the whole pipeline here (:meth:`Judging.verdict`, :meth:`Judging.resolve`,
:meth:`Judging.draw` for several samples); deferred and batch mode get their raw replies from a
verdict source and use this pipeline's steps (:meth:`Judging.lookup`, :meth:`Judging.store`,
:meth:`Judging.parse`) to turn them into verdicts the same way. Counting is the session's
``conclude`` (one place for every mode).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import errors
from .breaker import Breaker
from .cache import CacheMode, cache_key
from .client import TOKEN_ENV, JudgeClient, JudgeReply, check_request
from .options import Options
from .request import JudgeRequest, without_max_tokens
from .sampling import blocks, draw_request, sample_key
from .spending import Budget, CompletionHistory, Estimate, Spending, job_tokens, spent_tokens

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .cache import VerdictCache
    from .server import LocalJudgeServer
    from .verdict import Verdict

MEMO_DROPPED = ("raw", "model", "usage", "latency_s", "cached")
"""Verdict fields a parse memo leaves out: they come from the stored reply, or from this read."""


def mark_reply(exc: BaseException, *, usage: dict[str, Any] | None = None, cached: bool) -> None:
    """Note on an unreadable-reply exception where the reply came from, for the counts and the report row."""
    try:
        if usage is not None or not hasattr(exc, "judge_usage"):
            exc.judge_usage = usage  # type: ignore[attr-defined]
        exc.judge_cached = cached  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type that takes no attributes
        pass


class Judging:
    """The verdict pipeline of one pytest process (controller or xdist worker)."""

    def __init__(self, config: pytest.Config, options: Options, run_id: str) -> None:
        self.config = config
        self.options = options
        self.run_id = run_id
        self.stats = {"fresh": 0, "cached": 0, "tokens": 0}
        self.in_flight: Callable[[str], Future[JudgeReply] | None] = lambda key: None
        """Deferred mode sets this: a held call of the same request, which a synchronous call waits for."""
        self._client: JudgeClient | None = None
        self._cache: VerdictCache | None = None
        self._server: LocalJudgeServer | None = None
        self._lock = threading.Lock()
        self.breaker = Breaker(options.retries)
        self._custom_parser: bool | None = None
        self._variant_prefix = ""
        self.spending = Spending.from_config(config)
        self.budget = Budget(self.spending, run_id) if self.spending.capped else None
        """``--judge-max-calls`` / ``--judge-max-tokens``: the run's spending, shared by its processes."""
        self.estimate = Estimate() if self.spending.estimate else None
        """``--judge-estimate``: what the calls would have cost (none is sent)."""
        self._history: CompletionHistory | None = None

    # ------------------------------------------------------------------ lazily built parts

    @property
    def client(self) -> JudgeClient:
        """The judge client; the embedded server starts here, on the first call that needs it."""
        with self._lock:
            if self._client is None:
                base_url = self.options.base_url
                models = None
                if base_url is None:
                    from .server import LocalJudgeServer

                    self._server = LocalJudgeServer()
                    base_url = self._server.start()
                    models = self._server.config.models
                self._client = JudgeClient(base_url, os.environ.get(TOKEN_ENV), timeout=self.options.timeout,
                                           max_retries=self.options.retries,
                                           total_timeout=self.options.total_timeout, models=models)
            return self._client

    @property
    def cache(self) -> VerdictCache:
        if self._cache is None:
            from .cache import VerdictCache

            self._cache = VerdictCache(self.options.cache_dir, mode=self.options.cache_mode, run_id=self.run_id)
        return self._cache

    @property
    def cache_warning(self) -> str | None:
        """Why the cache could not be used, if it was opened and could not."""
        return self._cache.warning if self._cache is not None else None

    def flush_cache(self) -> None:
        if self._cache is not None:
            self._cache.flush()

    @property
    def history(self) -> CompletionHistory:
        """Expected completion tokens per model and mode, from the cache (read once, on first use)."""
        if self._history is None:
            self._history = CompletionHistory(self.cache if self.options.cache_mode.reads else None)
        return self._history

    def charge(self, requests: list[JudgeRequest], what: str) -> float | None:
        """Reserve these calls in the budget (raise BudgetReached past a cap); their expected tokens, or None
        without a budget. ``--judge-estimate``: count them and raise Estimated instead."""
        if self.estimate is not None:
            for request in requests:
                self.estimate.count(request, self.history)
            raise errors.Estimated("not sent: --judge-estimate counts the call instead of making it")
        if self.budget is None:
            return None
        expected = job_tokens(requests, self.history)
        self.budget.reserve(len(requests), expected, what)
        return expected

    def settle(self, expected: float | None, usage: dict[str, Any] | None) -> None:
        """A charged call is over: its real tokens replace the expected ones (None usage: it got no answer)."""
        if expected is not None and self.budget is not None:
            self.budget.settle(expected, spent_tokens(usage))

    def close(self) -> None:
        """Flush the cache, close the client, stop the embedded server."""
        if self._cache is not None:
            self._cache.close()
        if self._client is not None:
            self._client.close()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.budget is not None:  # the controller (or a lone process) is the last to leave: it removes the file
            from .pytest_compat import is_xdist_worker

            self.budget.close(remove=not is_xdist_worker(self.config))

    # ------------------------------------------------------------------ the steps

    def prepare(self, request: JudgeRequest, item: pytest.Item | None) -> str:
        """Let plugins amend the request, refuse a bad one before any network, and return its cache key."""
        __tracebackhide__ = True
        self.config.hook.pytest_judge_request(request=request, item=item)
        if self.options.embedded:
            from .protocol import DEFAULT_MODELS

            check_request(request, DEFAULT_MODELS)
        else:
            check_request(request, None)
        body = request.body()
        key = cache_key(body, self.options.cache_identity)
        if self.options.cache_mode.reads and isinstance(body.get("max_tokens"), int) and self.cache.holds_unsized:
            self.cache.adopt(key, cache_key(without_max_tokens(body), self.options.cache_identity),
                             max_completion_tokens=body["max_tokens"], request=body)
        return key

    def lookup(self, key: str, request: JudgeRequest, item: pytest.Item | None) -> Verdict | None:
        """A cached verdict (re-parsed from the stored raw reply, or read from its parse memo), or None."""
        if not self.options.cache_mode.reads:
            return None
        variant = self._parse_variant(request)
        hit = self.cache.get(key, variant or "")
        if hit is None:
            return None
        self.cache.touch(key, item.nodeid if item is not None else None)
        reply = JudgeReply(hit.raw, hit.model or "", hit.usage, 0.0)
        if variant and hit.parsed:
            from .verdict import Verdict

            memo = json.loads(hit.parsed)
            memo["raw"] = hit.raw
            verdict = Verdict.from_dict(memo)
            return replace(verdict, model=reply.model or request.model, usage=reply.usage, latency_s=0.0,
                           cached=True)
        try:
            verdict = self.parse(reply, request)
        except Exception as exc:
            mark_reply(exc, cached=True)
            raise
        self._memo(key, variant, verdict)
        return replace(verdict, cached=True)

    def peek(self, key: str) -> Any:
        """The stored reply for ``key`` without touching, parsing or raising (None on a miss or an error)."""
        if not self.options.cache_mode.reads:
            return None
        try:
            return self.cache.get(key)
        except Exception:  # noqa: BLE001 - an unreadable cache entry is judged again
            return None

    def fresh(self, key: str, request: JudgeRequest, item: pytest.Item | None) -> Verdict:
        """Ask the judge now (immediate mode, or a test deferred mode judges synchronously)."""
        __tracebackhide__ = True
        self._refuse_when_offline(key, request)
        future = self.in_flight(key)
        # A held test already asked this in deferred mode: wait for that call rather than pay twice.
        reply = self._send(request, future)
        self.store(key, request, reply, item)
        verdict = self.parse(reply, request)
        self._memo(key, self._parse_variant(request), verdict)
        return verdict

    def _refuse_when_offline(self, key: str, request: JudgeRequest) -> None:
        """Replay mode never calls the judge; while the judge cannot be reached, calls fail fast (:class:`Breaker`)."""
        __tracebackhide__ = True
        if self.options.cache_mode is CacheMode.REPLAY:
            question = (request.question or "")[:120]
            raise errors.ReplayMiss(f"no cached verdict for this request and --judge-cache=replay forbids calling "
                                    f"the judge ({request.describe()}, question {question!r}, cache key "
                                    f"{key[:12]}); run once with --judge-cache=use to record it")
        refusal = self.breaker.refusal()
        if refusal is not None:
            raise refusal

    def _send(self, request: JudgeRequest, future: Future[JudgeReply] | None = None) -> JudgeReply:
        """One call (or the held call already in flight), remembering whether the judge could be reached."""
        __tracebackhide__ = True
        expected = self.charge([request], request.describe()) if future is None else None
        try:
            reply = future.result() if future is not None else self.client.send(request)
        except errors.JudgeError as exc:
            self.settle(expected, None)
            self.breaker.observe(exc)
            raise
        self.settle(expected, reply.usage)
        self.breaker.observe(None)
        return reply

    def store(self, key: str, request: JudgeRequest, reply: JudgeReply, item: pytest.Item | None, *,
              choice: int = 0) -> None:
        """Keep a reply (``choice``: which choice of an ``n`` > 1 call it was, recorded beside the request)."""
        if self.options.cache_mode.writes:
            body = request.body() if not choice else {**request.body(), "choice": choice}
            self.cache.put(key, raw=reply.raw, model=reply.model, usage=reply.usage, request=body,
                           nodeid=item.nodeid if item is not None else None)

    def draw(self, request: JudgeRequest, base_key: str, indices: list[int], item: pytest.Item | None
             ) -> list[Verdict | BaseException]:
        """Samples ``indices`` of a prepared request (see :mod:`.sampling`): cached ones read back, the rest
        drawn one call per block. Each is a verdict or the exception that stands in its place; none is counted."""
        __tracebackhide__ = True
        found: dict[int, Verdict | BaseException] = {}
        missing = []
        for index in indices:
            try:
                hit = self.lookup(sample_key(base_key, index), request, item)
            except Exception as exc:  # noqa: BLE001 - an unreadable cached sample is that sample's outcome
                found[index] = exc
                continue
            if hit is None:
                missing.append(index)
            else:
                found[index] = hit
        for drawn in blocks(missing):
            wanted = [index for index in drawn if index in missing]
            try:
                found.update(self._fresh_samples(request, base_key, drawn, wanted, item))
            except Exception as exc:  # noqa: BLE001 - the call failed: so did every sample it was to draw
                found.update((index, exc) for index in wanted)
        return [found[index] for index in indices]

    def _fresh_samples(self, request: JudgeRequest, base_key: str, drawn: list[int], wanted: list[int],
                       item: pytest.Item | None) -> dict[int, Verdict | BaseException]:
        """One block's call; the ``wanted`` samples are stored under their keys (a cached one stays as it is)."""
        __tracebackhide__ = True
        if drawn == [0]:  # the request as written: the single verdict's own call
            return {0: self.fresh(base_key, request, item)}
        call = draw_request(request, drawn)
        self._refuse_when_offline(sample_key(base_key, drawn[0]), call)
        reply = self._send(call)
        outcomes: dict[int, Verdict | BaseException] = {}
        for index in wanted:
            choice = drawn.index(index)
            if choice >= len(reply.texts):
                outcomes[index] = errors.JudgeError(f"the judge returned {len(reply.texts)} choices for "
                                                    f"n={len(drawn)}; sample {index} is missing", code="MissingChoice")
                continue
            one = reply.choice(choice)
            key = sample_key(base_key, index)
            self.store(key, call, one, item, choice=choice)
            try:
                verdict = self.parse(one, request)
            except Exception as exc:  # noqa: BLE001 - an unreadable sample is missing data, not a vote
                outcomes[index] = exc
                continue
            self._memo(key, self._parse_variant(request), verdict)
            outcomes[index] = verdict
        return outcomes

    def parse(self, reply: JudgeReply, request: JudgeRequest) -> Verdict:
        """The verdict in a reply: a ``pytest_judge_parse_reply`` plugin's, else the built-in parser's."""
        __tracebackhide__ = True
        from .verdict import UnreadableVerdict, parse_reply

        try:
            verdict = self.config.hook.pytest_judge_parse_reply(text=reply.raw, mode=request.kind)
            if verdict is None:
                verdict = parse_reply(reply.raw, request.kind, max_score=request.max_score,
                                      json_mode=request.json_mode)
        except UnreadableVerdict as exc:
            if reply.cut():  # say why: the verdict was cut off before its score
                cut = UnreadableVerdict(f"{exc.reason}; the reply was cut at max_tokens (finish_reason \"length\"): "
                                        "give the judge more room with max_tokens=", exc.raw, exc.mode)
                mark_reply(cut, usage=reply.usage, cached=False)
                raise cut from None
            mark_reply(exc, usage=reply.usage, cached=False)
            raise
        except Exception as exc:  # an unreadable reply was still a reply: its tokens were spent
            mark_reply(exc, usage=reply.usage, cached=False)
            raise
        return replace(verdict, model=reply.model or request.model, usage=reply.usage, latency_s=reply.latency_s)

    def resolve(self, key: str, request: JudgeRequest, item: pytest.Item | None) -> Verdict:
        """The cached verdict, else a fresh one (not counted: see :meth:`observe`)."""
        __tracebackhide__ = True
        return self.lookup(key, request, item) or self.fresh(key, request, item)

    def observe(self, outcome: Verdict | BaseException, item: pytest.Item | None) -> None:
        """Count a verdict (fresh or cached, tokens) and tell the hooks; an unreadable reply is counted too."""
        if isinstance(outcome, BaseException):
            if hasattr(outcome, "judge_cached"):
                cached = bool(outcome.judge_cached)
                self.stats["cached" if cached else "fresh"] += 1
                if not cached:
                    self.stats["tokens"] += int((getattr(outcome, "judge_usage", None) or {}).get("total_tokens")
                                                or 0)
            return
        if outcome.cached:
            self.stats["cached"] += 1
        else:
            self.stats["fresh"] += 1
            self.stats["tokens"] += int((outcome.usage or {}).get("total_tokens") or 0)
        self.config.hook.pytest_judge_verdict(verdict=outcome, item=item)

    def verdict(self, request: JudgeRequest, item: pytest.Item | None) -> Verdict:
        """The whole pipeline for one request, counted."""
        __tracebackhide__ = True
        key = self.prepare(request, item)
        try:
            verdict = self.resolve(key, request, item)
        except Exception as exc:
            self.observe(exc, item)
            raise
        self.observe(verdict, item)
        return verdict

    # ------------------------------------------------------------------ parse memos

    def _memo(self, key: str, variant: str | None, verdict: Verdict) -> None:
        """Keep the parsed verdict beside its raw reply, so the next hit skips the parser."""
        if not variant or not self.options.cache_mode.writes:
            return
        memo = verdict.to_dict()
        for volatile in MEMO_DROPPED:
            memo.pop(volatile, None)
        self.cache.remember_parse(key, variant, json.dumps(memo, ensure_ascii=False))

    def _parse_variant(self, request: JudgeRequest) -> str | None:
        """Memo key of a parsed verdict; None when a plugin parses replies itself (never memoised)."""
        if self._custom_parser is None:
            from .verdict import PARSER_VERSION

            self._custom_parser = bool(self.config.hook.pytest_judge_parse_reply.get_hookimpls())
            self._variant_prefix = f"v{PARSER_VERSION}|"
        if self._custom_parser:
            return None
        return f"{self._variant_prefix}{request.kind}|{request.max_score}|{int(request.json_mode)}"
