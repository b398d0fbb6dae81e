"""report/table.py: the results table's columns and dtypes, reading a hand-made baseline, statuses and order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from report_records import rec, sample_records, xfail_records

from pytest_pai_judge.report.table import (
    COLUMNS,
    clean_text,
    failing_first,
    read_report,
    records_to_frame,
    status_of,
    summarize,
)


def test_frame_has_exactly_the_contract_columns_and_nullable_types() -> None:
    df = records_to_frame(sample_records())
    assert list(df.columns) == list(COLUMNS)
    assert df["mode"].tolist() == ["deferred"] * 5
    assert str(df["score"].dtype) == "float64" and str(df["max_score"].dtype) == "Int64"
    assert str(df["passed"].dtype) == "boolean" and str(df["tokens"].dtype) == "int64"
    assert df.loc[3, "passed"] is pd.NA and pd.isna(df.loc[2, "score"])
    assert df.loc[0, "criteria"] == {"准确性": 8.0, "clarity": None}
    assert df.loc[2, "winner"] == "1"


def test_empty_records_give_an_empty_table_with_the_columns() -> None:
    df = records_to_frame([])
    assert list(df.columns) == list(COLUMNS) and len(df) == 0


def test_hand_made_baseline_with_only_nodeid_and_score(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("nodeid,score\nt.py::test_a[zh],9\n", "utf-8")
    back = read_report(tmp_path / "b.csv")
    assert list(back.columns) == list(COLUMNS)
    assert back.loc[0, "score"] == 9.0 and back.loc[0, "criteria"] == {} and back.loc[0, "reasons"] == ""
    assert back.loc[0, "xfail"] is False or back.loc[0, "xfail"] == False  # noqa: E712 - numpy bool


# --------------------------------------------------------------------------- statuses and text


def test_failing_first_order() -> None:
    ordered = failing_first(records_to_frame(sample_records()))
    assert ordered["nodeid"].tolist() == ["t.py::test_broken", "t.py::test_a[en]", "t.py::test_value",
                                          "t.py::test_pair", "t.py::test_a[zh]"]


def test_clean_text_strips_ansi_and_control_characters() -> None:
    assert clean_text("\x1b[31mred\x1b[0m\x07 ok\r\nnext\tcol\x00") == "red ok\nnext\tcol"
    assert clean_text(None) == "" and clean_text(float("nan")) == ""


# --------------------------------------------------------------------------- xfail-marked tests


def test_xfail_verdicts_are_not_failures_nor_in_the_pass_rate() -> None:
    df = records_to_frame(xfail_records())
    assert [status_of(r) for r in df.to_dict(orient="records")] == ["passed", "failed", "xfailed", "xpassed"]
    s = summarize(df)
    assert (s["passed"], s["failed"], s["xfailed"], s["xpassed"], s["no_threshold"]) == (1, 1, 1, 1, 0)
    assert s["pass_rate"] == 0.5, "pass rate over the tests not marked xfail"
    assert failing_first(df)["nodeid"].tolist() == ["t.py::test_q[bad]", "t.py::test_q[fixed]",
                                                    "t.py::test_q[known-bad]", "t.py::test_q[ok]"]
    broken = records_to_frame([rec("t.py::x", None, error="judge down", passed=None, xfail=True)])
    assert status_of(broken.to_dict(orient="records")[0]) == "error", "an unavailable verdict stays visible"
