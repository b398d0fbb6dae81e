"""report/markdown.py and html.py, the pages for people: escaping, order, charts, drift sections, xfail."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from report_records import frame, rec, sample_records, xfail_records

from pytest_pai_judge.report.drift import compute_drift
from pytest_pai_judge.report.files import write_report
from pytest_pai_judge.report.html import SCRIPT_HASH, render_html
from pytest_pai_judge.report.markdown import render_markdown
from pytest_pai_judge.report.page_charts import histogram_svg
from pytest_pai_judge.report.page_facts import chart_plan
from pytest_pai_judge.report.page_style import FILTER_SCRIPT
from pytest_pai_judge.report.table import records_to_frame

# --------------------------------------------------------------------------- Markdown


def test_markdown_escapes_and_orders(tmp_path: Path) -> None:
    df = records_to_frame(sample_records())
    drift = compute_drift(df.assign(score=df["score"] + 2), df)
    text = write_report(df, tmp_path / "r.md", drift, baseline="base.csv", max_drop=1).read_text("utf-8")
    assert text.startswith("# pai-judge results")
    assert "Wrong \\| &lt;b&gt;bad&lt;/b&gt;" in text and "<b>" not in text
    assert "## Drift vs baseline `base.csv`" in text and "**(more than 1 point)**" in text
    assert text.index("### 1. error: t.py::test_broken") < text.index("### 2. failed: t.py::test_a[en]") \
        < text.index("| passed | t.py::test_a[zh]")
    assert render_markdown(df).count("## Drift") == 0


# --------------------------------------------------------------------------- HTML


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
    assert page.lower().count("<script") == 1 and f"<script>{FILTER_SCRIPT}</script>" in page, "only the filter"
    assert "<img" not in page.lower() and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
    assert f"script-src '{SCRIPT_HASH}'" in page and "default-src 'none'" in page, "no other script, no fetch"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page), "no external resources"
    assert "@import" not in page and "url(" not in page


def test_html_charts_per_model_only_with_enough_verdicts_and_failing_first() -> None:
    page = render_html(hostile_frame())
    assert page.count("<svg") == 1, "one chart for the /10 scale; 3 models of 1 verdict each get a line of text"
    assert "model pai-judge-plus on /10: 1 verdict, mean 6 (fewer than 8: no chart)" in page
    assert "&lt;b&gt;scene&lt;/b&gt;" in page
    assert page.index("test_x[&lt;script&gt;]") < page.index("id='passing'") < page.index("t.py::test_ok")
    assert "id='drift'" not in page
    many = records_to_frame([rec(f"t.py::m{i}", float(3 + i % 7), model=f"m{i % 2}") for i in range(16)])
    assert render_html(many).count("<svg") == 1 + 2, "all verdicts, then both models (8 each); one scene: no split"


def test_html_drift_section_marks_drops_beyond_the_limit() -> None:
    df = hostile_frame()
    drift = compute_drift(df.assign(score=[5.0, 9.0, 6.5]), df)
    page = render_html(df, drift, baseline="base.json", max_drop=1)
    assert "id='drift'" in page and "base.json" in page
    assert page.count("beyond max drop") == 1
    assert page.count("class='beyond'") == 1


def test_histogram_bins_by_integer_score_and_pairwise_is_a_line_of_text() -> None:
    df = records_to_frame([rec("a", 7.0), rec("b", 7.4), rec("c", 2.0)])
    charts, _ = chart_plan(df)
    svg = histogram_svg(charts[0])
    assert "score 7: 2 passed" in svg and "score 2: 1 failed" in svg and ">10</text>" in svg, "the whole /10 axis"
    pair = records_to_frame([rec("p", None, kind="pairwise", winner="1")])
    assert chart_plan(pair) == ([], ["1 pairwise comparison: winner answer 1: 1"])


def test_empty_html_report_renders() -> None:
    page = render_html(records_to_frame([]))
    assert "No judged assertions in this run." in page


# --------------------------------------------------------------------------- both pages


def test_xfail_in_markdown_and_html() -> None:
    df = records_to_frame(xfail_records())
    md = render_markdown(df)
    assert "**Judge checks FAILED** — 1 failed · 1 xpassed" in md and "1 of 2 cases passed" in md
    assert "1 xfailed as expected" in md
    assert "### 2. xpassed: t.py::test_q[fixed]" in md and "| xfailed | t.py::test_q[known-bad] |" in md
    assert "1 xfailed" not in render_markdown(records_to_frame(xfail_records()[:2])), "shown only when there are any"
    page = render_html(df)
    assert "<b>Judge checks FAILED</b> <span>1 failed · 1 xpassed" in page
    assert page.count("<article class='case st-xpassed'") == 1 and page.count("<article class='case st-failed'") == 1
    assert page.count("<tr class='row-xfailed' data-case>") == 1
    assert "score 2: 1 xfailed" in page, "the chart colours it apart from failures"


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
