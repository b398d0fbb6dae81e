"""pytest-pai-judge's own hooks: implement them in a ``conftest.py`` or a plugin to extend the judge.

Added through ``pytest_addhooks`` (``pluginmanager.add_hookspecs(hookspecs)``), so a plugin that
does not use them needs nothing, and pytest warns about a misspelt ``pytest_judge_*`` function.
They run in the process that judges (an xdist worker or the controller);
``pytest_judge_results`` runs once, where the reports are written (the controller under xdist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas

    from .request import JudgeRequest
    from .verdict import Verdict


@pytest.hookspec
def pytest_judge_request(request: JudgeRequest, item: pytest.Item | None) -> None:
    """Amend a judge request in place before it is sent (and before its cache key is computed).

    Called for every judge call, cached or not, so a change here also changes the cache key.
    ``item`` is the test asking, or None outside a test (e.g. a session-scoped fixture). The
    return value is ignored.

    Example — pin the judge's sampling and make every call carry a reference answer::

        def pytest_judge_request(request, item):
            request.params.setdefault("temperature", 0)
            marker = item and item.get_closest_marker("reference")
            if marker and request.kind != "custom":
                request.fields["ref_answer"] = marker.args[0]
    """


@pytest.hookspec(firstresult=True)
def pytest_judge_parse_reply(text: str, mode: str) -> Verdict | None:
    """Read the judge's reply text yourself (custom templates, custom reply formats).

    ``mode`` is ``single``, ``pairwise`` or ``custom``. Return a
    :class:`pytest_pai_judge.verdict.Verdict`, or None to let the next implementation (and
    finally the built-in parser) read it; the first non-None result wins.

    Example — a custom template that asks for ``SCORE: <n>/10`` on the last line::

        import re
        from pytest_pai_judge.verdict import Verdict

        def pytest_judge_parse_reply(text, mode):
            if mode != "custom":
                return None
            found = re.search(r"SCORE:\\s*(\\d+(?:\\.\\d+)?)\\s*/\\s*10", text)
            if not found:
                return None
            return Verdict(mode=mode, score=float(found.group(1)), max_score=10, criteria=(), winner=None,
                           score1=None, score2=None, reasons=text, raw=text)
    """


@pytest.hookspec
def pytest_judge_verdict(verdict: Verdict, item: pytest.Item | None) -> None:
    """Observe every verdict as it settles (at the end of the run in deferred / batch mode).

    Read-only by convention; ``item`` is the test that asked, or None outside a test.

    Example — count low scores per test module::

        import collections
        low = collections.Counter()

        def pytest_judge_verdict(verdict, item):
            if item is not None and verdict.score is not None and verdict.score < 5:
                low[item.module.__name__] += 1
    """


@pytest.hookspec
def pytest_judge_results(df: pandas.DataFrame, config: pytest.Config) -> None:
    """Receive the run's results table once, at the end of the run, after the reports are written.

    One row per judged assertion, with the columns of
    :func:`pytest_pai_judge.report.table.records_to_frame` (nodeid, mode, kind, assertion, model, scene,
    question, answer, score, max_score, threshold, passed, winner, criteria, reasons, tokens,
    cached, latency_s, error, answer2, score2, xfail). Not called when the run judged nothing.

    Example — push the scores to a tracking store::

        def pytest_judge_results(df, config):
            scored = df[df["score"].notna()]
            my_tracker.log(scored[["nodeid", "model", "scene", "score"]].to_dict("records"),
                           run=config.getoption("--judge-report"))
    """
