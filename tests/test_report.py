"""report.py / html_report.py: the results table, every format's round trip, drift maths, the pages' escaping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pytest_pai_judge import reporting
from pytest_pai_judge.html_report import histogram_svg, render_html
from pytest_pai_judge.records import JudgeRecord
from pytest_pai_judge.report import (
    COLUMNS,
    READABLE_SUFFIXES,
    REPORT_SUFFIXES,
    clean_text,
    compute_drift,
    drops_beyond,
    failing_first,
    no_shared_cases,
    read_report,
    records_to_frame,
    render_markdown,
    status_of,
    summarize,
    write_report,
)


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


# --------------------------------------------------------------------------- the table


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


@pytest.mark.parametrize("suffix", READABLE_SUFFIXES)
def test_every_machine_format_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    df = records_to_frame(sample_records())
    path = write_report(df, tmp_path / f"nested/dir/results{suffix}")
    pd.testing.assert_frame_equal(read_report(path), df)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no temp file left behind"


def test_plain_pandas_reads_every_format(tmp_path: Path) -> None:
    """A tool that only knows pandas gets the same rows; criteria are JSON text in CSV / Parquet."""
    df = records_to_frame(sample_records())
    for suffix in READABLE_SUFFIXES:
        write_report(df, tmp_path / f"r{suffix}")
    csv = pd.read_csv(tmp_path / "r.csv")
    parquet = pd.read_parquet(tmp_path / "r.parquet")
    jsn = pd.read_json(tmp_path / "r.json", orient="records")
    jsonl = pd.read_json(tmp_path / "r.jsonl", lines=True)
    for other in (csv, parquet, jsn, jsonl):
        assert list(other.columns) == list(COLUMNS)
        assert other["nodeid"].tolist() == df["nodeid"].tolist()
        assert other["score"].tolist()[:2] == [8.0, 4.0]
    assert json.loads(csv.loc[0, "criteria"]) == {"准确性": 8.0, "clarity": None}
    assert json.loads(parquet.loc[0, "criteria"]) == {"准确性": 8.0, "clarity": None}
    assert jsonl.loc[0, "criteria"] == {"准确性": 8.0, "clarity": None}
    assert "什么是光合作用" in (tmp_path / "r.json").read_text("utf-8"), "UTF-8, not \\u escapes"


def test_csv_cannot_tell_empty_text_from_missing(tmp_path: Path) -> None:
    """The one documented CSV loss: an empty answer reads back as missing; everything else survives."""
    df = records_to_frame([rec(answer=""), rec("t.py::b", reasons="")])
    back = read_report(write_report(df, tmp_path / "r.csv"))
    assert back.loc[0, "answer"] is pd.NA
    assert back.loc[1, "reasons"] == ""
    pd.testing.assert_frame_equal(back.drop(columns="answer"), df.drop(columns="answer"))


def test_unknown_suffixes_are_refused(tmp_path: Path) -> None:
    df = records_to_frame(sample_records())
    with pytest.raises(ValueError, match=r"unknown report format '\.txt'.*\.csv"):
        write_report(df, tmp_path / "r.txt")
    write_report(df, tmp_path / "r.md")
    with pytest.raises(ValueError, match="for people"):
        read_report(tmp_path / "r.md")


def test_reporting_plugin_suffix_lists_match_report_module() -> None:
    """reporting.py keeps its own copy so that configuring never imports pandas."""
    assert reporting.REPORT_SUFFIXES == REPORT_SUFFIXES and reporting.READABLE_SUFFIXES == READABLE_SUFFIXES


def test_hand_made_baseline_with_only_nodeid_and_score(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("nodeid,score\nt.py::test_a[zh],9\n", "utf-8")
    back = read_report(tmp_path / "b.csv")
    assert list(back.columns) == list(COLUMNS)
    assert back.loc[0, "score"] == 9.0 and back.loc[0, "criteria"] == {} and back.loc[0, "reasons"] == ""
    assert back.loc[0, "xfail"] is False or back.loc[0, "xfail"] == False  # noqa: E712 - numpy bool


def test_drift_sidecar_next_to_machine_reports(tmp_path: Path) -> None:
    df = records_to_frame(sample_records())
    drift = compute_drift(df.assign(score=df["score"] + 1), df)
    write_report(df, tmp_path / "r.parquet", drift)
    pd.testing.assert_frame_equal(read_report(tmp_path / "r.parquet"), df)
    side = pd.read_parquet(tmp_path / "r.drift.parquet")
    assert set(side["status"]) == {"down", "unscored"}


# --------------------------------------------------------------------------- drift


def frame(rows: list[tuple]) -> pd.DataFrame:
    return records_to_frame([rec(n, s, question=q, scene=sc) for n, q, s, sc in rows])


def test_drift_per_case_and_per_scene() -> None:
    then = frame([("a", "q", 8, "s1"), ("b", "q", 6, "s1"), ("c", "q", 5, "s2"), ("gone", "q", 9, "s2")])
    now = frame([("a", "q", 5, "s1"), ("b", "q", 7, "s1"), ("c", "q", 5, "s2"), ("new", "q", 3, "s2")])
    per_case, per_scene = compute_drift(then, now)
    by_key = per_case.set_index("key")
    assert by_key.loc["a", "change"] == -3 and by_key.loc["a", "status"] == "down"
    assert by_key.loc["b", "change"] == 1 and by_key.loc["b", "status"] == "up"
    assert by_key.loc["c", "status"] == "same"
    assert by_key.loc["gone", "status"] == "gone" and pd.isna(by_key.loc["gone", "change"])
    assert by_key.loc["new", "status"] == "new" and by_key.loc["new", "score_now"] == 3
    assert per_case["key"].tolist()[0] == "a", "biggest drop first"
    scenes = per_scene.set_index("scene")
    assert scenes.loc["s1", "cases"] == 2 and scenes.loc["s1", "mean_change"] == pytest.approx(-1.0)
    assert scenes.loc["s1", "mean_then"] == pytest.approx(7.0) and scenes.loc["s1", "mean_now"] == pytest.approx(6.0)
    assert scenes.loc["s2", "cases"] == 1 and scenes.loc["s2", "mean_change"] == 0
    assert per_scene["scene"].tolist() == ["s1", "s2"], "most negative mean change first"


def test_drift_key_splits_multi_assert_tests_by_question_then_order() -> None:
    then = frame([("t", "q1", 8, None), ("t", "q2", 6, None), ("t", "q2", 9, None), ("solo", "x", 5, None)])
    now = frame([("t", "q2", 6, None), ("t", "q1", 7, None), ("t", "q2", 4, None), ("solo", "renamed", 5, None)])
    per_case, per_scene = compute_drift(then, now)
    changes = dict(zip(per_case["key"], per_case["change"]))
    assert changes == {"t [q1]": -1, "t [q2]": 0, "t [q2] #2": -5, "solo": 0}
    assert per_scene["scene"].tolist() == ["(no scene)"]


def test_a_test_that_gains_an_assertion_keeps_its_first_one_comparable() -> None:
    then = frame([("t", "q1", 8, None)])
    now = frame([("t", "q1", 6, None), ("t", "q2", 9, None)])
    per_case, _ = compute_drift(then, now)
    assert dict(zip(per_case["key"], per_case["status"])) == {"t [q1]": "down", "t [q2]": "new"}


def test_unscored_and_error_rows_are_not_drops() -> None:
    then = records_to_frame([rec("a", 9), rec("p", 7)])
    now = records_to_frame([rec("a", None, error="boom"), rec("p", None, kind="pairwise", winner="2")])
    per_case, per_scene = compute_drift(then, now)
    assert set(per_case["status"]) == {"unscored"} and per_scene.empty
    assert drops_beyond(per_case, 0).empty


def test_max_drop_is_strictly_more_than() -> None:
    per_case, _ = compute_drift(frame([("a", "q", 8, None), ("b", "q", 8, None)]),
                                frame([("a", "q", 7, None), ("b", "q", 6.5, None)]))
    assert drops_beyond(per_case, 1.0)["key"].tolist() == ["b"]
    assert drops_beyond(per_case, 1.5).empty
    assert drops_beyond(per_case, 0.5)["key"].tolist() == ["b", "a"]


def test_drift_of_empty_runs() -> None:
    per_case, per_scene = compute_drift(records_to_frame([]), records_to_frame([]))
    assert per_case.empty and per_scene.empty


# --------------------------------------------------------------------------- people's formats


def test_failing_first_order() -> None:
    ordered = failing_first(records_to_frame(sample_records()))
    assert ordered["nodeid"].tolist() == ["t.py::test_broken", "t.py::test_a[en]", "t.py::test_value",
                                          "t.py::test_pair", "t.py::test_a[zh]"]


def test_clean_text_strips_ansi_and_control_characters() -> None:
    assert clean_text("\x1b[31mred\x1b[0m\x07 ok\r\nnext\tcol\x00") == "red ok\nnext\tcol"
    assert clean_text(None) == "" and clean_text(float("nan")) == ""


def test_markdown_escapes_and_orders(tmp_path: Path) -> None:
    df = records_to_frame(sample_records())
    drift = compute_drift(df.assign(score=df["score"] + 2), df)
    text = write_report(df, tmp_path / "r.md", drift, baseline="base.csv", max_drop=1).read_text("utf-8")
    assert text.startswith("# pai-judge results")
    assert "Wrong \\| &lt;b&gt;bad&lt;/b&gt;" in text and "<b>" not in text
    assert "## Drift vs baseline `base.csv`" in text and "**(more than 1)**" in text
    rows = [line for line in text.splitlines() if line.startswith("| error") or line.startswith("| passed")]
    assert rows[0].startswith("| error")
    assert render_markdown(df).count("## Drift") == 0


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> \x1b[31mred\x1b[0m \x07 \"quote' & done"


def hostile_frame() -> pd.DataFrame:
    return records_to_frame([
        rec("t.py::test_x[<script>]", 3.0, reasons=HOSTILE, answer=HOSTILE, question=HOSTILE, scene="<b>scene</b>",
            model="pai-judge\x1b[0m", criteria={"<i>crit</i>": 3.0}),
        rec("t.py::test_ok", 9.0, reasons="fine"),
        rec("t.py::test_plus", 6.0, model="pai-judge-plus", scene="code"),
    ])


def test_html_is_self_contained_and_escapes_judge_text(tmp_path: Path) -> None:
    df = hostile_frame()
    page = write_report(df, tmp_path / "r.html").read_text("utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower() and "<img" not in page.lower() and "onerror=alert" not in page.replace(
        "onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page), "no external resources"
    assert "@import" not in page and "url(" not in page


def test_html_charts_per_model_and_per_scene_and_failing_first() -> None:
    page = render_html(hostile_frame())
    assert page.count("<svg") == 3 + 3, "3 models (one with ANSI codes in its name) + 3 scenes"
    assert "&lt;b&gt;scene&lt;/b&gt;" in page
    first_row = page.index("<tbody>", page.index("id='verdicts'"))
    assert page.index("test_x[&lt;script&gt;]", first_row) < page.index("t.py::test_ok", first_row)
    assert "id='drift'" not in page


def test_html_drift_section_marks_drops_beyond_the_limit() -> None:
    df = hostile_frame()
    drift = compute_drift(df.assign(score=[5.0, 9.0, 6.5]), df)
    page = render_html(df, drift, baseline="base.json", max_drop=1)
    assert "id='drift'" in page and "base.json" in page
    assert page.count("beyond max drop") == 1
    assert page.count("class='beyond'") == 1


def test_histogram_bins_by_integer_score_and_handles_pairwise_only() -> None:
    df = records_to_frame([rec("a", 7.0), rec("b", 7.4), rec("c", 2.0)])
    svg = histogram_svg("m", df)
    assert "score 7: 2 passed" in svg and "score 2: 1 failed" in svg
    pair = records_to_frame([rec("p", None, kind="pairwise", winner="1")])
    assert "No scores" in histogram_svg("m", pair) and "1: 1" in histogram_svg("m", pair)


def test_empty_html_report_renders() -> None:
    page = render_html(records_to_frame([]))
    assert "No judged assertions in this run." in page


def test_reports_get_the_usual_file_mode(tmp_path):
    import os
    import stat

    from pytest_pai_judge.records import JudgeRecord
    from pytest_pai_judge.report import records_to_frame, write_report

    df = records_to_frame([JudgeRecord(nodeid="t::a", run_mode="immediate", kind="single", assertion="score",
                                       model="pai-judge", score=4.0, max_score=5, threshold=4.0, passed=True)])
    umask = os.umask(0o022)
    try:
        for suffix in (".csv", ".html"):
            path = tmp_path / f"r{suffix}"
            write_report(df, path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


# --------------------------------------------------------------------------- xfail-marked tests


def xfail_records() -> list[JudgeRecord]:
    """A passing and a failing case, a known-bad case kept as an expected failure, and one that now passes."""
    return [rec("t.py::test_q[ok]", 8.0), rec("t.py::test_q[bad]", 3.0),
            rec("t.py::test_q[known-bad]", 2.0, xfail=True), rec("t.py::test_q[fixed]", 9.0, xfail=True)]


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


@pytest.mark.parametrize("suffix", READABLE_SUFFIXES)
def test_xfail_column_round_trips(tmp_path: Path, suffix: str) -> None:
    df = records_to_frame(xfail_records())
    back = read_report(write_report(df, tmp_path / f"r{suffix}"))
    assert back["xfail"].tolist() == [False, False, True, True]
    pd.testing.assert_frame_equal(back, df)


def test_xfail_in_markdown_and_html() -> None:
    df = records_to_frame(xfail_records())
    md = render_markdown(df)
    assert "**1** passed · **1** failed · 1 xfailed · 1 xpassed · 0 without threshold · pass rate **50%**" in md
    assert "| xfailed | t.py::test_q[known-bad] |" in md and "| xpassed | t.py::test_q[fixed] |" in md
    assert "1 xfailed" not in render_markdown(records_to_frame(xfail_records()[:2])), "shown only when there are any"
    page = render_html(df)
    assert "<div class='label'>Failed</div><div class='value'>1</div>" in page
    assert "<div class='label'>Xfailed</div><div class='value'>1</div>" in page
    assert "<div class='label'>Pass rate</div><div class='value'>50%</div>" in page
    assert page.count("<tr class='row-xfailed'>") == 1 and page.count("<tr class='row-failed'>") == 1
    assert "score 2: 1 xfailed" in page, "the chart colours it apart from failures"


# --------------------------------------------------------------------------- a baseline sharing no case


def test_no_shared_cases_warns_only_when_nothing_was_compared() -> None:
    then = frame([("other/t.py::a", "q", 8, None), ("other/t.py::b", "q", 6, None)])
    now = frame([("t.py::a", "q", 8, None), ("t.py::b", "q", 6, None), ("t.py::c", "q", 6, None)])
    per_case, _ = compute_drift(then, now)
    assert no_shared_cases(per_case) == (
        "the baseline shares no case with this run (2 in the baseline, 3 in this run), so nothing was compared. "
        "Cases match by test node id, which is relative to the rootdir: was the baseline written by these "
        "tests, run from the same rootdir?")
    partly, _ = compute_drift(frame([("t.py::a", "q", 8, None), ("gone", "q", 1, None)]), now)
    assert no_shared_cases(partly) is None
    unscored, _ = compute_drift(records_to_frame([rec("a", 9)]), records_to_frame([rec("a", None, error="x")]))
    assert no_shared_cases(unscored) is None, "a case in both runs was matched, even without a score"


def test_reports_say_when_the_baseline_shares_no_case() -> None:
    df = frame([("t.py::a", "q", 8, None)])
    drift = compute_drift(frame([("elsewhere/t.py::a", "q", 8, None)]), df)
    md = render_markdown(df, drift, baseline="b.csv", max_drop=1)
    assert "> **Warning:** the baseline shares no case with this run (1 in the baseline, 1 in this run)" in md
    assert "`--judge-max-drop=1` checked nothing." in md
    page = render_html(df, drift, baseline="b.csv", max_drop=1)
    assert "<p class='warning'><b>Warning:</b> the baseline shares no case" in page
    assert "--judge-max-drop=1 checked nothing." in page
    matched = compute_drift(df, df)
    assert "Warning" not in render_markdown(df, matched) and "class='warning'" not in render_html(df, matched)
