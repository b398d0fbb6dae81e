"""The one session object of a pytest run: settings, client, cache, embedded server and results.

Kept in ``config.stash`` (see plugin-style notes); the module-level assertion functions find it
through :func:`active_session`, a stack so that pytester's in-process inner runs nest cleanly.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors
from .assertions import Expectation, failure_columns
from .client import BASE_URL_ENV, TOKEN_ENV, JudgeClient, JudgeReply
from .records import JudgeRecord
from .request import JudgeRequest, judge_identity

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .cache import VerdictCache
    from .verdict import Verdict

MODES = ("immediate", "deferred", "batch")
CACHE_MODES = ("use", "refresh", "off", "replay")
DEFAULT_MIN_SCORE = 4.0
DEFAULT_CONCURRENCY = 8
DEFAULT_BATCH_POLL_S = 2.0
DEFAULT_BATCH_TIMEOUT_S = 86400.0
UNREACHABLE_AFTER = 2
"""Consecutive synchronous calls that could not reach the judge (after retries) before later ones fail fast."""
EMBEDDED_IDENTITY = "<embedded lexical engine>"
"""Cache host identity of the embedded server: its port changes every run, its verdicts do not."""


@dataclass(frozen=True)
class Settings:
    """Resolved for one test: argument > marker > CLI > ini > default."""

    model: str
    min_score: float


class _Stack:
    def __init__(self) -> None:
        self.items: list[JudgeSession] = []


_SESSIONS = _Stack()


def active_session() -> JudgeSession:
    if not _SESSIONS.items:
        raise RuntimeError("pytest-pai-judge is not active: judge assertions run inside a pytest session with the "
                           "plugin enabled (this is not one: the code runs outside pytest, or pytest ran with "
                           "-p no:pai_judge)")
    return _SESSIONS.items[-1]


class JudgeSession:
    """Everything the judge needs for one pytest process (controller or xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        opt = config.getoption
        self.warnings: list[str] = []
        self._rerun_paths: dict[str, str] = {}
        self.model: str = opt("judge_model") or config.getini("judge_model") or "pai-judge"
        self.min_score: float = _float("judge_min_score", opt("judge_min_score"), config.getini("judge_min_score"),
                                       DEFAULT_MIN_SCORE)
        self.timeout: float = _float("judge_timeout", opt("judge_timeout"), config.getini("judge_timeout"), 60.0)
        if self.min_score <= 0:
            raise _usage(f"judge_min_score must be a positive score, got {self.min_score:g}")
        if self.timeout <= 0:
            raise _usage(f"judge_timeout must be a positive number of seconds, got {self.timeout:g}")
        retries = _float("judge_retries", opt("judge_retries"), config.getini("judge_retries"), 3)
        if retries < 0 or not float(retries).is_integer():
            raise _usage(f"judge_retries must be a whole number of retries, 0 or more, got {retries:g}")
        self.retries = int(retries)
        # Checked in every mode, so a bad value in the ini file fails today, not the day the mode changes.
        concurrency = _float("judge_concurrency", opt("judge_concurrency"), config.getini("judge_concurrency"),
                             DEFAULT_CONCURRENCY)
        if concurrency < 1 or not float(concurrency).is_integer():
            raise _usage(f"judge_concurrency must be a whole number of calls, 1 or more, got {concurrency:g}")
        self.concurrency = int(concurrency)
        """Deferred mode: judge calls in flight at once, for the whole run."""
        self.batch_poll, self.batch_timeout = (
            _float(name, opt(name), config.getini(name), default)
            for name, default in (("judge_batch_poll", DEFAULT_BATCH_POLL_S), ("judge_batch_timeout",
                                                                              DEFAULT_BATCH_TIMEOUT_S)))
        for name, value in (("judge_batch_poll", self.batch_poll), ("judge_batch_timeout", self.batch_timeout)):
            if value <= 0:
                raise _usage(f"{name} must be a positive number of seconds")
        if os.environ.get(TOKEN_ENV) and not (opt("judge_base_url") or os.environ.get(BASE_URL_ENV)
                                               or config.getini("judge_base_url")):
            self.warnings.append(f"${TOKEN_ENV} is set but no judge base URL is (--judge-base-url, ${BASE_URL_ENV} or "
                                 "the judge_base_url ini key): this run used the embedded offline lexical engine, "
                                 "not PAI")
        self._unreachable: list[errors.JudgeError] = []
        """Consecutive connection failures / timeouts of synchronous calls (after the SDK's own retries)."""
        self.base_url: str | None = (opt("judge_base_url") or os.environ.get(BASE_URL_ENV)
                                     or config.getini("judge_base_url") or None)
        if self.base_url is not None:
            try:
                self._identity = judge_identity(self.base_url)
            except ValueError as exc:
                raise _usage(f"{exc} (from --judge-base-url, ${BASE_URL_ENV} or the judge_base_url ini key; "
                             "e.g. https://aiservice.cn-hangzhou.aliyuncs.com/v1)") from None
        self.run_mode: str = opt("judge_mode") or config.getini("judge_mode") or "immediate"
        if self.run_mode not in MODES:
            raise _usage(f"judge_mode must be one of {', '.join(MODES)}, got {self.run_mode!r}")
        if opt("judge_batch_resume") and self.run_mode != "batch":
            raise _usage("--judge-batch-resume collects a batch job's results: it needs --judge-mode=batch")
        if opt("judge_batch_resume") and self.base_url is None:
            raise _usage("--judge-batch-resume needs --judge-base-url (or $JUDGE_MODEL_BASE_URL): the embedded local "
                         "server keeps batches only while its run lasts, so there is no earlier job to collect")
        self.cache_mode: str = opt("judge_cache") or config.getini("judge_cache") or "use"
        if self.cache_mode not in CACHE_MODES:
            raise _usage(f"judge_cache must be one of {', '.join(CACHE_MODES)}, got {self.cache_mode!r}")
        cache_dir = opt("judge_cache_dir") or config.getini("judge_cache_dir") or ".pai_judge_cache"
        self.cache_dir = Path(config.rootpath, cache_dir) if not Path(cache_dir).is_absolute() else Path(cache_dir)
        prune = opt("judge_cache_prune")
        if prune is None:
            from pytest import UsageError

            try:
                prune = config.getini("judge_cache_prune")
            except (ValueError, UsageError) as exc:  # pytest says "invalid truth value 'maybe'", not which key
                raise _usage(f"ini key judge_cache_prune must be true or false: {exc}") from None
        self.prune: bool = bool(prune)
        self.deselected = 0
        self.pruned = 0
        self.run_id = _run_id(config)
        self.records: list[JudgeRecord] = []
        self.current_item: pytest.Item | None = None
        self.stats = {"fresh": 0, "cached": 0, "tokens": 0}
        self._client: JudgeClient | None = None
        self._cache: VerdictCache | None = None
        self._server: Any = None
        self._lock = threading.Lock()
        self._custom_parser: bool | None = None
        self._variant_prefix = ""
        self.deferred: Any = None  # set by the plugin in deferred / batch mode

    # ------------------------------------------------------------------ lifecycle

    def push(self) -> None:
        _SESSIONS.items.append(self)

    def prune_cache(self, session: pytest.Session) -> int:
        """Drop cache entries no test of this run used (all xdist workers share the run id).

        Only after a complete run: with deselected tests (-k, -m, --lf) or an interrupted / -x run,
        the entries of the tests that did not run would go too.
        """
        if not self.prune or self.cache_mode in ("off", "replay"):
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
            reason = _partial_selection(self.config)
        if reason:
            self.warnings.append(f"--judge-cache-prune skipped: {reason}, so unused entries cannot be told apart")
            return 0
        return self.cache.prune_unused(self.run_id)

    def close(self) -> None:
        if self in _SESSIONS.items:
            _SESSIONS.items.remove(self)
        if self._cache is not None:
            self._cache.close()
        if self._client is not None:
            self._client.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    def describe_target(self) -> str:
        if self.embedded:
            unused = f"; ${TOKEN_ENV} is set but unused: no base URL" if os.environ.get(TOKEN_ENV) else ""
            return f"embedded local server (lexical engine, offline; started on first judge call{unused})"
        return self.base_url or ""

    # ------------------------------------------------------------------ lazily built parts

    @property
    def client(self) -> JudgeClient:
        with self._lock:
            if self._client is None:
                base_url = self.base_url
                models = None
                if base_url is None:
                    from .server import LocalJudgeServer

                    self._server = LocalJudgeServer()
                    base_url = self._server.start()
                    models = self._server.config.models
                self._client = JudgeClient(base_url, os.environ.get(TOKEN_ENV), timeout=self.timeout,
                                           max_retries=self.retries, models=models)
            return self._client

    @property
    def cache(self) -> VerdictCache:
        if self._cache is None:
            from .cache import VerdictCache

            self._cache = VerdictCache(self.cache_dir, mode=self.cache_mode, run_id=self.run_id)  # type: ignore[arg-type]
        return self._cache

    @property
    def cache_identity(self) -> str:
        """Names the judge in cache keys: a host:port, or a word no URL can produce for the embedded server."""
        return EMBEDDED_IDENTITY if self.embedded else self._identity

    # ------------------------------------------------------------------ settings

    def settings_for(self, item: pytest.Item | None) -> Settings:
        model, min_score = None, None
        if item is not None:
            for marker in item.iter_markers("judge"):  # closest first: function, class, module
                if model is None and marker.kwargs.get("model"):
                    model = marker.kwargs["model"]
                if min_score is None and marker.kwargs.get("min_score") is not None:
                    min_score = float(marker.kwargs["min_score"])
        return Settings(model or self.model, self.min_score if min_score is None else min_score)

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
        return rel + sep + rest

    def check_markers(self, item: pytest.Item) -> None:
        """A judge marker with a typo would silently leave the default threshold: refuse it at collection."""
        for marker in item.iter_markers("judge"):
            problem = None
            if marker.args:
                problem = f"takes keyword arguments only, got positional {marker.args!r}"
            unknown = sorted(set(marker.kwargs) - {"min_score", "model", "defer"})
            if unknown:
                problem = f"unknown argument(s) {', '.join(unknown)} (known: min_score, model, defer)"
            defer = marker.kwargs.get("defer")
            if defer is not None and not isinstance(defer, bool):
                problem = f"defer must be True or False, got {defer!r}"
            score = marker.kwargs.get("min_score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or score <= 0):
                problem = f"min_score must be a positive number, got {score!r}"
            model = marker.kwargs.get("model")
            if model is not None and (not isinstance(model, str) or not model):
                problem = f"model must be a model name, got {model!r}"
            if problem:
                raise _usage(f"@pytest.mark.judge on {item.nodeid}: {problem}")

    # ------------------------------------------------------------------ requests -> verdicts

    def prepare(self, request: JudgeRequest, item: pytest.Item | None) -> str:
        """Let plugins amend the request, fail fast on a bad one, and return its cache key."""
        __tracebackhide__ = True
        self.config.hook.pytest_judge_request(request=request, item=item)
        if self.embedded:
            from .protocol import DEFAULT_MODELS

            JudgeClient("http://embedded", models=DEFAULT_MODELS).check(request)
        else:
            JudgeClient(self.base_url or "").check(request)
        return request.cache_key(self.cache_identity)

    def lookup(self, key: str, request: JudgeRequest, item: pytest.Item | None) -> Verdict | None:
        """A cached verdict (re-parsed from the stored raw reply), or None."""
        if self.cache_mode in ("off", "refresh"):
            return None
        variant = self._parse_variant(request)
        hit = self.cache.get(key, variant or "")
        if hit is None:
            return None
        self.cache.touch(key, item.nodeid if item is not None else None)
        reply = JudgeReply(hit.raw, hit.model or "", hit.usage, 0.0)
        if variant and hit.parsed:
            import json

            from .verdict import Verdict

            memo = json.loads(hit.parsed)
            memo["raw"] = hit.raw
            verdict = Verdict.from_dict(memo)
            return replace(verdict, model=reply.model or request.model, usage=reply.usage, latency_s=0.0,
                           cached=True)
        try:
            verdict = self.parse(reply, request)
        except Exception as exc:
            _mark_reply(exc, cached=True)
            raise
        self._memo(key, variant, verdict)
        return replace(verdict, cached=True)

    def _memo(self, key: str, variant: str | None, verdict: Verdict) -> None:
        """Keep the parsed verdict beside its raw reply, so the next hit skips the parser."""
        if not variant or self.cache_mode not in ("use", "refresh"):
            return
        import json

        memo = verdict.to_dict()
        for volatile in ("raw", "model", "usage", "latency_s", "cached"):
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

    def store(self, key: str, request: JudgeRequest, reply: JudgeReply, item: pytest.Item | None) -> None:
        if self.cache_mode in ("use", "refresh"):
            self.cache.put(key, raw=reply.raw, model=reply.model, usage=reply.usage, request=request.body(),
                           nodeid=item.nodeid if item is not None else None)

    def parse(self, reply: JudgeReply, request: JudgeRequest) -> Verdict:
        __tracebackhide__ = True
        from .verdict import parse_reply

        try:
            verdict = self.config.hook.pytest_judge_parse_reply(text=reply.raw, mode=request.kind)
            if verdict is None:
                verdict = parse_reply(reply.raw, request.kind, max_score=request.max_score,
                                      json_mode=request.json_mode)
        except Exception as exc:  # an unreadable reply was still a reply: its tokens were spent
            _mark_reply(exc, usage=reply.usage, cached=False)
            raise
        return replace(verdict, model=reply.model or request.model, usage=reply.usage, latency_s=reply.latency_s)

    def fresh(self, key: str, request: JudgeRequest, item: pytest.Item | None) -> Verdict:
        """Ask the judge now (immediate mode, or an xfail test in deferred mode)."""
        __tracebackhide__ = True
        if self.cache_mode == "replay":
            question = (request.question or "")[:120]
            raise errors.ReplayMiss(f"no cached verdict for this request and --judge-cache=replay forbids calling "
                                    f"the judge ({request.describe()}, question {question!r}, cache key "
                                    f"{key[:12]}); run once with --judge-cache=use to record it")
        if len(self._unreachable) >= UNREACHABLE_AFTER:
            first = self._unreachable[0]
            raise type(first)(f"not sent: the judge failed the last {len(self._unreachable)} calls of this run the "
                              f"same way (first: {first.message}); later tests fail fast instead of waiting "
                              f"{self.retries} retries each", status=first.status, code=first.code, hint=first.hint)
        online = getattr(self.deferred, "online", None)
        future = online.futures.get(key) if online is not None else None
        try:
            # A held test already asked this in deferred mode: wait for that call rather than pay twice.
            reply = future.result() if future is not None else self.client.complete(request)
        except (errors.JudgeConnectionError, errors.JudgeTimeout) as exc:
            self._unreachable.append(exc)
            raise
        self._unreachable.clear()
        self.store(key, request, reply, item)
        verdict = self.parse(reply, request)
        self._memo(key, self._parse_variant(request), verdict)
        return verdict

    def observe(self, verdict: Verdict | BaseException, item: pytest.Item | None) -> None:
        """Count a verdict (fresh or cached, tokens) and tell the hooks; an unreadable reply is counted too."""
        if isinstance(verdict, BaseException):
            if hasattr(verdict, "judge_cached"):
                cached = bool(verdict.judge_cached)
                self.stats["cached" if cached else "fresh"] += 1
                if not cached:
                    self.stats["tokens"] += int((getattr(verdict, "judge_usage", None) or {}).get("total_tokens") or 0)
            return
        if verdict.cached:
            self.stats["cached"] += 1
        else:
            self.stats["fresh"] += 1
            self.stats["tokens"] += int((verdict.usage or {}).get("total_tokens") or 0)
        self.config.hook.pytest_judge_verdict(verdict=verdict, item=item)

    def verdict(self, request: JudgeRequest, item: pytest.Item | None) -> Verdict:
        __tracebackhide__ = True
        key = self.prepare(request, item)
        try:
            verdict = self.lookup(key, request, item) or self.fresh(key, request, item)
        except Exception as exc:
            self.observe(exc, item)
            raise
        self.observe(verdict, item)
        return verdict

    # ------------------------------------------------------------------ assertions

    def submit(self, expectation: Expectation, item: pytest.Item | None) -> list[Any]:
        """Judge now and raise on failure, or hand the expectation to the deferred settler."""
        __tracebackhide__ = True
        expectation.run_mode = self.run_mode
        if item is not None:
            expectation.labels.setdefault("rerun", self.rerun_id(item))
        try:
            return self._submit(expectation, item)
        except _FAIL_FAST as exc:  # refused before sending: still a row (and a "not met") in the reports
            self.add_records([expectation._record(expectation.requests[0], None, **failure_columns([exc]))], item)
            raise

    def _submit(self, expectation: Expectation, item: pytest.Item | None) -> list[Any]:
        __tracebackhide__ = True
        if self.deferred is not None and item is not None and not needs_verdict_now(item):
            keys = [self.prepare(r, item) for r in expectation.requests]
            cached: list[Any] = []
            for key, request in zip(keys, expectation.requests):
                try:
                    cached.append(self.lookup(key, request, item))
                except Exception as exc:  # noqa: BLE001 - an unreadable cached reply: the outcome, as in immediate mode
                    cached.append(exc)
            if any(v is None for v in cached):
                self.deferred.hold(expectation, keys, item)
                return []
            outcomes: list[Any] = list(cached)
            for v in cached:
                self.observe(v, item)
        else:
            outcomes = []
            for request in expectation.requests:
                try:
                    outcomes.append(self.verdict(request, item))
                except errors.JudgeError as exc:
                    if isinstance(exc, _FAIL_FAST):
                        raise
                    outcomes.append(exc)
                except Exception as exc:  # UnreadableVerdict and parser errors
                    outcomes.append(exc)
        self.settle(expectation, outcomes, item)
        return outcomes

    def settle(self, expectation: Expectation, outcomes: list[Any], item: pytest.Item | None) -> None:
        __tracebackhide__ = True
        records, failure = expectation.evaluate(outcomes)
        self.add_records(records, item)
        if failure is not None:
            raise failure

    def add_records(self, records: list[JudgeRecord], item: pytest.Item | None) -> None:
        if item is not None and hasattr(item, "stash") and _expects_failure(item):  # not the xdist controller's sink
            for record in records:
                record.xfail = True  # reports show it as xfailed / xpassed, not as a failure
        self.records.extend(records)
        if item is not None:
            for record in records:
                item.user_properties.append(("judge_score", record.score))
                item.user_properties.append(("judge_model", record.model))
                if record.threshold is not None:
                    item.user_properties.append(("judge_threshold", record.threshold))
                if record.winner is not None:
                    item.user_properties.append(("judge_winner", record.winner))

    def value(self, request: JudgeRequest, item: pytest.Item | None, *, record: bool = True) -> Verdict:
        """A verdict the test body reads as a value (the ``judge`` fixture).

        In deferred / batch mode this is an error (or, with the fallback, a synchronous call) whether
        or not the verdict is cached, so a test does not pass or fail with the cache's contents.
        ``record=False`` leaves the report row to the caller (``Judge.compare`` writes one for both orders).
        """
        __tracebackhide__ = True
        if self.deferred is not None and item is not None and not needs_verdict_now(item):
            self.prepare(request, item)  # a request the judge would refuse is refused now, whatever the mode
            return self.deferred.value(request, item, record=record)
        return self.value_now(request, item, record=record)

    def value_now(self, request: JudgeRequest, item: pytest.Item | None, *, record: bool = True) -> Verdict:
        """The cached or a fresh verdict, read now (immediate mode, or deferred mode's fallback)."""
        __tracebackhide__ = True
        try:
            verdict = self.verdict(request, item)
        except Exception as exc:  # an unreadable reply or a judge error: a row that says so, then the error
            if record:
                self.record_value_failure(request, exc, item)
            raise
        if record:
            self.record_value(request, verdict, item)
        return verdict

    def record_value_failure(self, request: JudgeRequest, exc: BaseException, item: pytest.Item | None) -> None:
        """A value read that got no verdict is a report row too (not for a request refused before sending)."""
        if not isinstance(exc, _FAIL_FAST):
            self.record_value(request, None, item, **failure_columns([exc]))

    def record_value(self, request: JudgeRequest, verdict: Verdict | None, item: pytest.Item | None,
                     **columns: Any) -> None:
        """A verdict read as a value is reported too (no threshold, so neither passed nor failed)."""
        expectation = Expectation("score", [request], None, item.nodeid if item is not None else "<outside a test>",
                                  run_mode=self.run_mode)
        record = expectation._record(request, verdict, passed=None, assertion="value", **columns)
        self.add_records([record], item)


# Errors raised by the request itself (not by the judge's answer) propagate as they are,
# so ``pytest.raises(SceneError)`` works in every mode.
_FAIL_FAST = (errors.MessagesError, errors.ContentError, errors.ResponseFormatError, errors.ModeError,
              errors.QuestionError, errors.AnswerError, errors.SceneError, errors.ScoreError,
              errors.InvalidParameter)


def _mark_reply(exc: BaseException, *, usage: dict[str, Any] | None = None, cached: bool) -> None:
    """Note on an unreadable-reply exception where the reply came from, for the stats and the report row."""
    try:
        if usage is not None or not hasattr(exc, "judge_usage"):
            exc.judge_usage = usage  # type: ignore[attr-defined]
        exc.judge_cached = cached  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type that takes no attributes
        pass


def _partial_selection(config: pytest.Config) -> str | None:
    """Why the paths on the command line select less than the whole suite, or None when they do not.

    The whole suite is what a bare ``pytest`` in the rootdir runs: its ``testpaths``, or the rootdir.
    """
    import pytest

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


def _run_id(config: pytest.Config) -> str:
    """One id for the whole run, shared by xdist workers (it is xdist's own test-run uid)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("testrunuid"):
        return str(workerinput["testrunuid"])
    if hasattr(config.option, "testrunuid"):  # xdist controller: fix the uid its workers will get
        if not config.option.testrunuid:
            config.option.testrunuid = uuid.uuid4().hex
        return str(config.option.testrunuid)
    return uuid.uuid4().hex


def _expects_failure(item: pytest.Item) -> bool:
    """Whether pytest treats this test as an expected failure: an xfail mark whose condition holds."""
    if item.config.option.runxfail:
        return False
    try:
        from _pytest.skipping import xfailed_key  # private, but it honours xfail(condition)
    except ImportError:  # pragma: no cover - moved in a later pytest
        return item.get_closest_marker("xfail") is not None
    xfailed = item.stash.get(xfailed_key, None)
    raises = getattr(xfailed, "raises", None)
    if xfailed is not None and raises is not None:  # xfail(raises=X): a failed judgement is not an X
        from .assertions import JudgeAssertionError

        return isinstance(raises, type) and issubclass(JudgeAssertionError, raises) or \
            isinstance(raises, tuple) and any(issubclass(JudgeAssertionError, r) for r in raises)
    return xfailed is not None


def needs_verdict_now(item: pytest.Item) -> bool:
    """Tests whose outcome pytest decides while they run are judged synchronously in deferred/batch mode.

    Every test under ``--sw``; xfail-marked tests (the xfail verdict needs the exception), tests using ``subtests`` or unittest
    ``TestCase`` tests (subtest reports and ``expectedFailure`` are decided inside the test), tests
    pytest-rerunfailures may rerun (a rerun needs the failure now), and ``@pytest.mark.judge(defer=False)``
    (e.g. ``pytest.raises(JudgeAssertionError)`` around an assertion).
    """
    marker = next((m for m in item.iter_markers("judge") if "defer" in m.kwargs), None)
    if marker is not None:
        return not marker.kwargs["defer"]
    if item.get_closest_marker("xfail") is not None or "subtests" in getattr(item, "fixturenames", ()):
        return True
    if item.config.getoption("stepwise", False) or item.config.getoption("stepwise_skip", False):
        return True  # --sw stops at, and next time resumes from, the first failure: it must be known now
    unittest = sys.modules.get("unittest")
    cls = getattr(item, "cls", None)
    if unittest is not None and isinstance(cls, type) and issubclass(cls, unittest.TestCase):
        return True
    return may_rerun(item)


def may_rerun(item: pytest.Item) -> bool:
    """pytest-rerunfailures would rerun this test if it failed (``--reruns`` or a ``flaky`` marker)."""
    config = item.config
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return False
    flaky = item.get_closest_marker("flaky")
    if flaky is not None:
        return bool(flaky.kwargs.get("reruns", flaky.args[0] if flaky.args else 1))
    try:
        return bool(config.getoption("reruns") or 0)
    except ValueError:
        return False


def _float(name: str, cli: Any, ini: Any, default: float) -> float:
    for source, value in (("--" + name.replace("_", "-"), cli), (f"ini key {name}", ini)):
        if value not in (None, ""):
            try:
                return float(value)
            except (TypeError, ValueError):
                raise _usage(f"{source} must be a number, got {value!r}") from None
    return default


def _usage(message: str) -> Exception:
    import pytest

    return pytest.UsageError(message)


def elapsed(start: float) -> str:
    return f"{time.perf_counter() - start:.1f}s"
