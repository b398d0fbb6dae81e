"""What the HTML and Markdown pages say and in which order: the verdict line, failing cases first and open,
both answers of a pair, one scale per chart, ref_answer when the table has it, and a Markdown page that
fits a GitHub step summary."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from report_records import rec

from pytest_pai_judge.report import files
from pytest_pai_judge.report.drift import compute_drift
from pytest_pai_judge.report.files import write_report
from pytest_pai_judge.report.html import render_html
from pytest_pai_judge.report.markdown import render_markdown
from pytest_pai_judge.report.page_facts import chart_plan, run_verdict, split_cases
from pytest_pai_judge.report.page_style import FILTER_SCRIPT
from pytest_pai_judge.report.table import records_to_frame


def mixed_frame() -> pd.DataFrame:
    """Passing cases first in the input, so an order that simply kept it would fail the tests."""
    return records_to_frame([
        rec("t.py::test_ok[1]", 9.0), rec("t.py::test_ok[2]", 8.0),
        rec("t.py::test_five", 2.0, max_score=5, threshold=4.0, passed=False, question="FIVE-Q", answer="FIVE-A"),
        rec("t.py::test_ten", 3.0, passed=False, question="TEN-Q", answer="TEN-A"),
        rec("t.py::test_undecided", 6.0, samples=5, scores=[5.0, 6.0, 6.0, 7.0, 6.0], spread=0.7,
            decision="inconclusive", passed=False),
        rec("t.py::test_err", None, error="JudgeError: 500 ModelServiceFailed", reasons="", passed=None),
        rec("t.py::test_value", 7.0, assertion="value", threshold=None, passed=None),
    ])


def article_ids(page: str) -> list[str]:
    return re.findall(r"<article class='case [^']*' id='case-\d+' data-case><div class='case-head'>"
                      r"<span class='badge'[^>]*>[^<]*</span> <span class='id'>([^<]*)</span>", page)


def test_failing_cases_come_first_worst_first_in_both_pages() -> None:
    df = mixed_frame()
    page = render_html(df)
    assert article_ids(page) == ["t.py::test_err", "t.py::test_ten", "t.py::test_five", "t.py::test_undecided"], \
        "no verdict, then failures lowest on their own scale first (3/10 before 2/5), then inconclusive"
    assert page.index("id='verdict'") < page.index("id='attention'") < page.index("id='charts'") \
        < page.index("id='passing'") < page.index("t.py::test_ok[1]")
    md = render_markdown(df)
    heads = re.findall(r"^### \d+\. (\w+): (\S+)$", md, flags=re.M)
    assert heads == [("error", "t.py::test_err"), ("failed", "t.py::test_ten"), ("failed", "t.py::test_five"),
                     ("inconclusive", "t.py::test_undecided")]
    assert md.index("## Needs attention") < md.index("## Score distribution") < md.index("## Passing and other") \
        < md.index("| passed | t.py::test_ok[1] |")


def test_failing_cases_show_question_answer_and_samples_open_without_javascript() -> None:
    page = render_html(mixed_frame())
    static = page.replace(f"<script>{FILTER_SCRIPT}</script>", "")
    assert "<script" not in static
    card = static[static.index("t.py::test_ten"):static.index("</article>", static.index("t.py::test_ten"))]
    assert "<details" not in card, "a short failing case has nothing collapsed"
    assert "TEN-Q" in card and "TEN-A" in card and "score <b>3</b>/10 · needs ≥ 6" in card
    undecided = static[static.index("t.py::test_undecided"):]
    assert "median of 5 samples: 5, 6, 6, 7, 6 (sd 0.70); inconclusive" in undecided[:3000]
    passing = static[static.index("id='passing'"):]
    assert "<details id='others'>" in passing and "t.py::test_ok[1]" in passing, "passing cases last, collapsed"


def test_long_texts_are_clipped_with_the_rest_in_a_native_details() -> None:
    long = "词" * 50 + " word" * 400
    page = render_html(records_to_frame([rec("t.py::test_long", 2.0, passed=False, answer=long)]))
    card = page[page.index("t.py::test_long"):page.index("</article>")]
    assert "<details><summary>" in card and "more characters</summary>" in card
    assert card.count("word") == 400, "nothing lost: the rest is inside the details"


def test_the_verdict_line_says_why_a_run_failed() -> None:
    df = mixed_frame()
    verdict = run_verdict(df)
    assert verdict.passed is False
    assert verdict.problems == ["2 failed", "1 without a verdict (judge error)", "1 inconclusive"]
    ok = records_to_frame([rec("t.py::a", 9.0), rec("t.py::b", 2.0, xfail=True)])
    assert run_verdict(ok).text() == "1 of 1 cases passed · 1 xfailed as expected"
    baseline = ok.assign(score=[9.0 + 1.5, 2.0])
    dropped = run_verdict(ok, compute_drift(baseline, ok), max_drop=1)
    assert dropped.passed is False
    assert dropped.problems == ["1 case dropped by more than 1 point since the baseline (--judge-max-drop=1)"]
    page = render_html(ok, compute_drift(baseline, ok), max_drop=1)
    top = page[:page.index("id='attention'")]
    assert "<b>Judge checks FAILED</b> <span>1 case dropped by more than 1 point" in top, "the max-drop verdict on top"
    assert page.index("id='attention'") < page.index("id='drift'") < page.index("id='charts'")
    assert run_verdict(records_to_frame([])).headline == "NOTHING JUDGED"


def test_drift_lists_the_biggest_drop_first() -> None:
    df = records_to_frame([rec(f"t.py::c{i}", 8.0) for i in range(4)])
    baseline = df.assign(score=[8.5, 10.0, 6.0, 9.0])
    page = render_html(df, compute_drift(baseline, df), max_drop=1)
    drift = page[page.index("id='drift'"):page.index("id='charts'")]
    assert [drift.index(f"t.py::c{i}") for i in (1, 3, 0, 2)] == sorted(drift.index(f"t.py::c{i}") for i in range(4))
    assert "<p class='limit bad'><b>1 case dropped by more than 1 point</b>" in drift
    md = render_markdown(df, compute_drift(baseline, df), max_drop=1)
    assert md.index("| t.py::c1 | 10 | 8 | -2 | down **(more than 1 point)** |") < md.index("| t.py::c3 |")


def test_pairwise_cases_show_both_answers_scores_and_criteria() -> None:
    pair = rec("t.py::test_pair", 3.0, kind="pairwise", assertion="prefers", answer="ANSWER-ONE", answer2="ANSWER-TWO",
               score2=4.5, winner="2", threshold=None, passed=False, criteria={"accuracy": 3.0, "<b>style</b>": 2.0})
    df = records_to_frame([pair]).assign(criteria2=[{"accuracy": 5.0, "<b>style</b>": 4.0}])
    page = render_html(df)
    card = page[page.index("t.py::test_pair"):page.index("</article>")]
    assert "answer 1 <b>3</b>/10 · answer 2 <b>4.5</b>/10 · winner: answer 2 · answer 1 must win" in card
    assert "ANSWER-ONE" in card and "ANSWER-TWO" in card
    assert "<th class='n'>answer 1</th><th class='n'>answer 2</th>" in card
    assert "<tr><td>accuracy</td><td class='n'>3</td><td class='n'>5</td></tr>" in card
    assert "<tr><td>&lt;b&gt;style&lt;/b&gt;</td><td class='n'>2</td><td class='n'>4</td></tr>" in card
    md = render_markdown(df)
    assert "| criteria (answer 1 vs 2) | accuracy 3 vs 5, &lt;b&gt;style&lt;/b&gt; 2 vs 4 |" in md
    without = render_html(records_to_frame([pair]))
    assert "not recorded" in without, "a table without criteria2 says so instead of showing answer 1's as both"


def test_ref_answer_and_judge_fields_are_shown_when_the_table_has_them() -> None:
    df = records_to_frame([rec("t.py::test_ref", 2.0, passed=False)])
    assert "reference answer" not in render_html(df) and "reference answer" not in render_markdown(df)
    with_ref = df.assign(ref_answer=["<i>REF</i> 参考答案"], metric=[None])
    page = render_html(with_ref)
    assert "<div class='label'>reference answer</div><div class='pre'>&lt;i&gt;REF&lt;/i&gt; 参考答案</div>" in page
    assert "label'>metric" not in page, "a missing field is not shown"
    assert "| reference answer | &lt;i&gt;REF&lt;/i&gt; 参考答案 |" in render_markdown(with_ref)


def test_charts_never_mix_scales_and_say_how_many_rows_had_no_score() -> None:
    rows = [rec(f"t.py::five{i}", float(1 + i % 5), max_score=5, threshold=3.0) for i in range(10)]
    rows += [rec(f"t.py::ten{i}", float(1 + i % 10), max_score=10) for i in range(10)]
    rows += [rec(f"t.py::err{i}", None, max_score=5, error="JudgeError: boom", passed=None) for i in range(12)]
    page = render_html(records_to_frame(rows))
    svgs = re.findall(r"<figure class='chart'>.*?</figure>", page, flags=re.S)
    assert len(svgs) == 2
    five, ten = svgs
    assert "All verdicts on /5" in five and "score (out of 5)" in five and ">10</text>" not in five.split("ytick")[-1]
    assert "All verdicts on /10" in ten and "score (out of 10)" in ten
    assert "10 verdicts · mean 3/5 · 12 without a score" in five, "a mean over mostly-error rows says so"
    assert "mean 3/5 over 10 scored verdicts (12 rows without a score)" in page
    assert "mean 5.5/10 over 10 scored verdicts" in page
    md = render_markdown(records_to_frame(rows))
    assert "**All verdicts on /5** (10 verdicts, mean 3/5, 12 without a score)" in md
    assert "| score | 1 | 2 | 3 | 4 | 5 |" in md and "| score | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |" in md


def test_no_chart_of_one_bar_and_per_model_charts_only_with_enough_verdicts() -> None:
    same = records_to_frame([rec(f"t.py::s{i}", 5.0, max_score=5, threshold=4.0) for i in range(6)])
    charts, notes = chart_plan(same)
    assert charts == [] and notes == ["All verdicts on /5: all 6 verdicts scored 5/5"]
    assert "<svg" not in render_html(same)
    rows = [rec(f"t.py::a{i}", float(2 + i % 8), model="big") for i in range(8)]
    rows += [rec(f"t.py::b{i}", float(3 + i), model="small") for i in range(3)]
    charts, notes = chart_plan(records_to_frame(rows))
    assert [c.title for c in charts] == ["All verdicts on /10", "model big, /10"]
    assert "model small on /10: 3 verdicts, mean 4 (fewer than 8: no chart)" in notes


def test_split_cases_keeps_every_row_once() -> None:
    df = mixed_frame()
    attention, others = split_cases(df)
    assert sorted(attention["nodeid"].tolist() + others["nodeid"].tolist()) == sorted(df["nodeid"].tolist())


# --------------------------------------------------------------------------- Markdown size


def big_frame(n: int) -> pd.DataFrame:
    return records_to_frame([rec(f"t.py::test_{i:04d}", 2.0 if i % 3 == 0 else 8.0, question="问题 " * 200,
                                 answer="answer " * 200, reasons="because " * 100) for i in range(n)])


def test_markdown_over_the_limit_leaves_rows_out_and_says_how_many_and_where() -> None:
    df = big_frame(300)
    full = render_markdown(df, limit_bytes=None)
    assert len(full.encode("utf-8")) > 200_000
    page = render_markdown(df, limit_bytes=100_000, full_report="judge.full.md")
    assert len(page.encode("utf-8")) <= 100_000
    note = re.search(r"> \*\*Note:\*\* (\d+) of 300 rows \(cases and drift rows\) are left out .*The full report: "
                     r"`judge.full.md`\.", page)
    assert note, page[:1500]
    kept = page.count("\n### ") + page.count("\n| passed | ")
    assert kept + int(note.group(1)) == 300, "the note counts exactly the rows that are missing"
    assert page.index("**Judge checks FAILED**") < page.index("> **Note:**") < page.index("## Needs attention")
    assert "more left out here to fit the step summary" in page
    assert "Note:" not in render_markdown(big_frame(5), limit_bytes=100_000), "a page that fits is whole"


def test_write_report_keeps_the_markdown_under_the_step_summary_limit(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MARKDOWN_LIMIT_BYTES", 50_000)
    path = write_report(big_frame(120), tmp_path / "judge.md")
    text = path.read_text("utf-8")
    assert len(text.encode("utf-8")) <= 50_000 and "The full report: `judge.full.md`." in text
    whole = (tmp_path / "judge.full.md").read_text("utf-8")
    assert "Note:" not in whole and whole.count("\n### ") + whole.count("\n| passed | ") == 120
    write_report(big_frame(3), tmp_path / "small.md")
    assert not (tmp_path / "small.full.md").exists()
