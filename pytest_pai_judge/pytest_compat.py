"""Every use of pytest's (and pytest-xdist's, pytest-rerunfailures') internals, in one place, each with why.

When a pytest release moves one of these, this is the only module to change. Each helper
degrades to a coarser answer rather than failing when the private name is gone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import _pytest
import pluggy
import pytest

FRAMEWORK_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__ or "")) + os.sep for m in (pytest, pluggy, _pytest))
"""Where pytest's and pluggy's frames come from: the end of a test's (or fixture's) own frames."""


def in_framework(filename: str) -> bool:
    return os.path.abspath(filename).startswith(FRAMEWORK_DIRS)


def run_unlogged(item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.TestReport]:
    """Run setup, call and teardown without logging the reports, so deferred mode can log them later.

    ``_pytest.runner.runtestprotocol`` is private; pytest-rerunfailures uses it the same way.
    """
    from _pytest.runner import runtestprotocol

    return runtestprotocol(item, nextitem=nextitem, log=False)


def expects_failure(item: pytest.Item, failure_type: type[BaseException]) -> bool:
    """Whether pytest treats a ``failure_type`` in this test as an expected failure (xfail whose condition holds).

    ``_pytest.skipping.xfailed_key`` holds pytest's own evaluation of the xfail mark (conditions,
    ``raises=``); without it, any xfail mark counts.
    """
    if item.config.option.runxfail:
        return False
    try:
        from _pytest.skipping import xfailed_key
    except ImportError:  # pragma: no cover - moved in a later pytest
        return item.get_closest_marker("xfail") is not None
    xfailed = item.stash.get(xfailed_key, None)
    raises = getattr(xfailed, "raises", None)
    if xfailed is not None and raises is not None:  # xfail(raises=X): only an X is expected
        return (isinstance(raises, type) and issubclass(failure_type, raises)) or \
            (isinstance(raises, tuple) and any(issubclass(failure_type, r) for r in raises))
    return xfailed is not None


def xfail_raises(item: pytest.Item) -> Any:
    """The ``raises=`` of the xfail mark pytest evaluated for this test (None: not given, or no xfail).

    Read from ``_pytest.skipping.xfailed_key``, pytest's own evaluation; without it, from the closest mark.
    """
    try:
        from _pytest.skipping import xfailed_key
    except ImportError:  # pragma: no cover - moved in a later pytest
        mark = item.get_closest_marker("xfail")
        return None if mark is None else mark.kwargs.get("raises")
    return getattr(item.stash.get(xfailed_key, None), "raises", None)


def repr_phase_failure(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
    """An error in setup / teardown formatted as pytest formats one (``_pytest.reports._format_failed_longrepr``).

    ``Node._repr_failure_py`` is private; ``repr_failure`` is the call phase's formatting only.
    """
    return item._repr_failure_py(excinfo, style=item.config.getoption("tbstyle", "auto"))


def running_fixture() -> Any:
    """The FixtureDef whose function is running on this stack, if any.

    pytest names no public way to ask; its ``pytest_fixture_setup`` implementation has the
    ``fixturedef`` as a local, so the stack is walked to find that frame.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "pytest_fixture_setup" and in_framework(frame.f_code.co_filename):
            return frame.f_locals.get("fixturedef")
        frame = frame.f_back  # type: ignore[assignment]
    return None


def fixture_scope(fixturedef: Any) -> str:
    return str(getattr(fixturedef, "scope", "function"))


def fixture_value(fixturedef: Any) -> Any:
    """What identifies a fixture's current value (``FixtureDef.cached_result``; None once torn down)."""
    return getattr(fixturedef, "cached_result", None)


def used_fixture(item: pytest.Item, fixturedef: Any) -> bool:
    """Whether ``item`` got its ``argname`` from this very fixture definition so far.

    ``item._request._fixture_defs`` records every fixture the test resolved (getfixturevalue
    included; an override is another definition); the fallback, the collected closure, is coarser.
    """
    request = getattr(item, "_request", None)
    used = getattr(request, "_fixture_defs", None)
    if isinstance(used, dict):
        return used.get(fixturedef.argname) is fixturedef
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get(fixturedef.argname, ())
    return bool(defs) and defs[-1] is fixturedef


def current_line_width(terminalreporter: Any) -> int:
    """Characters already on the terminal's current line (``-q`` progress dots); ``_tw`` is private."""
    return int(getattr(getattr(terminalreporter, "_tw", None), "width_of_current_line", 0) or 0)


def repr_renderers(*, full: bool, pretty: bool = False) -> Callable[[Any], str]:
    """The repr pytest's tracebacks use for ``name = value`` lines (``_pytest._io.saferepr``)."""
    from _pytest._io.saferepr import safeformat, saferepr

    if pretty:
        return safeformat if full else saferepr
    return (lambda value: saferepr(value, maxsize=None)) if full else saferepr


def run_id(config: pytest.Config) -> str:
    """One id for the whole run, shared by xdist workers (it is xdist's own test-run uid)."""
    import uuid

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("testrunuid"):
        return str(workerinput["testrunuid"])
    if hasattr(config.option, "testrunuid"):  # xdist controller: fix the uid its workers will get
        if not config.option.testrunuid:
            config.option.testrunuid = uuid.uuid4().hex
        return str(config.option.testrunuid)
    return uuid.uuid4().hex


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def xdist_workers(config: pytest.Config) -> int:
    """The number of xdist workers this (controller) run starts; 0 without xdist."""
    if getattr(config.option, "dist", "no") == "no":
        return 0
    try:
        return int(getattr(config.option, "numprocesses", 0) or 0)
    except (TypeError, ValueError):  # "auto" / "logical" before xdist resolved it
        return 0


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


def stepwise(config: pytest.Config) -> bool:
    """``--sw`` / ``--sw-skip``: the run stops at, and next time resumes from, the first failure."""
    return bool(config.getoption("stepwise", False) or config.getoption("stepwise_skip", False))


def add_suite_property(config: pytest.Config, name: str, value: str) -> bool:
    """Add a ``<property>`` to junitxml's ``<testsuite>``, as the ``record_testsuite_property`` fixture does.

    That fixture needs a test to request it; a run-wide result has none, so this reaches the same
    ``LogXML.add_global_property`` through ``_pytest.junitxml.xml_key``. False without ``--junitxml``
    (or if pytest moved it); it must be called before junitxml's ``pytest_sessionfinish`` writes the file.
    """
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - moved in a later pytest
        return False
    xml = config.stash.get(xml_key, None)
    if xml is None or not hasattr(xml, "add_global_property"):
        return False
    xml.add_global_property(name, value)
    return True
