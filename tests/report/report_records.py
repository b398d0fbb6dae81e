"""Judge records and results tables shared by the report tests (tests/report is on sys.path)."""

from __future__ import annotations

import pandas as pd

from pytest_pai_judge.records import JudgeRecord
from pytest_pai_judge.report.table import records_to_frame


def rec(nodeid: str = "t.py::test_a", score: float | None = 8.0, **kw) -> JudgeRecord:
    base = dict(nodeid=nodeid, run_mode="deferred", kind="single", assertion="score", model="pai-judge",
                scene="回答开放性问题", question="什么是光合作用?", answer="植物利用光能…", score=score, max_score=10,
                threshold=6.0, passed=None if score is None else score >= 6.0, reasons="Good.\n理由:准确",
                criteria={"准确性": 8.0, "clarity": None}, tokens=321, cached=False, latency_s=0.25)
    base.update(kw)
    return JudgeRecord(**base)


def sample_records() -> list[JudgeRecord]:
    return [
        rec("t.py::test_a[zh]"),
        rec("t.py::test_a[en]", 4.0, scene=None, question="What is 2+2?", answer="5", reasons="Wrong | <b>bad</b>",
            criteria={}, cached=True, latency_s=None),
        rec("t.py::test_pair", None, kind="pairwise", assertion="prefers", winner="1", threshold=None, passed=True,
            criteria={"a": 3.5}),
        rec("t.py::test_broken", None, error="UnreadableVerdict: no score in reply", reasons="", tokens=0,
            passed=None),
        rec("t.py::test_value", 7.5, assertion="value", threshold=None, passed=None),
    ]


def frame(rows: list[tuple]) -> pd.DataFrame:
    """A results table from ``(nodeid, question, score, scene)`` rows."""
    return records_to_frame([rec(n, s, question=q, scene=sc) for n, q, s, sc in rows])


def xfail_records() -> list[JudgeRecord]:
    """A passing and a failing case, a known-bad case kept as an expected failure, and one that now passes."""
    return [rec("t.py::test_q[ok]", 8.0), rec("t.py::test_q[bad]", 3.0),
            rec("t.py::test_q[known-bad]", 2.0, xfail=True), rec("t.py::test_q[fixed]", 9.0, xfail=True)]
