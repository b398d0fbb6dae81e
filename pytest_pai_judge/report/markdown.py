"""The Markdown report: one GitHub-flavoured page (e.g. for ``$GITHUB_STEP_SUMMARY``).

Judge and test text is untrusted: every table cell is cleaned, put on one line and HTML-escaped,
with its pipes escaped.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from ..counts import describe_tests
from .drift import drops_beyond, no_shared_cases
from .table import (
    clean_text,
    coerce,
    failing_first,
    fmt_change,
    fmt_score,
    isna,
    samples_text,
    short_text,
    status_of,
    summarize,
)


def render_markdown(df: pd.DataFrame, drift: tuple[pd.DataFrame, pd.DataFrame] | None = None, *,
                    baseline: str | None = None, max_drop: float | None = None) -> str:
    """The whole page as one string: headline numbers, the drift section when given, then every verdict."""
    df = coerce(df)
    s = summarize(df)
    lines = ["# pai-judge results", ""]
    rate = f"{s['pass_rate']:.0%}" if s["pass_rate"] is not None else "–"
    expected = "".join(f" · {s[k]} {k}" for k in ("xfailed", "xpassed", "skipped") if s[k])
    lines.append(f"**{s['judged_tests']}** judged tests (as pytest counts them: {describe_tests(s['tests'])})")
    lines.append("")
    lines.append(f"**{s['verdicts']}** rows · **{s['passed']}** passed · **{s['failed']}** failed{expected} "
                 f"· {s['no_threshold']} without threshold · pass rate **{rate}** · mean score "
                 f"{s['mean_scores']} · {s['tokens_spent']:,} tokens spent this run, {s['tokens_cached']:,} "
                 f"recorded with cached verdicts · verdicts {s['cached']} cached / {s['fresh']} fresh "
                 f"from {s['calls']} fresh calls")
    lines.append("")
    if drift is not None:
        lines += _drift_lines(drift, baseline, max_drop)
    lines += ["## Verdicts", "",
              "| status | test | model | scene | score | threshold | winner | criteria | tokens | cached | reasons |",
              "|---|---|---|---|---:|---:|---|---|---:|---|---|"]
    for r in failing_first(df).to_dict(orient="records"):
        score = fmt_score(r["score"]) + (f" vs {fmt_score(r['score2'])}" if not isna(r["score2"]) else "") \
            + (f"/{r['max_score']}" if not isna(r["max_score"]) else "")
        if samples_text(r):
            score += f" ({samples_text(r)})"
        criteria = ", ".join(f"{k} {fmt_score(v)}" for k, v in (r["criteria"] or {}).items())
        why = r["error"] if not isna(r["error"]) else r["reasons"]
        lines.append(
            f"| {status_of(r)} | {_md(r['nodeid'])} | {_md(r['model'])} | {_md(r['scene'])} | {score} | "
            f"{fmt_score(r['threshold'])} | {_md(r['winner'])} | {_md(criteria)} | {r['tokens']} | "
            f"{'yes' if r['cached'] else 'no'} | {_md(short_text(why, 300))} |")
    return "\n".join(lines) + "\n"


def _drift_lines(drift: tuple[pd.DataFrame, pd.DataFrame], baseline: str | None, max_drop: float | None) -> list[str]:
    per_case, per_scene = drift
    lines = [f"## Drift vs baseline{f' `{_md(baseline)}`' if baseline else ''}", ""]
    warning = no_shared_cases(per_case)
    if warning:
        limit = f" `--judge-max-drop={fmt_score(max_drop)}` checked nothing." if max_drop is not None else ""
        lines += [f"> **Warning:** {_md(warning)}{limit}", ""]
    lines += ["| scene | cases | mean then | mean now | change |", "|---|---:|---:|---:|---:|"]
    for r in per_scene.to_dict(orient="records"):
        lines.append(f"| {_md(r['scene'])} | {r['cases']} | {fmt_score(r['mean_then'])} | "
                     f"{fmt_score(r['mean_now'])} | {fmt_change(r['mean_change'])} |")
    lines += ["", "| case | then | now | change | status |", "|---|---:|---:|---:|---|"]
    beyond = set(drops_beyond(per_case, max_drop)["key"]) if max_drop is not None else set()
    for r in per_case.to_dict(orient="records"):
        status = r["status"] + (f" **(more than {fmt_score(max_drop)})**" if r["key"] in beyond else "")
        lines.append(f"| {_md(r['key'])} | {fmt_score(r['score_then'])} | {fmt_score(r['score_now'])} | "
                     f"{fmt_change(r['change'])} | {status} |")
    lines.append("")
    return lines


def _md(value: Any) -> str:
    """A Markdown table cell: HTML-escaped, one line, pipes escaped."""
    text = " ".join(clean_text(value).split())
    return html.escape(text, quote=False).replace("|", "\\|")
