"""report/markdown.py and html.py, the pages for people: escaping, order, charts, drift sections, xfail."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from report_records import frame, rec, sample_records, xfail_records

from pytest_pai_judge.report.drift import compute_drift
from pytest_pai_judge.report.files import write_report
from pytest_pai_judge.report.html import histogram_svg, render_html
from pytest_pai_judge.report.markdown import render_markdown
from pytest_pai_judge.report.table import records_to_frame

# --------------------------------------------------------------------------- Markdown


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


# --------------------------------------------------------------------------- both pages


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
