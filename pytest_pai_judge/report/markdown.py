"""The Markdown report: one GitHub-flavoured page, sized for ``$GITHUB_STEP_SUMMARY``.

Same order as the HTML page: the verdict line, the cases that need attention, drift (biggest drops
first), score distributions (one per scale), then the passing cases (collapsed). GitHub refuses a
step summary over 1 MiB, so a page that would be larger leaves cases out, last ones first, and says
at the top how many and where the full report is. Judge and test text is untrusted: every cell is
cleaned, put on one line and HTML-escaped, with its pipes escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..gates import GateResult
from .calibration_page import calibration_markdown
from .cost_page import spend_markdown
from .drift import DRIFT_STATUSES, drops_beyond, no_shared_cases
from .page_facts import (
    STATUS_COLUMN,
    Chart,
    chart_plan,
    criteria_rows,
    gate_rows,
    judge_fields,
    points,
    run_facts,
    run_verdict,
    score_bin,
    split_cases,
    why_status,
)
from .table import clean_text, coerce, fmt_change, fmt_score, isna, md_cell, samples_text, short_text

if TYPE_CHECKING:  # pragma: no cover
    from ..spending import Spending
    from .regression import Regression

STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub's size limit for one step's summary (bytes)."""
MARKDOWN_LIMIT_BYTES = 1_000_000
"""What a Markdown report may weigh: under :data:`STEP_SUMMARY_LIMIT`, with room for a few lines the step adds."""
TEXT_CHARS = 500
"""Question / answer / reference / reasons text per cell; the HTML page has them in full."""
_NOTE_RESERVE = 1_000


def render_markdown(df: pd.DataFrame, drift: tuple[pd.DataFrame, pd.DataFrame] | None = None, *,
                    baseline: str | None = None, max_drop: float | None = None,
                    regression: Regression | None = None, limit_bytes: int | None = MARKDOWN_LIMIT_BYTES,
                    full_report: str | None = None, gates: Sequence[GateResult] = (),
                    checks: Sequence[dict[str, Any]] = (), spending: Spending | None = None) -> str:
    """The whole page as one string, at most ``limit_bytes`` of UTF-8 (None: no limit).

    When cases must be left out, a note under the verdict line says how many and points to
    ``full_report`` (a path or name), or to the run's other reports when it is None.
    """
    df = coerce(df)
    attention, others = split_cases(df)
    head = ["# pai-judge results", "", _verdict(df, drift, max_drop, regression, gates, checks), "", _facts(df), "",
            *_gate_lines(gates)]
    if regression is not None:  # the suite-level verdict, at the top with the run's
        head += [f"**Paired regression vs baseline:** {_md(regression.line())}", ""]
    attention_items = [_case_block(r, i) for i, r in enumerate(attention.to_dict(orient="records"), 1)]
    drift_head, drift_items, drift_tail = _drift_parts(drift, baseline, max_drop) if drift is not None else ([], [], [])
    other_items = [_other_row(r) for r in others.to_dict(orient="records")]
    sections = [
        (["## Needs attention", ""] + ([] if attention_items else ["No case failed, errored or stayed inconclusive.",
                                                                    ""]), attention_items, []),
        (drift_head, drift_items, drift_tail),
        (calibration_markdown(checks), [], []),
        (_chart_lines(df), [], []),
        (_others_head(others), other_items, ["", "</details>", ""] if other_items else []),
        (spend_markdown(df, spending), [], []),
    ]
    budget = None if limit_bytes is None else limit_bytes - _size(head) - _NOTE_RESERVE \
        - sum(_size(h) + _size(t) for h, _, t in sections)
    lines = list(head)
    left_out = 0
    body: list[str] = []
    for section_head, items, tail in sections:
        body += section_head
        kept = 0
        for item in items:
            size = len(item.encode("utf-8")) + 1
            if budget is not None and size > budget:
                break
            body.append(item)
            kept += 1
            if budget is not None:
                budget -= size
        if kept < len(items):
            left_out += len(items) - kept
            body.append(f"*… {len(items) - kept} more left out here to fit the step summary (see the note at "
                        "the top).*")
        body += tail
    if left_out:
        where = f"`{_md(full_report)}`" if full_report else "this run's HTML or CSV report (`--judge-report=...`)"
        lines += [f"> **Note:** {left_out} of {len(df) + (len(drift[0]) if drift is not None else 0)} rows "
                  f"(cases and drift rows) are left out to keep this page under {limit_bytes:,} bytes (GitHub's "
                  f"step summary takes at most 1 MiB). The full report: {where}.", ""]
    return "\n".join(lines + body) + "\n"


def _size(lines: list[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def _verdict(df: pd.DataFrame, drift: tuple[pd.DataFrame, pd.DataFrame] | None, max_drop: float | None,
             regression: Regression | None, gates: Sequence[GateResult] = (),
             checks: Sequence[dict[str, Any]] = ()) -> str:
    v = run_verdict(df, drift, max_drop, regression, gates, checks)
    return f"**Judge checks {v.headline}** — {_md(v.text())}"


def _gate_lines(gates: Sequence[GateResult]) -> list[str]:
    if not gates:
        return []
    lines = ["## Gates", "", "| status | gate | value | interval | assertions | |", "|---|---|---:|---|---:|---|"]
    for status, text, value, interval, n, why in gate_rows(gates):
        shown = f"**{status.upper()}**" if status != "held" else status
        lines.append(f"| {shown} | {_md(text)} | {value} | {_md(interval)} | {n} | {_md(why)} |")
    return lines + [""]


def _facts(df: pd.DataFrame) -> str:
    return _md(" · ".join(run_facts(df)))


# --------------------------------------------------------------------------- cases


def _score(r: dict[str, Any]) -> str:
    scale = f"/{r['max_score']}" if not isna(r["max_score"]) else ""
    if r["kind"] == "pairwise":
        winner = f"winner {_md(r['winner'])}" if not isna(r["winner"]) else "no winner read"
        return f"answer 1 **{fmt_score(r['score'])}**{scale} · answer 2 **{fmt_score(r['score2'])}**{scale} · {winner}"
    needs = f" · needs ≥ {fmt_score(r['threshold'])}" if not isna(r["threshold"]) else ""
    return f"score **{fmt_score(r['score'])}**{scale}{needs}"


def _criteria(r: dict[str, Any]) -> str:
    rows, has_second = criteria_rows(r)
    if r["kind"] != "pairwise":
        return ", ".join(f"{k} {fmt_score(a)}" for k, a, _ in rows)
    second = (lambda b: fmt_score(b)) if has_second else (lambda b: "not recorded")
    return ", ".join(f"{k} {fmt_score(a)} vs {second(b)}" for k, a, b in rows)


def _case_block(r: dict[str, Any], number: int) -> str:
    status = r[STATUS_COLUMN]
    scene = r["scene"] if not isna(r["scene"]) else "no scene"
    lines = [f"### {number}. {status}: {_md(r['nodeid'])}", "",
             f"{_score(r)} · {_md(r['model'])} · {_md(scene)} · {_md(r['kind'])} {_md(r['assertion'])}"
             + (f" · {_md(samples_text(r))}" if samples_text(r) else ""), "", "| | |", "|---|---|"]
    pairwise = not isna(r["answer2"])
    cells = [("why", why_status(r) or None), ("verdict unavailable", r["error"]),
             ("verdict vs its scores", r.get("contradiction")), ("question", r["question"]),
             ("answer 1" if pairwise else "answer", r["answer"]), ("answer 2", r["answer2"])]
    cells += [("reference answer" if k == "ref_answer" else k, v) for k, v in judge_fields(r)]
    cells += [("judge's reasons", r["reasons"]), ("criteria" + (" (answer 1 vs 2)" if pairwise else ""), _criteria(r))]
    lines += [f"| {label} | {_md(short_text(value, TEXT_CHARS))} |" for label, value in cells
              if not isna(value) and clean_text(value).strip()]
    return "\n".join(lines) + "\n"


def _others_head(others: pd.DataFrame) -> list[str]:
    if others.empty:
        return ["## Passing and other cases", "", "None: every case is listed above.", ""]
    counts = ", ".join(f"{int(n)} {k}" for k, n in others[STATUS_COLUMN].value_counts().items())
    return ["## Passing and other cases", "", f"<details><summary>{len(others)} cases: {_md(counts)}</summary>", "",
            "| status | test | model | scene | score | criteria | tokens | cached | reasons |",
            "|---|---|---|---|---|---|---:|---|---|"]


def _other_row(r: dict[str, Any]) -> str:
    score = _score(r) + (f" ({_md(samples_text(r))})" if samples_text(r) else "")
    return (f"| {r[STATUS_COLUMN]} | {_md(r['nodeid'])} | {_md(r['model'])} | {_md(r['scene'])} | {score} | "
            f"{_md(_criteria(r))} | {r['tokens']} | {'yes' if r['cached'] else 'no'} | "
            f"{_md(short_text(r['reasons'], 300))} |")


# --------------------------------------------------------------------------- drift and charts


def _drift_parts(drift: tuple[pd.DataFrame, pd.DataFrame], baseline: str | None,
                 max_drop: float | None) -> tuple[list[str], list[str], list[str]]:
    per_case, per_scene = drift
    head = [f"## Drift vs baseline{f' `{_md(baseline)}`' if baseline else ''}", ""]
    warning = no_shared_cases(per_case)
    beyond = set(drops_beyond(per_case, max_drop)["key"]) if max_drop is not None else set()
    if max_drop is not None:
        flag = f"`--judge-max-drop={fmt_score(max_drop)}`"
        if warning:
            head += [f"**{flag} checked nothing.**", ""]
        elif beyond:
            head += [f"**{len(beyond)} {'case' if len(beyond) == 1 else 'cases'} dropped by more than "
                     f"{points(max_drop)}** ({flag}): the run fails for it.", ""]
        else:
            head += [f"No case dropped by more than {points(max_drop)} ({flag}).", ""]
    if warning:
        head += [f"> **Warning:** {_md(warning)}", ""]
    counts = per_case["status"].value_counts()
    head += [" · ".join(f"{int(counts.get(k, 0))} {k}" for k in DRIFT_STATUSES)
             + " (score points)", ""]
    head += ["| scene | cases | mean then | mean now | change |", "|---|---:|---:|---:|---:|"]
    for r in per_scene.to_dict(orient="records"):
        head.append(f"| {_md(r['scene'])} | {r['cases']} | {fmt_score(r['mean_then'])} | "
                    f"{fmt_score(r['mean_now'])} | {fmt_change(r['mean_change'])} |")
    listed = per_case[per_case["status"] != "same"]
    unchanged = len(per_case) - len(listed)
    head += ["", "Cases that moved, biggest drop first, then new / gone / not run / unscored ones "
             f"({unchanged} unchanged cases are not listed):", "",
             "| case | then | now | change | status |", "|---|---:|---:|---:|---|"]
    items = []
    for r in listed.to_dict(orient="records"):
        status = r["status"] + (f" **(more than {points(max_drop)})**" if r["key"] in beyond and max_drop else "")
        items.append(f"| {_md(r['key'])} | {fmt_score(r['score_then'])} | {fmt_score(r['score_now'])} | "
                     f"{fmt_change(r['change'])} | {status} |")
    return head, items, [""]


def _chart_lines(df: pd.DataFrame) -> list[str]:
    charts, notes = chart_plan(df)
    if not charts and not notes:
        return []
    lines = ["## Score distribution", ""]
    for chart in charts:
        lines += [f"**{_md(chart.title)}** ({len(chart.rows)} verdicts, mean "
                  f"{fmt_score(chart.rows['score'].mean())}/{chart.scale}"
                  + (f", {chart.unscored} without a score" if chart.unscored else "") + ")", ""]
        lines += _histogram_table(chart) + [""]
    lines += [f"- {_md(n)}" for n in notes] + ([""] if notes else [])
    return lines


def _histogram_table(chart: Chart) -> list[str]:
    counts = dict.fromkeys(chart.bins, 0)
    for score in chart.rows["score"]:
        counts[score_bin(score, chart.bins[0], chart.scale)] += 1
    return ["| score | " + " | ".join(str(b) for b in counts) + " |",
            "|---|" + "---:|" * len(counts),
            "| verdicts | " + " | ".join(str(n) for n in counts.values()) + " |"]


_md = md_cell
