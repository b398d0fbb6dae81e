"""The reports' "Judge calibration" section: how far the judge can be trusted, from the run's judge checks.

A judge check is ``assert_judge_agrees`` / ``judge.agreement`` (agreement with human labels) or
``assert_judge_unbiased`` / ``judge.probes`` (bias probes); each arrives as the JSON-safe dict its
``to_dict`` gives (the same dicts the ``<stem>.calibration.json`` sidecar holds). Per agreement:
the figures with their intervals, which bounds were missed, a confusion matrix of human vs judge
(an inline SVG heatmap in HTML, a table in Markdown), and the worst disagreements. Per probe set:
each probe's effect size against its limit. Every text from a test or a judge is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .table import html_text, md_cell, short_text

SHOWN_ROWS = 10
"""Disagreements listed per labelled set (the worst first)."""
NO_VERDICT = "none"


_esc = html_text


def _num(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _interval(figure: dict[str, Any]) -> str:
    low, high = figure.get("low"), figure.get("high")
    return f"[{low:.2f}, {high:.2f}]" if low is not None and high is not None else "–"


def _label(value: Any) -> str:
    if value is None:
        return NO_VERDICT
    return f"{value:g}" if isinstance(value, float) else str(value)


def title(check: dict[str, Any]) -> str:
    if check.get("check") == "probes":
        return f"Bias probes · {check['nodeid']}"
    rows = len(check.get("rows") or [])
    what = "human scores" if check["kind"] == "score" else "human preferences"
    return f"Agreement with {rows} {what} · {check['nodeid']}"


def status(check: dict[str, Any]) -> tuple[str, str]:
    """(css class, one line): whether the check's bounds / limits held."""
    if check.get("check") == "probes":
        beyond = check.get("misses") or []
        return ("bad", f"beyond its limit: {', '.join(beyond)}") if beyond else ("ok", "every probe within its limit")
    if check.get("error"):
        return "bad", f"not measured: {check['error']}"
    if check.get("misses"):
        return "bad", "missed: " + "; ".join(check["misses"])
    bounds = check.get("bounds") or {}
    if not bounds:
        return "none", "no bounds given (figures read as a value)"
    return "ok", "held: " + ", ".join(f"{k}={v:g}" for k, v in bounds.items())


def disagreements(check: dict[str, Any], k: int = SHOWN_ROWS) -> list[dict[str, Any]]:
    """The rows the judge disagreed with most (:meth:`Agreement.worst`): no verdict first, then the widest gap."""
    from ..calibration import Agreement

    return [row.to_dict() for row in Agreement.from_dict(check).worst(k)]


def confusion(check: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """(human labels, judge labels, counts): 1..scale for scores (plus "none" when a verdict is missing);
    1 / 2 / tie for preferences."""
    counts: dict[tuple[str, str], int] = {}
    if check["kind"] == "score":
        scale = int(check.get("scale") or 5)
        for h, j, n in check.get("confusion") or []:
            counts[(str(h), NO_VERDICT if int(j) == 0 else str(j))] = int(n)
        labels = [str(s) for s in range(1, scale + 1)]
    else:
        for row in check.get("rows") or []:
            cell = (str(row["human"]), _label(row.get("judge")))
            counts[cell] = counts.get(cell, 0) + 1
        labels = ["1", "2", "tie"]
    judge = labels + ([NO_VERDICT] if any(j == NO_VERDICT for _, j in counts) else [])
    return labels, judge, counts


def heatmap_svg(check: dict[str, Any]) -> str:
    """Human (rows) vs judge (columns) as a heatmap: darker = more rows; the diagonal (agreement) outlined."""
    humans, judges, counts = confusion(check)
    cell, left, top = 34, 46, 34
    width, height = left + cell * len(judges) + 8, top + cell * len(humans) + 8
    peak = max(counts.values(), default=0) or 1
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}' "
           f"height='{height}' class='heat' role='img' aria-label='confusion matrix: human label by row, "
           f"judge by column'>",
           f"<text x='{left + cell * len(judges) / 2:.0f}' y='11' class='alabel'>judge</text>",
           f"<text x='10' y='{top + cell * len(humans) / 2:.0f}' class='alabel' "
           f"transform='rotate(-90 10 {top + cell * len(humans) / 2:.0f})'>human</text>"]
    for c, label in enumerate(judges):
        svg.append(f"<text x='{left + c * cell + cell / 2:.0f}' y='{top - 6}' class='tick'>{_esc(label)}</text>")
    for r, human in enumerate(humans):
        y = top + r * cell
        svg.append(f"<text x='{left - 8}' y='{y + cell / 2 + 4:.0f}' class='tick end'>{_esc(human)}</text>")
        for c, judged in enumerate(judges):
            n = counts.get((human, judged), 0)
            x = left + c * cell
            shade = 0.08 + 0.92 * n / peak if n else 0.0
            fill = f"rgba(21,101,192,{shade:.2f})" if n else "#f4f6f8"
            diagonal = " class='diag'" if human == judged else ""
            svg.append(f"<rect x='{x}' y='{y}' width='{cell - 2}' height='{cell - 2}' fill='{fill}'{diagonal}>"
                       f"<title>human {_esc(human)}, judge {_esc(judged)}: {n} rows</title></rect>")
            if n:
                ink = "#fff" if shade > 0.55 else "#1b1f24"
                svg.append(f"<text x='{x + cell / 2 - 1:.0f}' y='{y + cell / 2 + 4:.0f}' class='cell' "
                           f"style='fill:{ink}'>{n}</text>")
    svg.append("</svg>")
    return "".join(svg)


# --------------------------------------------------------------------------- HTML


def calibration_html(checks: Sequence[dict[str, Any]]) -> str:
    if not checks:
        return ""
    out = ["<section id='calibration'><h2>Judge calibration</h2>"]
    for check in checks:
        cls, line = status(check)
        out.append(f"<article class='check'><h3>{_esc(title(check))}</h3>"
                   f"<p class='limit {cls}'>{_esc(line)}</p>"
                   f"<p class='meta'>model {_esc(check.get('model') or '–')} · samples per request "
                   f"{int(check.get('samples') or 1)}</p>")
        if check.get("check") == "probes":
            out.append(_probes_table(check))
        elif not check.get("error"):  # figures of calls that got no answer would measure nothing
            out.append(_agreement_html(check))
        out.append("</article>")
    out.append("</section>")
    return "\n".join(out)


def _agreement_html(check: dict[str, Any]) -> str:
    figures = "".join(f"<tr><td>{_esc(f['name'])}</td><td class='n'>{_num(f['value'])}</td>"
                      f"<td>{_interval(f)}</td><td class='n'>{int(f['n'])}</td></tr>"
                      for f in check["figures"].values())
    parts = ["<div class='calib'>",
             "<table class='figures'><thead><tr><th>figure</th><th class='n'>value</th><th>95% interval</th>"
             f"<th class='n'>n</th></tr></thead><tbody>{figures}</tbody></table>",
             f"<figure>{heatmap_svg(check)}<figcaption>rows: human · columns: judge</figcaption></figure></div>"]
    worst = disagreements(check)
    if worst:
        rows = "".join(f"<tr><td class='id'>{_esc(r['case'])}</td><td class='n'>{_esc(_label(r['human']))}</td>"
                       f"<td class='n'>{_esc(_label(r.get('judge')))}</td>"
                       f"<td>{_esc(r.get('error') or short_text(r.get('reasons') or '', 240))}"
                       f"<div class='dim'>{_esc(short_text(r.get('question') or '', 120))}</div></td></tr>"
                       for r in worst)
        parts.append(f"<h4>Disagreements, worst first ({len(worst)} shown)</h4><table class='disagree'><thead><tr>"
                     "<th>row</th><th class='n'>human</th><th class='n'>judge</th><th>judge's reasons · question</th>"
                     f"</tr></thead><tbody>{rows}</tbody></table>")
    else:
        parts.append("<p class='allgood'>The judge agreed with every label.</p>")
    return "".join(parts)


def _probes_table(check: dict[str, Any]) -> str:
    rows = "".join(f"<tr class='{'' if e['within'] else 'beyond'}'><td>{_esc(e['probe'])}</td><td>{_esc(e['name'])}"
                   f"<div class='dim'>{_esc(e.get('detail') or '')}</div></td>"
                   f"<td class='n'>{_num(e['value'], e['probe'] == 'verbosity')}</td><td>{_interval(e)}</td>"
                   f"<td class='n'>{int(e['n'])}</td><td class='n'>{_limit(e)}</td>"
                   f"<td>{'within' if e['within'] else 'BEYOND'}</td></tr>"
                   for e in check["effects"].values())
    return ("<table class='figures'><thead><tr><th>probe</th><th>effect</th><th class='n'>size</th><th>interval</th>"
            f"<th class='n'>n</th><th class='n'>limit</th><th></th></tr></thead><tbody>{rows}</tbody></table>")


def _limit(effect: dict[str, Any]) -> str:
    return "–" if effect.get("limit") is None else f"{effect['limit']:g}"


# --------------------------------------------------------------------------- Markdown


_md = md_cell


def calibration_markdown(checks: Sequence[dict[str, Any]]) -> list[str]:
    if not checks:
        return []
    lines = ["## Judge calibration", ""]
    for check in checks:
        _, line = status(check)
        lines += [f"### {_md(title(check))}", "", f"**{_md(line)}** · model {_md(check.get('model') or '–')} · "
                  f"samples per request {int(check.get('samples') or 1)}", ""]
        if check.get("check") == "probes":
            lines += ["| probe | effect | size | interval | n | limit |", "|---|---|---:|---|---:|---:|"]
            for e in check["effects"].values():
                limit = _limit(e) + ("" if e["within"] else " **beyond**")
                lines.append(f"| {_md(e['probe'])} | {_md(e['name'])} | {_num(e['value'], e['probe'] == 'verbosity')}"
                             f" | {_interval(e)} | {int(e['n'])} | {limit} |")
            lines.append("")
            continue
        if check.get("error"):
            continue
        lines += ["| figure | value | 95% interval | n |", "|---|---:|---|---:|"]
        lines += [f"| {_md(f['name'])} | {_num(f['value'])} | {_interval(f)} | {int(f['n'])} |"
                  for f in check["figures"].values()]
        humans, judges, counts = confusion(check)
        lines += ["", "Confusion (rows: human, columns: judge):", "",
                  "| human \\ judge | " + " | ".join(judges) + " |", "|---|" + "---:|" * len(judges)]
        lines += [f"| {h} | " + " | ".join(str(counts.get((h, j), 0) or "·") for j in judges) + " |" for h in humans]
        worst = disagreements(check, 5)
        if worst:
            lines += ["", "| row | human | judge | judge's reasons |", "|---|---:|---:|---|"]
            lines += [f"| {_md(r['case'])} | {_md(_label(r['human']))} | {_md(_label(r.get('judge')))} | "
                      f"{_md(r.get('error') or short_text(r.get('reasons') or '', 160))} |" for r in worst]
        lines.append("")
    return lines
