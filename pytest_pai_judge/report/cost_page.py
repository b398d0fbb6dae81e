"""The reports' "Where the tokens went" section: what this run spent, per model, per scene and per test.

Tokens are those spent this run (fresh calls; a cached verdict cost an earlier run). With
``judge_price_per_1k_input`` / ``_output`` in the ini each line gets its price: the prompts'
tokens at the input price, the rest at the output price.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from .table import NO_SCENE, html_text, md_cell

if TYPE_CHECKING:  # pragma: no cover
    from ..spending import Spending

TOP_TESTS = 10


def _number(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series([0] * len(df), index=df.index, dtype="float64")
    return pd.to_numeric(df[column], errors="coerce").fillna(0).astype("float64")


def spend_tables(df: pd.DataFrame, spending: Spending | None) -> dict[str, pd.DataFrame]:
    """``by_model``, ``by_scene``, ``top_tests``: rows, calls, tokens, share of the run's tokens (and cost)."""
    frame = pd.DataFrame({"model": df["model"].fillna("?").astype(str),
                          "scene": df["scene"].fillna(NO_SCENE).astype(str) if "scene" in df else NO_SCENE,
                          "test": df["nodeid"].astype(str), "calls": _number(df, "calls"),
                          "tokens": _number(df, "tokens"), "prompt": _number(df, "prompt_tokens"),
                          "cached_tokens": _number(df, "cached_tokens")})
    total = float(frame["tokens"].sum()) or 1.0
    tables = {}
    for name, key in (("by_model", "model"), ("by_scene", "scene"), ("top_tests", "test")):
        grouped = frame.groupby(key, sort=False).agg(rows=("tokens", "size"), calls=("calls", "sum"),
                                                     tokens=("tokens", "sum"), prompt=("prompt", "sum"),
                                                     cached_tokens=("cached_tokens", "sum")).reset_index()
        grouped["share"] = grouped["tokens"] / total
        if spending is not None and spending.priced:
            grouped["cost"] = [spending.cost(p, t - p) for p, t in zip(grouped["prompt"], grouped["tokens"])]
        grouped = grouped.sort_values(["tokens", key], ascending=[False, True], kind="stable")
        tables[name] = grouped.head(TOP_TESTS) if name == "top_tests" else grouped
    return tables


def _cost(row: dict[str, Any]) -> str:
    return f"{row['cost']:,.4f}" if row.get("cost") is not None else "–"


def spend_html(df: pd.DataFrame, spending: Spending | None) -> str:
    if df.empty or not _number(df, "tokens").sum():
        return ""
    tables = spend_tables(df, spending)
    priced = spending is not None and spending.priced
    out = ["<section id='spend'><h2>Where the tokens went <span class='meta'>spent this run (cached verdicts cost "
           "an earlier run)</span></h2>"]
    for name, key, title in (("by_model", "model", "per model"), ("by_scene", "scene", "per scene"),
                             ("top_tests", "test", f"the {TOP_TESTS} costliest tests")):
        rows = "".join(f"<tr><td class='id'>{html_text(r[key])}</td><td class='n'>{int(r['rows'])}</td>"
                       f"<td class='n'>{int(r['calls']):,}</td><td class='n'>{int(r['tokens']):,}</td>"
                       f"<td class='n'>{r['share']:.0%}</td>" + (f"<td class='n'>{_cost(r)}</td>" if priced else "")
                       + "</tr>" for r in tables[name].to_dict(orient="records"))
        out.append(f"<h3>{title}</h3><table class='drift'><thead><tr><th>{key}</th><th class='n'>rows</th>"
                   "<th class='n'>calls</th><th class='n'>tokens</th><th class='n'>share</th>"
                   + ("<th class='n'>cost</th>" if priced else "") + f"</tr></thead><tbody>{rows}</tbody></table>")
    out.append("</section>")
    return "\n".join(out)


def spend_markdown(df: pd.DataFrame, spending: Spending | None) -> list[str]:
    if df.empty or not _number(df, "tokens").sum():
        return []
    tables = spend_tables(df, spending)
    priced = spending is not None and spending.priced
    lines = ["## Where the tokens went", "", "Spent this run (cached verdicts cost an earlier run).", ""]
    for name, key, title in (("by_model", "model", "Per model"), ("by_scene", "scene", "Per scene"),
                             ("top_tests", "test", f"The {TOP_TESTS} costliest tests")):
        lines += [f"**{title}**", "", f"| {key} | rows | calls | tokens | share |" + (" cost |" if priced else ""),
                  "|---|---:|---:|---:|---:|" + ("---:|" if priced else "")]
        lines += [f"| {md_cell(r[key])} | {int(r['rows'])} | {int(r['calls']):,} | "
                  f"{int(r['tokens']):,} | {r['share']:.0%} |" + (f" {_cost(r)} |" if priced else "")
                  for r in tables[name].to_dict(orient="records")]
        lines.append("")
    return lines
