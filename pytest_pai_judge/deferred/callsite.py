"""Where a held assertion was made, and a traceback through those very lines when it fails later.

A deferred failure is raised at the end of the run, far from the test; to show it as immediate
mode would (the test's source, ``a = '...'`` argument lines, ``-l`` locals), the call site is
recorded as file names, line numbers and reprs when the assertion is held, and re-created as
tiny functions compiled under the real file names and line numbers when it fails.
"""

from __future__ import annotations

import keyword
import linecache
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, Literal

import pytest

from ..pytest_compat import in_framework, repr_phase_failure, repr_renderers

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The plugin's own frames end a recorded call site."""


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
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code is not code:
        stack.append(frame)
        frame = frame.f_back
    if frame is not None:
        stack.append(frame)
    else:  # not inside the test function (a fixture's setup or teardown): the user frames below pytest's
        cut = next((i for i, f in enumerate(stack) if in_framework(f.f_code.co_filename)), len(stack))
        stack = stack[:cut]
    chain: list[list[Any]] = []
    for f in reversed(stack):  # the test function first, then inwards
        if os.path.abspath(f.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
            break
        if f.f_locals.get("__tracebackhide__", f.f_globals.get("__tracebackhide__", False)) and chain:
            continue
        args = _arg_reprs(f, full=verbosity > 2)
        entry: list[Any] = [f.f_code.co_filename, f.f_lineno, f.f_code.co_firstlineno, f.f_code.co_name, args]
        if show_locals:
            entry.append(_local_reprs(f, args, full=verbosity > 1))
        chain.append(entry)
    return chain


def _arg_reprs(frame: Any, *, full: bool) -> dict[str, str]:
    """The frame's arguments as pytest would print them, in signature order (in full from ``-vvv``)."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
    return _reprs(frame, [n for n in code.co_varnames[:count] if n in frame.f_locals], repr_renderers(full=full))


def _local_reprs(frame: Any, args: dict[str, str], *, full: bool) -> dict[str, str]:
    """The frame's other locals, for ``-l`` / ``--showlocals`` (pretty-printed in full from ``-vv``)."""
    names = [n for n in frame.f_locals
             if n not in args and n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("@")]
    return _reprs(frame, names, repr_renderers(full=full, pretty=True))


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
                source = ("\n" * (firstlineno - 1) + f"def {name}({params}):\n"
                          + (gap if lineno - firstlineno > 1 else "") + f"{indent}{statement}\n")
            namespace: dict[str, Any] = {"__pai_judge_exc__": exc, "__pai_judge_raise__": nxt,
                                         "__name__": "pai_judge_callsite",
                                         **{f"__pai_judge_arg{i}__": _Repr(r) for i, r in enumerate(shown.values())}}
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own two-line source
            nxt = namespace[name]
            if shown_name != name:
                names: dict[str, Any] = {"co_name": shown_name}
                if sys.version_info >= (3, 11):
                    names["co_qualname"] = shown_name
                nxt.__code__ = nxt.__code__.replace(**names)
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


def failure_repr(config: pytest.Config, item: pytest.Item | None, failure: BaseException, callsite: list[list[Any]],
                 when: str = "call") -> Any:
    """A deferred failure's report text, through its recorded call site, as pytest would show it in ``when``.

    Without the item (the xdist controller), pytest's own renderer with the run's ``--tb``, ``-l`` and ``-v``."""
    excinfo = pytest.ExceptionInfo.from_exception(locate(failure, callsite))
    if item is not None:
        if when == "call":
            return item.repr_failure(excinfo)
        return repr_phase_failure(item, excinfo)
    tbstyle = config.getoption("tbstyle", "auto")
    style: Literal["short", "native", "long"] = tbstyle if tbstyle in ("short", "native") else "long"
    if config.getoption("fulltrace", False):
        style = "long"
    return excinfo.getrepr(funcargs=True, showlocals=config.getoption("showlocals", False), style=style,
                           tbfilter=not config.getoption("fulltrace", False),
                           truncate_locals=config.get_verbosity() <= 1, truncate_args=config.get_verbosity() <= 2)
