"""Deferred and batch judging: tests hold their judge assertions, verdicts settle at the end of the run.

Why: judging N tests one call at a time costs N x the judge's latency. In ``--judge-mode=deferred``
and ``--judge-mode=batch`` a judge assertion that misses the cache records an
:class:`~pytest_pai_judge.assertions.Expectation` and the test body runs on; the test's reports
are held back and logged once its verdicts are in, with the same failure text immediate mode
gives (both go through ``Expectation.evaluate``). Deferred mode sends the requests as concurrent
online calls while later tests still run; batch mode sends all of them as one PAI batch job.

How (see ``design/deferred-outcomes.md``): a ``tryfirst`` ``pytest_runtest_protocol`` runs the
test without logging and holds it; the innermost ``pytest_runtestloop`` wrapper settles every held
test and logs it *inside* the loop, so the terminal, ``session.testsfailed`` (the exit status),
``--lf`` and junitxml all see the final outcome. Under pytest-xdist the workers hold and ship their
held tests to the controller, which judges them all (one batch job for the whole run).

Limits, by construction: ``-x`` / ``--maxfail`` / ``--sw`` cannot stop on a deferred failure and
``--pdb`` cannot open a debugger on it, because the failure is only known when the run's verdicts
arrive at the end; held tests are printed after the others. A verdict read as a *value* in the
test body (the ``judge`` fixture) cannot wait for the end: it is an error, or with
``--judge-batch-fallback=immediate`` a synchronous call.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import json
import keyword
import linecache
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import _pytest
import pluggy
import pytest

from . import errors
from .assertions import Expectation
from .client import JudgeReply
from .request import JudgeRequest

if TYPE_CHECKING:  # pragma: no cover
    from .client import JudgeClient
    from .session import JudgeSession
    from .verdict import Verdict

PROGRESS_EVERY_S = 5.0
"""Without a terminal (CI logs), a progress line at most this often."""

RawOutcome = Union[JudgeReply, BaseException]
"""What the judge answered for one request (not parsed yet), or why it did not."""

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_PENDING = pytest.StashKey[list["Pending"]]()
_IN_OUR_PROTOCOL = pytest.StashKey[bool]()
_PHASE = pytest.StashKey[str]()
_SCOPED = pytest.StashKey[list[tuple["Pending", Any]]]()
_INHERITED = pytest.StashKey[list["Pending"]]()
_INHERITED_FROM = pytest.StashKey[list["Pending"]]()
"""Held assertions made while a module / class / session fixture was being created, with that FixtureDef."""
PHASES = ("setup", "call", "teardown")
_FRAMEWORK_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (pytest, pluggy)) + (
    os.path.dirname(os.path.abspath(_pytest.__file__)) + os.sep,)
UNAVAILABLE = "VerdictUnavailable"
"""Error code of a held test whose verdict never came (batch failed / expired / timed out, Ctrl-C)."""
WORKER_OUTPUT_KEY = "pai_judge_held"
WORKER_REPLIES_KEY = "pai_judge_replies"


class DeferredVerdictError(RuntimeError):
    """A verdict read as a value in the test body while verdicts are deferred to the end of the run."""


# --------------------------------------------------------------------------- JSON-safe forms (xdist, spool)


def request_to_dict(request: JudgeRequest) -> dict[str, Any]:
    return {"kind": request.kind, "model": request.model, "fields": request.fields, "messages": request.messages,
            "params": request.params}


def request_from_dict(data: dict[str, Any]) -> JudgeRequest:
    return JudgeRequest(data["kind"], data["model"], dict(data.get("fields") or {}),
                        list(data.get("messages") or []), dict(data.get("params") or {}))


def expectation_to_dict(expectation: Expectation) -> dict[str, Any]:
    return {"assertion": expectation.assertion, "requests": [request_to_dict(r) for r in expectation.requests],
            "threshold": expectation.threshold, "nodeid": expectation.nodeid, "run_mode": expectation.run_mode,
            "labels": dict(expectation.labels)}


def expectation_from_dict(data: dict[str, Any]) -> Expectation:
    return Expectation(data["assertion"], [request_from_dict(r) for r in data["requests"]], data.get("threshold"),
                       data["nodeid"], data.get("run_mode", "immediate"), dict(data.get("labels") or {}))


def outcome_to_dict(outcome: RawOutcome) -> dict[str, Any]:
    """A reply or a JudgeError as JSON, so an xdist worker can hand its online verdicts to the controller."""
    if isinstance(outcome, JudgeReply):
        return {"raw": outcome.raw, "model": outcome.model, "usage": outcome.usage, "latency_s": outcome.latency_s}
    judge_error = outcome if isinstance(outcome, errors.JudgeError) else errors.JudgeError(
        f"{type(outcome).__name__}: {outcome}")
    return {"error": {"type": type(judge_error).__name__, "message": judge_error.message,
                      "status": judge_error.status, "code": judge_error.code, "param": judge_error.param,
                      "hint": getattr(judge_error, "hint", None), "local": getattr(judge_error, "local", False)}}


def outcome_from_dict(data: dict[str, Any]) -> RawOutcome:
    if "error" not in data:
        return JudgeReply(data["raw"], data.get("model") or "", data.get("usage"), float(data.get("latency_s") or 0))
    err = data["error"]
    cls = getattr(errors, str(err.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.JudgeError)):
        cls = errors.JudgeError
    extra = {k: err[k] for k in ("hint", "local") if err.get(k)}
    return cls(err.get("message") or "", status=err.get("status"), code=err.get("code"), param=err.get("param"),
               **extra)


@dataclass
class Pending:
    """One held judge assertion: the expectation, the cache key of each request, and where it was made."""

    expectation: Expectation
    keys: list[str]
    callsite: list[list[Any]] = field(default_factory=list)
    """``[filename, lineno, co_firstlineno, function]`` from the test function inwards (plugin frames excluded)."""
    when: str = "call"
    """The phase that made the assertion (a fixture's is setup or teardown): a failure is reported there."""
    shared: bool = False
    """Made by a module / class / session fixture created for an earlier test: this test reuses the
    fixture's value, so if the assertion fails its setup errors too (as pytest re-raises a cached fixture
    error), but the assertion is reported (and counted) only once, with the test that made it."""

    def to_dict(self) -> dict[str, Any]:
        return {"expectation": expectation_to_dict(self.expectation), "keys": self.keys, "callsite": self.callsite,
                "when": self.when, "shared": self.shared}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        return cls(expectation_from_dict(data["expectation"]), list(data["keys"]), list(data.get("callsite") or []),
                   str(data.get("when") or "call"), bool(data.get("shared", False)))


@dataclass
class Held:
    """A test that ran to its end and waits for verdicts before its reports are logged."""

    nodeid: str
    location: tuple[str, int | None, str]
    reports: list[pytest.TestReport]
    pending: list[Pending]
    item: pytest.Item | None = None
    """The item in a single process (for ``repr_failure`` and conftest-scoped hooks); None on the xdist controller."""


# --------------------------------------------------------------------------- failure location


def _function_code(item: pytest.Item) -> Any:
    import inspect

    obj = getattr(item, "obj", None)
    obj = getattr(obj, "__func__", obj)
    try:
        obj = inspect.unwrap(obj) if obj is not None else None
    except ValueError:  # pragma: no cover - a cycle of __wrapped__
        return None
    return getattr(obj, "__code__", None)


def capture_callsite(item: pytest.Item) -> list[list[Any]]:
    """Where in the test the assertion was made, so a deferred failure points at that line.

    Only file names, line numbers and the reprs of each function's arguments are kept (no frames:
    they would keep the test's locals alive and cannot cross to the xdist controller); pytest shows
    those arguments in long tracebacks (``i = 3``), as for an immediate failure.
    """
    code = _function_code(item)
    show_locals = bool(item.config.getoption("showlocals", False))
    verbosity = item.config.get_verbosity()
    stack = []
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not code:
        stack.append(frame)
        frame = frame.f_back
    if frame is not None:
        stack.append(frame)
    else:  # not inside the test function (a fixture's setup or teardown): the user frames below pytest's
        cut = next((i for i, f in enumerate(stack)
                    if os.path.abspath(f.f_code.co_filename).startswith(_FRAMEWORK_DIRS)), len(stack))
        stack = stack[:cut]
    chain: list[list[Any]] = []
    for f in reversed(stack):  # the test function first, then inwards
        if os.path.abspath(f.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
            break
        if f.f_locals.get("__tracebackhide__", f.f_globals.get("__tracebackhide__", False)) and chain:
            continue
        entry = [f.f_code.co_filename, f.f_lineno, f.f_code.co_firstlineno, f.f_code.co_name,
                 _arg_reprs(f, full=verbosity > 2)]
        if show_locals:
            entry.append(_local_reprs(f, entry[4], full=verbosity > 1))
        chain.append(entry)
    return chain


def _arg_reprs(frame: Any, *, full: bool) -> dict[str, str]:
    """The frame's arguments as pytest would print them, in signature order (in full from ``-vvv``)."""
    from _pytest._io.saferepr import saferepr  # what pytest's traceback uses for ``name = value`` lines

    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
    return _reprs(frame, [n for n in code.co_varnames[:count] if n in frame.f_locals],
                  (lambda v: saferepr(v, maxsize=None)) if full else saferepr)


def _local_reprs(frame: Any, args: dict[str, str], *, full: bool) -> dict[str, str]:
    """The frame's other locals, for ``-l`` / ``--showlocals`` (pretty-printed in full from ``-vv``)."""
    from _pytest._io.saferepr import safeformat, saferepr

    names = [n for n in frame.f_locals
             if n not in args and n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("@")]
    return _reprs(frame, names, safeformat if full else saferepr)


def _reprs(frame: Any, names: list[str], render: Callable[[Any], str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = render(frame.f_locals[name])
        except Exception:  # noqa: BLE001 - a broken __repr__ costs one line, never the failure
            continue
    return out


def _names(value: Any) -> dict[str, str]:
    """A recorded ``{name: repr}`` map, keeping only names that can be parameters."""
    if not isinstance(value, dict):
        return {}
    return {a: str(r) for a, r in value.items() if isinstance(a, str) and a.isidentifier() and not keyword.iskeyword(a)
            and not a.startswith("__pai_judge_")}


class _Repr:
    """Stands in for an argument value in a re-created frame: prints the value's recorded repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __bool__(self) -> bool:  # the walrus chain in locate() goes on with ``and``
        return True


def locate(exc: BaseException, callsite: list[list[Any]]) -> BaseException:
    """Give ``exc`` a traceback through the test's own lines, as if it had been raised there.

    Each recorded frame is re-created as a tiny function compiled under the real file name and
    line numbers; pytest then shows the test's real source, exactly as it does in immediate mode.
    """
    nxt: Callable[[], None] | None = None
    context, cause, suppress = exc.__context__, exc.__cause__, exc.__suppress_context__
    exc.__traceback__ = None  # where the verdict was fetched (plugin frames) is not where the test failed
    try:
        for entry in reversed(callsite):
            filename, lineno, firstlineno, name = entry[:4]
            args, local = (_names(entry[i]) if len(entry) > i else {} for i in (4, 5))
            local = {k: v for k, v in local.items() if k not in args}
            lineno, firstlineno = int(lineno), int(firstlineno)
            if lineno < firstlineno or firstlineno < 1:
                raise ValueError("bad call site")
            shown_name = str(name)  # "<lambda>", "<listcomp>": pytest prints it as "in <lambda>"
            if not name.isidentifier() or keyword.iskeyword(name):
                name = "test"
            # Span the whole real line, so pytest draws no ^^^ under it (as for the real call).
            real = linecache.getline(filename, lineno).rstrip("\r\n")
            indent = real[: len(real) - len(real.lstrip())] or "    "
            width = len(real.strip().encode("utf-8"))
            # Arguments come back as parameters (pytest prints ``a = ...``); other locals, for -l, are
            # assigned on the (empty) line above the call, or in the statement itself if there is none.
            shown = {**args, **local}
            assign = "; ".join(f"{a} = __pai_judge_arg{i + len(args)}__" for i, a in enumerate(local))
            binds = ""
            if local and lineno - firstlineno < 2:
                binds, assign = "".join(f"({a} := __pai_judge_arg{i + len(args)}__) and "
                                        for i, a in enumerate(local)), ""
            if nxt is not None:  # the call must span the whole line, or pytest underlines part of it
                head, tail = (f"({binds}__pai_judge_raise__(", "))") if binds else ("__pai_judge_raise__(", ")")
            else:
                head, tail = f"raise ({binds}__pai_judge_exc__", ")"
            statement = head + " " * max(0, width - len(head) - len(tail)) + tail
            params = ", ".join(f"{a}=__pai_judge_arg{i}__" for i, a in enumerate(args))
            if lineno == firstlineno:
                source = "\n" * (firstlineno - 1) + f"def {name}({params}): {statement}\n"
            else:
                gap = "\n" * (lineno - firstlineno - 2) + (f"{indent}{assign}\n" if assign else "\n")
                source = ("\n" * (firstlineno - 1) + f"def {name}({params}):\n" + (gap if lineno - firstlineno > 1 else "")
                          + f"{indent}{statement}\n")
            namespace: dict[str, Any] = {"__pai_judge_exc__": exc, "__pai_judge_raise__": nxt,
                                         "__name__": "pai_judge_callsite",
                                         **{f"__pai_judge_arg{i}__": _Repr(r) for i, r in enumerate(shown.values())}}
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own two-line source
            nxt = namespace[name]
            if shown_name != name:
                nxt.__code__ = nxt.__code__.replace(co_name=shown_name, co_qualname=shown_name) \
                    if sys.version_info >= (3, 11) else nxt.__code__.replace(co_name=shown_name)
        if nxt is None:
            raise exc
        nxt()
    except BaseException as raised:  # noqa: BLE001 - we only ever raise exc (or a compile error)
        exc.__context__, exc.__cause__, exc.__suppress_context__ = context, cause, suppress
        if raised is not exc:  # could not re-create the call site: a traceback from here will do
            try:
                raise exc
            except BaseException:  # noqa: BLE001
                pass
            exc.__context__, exc.__cause__, exc.__suppress_context__ = context, cause, suppress
            return exc
        tb = raised.__traceback__
        if callsite:
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next
        return exc.with_traceback(tb or raised.__traceback__)
    return exc  # pragma: no cover - nxt() always raises


# --------------------------------------------------------------------------- terminal


class Console:
    """The settler's voice: one line before settling, then progress rewritten in place (or throttled lines)."""

    def __init__(self, config: pytest.Config) -> None:
        self.tr = config.pluginmanager.get_plugin("terminalreporter")
        self.tty = bool(self.tr is not None and self.tr.isatty())
        self._open = False
        self._last = 0.0
        self._last_text: str | None = None

    def line(self, text: str) -> None:
        if self.tr is None:
            return
        self.end()
        self.tr.ensure_newline()
        tw = getattr(self.tr, "_tw", None)
        if tw is not None and getattr(tw, "width_of_current_line", 0):  # -q progress characters
            self.tr.write("\n")
        self.tr.write_line(text)

    def progress(self, text: str, *, force: bool = False) -> None:
        if self.tr is None:
            return
        if self.tty:
            self.tr.rewrite(text, erase=True)
            self.tr.flush()
            self._open = True
            return
        now = time.monotonic()
        if force or (text != self._last_text and now - self._last >= PROGRESS_EVERY_S):
            self.tr.write_line(text)
            self._last, self._last_text = now, text

    def end(self) -> None:
        if self._open and self.tr is not None:
            self.tr.write("\n")
            self._open = False


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- concurrent online calls


class OnlineJudge:
    """Concurrent online judge calls on a background event loop, at most ``limit`` in flight.

    Results are only collected here; the caller stores them in the cache on the main thread
    (the cache's sqlite connection is not thread-safe).
    """

    def __init__(self, client: Callable[[], JudgeClient], limit: int) -> None:
        self._client_factory = client
        self.limit = max(1, int(limit))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Semaphore | None = None
        self._client: JudgeClient | None = None
        self.futures: dict[str, concurrent.futures.Future[JudgeReply]] = {}
        self.finished: collections.deque[str] = collections.deque()
        """Keys whose call ended, in the order they ended (appended by the loop thread, drained by the main one)."""
        self.first_call: float | None = None
        """perf_counter() of the first call started, and of the last answer in: the judging span."""
        self.last_answer: float | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            # Import the SDK here, on the main thread, before the loop thread exists: openai imported
            # from two threads at once fails with "partially initialized module" errors.
            import openai  # noqa: F401

            self._client = self._client_factory()  # main thread: may start the embedded server
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                self._slots = asyncio.Semaphore(self.limit)
                ready.set()
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="pai-judge-deferred", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    def submit(self, key: str, request: JudgeRequest) -> None:
        """Start judging ``request`` unless it is already in flight or done."""
        if key not in self.futures:
            loop = self._start()
            future = asyncio.run_coroutine_threadsafe(self._call(request), loop)
            self.futures[key] = future
            future.add_done_callback(lambda _f, key=key: self.finished.append(key))

    async def _call(self, request: JudgeRequest) -> JudgeReply:
        __tracebackhide__ = True
        assert self._slots is not None and self._client is not None
        async with self._slots:
            if self.first_call is None:
                self.first_call = time.perf_counter()
            try:
                return await self._client.acomplete(request)
            finally:
                self.last_answer = time.perf_counter()

    def outcome(self, key: str) -> RawOutcome | None:
        """The finished outcome for ``key``, or None while it is in flight (or was never sent)."""
        future = self.futures.get(key)
        if future is None or not future.done():
            return None
        if future.cancelled():
            return errors.JudgeError("the judge call was cancelled", code="Cancelled")
        exc = future.exception()
        return exc if exc is not None else future.result()

    def wait(self, keys: Iterable[str], tick: Callable[[int, int], None]) -> None:
        """Block until every ``key`` is done, calling ``tick(done, total)`` about once a second."""
        futures = [self.futures[k] for k in keys if k in self.futures]
        total = len(futures)
        while True:
            done, not_done = concurrent.futures.wait(futures, timeout=1.0)
            tick(len(done), total)
            if not not_done:
                return

    def close(self) -> None:
        """Cancel what is still in flight, close the async HTTP pool on its own loop, stop the thread."""
        loop = self._loop
        if loop is None:
            return
        for future in self.futures.values():
            future.cancel()
        if self._client is not None:
            client = self._client

            async def aclose() -> None:
                await client.async_sdk().close()

            try:
                asyncio.run_coroutine_threadsafe(aclose(), loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
        self._loop = None


# --------------------------------------------------------------------------- the settler


def emit(hook: Any, nodeid: str, location: tuple[str, int | None, str], reports: list[pytest.TestReport]) -> None:
    """Log a test as pytest's own protocol does: logstart, each phase's report, logfinish."""
    hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
    for report in reports:
        hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)


class _PropertySink:
    """Receives ``user_properties`` from ``JudgeSession.add_records`` when no item is at hand (xdist controller)."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.user_properties: list[tuple[str, object]] = []


class DeferredSettler:
    """Holds tests whose judge assertions wait for verdicts and settles them at the end of the run.

    Registered by the plugin in deferred and batch mode (one per pytest process). The session
    calls :meth:`hold` and :meth:`value`; everything else is pytest hooks. ``-x``, ``--maxfail``,
    ``--sw`` and ``--pdb`` cannot react to a deferred failure until the end of the run.
    """

    def __init__(self, session: JudgeSession) -> None:
        self.session = session
        self.config = session.config
        self.mode = session.run_mode
        config = self.config
        self.workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.run_id: str = (self.workerinput or {}).get("pai_judge_run_id") or session.run_id
        self.concurrency = self._concurrency()
        fallback = config.getoption("judge_batch_fallback") or config.getini("judge_batch_fallback") or "error"
        if fallback not in ("error", "immediate"):
            raise pytest.UsageError(f"judge_batch_fallback must be error or immediate, got {fallback!r}")
        self.fallback: str = fallback
        self.held: list[Held] = []
        self.results: dict[str, RawOutcome] = {}
        """Raw outcome per cache key: fresh replies (deferred calls, batch lines, xdist workers) and errors."""
        self.requests: dict[str, tuple[JudgeRequest, str]] = {}
        """Every request a held test waits for: cache key -> (request, the first node id that asked)."""
        self._used: set[str] = set()
        self._stored: set[str] = set()
        self.online: OnlineJudge | None = (OnlineJudge(lambda: session.client, self.concurrency)
                                           if self.mode == "deferred" else None)
        self._spool: Any = None
        self._shared: list[tuple[Any, Any, Pending]] = []
        """(FixtureDef, its cached_result when the assertion was held, the held assertion)."""
        self.settled = False
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(self), "pai_judge_deferred_xdist")

    def _concurrency(self) -> int:
        total = self.session.concurrency  # validated by the session
        if self.workerinput is not None:  # the limit is per run: split it across the xdist workers
            workers = max(1, int(self.workerinput.get("workercount") or 1))
            return max(1, total // workers)
        workers = _xdist_workers(self.config)
        if workers > total:
            self.session.warnings.append(
                f"--judge-concurrency={total} is below the {workers} xdist workers: each worker makes one call "
                f"at a time, so up to {workers} calls are in flight")
        return total

    @property
    def is_worker(self) -> bool:
        return self.workerinput is not None

    # ------------------------------------------------------------------ called by JudgeSession

    def hold(self, expectation: Expectation, keys: list[str], item: pytest.Item) -> None:
        """Record a judge assertion whose verdicts are not cached; the test body continues."""
        __tracebackhide__ = True
        if self.session.cache_mode == "replay":
            self._settle_replay(expectation, keys, item)
            return
        pending = Pending(expectation, list(keys), capture_callsite(item), item.stash.get(_PHASE, "call"))
        item.stash.setdefault(_PENDING, []).append(pending)
        fixturedef = _running_fixture() if pending.when != "teardown" else None  # call: request.getfixturevalue
        if fixturedef is not None and getattr(fixturedef, "scope", "function") != "function":
            item.stash.setdefault(_SCOPED, []).append((pending, fixturedef))
        for key, request in zip(keys, expectation.requests):
            self.requests.setdefault(key, (request, item.nodeid))
            if self.online is not None and key not in self.results and self.session.lookup(key, request, item) is None:
                self.online.submit(key, request)

    def _settle_replay(self, expectation: Expectation, keys: list[str], item: pytest.Item) -> None:
        """``--judge-cache=replay`` never calls the judge: a miss fails now, as in immediate mode."""
        __tracebackhide__ = True
        outcomes: list[Any] = []
        for key, request in zip(keys, expectation.requests):
            try:
                hit = self.session.lookup(key, request, item)
                if hit is None:
                    hit = self.session.fresh(key, request, item)  # raises ReplayMiss
                self.session.observe(hit, item)
                outcomes.append(hit)
            except Exception as exc:  # noqa: BLE001 - ReplayMiss, UnreadableVerdict: the test's outcome
                self.session.observe(exc, item)
                outcomes.append(exc)
        self.session.settle(expectation, outcomes, item)

    def value(self, request: JudgeRequest, item: pytest.Item, *, record: bool = True) -> Verdict:
        """A verdict the test body reads now: an error naming the mode, or a synchronous call on request."""
        __tracebackhide__ = True
        if self.fallback == "immediate":
            return self.session.value_now(request, item, record=record)  # counted and reported as in immediate mode
        raise DeferredVerdictError(
            f"this test reads a judge verdict as a value ({request.describe()}), but --judge-mode={self.mode} "
            "defers verdicts to the end of the run, so it is not known yet. Use assert_judge_score / "
            "assert_judge_prefers / assert_judge_not_worse (they are deferred), mark this test "
            "@pytest.mark.judge(defer=False) to judge it synchronously, or pass --judge-batch-fallback=immediate "
            "to judge every value read in a test body with a synchronous call.")

    # ------------------------------------------------------------------ hooks: hold

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        """Run the test unlogged; hold it if judge assertions await verdicts, else log it at once."""
        from _pytest.runner import runtestprotocol  # private, as in pytest-rerunfailures (see the design note)

        from .session import may_rerun

        if may_rerun(item):
            return None  # pytest-rerunfailures runs it; its judge assertions are synchronous (needs_verdict_now)
        item.stash[_IN_OUR_PROTOCOL] = True
        try:
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
        finally:
            item.stash[_IN_OUR_PROTOCOL] = False
        pending = item.stash.get(_INHERITED, []) + (item.stash.get(_PENDING, None) or [])
        item.stash[_INHERITED] = []
        item.stash[_INHERITED_FROM] = []
        item.stash[_PENDING] = []
        for own, fixturedef in item.stash.get(_SCOPED, []):
            if fixturedef.cached_result is not None:  # still set up: later tests in its scope reuse it
                self._shared.append((fixturedef, fixturedef.cached_result, own))
        item.stash[_SCOPED] = []
        if pending:
            # Held whatever the phases' outcomes: a judge assertion that fails before a failure, a skip
            # or an imperative xfail is what immediate mode would have stopped at, so it decides.
            held = Held(item.nodeid, item.location, reports, pending, None if self.is_worker else item)
            self.held.append(held)
            if self.is_worker:
                self._spool_write(held)
        else:
            emit(item.ihook, item.nodeid, item.location, reports)
        if not self.is_worker:
            self._drain()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.stash[_PHASE] = "setup"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        item.stash[_PHASE] = "call"
        self._inherit(item, "setup")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self._inherit(item, "call")  # fixtures the body fetched with request.getfixturevalue()
        item.stash[_PHASE] = "teardown"

    def _inherit(self, item: pytest.Item, when: str) -> None:
        """Take over the held assertions of wider-scoped fixture values this test reused.

        pytest re-raises a fixture's cached error in every test that reuses the value, so such a test
        fails where it got the value: in setup, or in the body for ``request.getfixturevalue()``. A
        new param value, a new scope instance or an overriding fixture is a different value.
        """
        if not self._shared:
            return
        self._shared = [(fd, cached, p) for fd, cached, p in self._shared if fd.cached_result is cached]
        inherited = item.stash.setdefault(_INHERITED, [])
        taken = {id(p) for p in item.stash.get(_INHERITED_FROM, [])}
        for fd, _cached, p in self._shared:
            if id(p) not in taken and _used_fixture(item, fd):
                inherited.append(dataclasses.replace(p, when=when, shared=True))
                item.stash.setdefault(_INHERITED_FROM, []).append(p)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Another plugin ran the protocol (e.g. rerunfailures): judge held assertions now, never pass unjudged."""
        report = yield
        if call.when != "call" or item.stash.get(_IN_OUR_PROTOCOL, False):
            return report
        pending = item.stash.get(_PENDING, None)
        if not pending:
            return report
        del item.stash[_PENDING]
        for entry in pending:
            outcomes: list[Any] = []
            for key, request in zip(entry.keys, entry.expectation.requests):
                try:
                    outcomes.append(self.session.verdict(request, item))
                except Exception as exc:  # noqa: BLE001 - the test's outcome, as in immediate mode
                    outcomes.append(exc)
            records, failure = entry.expectation.evaluate(outcomes)
            self.session.add_records(records, item)
            report.user_properties = list(item.user_properties)
            if failure is not None and not report.failed:
                report.outcome = "failed"
                report.longrepr = item.repr_failure(pytest.ExceptionInfo.from_exception(locate(failure,
                                                                                              entry.callsite)))
                break
        return report

    # ------------------------------------------------------------------ hooks: settle

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """Innermost wrapper: settle before the terminal ends the progress line and before the exit status."""
        try:
            result = yield
        except pytest.Session.Interrupted:  # a KeyboardInterrupt subclass: --sw, xdist's -x; nobody pressed Ctrl-C
            self.finish()
            raise
        except KeyboardInterrupt:
            self.finish(interrupted=True)
            raise
        except BaseException:
            self.finish()  # e.g. -x / --maxfail (session.Failed): the held tests still get their verdicts
            raise
        self.finish()
        return result

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Stop the background loop if a run ended without settling (e.g. a usage error)."""
        if self.online is not None:
            self.online.close()
        self._spool_close()

    def finish(self, *, interrupted: bool = False) -> None:
        """End of the run loop: a worker ships its held tests; a controller or single process settles."""
        if self.settled:
            return
        self.settled = True
        try:
            if self.is_worker:
                self._ship(interrupted)
            else:
                self.settle(interrupted=interrupted)
        finally:
            if self.online is not None:
                self.online.close()
            self._spool_close()

    def settle(self, *, interrupted: bool = False) -> None:
        """Get every missing verdict (concurrent calls or one batch job), then log each held test."""
        self._adopt_leftover_spools()
        held, self.held = self.held, []
        if not held:
            return
        console = Console(self.config)
        unavailable: str | None = None
        if interrupted:
            unavailable = "the run was interrupted (Ctrl-C) before its deferred verdicts were judged"
            self._drain()
        else:
            wanted = self._wanted(held)
            stop: KeyboardInterrupt | None = None
            if not wanted and self.mode == "deferred" and _xdist_workers(self.config):
                console.line(f"pai-judge: {plural(len(held), 'held test')} settled with the verdicts the xdist "
                             "workers judged (each worker waited for its own calls)")
            try:
                if wanted:
                    if self.mode == "batch":
                        self._resolve_batch(wanted, console)
                    else:
                        needed = {k for test in held for entry in test.pending for k in entry.keys}
                        self._resolve_online(wanted, console, len(needed))
            except KeyboardInterrupt as exc:
                stop = exc
            except Exception as exc:  # noqa: BLE001 - never let a held test pass unjudged
                unavailable = str(exc) if isinstance(exc, errors.JudgeError) else f"{type(exc).__name__}: {exc}"
            console.end()
            if stop is not None:  # logged outside the except block: no "during handling" chain in reports
                self._drain()
                self._log(held, self._interrupted_text())
                raise stop
        from .batch import hold_ctrl_c

        with hold_ctrl_c():  # a Ctrl-C while the verdicts are being logged waits the few ms until all are
            self._log(held, unavailable)

    def _interrupted_text(self) -> str:
        batch = getattr(self, "_batch", None)
        if batch is not None:
            return batch.interrupted_text()
        return "interrupted (Ctrl-C) while waiting for the deferred verdicts"

    def _wanted(self, held: list[Held]) -> dict[str, tuple[JudgeRequest, str]]:
        """Requests the held tests wait for that have neither an outcome nor a cached verdict."""
        wanted: dict[str, tuple[JudgeRequest, str]] = {}
        for test in held:
            for entry in test.pending:
                for key, request in zip(entry.keys, entry.expectation.requests):
                    if key in wanted or key in self.results:
                        continue
                    if self.online is not None and self.online.outcome(key) is not None:
                        continue
                    if self._lookup_quietly(key, request) is not None:
                        continue
                    wanted[key] = self.requests.get(key) or (request, test.nodeid)
        return wanted

    def _lookup_quietly(self, key: str, request: JudgeRequest) -> Any:
        if self.session.cache_mode in ("off", "refresh"):
            return None
        try:
            return self.session.cache.get(key)
        except Exception:  # noqa: BLE001 - an unreadable cache entry is judged again
            return None

    def _resolve_online(self, wanted: dict[str, tuple[JudgeRequest, str]], console: Console, needed: int) -> None:
        """Wait for the calls still in flight; ``needed`` counts every distinct request the held tests wait for."""
        assert self.online is not None
        for key, (request, _nodeid) in wanted.items():
            self.online.submit(key, request)
        keys = list(wanted)
        waiting = sum(1 for k in keys if self.online.outcome(k) is None)
        needed = max(needed, len(keys))
        console.line(f"pai-judge: judging {plural(needed, 'deferred verdict')} "
                     f"({needed - waiting:,} already in; up to {self.online.limit} concurrent calls)…")
        started = time.perf_counter()

        def tick(done: int, total: int) -> None:
            self._drain()
            console.progress(f"pai-judge: {done:,}/{total:,} verdicts in, {time.perf_counter() - started:.1f}s")

        self.online.wait(keys, tick)
        self._drain()
        console.end()
        if self.online.first_call is not None and self.online.last_answer is not None:
            span = self.online.last_answer - self.online.first_call
            console.line(f"pai-judge: {plural(len(self.online.futures), 'verdict')} judged in {span:.2f}s from the "
                         f"first call to the last answer (up to {self.online.limit} concurrent calls)")

    def _resolve_batch(self, wanted: dict[str, tuple[JudgeRequest, str]], console: Console) -> None:
        from .batch import BatchJudge

        self._batch = BatchJudge(self.session, console, run_id=self.run_id)
        outcomes = self._batch.judge(wanted, store_extra=self._store_extra)
        self.results.update(outcomes)

    def _store_extra(self, key: str, request: JudgeRequest, reply: JudgeReply) -> None:
        """A verdict of an earlier run's batch that no test of this run needs: keep it in the cache."""
        if key not in self._stored:
            self._stored.add(key)
            self.session.store(key, request, reply, None)

    def _drain(self) -> None:
        """Move finished online calls into ``results`` and the cache (main thread only)."""
        if self.online is None:
            return
        finished = self.online.finished
        while finished:  # only the calls that ended since the last drain: O(1) per test, not O(calls)
            key = finished.popleft()
            if key in self.results:
                continue
            outcome = self.online.outcome(key)
            if outcome is None:
                continue
            self.results[key] = outcome
            if isinstance(outcome, JudgeReply) and key in self.requests and key not in self._stored:
                self._stored.add(key)
                try:
                    self.session.store(key, self.requests[key][0], outcome, None)
                except Exception:  # noqa: BLE001 - the verdict is still used for this run
                    pass

    # ------------------------------------------------------------------ outcomes -> reports

    def _outcome(self, key: str, request: JudgeRequest, item: pytest.Item | None, unavailable: str | None) -> Any:
        """The verdict (or exception) a held request resolves to, exactly as immediate mode would get it.

        The first test to use a fresh reply stores it and parses it; later tests read it back from
        the cache (so they see a cached verdict, as in immediate mode) or, without a cache, reuse it.
        """
        raw = self.results.get(key)
        if raw is None and self.online is not None:
            raw = self.online.outcome(key)
        if key not in self._used and raw is not None:
            self._used.add(key)
            if isinstance(raw, BaseException):
                return raw
            if key not in self._stored:
                self._stored.add(key)
                try:
                    self.session.store(key, request, raw, item)
                except Exception:  # noqa: BLE001 - a cache write failure must not change the outcome
                    pass
            return self._parse(raw, request)
        try:
            hit = self.session.lookup(key, request, item)
        except Exception as exc:  # noqa: BLE001 - UnreadableVerdict from a cached reply
            return exc
        if hit is not None:
            return hit
        if raw is None:
            text = unavailable or "no verdict came back for this request"
            cls = errors.BatchError if self.mode == "batch" else errors.JudgeError
            return cls(text, code=UNAVAILABLE)
        if isinstance(raw, BaseException):
            return raw
        return self._parse(raw, request)

    def _parse(self, raw: JudgeReply, request: JudgeRequest) -> Any:
        __tracebackhide__ = True
        try:
            return self.session.parse(raw, request)
        except Exception as exc:  # noqa: BLE001 - UnreadableVerdict: the test fails showing the raw text
            return exc

    def _log(self, held: list[Held], unavailable: str | None) -> None:
        """Decide and log every held test, in the order they ran."""
        for test in held:
            try:
                self._decide(test, unavailable)
            except Exception as exc:  # noqa: BLE001 - a bug here must fail the test, not pass it
                report = next((r for r in test.reports if r.when == "call"), test.reports[0])
                report.outcome = "failed"
                report.longrepr = f"pytest-pai-judge could not settle this test: {type(exc).__name__}: {exc}"
                if hasattr(report, "wasxfail"):
                    del report.wasxfail
            hook = test.item.ihook if test.item is not None else self.config.hook
            emit(hook, test.nodeid, test.location, test.reports)

    def _decide(self, test: Held, unavailable: str | None) -> None:
        """Evaluate a held test's assertions phase by phase, as immediate mode would have met them."""
        item = test.item
        sink: Any = item if item is not None else _PropertySink(test.nodeid)
        first_property = len(sink.user_properties)
        failures: dict[str, tuple[BaseException, Pending]] = {}
        for when in PHASES:
            if when == "call" and "setup" in failures:
                continue  # immediate mode never runs the body of a test whose setup failed
            for entry in (e for e in test.pending if (e.when if e.when in PHASES else "call") == when):
                outcomes = [self._outcome(k, r, item, unavailable)
                            for k, r in zip(entry.keys, entry.expectation.requests)]
                records, failure = entry.expectation.evaluate(outcomes)
                if not entry.shared:  # an inherited fixture assertion was counted with the test that made it
                    for outcome in outcomes:
                        self.session.observe(outcome, item)
                    self.session.add_records(records, sink)
                if failure is not None:  # immediate mode stops a phase at its first failing assertion
                    failures[when] = (failure, entry)
                    break
        added = list(sink.user_properties[first_property:])
        for report in test.reports:
            if report.when in ("call", "teardown"):
                report.user_properties = list(report.user_properties) + added
        for when, (failure, entry) in failures.items():
            report = next((r for r in test.reports if r.when == when), None)
            if report is None or (when == "teardown" and report.failed):
                continue  # a teardown that failed anyway keeps its own error
            report.outcome = "failed"
            report.longrepr = self._longrepr(test, failure, entry.callsite, when)
            if hasattr(report, "wasxfail"):  # pytest.xfail() after the assertion: never reached
                del report.wasxfail
        if "setup" in failures:
            test.reports[:] = [r for r in test.reports if r.when != "call"]

    def _longrepr(self, test: Held, failure: BaseException, callsite: list[list[Any]], when: str = "call") -> Any:
        excinfo = pytest.ExceptionInfo.from_exception(locate(failure, callsite))
        if test.item is not None:
            if when == "call":
                return test.item.repr_failure(excinfo)
            # as pytest formats an error in setup / teardown (_pytest.reports._format_failed_longrepr)
            return test.item._repr_failure_py(excinfo, style=test.item.config.getoption("tbstyle", "auto"))
        config = self.config
        tbstyle = config.getoption("tbstyle", "auto")
        style = tbstyle if tbstyle in ("short", "native") else "long"
        if config.getoption("fulltrace", False):
            style = "long"
        return excinfo.getrepr(funcargs=True, showlocals=config.getoption("showlocals", False), style=style,
                               tbfilter=not config.getoption("fulltrace", False),
                               truncate_locals=config.get_verbosity() <= 1, truncate_args=config.get_verbosity() <= 2)

    # ------------------------------------------------------------------ xdist: worker side

    def _spool_path(self, worker_id: str) -> Path:
        return self.session.cache_dir / "spool" / f"{self.run_id}-{worker_id}.jsonl"

    def _held_to_dict(self, held: Held) -> dict[str, Any]:
        hook = self.config.hook
        return {"nodeid": held.nodeid, "location": list(held.location),
                "reports": [hook.pytest_report_to_serializable(config=self.config, report=r) for r in held.reports],
                "pending": [p.to_dict() for p in held.pending]}

    def _spool_write(self, held: Held) -> None:
        """Keep each held test on disk as it is held, so a crashed worker loses none of them."""
        try:
            if self._spool is None:
                path = self._spool_path(str((self.workerinput or {}).get("workerid", "gw")))
                path.parent.mkdir(parents=True, exist_ok=True)
                self._spool = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the worker's life
            self._spool.write(json.dumps(self._held_to_dict(held), default=str) + "\n")
            self._spool.flush()
        except OSError as exc:
            self.session.warnings.append(f"cannot spool held tests ({exc}); a crashed xdist worker would lose them")

    def _spool_close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _ship(self, interrupted: bool) -> None:
        """Hand held tests (and, in deferred mode, their finished replies) to the xdist controller."""
        held, self.held = self.held, []
        replies: dict[str, Any] = {}
        if self.online is not None and held:
            keys = [k for test in held for p in test.pending for k in p.keys if k in self.online.futures]
            if not interrupted:
                try:
                    self.online.wait(keys, lambda done, total: None)
                except KeyboardInterrupt:
                    pass
            for key in keys:
                outcome = self.online.outcome(key)
                if outcome is not None:
                    replies[key] = outcome_to_dict(outcome)
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT_KEY] = [self._held_to_dict(h) for h in held]
            workeroutput[WORKER_REPLIES_KEY] = replies

    # ------------------------------------------------------------------ xdist: controller side

    def collect_worker(self, node: Any, error: object) -> None:
        """Take over a finished (or crashed) worker's held tests."""
        worker_id = str(getattr(getattr(node, "gateway", None), "id", "") or
                        (getattr(node, "workerinput", None) or {}).get("workerid", ""))
        output = getattr(node, "workeroutput", None) or {}
        spool = self._spool_path(worker_id) if worker_id else None
        if WORKER_OUTPUT_KEY in output:
            rows = output[WORKER_OUTPUT_KEY]
            replies = output.get(WORKER_REPLIES_KEY) or {}
        else:
            rows, replies = self._read_spool(spool), {}
            if rows:
                self.session.warnings.append(f"xdist worker {worker_id} went down ({error}); its "
                                             f"{plural(len(rows), 'held test')} are judged by the controller")
        for key, data in replies.items():
            self.results.setdefault(key, outcome_from_dict(data))
        for row in rows:
            self._adopt(row)
        if spool is not None:
            try:
                spool.unlink()
            except OSError:
                pass

    def _adopt_leftover_spools(self) -> None:
        """xdist controller: held tests of workers that never reported back (Ctrl-C, a lost node) are still ours."""
        if self.is_worker or not _xdist_workers(self.config):
            return
        known = {test.nodeid for test in self.held}
        for spool in sorted((self.session.cache_dir / "spool").glob(f"{self.run_id}-*.jsonl")):
            for row in self._read_spool(spool):
                if row.get("nodeid") not in known:
                    known.add(row.get("nodeid"))
                    self._adopt(row)
            try:
                spool.unlink()
            except OSError:
                pass

    def _read_spool(self, path: Path | None) -> list[dict[str, Any]]:
        if path is None or not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut short by the crash
                continue
        return rows

    def _adopt(self, row: dict[str, Any]) -> None:
        hook = self.config.hook
        reports = [hook.pytest_report_from_serializable(config=self.config, data=d) for d in row["reports"]]
        pending = [Pending.from_dict(p) for p in row["pending"]]
        location = tuple(row["location"])
        self.held.append(Held(row["nodeid"], location, reports, pending, None))  # type: ignore[arg-type]
        for entry in pending:
            for key, request in zip(entry.keys, entry.expectation.requests):
                self.requests.setdefault(key, (request, row["nodeid"]))


def _running_fixture() -> Any:
    """The FixtureDef whose function is running on this stack (pytest's ``pytest_fixture_setup``), if any."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "pytest_fixture_setup" and \
                os.path.abspath(frame.f_code.co_filename).startswith(_FRAMEWORK_DIRS):
            return frame.f_locals.get("fixturedef")
        frame = frame.f_back
    return None


def _used_fixture(item: pytest.Item, fixturedef: Any) -> bool:
    """Whether ``item`` got its ``argname`` from this very fixture definition so far (its request records
    every fixture it resolved, getfixturevalue included; an override is another definition)."""
    request = getattr(item, "_request", None)
    used = getattr(request, "_fixture_defs", None)  # private pytest state; the fallback below is coarser
    if isinstance(used, dict):
        return used.get(fixturedef.argname) is fixturedef
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get(fixturedef.argname, ())
    return bool(defs) and defs[-1] is fixturedef


def _xdist_workers(config: pytest.Config) -> int:
    """The number of xdist workers this (controller) run starts; 0 without xdist."""
    if getattr(config.option, "dist", "no") == "no":
        return 0
    try:
        return int(getattr(config.option, "numprocesses", 0) or 0)
    except (TypeError, ValueError):  # "auto" / "logical" before xdist resolved it
        return 0


class XdistHooks:
    """xdist-only hooks (registered only when pytest-xdist is installed, as pytest documents)."""

    def __init__(self, settler: DeferredSettler) -> None:
        self.settler = settler

    def pytest_configure_node(self, node: Any) -> None:
        """Give every worker the run id, so the controller can find a crashed worker's spool."""
        node.workerinput["pai_judge_run_id"] = self.settler.run_id

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker finished or crashed: take over its held tests (from its output, or its spool)."""
        self.settler.collect_worker(node, error)
