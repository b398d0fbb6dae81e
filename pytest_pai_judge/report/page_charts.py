"""Score distributions as inline SVG for the HTML page: one scale per chart, bars stacked by outcome.

Which charts to draw is :func:`~.page_facts.chart_plan`'s decision; this module only draws one.
The SVG scales down with its container (``viewBox``), so it fits a 390 px phone screen.
"""

from __future__ import annotations

import math

from .page_facts import STATUS_COLUMN, Chart, score_bin
from .table import fmt_score, html_text

COLORS = {"passed": "#2e7d32", "failed": "#c62828", "error": "#6a1b9a", "inconclusive": "#b26a00",
          "no threshold": "#607d8b", "xfailed": "#8d6e63", "xpassed": "#ef6c00", "skipped": "#9e9e9e",
          "held": "#2e7d32", "no data": "#b26a00"}
STACK = ("failed", "error", "inconclusive", "xpassed", "xfailed", "skipped", "no threshold", "passed")
"""Bar segments bottom-up: what needs attention sits on the axis, where the eye lands."""


_esc = html_text


def histogram_svg(chart: Chart, width: int = 340, height: int = 190) -> str:
    """One figure: caption (verdicts, mean on the chart's scale, rows without a score) and a stacked bar chart."""
    scored = chart.rows
    bins = chart.bins
    low, top = bins[0], chart.scale
    counts = {b: dict.fromkeys(STACK, 0) for b in bins}
    for score, status in zip(scored["score"], scored[STATUS_COLUMN]):
        counts[score_bin(score, low, top)][status if status in STACK else "passed"] += 1
    peak = max(sum(c.values()) for c in counts.values())
    ymax = _nice_max(peak)
    left, right, top_pad, bottom = 30, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    slot = plot_w / len(bins)
    bar_w = max(2.0, slot * 0.72)
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}' "
           f"height='{height}' role='img' aria-label='score distribution: {_esc(chart.title)}'>"]
    for tick in _ticks(ymax):
        y = top_pad + plot_h - plot_h * tick / ymax
        svg.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' class='grid'/>"
                   f"<text x='{left - 4}' y='{y + 3.5:.1f}' class='ytick'>{tick}</text>")
    for i, b in enumerate(bins):
        x = left + i * slot + (slot - bar_w) / 2
        y = top_pad + plot_h
        for status in STACK:
            n = counts[b][status]
            if not n:
                continue
            h = plot_h * n / ymax
            y -= h
            svg.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar_w:.1f}' height='{h:.1f}' "
                       f"fill='{COLORS[status]}'><title>score {b}: {n} {status}</title></rect>")
        total = sum(counts[b].values())
        if total:
            svg.append(f"<text x='{x + bar_w / 2:.1f}' y='{y - 2:.1f}' class='count'>{total}</text>")
        svg.append(f"<text x='{x + bar_w / 2:.1f}' y='{height - bottom + 14}' class='xtick'>{b}</text>")
    svg.append(f"<line x1='{left}' x2='{width - right}' y1='{top_pad + plot_h}' y2='{top_pad + plot_h}' "
               f"class='axis'/>")
    svg.append(f"<text x='{left + plot_w / 2:.1f}' y='{height - 2}' class='xlabel'>score (out of {top})</text></svg>")
    n = len(scored)
    caption = (f"{n} {'verdict' if n == 1 else 'verdicts'} · mean {fmt_score(scored['score'].mean())}/{top}"
               + (f" · {chart.unscored} without a score" if chart.unscored else ""))
    return (f"<figure class='chart'><figcaption><b>{_esc(chart.title)}</b> <span>{_esc(caption)}</span>"
            f"</figcaption>{''.join(svg)}</figure>")


def legend(statuses: set[str]) -> str:
    """The colour key, for the statuses the charts show."""
    return "".join(f"<span><i style='background:{COLORS[k]}'></i>{k}</span>" for k in STACK if k in statuses)


def _nice_max(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if peak <= step * 4:
            return max(step * math.ceil(peak / step), step)
    return int(10 ** math.ceil(math.log10(peak)))


def _ticks(ymax: int) -> list[int]:
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, ymax) if ymax / s <= 5)
    return list(range(0, ymax + 1, step))
