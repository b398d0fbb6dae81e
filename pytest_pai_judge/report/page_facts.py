"""What the HTML and Markdown pages say, decided once so both say the same in the same order.

A page is read by someone who opened it from a CI run: first whether the run passed its judge
checks and why (:func:`run_verdict`), then the cases that need attention (:func:`split_cases`),
then drift, then score charts only where they carry information (:func:`chart_plan`: one scale per
chart, enough verdicts per group), then the passing cases. Rendering is html.py's and markdown.py's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..counts import describe_assertions, describe_tests
from ..gates import GateResult
from .drift import drops_beyond, no_shared_cases
from .table import NO_SCENE, clean_text, failing_first, fmt_score, isna, status_of, summarize

if TYPE_CHECKING:  # pragma: no cover
    from .regression import Regression

MIN_CHART_VERDICTS = 8
"""A per-model / per-scene chart is drawn only for a group with at least this many scored verdicts;
smaller groups get one line of text (a histogram of 2 verdicts says nothing a number does not)."""
CLIP_CHARS = 600
"""Question / answer / reference text shown in full up to this length; the rest opens on demand."""
ATTENTION = ("error", "failed", "inconclusive", "xpassed")
"""Case statuses listed first, in this order: no verdict, not met, undecided, expected failure that passed."""
_RANK = {status: i for i, status in enumerate(ATTENTION + ("xfailed", "skipped", "no threshold", "passed"))}
JUDGE_FIELDS = ("ref_answer", "scene_desc", "metric", "score_desc", "steps")
"""Judge request fields a report may carry as columns; a page shows each one a frame has."""
STATUS_COLUMN = "page_status"
"""The column :func:`split_cases` adds: the status a page shows (:func:`case_status`)."""


def case_status(row: dict[str, Any]) -> str:
    """:func:`~.table.status_of`, except that a case its samples could not decide is ``inconclusive``
    (whether ``--judge-inconclusive`` then failed, passed or skipped it)."""
    status = status_of(row)
    if status in ("failed", "passed") and row.get("decision") == "inconclusive":
        return "inconclusive"
    return status


def why_status(row: dict[str, Any]) -> str:
    """The words a case card adds when its status alone would puzzle: a strict XPASS met its threshold."""
    if row.get(STATUS_COLUMN, case_status(row)) == "failed" and row.get("passed") is True and row.get("xfail") is True:
        return "XPASS(strict): the test is marked xfail(strict=True), but the verdict met its threshold"
    return ""


def split_cases(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cases needing attention, the rest), each ordered worst first, with a :data:`STATUS_COLUMN`.

    Within a status the lowest score relative to its scale comes first, so a 3/10 precedes a 4/5.
    """
    ordered = failing_first(df)
    rows = ordered.to_dict(orient="records")
    statuses = [case_status(r) for r in rows]
    ranked = ordered.assign(**{STATUS_COLUMN: statuses}, _rank=[_RANK[s] for s in statuses],
                            _norm=[_normalized(r) for r in rows])
    ranked = ranked.sort_values(["_rank", "_norm", "nodeid"], na_position="first", kind="stable") \
        .drop(columns=["_rank", "_norm"]).reset_index(drop=True)
    attention = ranked[STATUS_COLUMN].isin(ATTENTION)
    return ranked[attention].reset_index(drop=True), ranked[~attention].reset_index(drop=True)


def _normalized(row: dict[str, Any]) -> float:
    score, top = row.get("score"), row.get("max_score")
    if score is None or isna(score):
        return math.nan
    return float(score) / float(top or 1) if top is not None and not isna(top) else float(score)


# --------------------------------------------------------------------------- the verdict line


def run_facts(df: pd.DataFrame) -> list[str]:
    """The counts under the verdict line, named as the terminal names them (see the README's counts)."""
    s = summarize(df)
    facts = [f"{s['judged_tests']:,} judged {'test' if s['judged_tests'] == 1 else 'tests'} "
             f"({describe_tests(s['tests'])}, as pytest counts them)",
             f"{s['rows']:,} {'row' if s['rows'] == 1 else 'rows'}: " + ", ".join(
                 ([describe_assertions(s['assertions'])] if any(s['assertions'].values()) else [])
                 + ([f"{s['values']:,} read as {'a value' if s['values'] == 1 else 'values'}"] if s["values"] else [])
                 + ([f"{s['check_rows']:,} of judge checks"] if s["check_rows"] else [])) or "none"]
    facts += [f.text() for f in scale_facts(df)]
    facts.append(f"verdicts: {s['fresh']:,} fresh from {s['calls']:,} {'call' if s['calls'] == 1 else 'calls'}, "
                 f"{s['cached']:,} from cache")
    facts.append(f"tokens: {s['tokens_spent']:,} spent this run, {s['tokens_cached']:,} recorded with cached verdicts")
    if s["mean_latency_s"] is not None:
        facts.append(f"mean latency {s['mean_latency_s']:.2f} s")
    return facts


@dataclass(frozen=True)
class RunVerdict:
    """Whether the run passed its judge checks, with the reasons it did not and what else to know."""

    passed: bool | None
    """None: nothing was judged."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        """``FAILED`` / ``PASSED`` / ``NOTHING JUDGED``: the word a reader looks for."""
        return "NOTHING JUDGED" if self.passed is None else "PASSED" if self.passed else "FAILED"

    def text(self) -> str:
        """The one line under the headline: problems first, then the rest."""
        return " · ".join(self.problems + self.notes)


def run_verdict(df: pd.DataFrame, drift: tuple[pd.DataFrame, pd.DataFrame] | None = None,
                max_drop: float | None = None, regression: Regression | None = None,
                gates: Sequence[GateResult] = (), checks: Sequence[dict[str, Any]] = ()) -> RunVerdict:
    """Failed when a case failed, had no verdict, stayed inconclusive and was failed for it, dropped
    past ``--judge-max-drop``, the suite's mean fell past ``--judge-regression``, a gate failed, or a
    judge check (agreement with labels, bias probes) missed its bounds or could not be measured."""
    rows = df.to_dict(orient="records")
    statuses = [case_status(r) for r in rows]
    count = {s: statuses.count(s) for s in _RANK}
    failing_inconclusive = sum(1 for r, s in zip(rows, statuses) if s == "inconclusive" and r.get("passed") is not True)
    problems, notes = [], []
    if count["failed"]:
        problems.append(f"{count['failed']} failed")
    if count["error"]:
        problems.append(f"{count['error']} without a verdict (judge error)")
    if failing_inconclusive:
        problems.append(f"{failing_inconclusive} inconclusive")
    if count["inconclusive"] - failing_inconclusive:
        notes.append(f"{count['inconclusive'] - failing_inconclusive} inconclusive, let pass "
                     "(--judge-inconclusive=pass)")
    if count["xpassed"]:
        notes.append(f"{count['xpassed']} xpassed (a case marked xfail, not strict, met its threshold)")
    if count["passed"]:
        judged = count["passed"] + count["failed"] + count["error"] + count["inconclusive"]
        notes.append(f"{count['passed']} of {judged} cases passed")
    if count["xfailed"]:
        notes.append(f"{count['xfailed']} xfailed as expected")
    if count["no threshold"]:
        notes.append(f"{count['no threshold']} read as a value (no threshold)")
    if drift is not None:
        per_case = drift[0]
        shared_nothing = no_shared_cases(per_case)
        flag = f"--judge-max-drop={fmt_score(max_drop)}" if max_drop is not None else None
        if max_drop is not None and shared_nothing:
            notes.insert(0, f"{flag} checked nothing: the baseline shares no case with this run")
        elif max_drop is not None:
            dropped = len(drops_beyond(per_case, max_drop))
            if dropped:
                problems.append(f"{cases(dropped)} dropped by more than {points(max_drop)} since the baseline "
                                f"({flag})")
            else:
                notes.insert(0, f"no case dropped by more than {points(max_drop)} since the baseline ({flag})")
        else:
            down = int((per_case["status"] == "down").sum())
            notes.append(f"{cases(down)} scored lower than in the baseline (no --judge-max-drop limit)")
    if regression is not None and regression.failed:
        problems.append(regression.reason())
    elif regression is not None:  # held, or too few pairs to test: first among the notes, never silent
        notes.insert(0, regression.reason())
    for gate in gates:
        if gate.status == "failed":
            problems.append(f"gate failed: {gate.text()}")
        elif gate.status == "no data":
            notes.insert(0, f"gate with no data: {gate.text()}")
    for check in checks:
        if check.get("error"):
            problems.append(f"judge check not measured ({check['nodeid']}): {check['error']}")
        elif check.get("misses"):
            what = "bias probes beyond their limits" if check.get("check") == "probes" else "agreement missed"
            problems.append(f"judge check failed ({check['nodeid']}): {what}: {'; '.join(check['misses'])}")
    held = sum(g.status == "held" for g in gates)
    if held:
        notes.append(f"{held} of {len(gates)} {'gate' if len(gates) == 1 else 'gates'} held")
    if not rows:
        return RunVerdict(None, problems, ["no judged assertion in this run"] + notes)
    return RunVerdict(not problems, problems, notes)


def gate_rows(gates: Sequence[GateResult]) -> list[tuple[str, str, str, str, int, str]]:
    """Per gate (status, expression, value, interval, assertions counted, why): both pages' Gates section."""
    rows = []
    for g in gates:
        value = "–" if g.value is None else f"{g.value:.3g}"
        interval = "" if g.gate.confidence is None or g.low is None or g.high is None else \
            f"[{g.low:.3g}, {g.high:.3g}] at {g.gate.confidence * 100:g}%"
        rows.append((g.status, g.gate.text, value, interval, g.n, g.reason))
    return rows


def cases(n: int) -> str:
    """``1 case`` / ``3 cases``."""
    return f"{n} case" if n == 1 else f"{n} cases"


def points(value: float) -> str:
    """``1 point`` / ``0.5 points``: a score difference in words."""
    return f"{fmt_score(value)} point" + ("" if float(value) == 1 else "s")


# --------------------------------------------------------------------------- scales and charts


@dataclass(frozen=True)
class ScaleFacts:
    """One score scale's numbers: verdicts with a score, their mean, and rows of that scale without one."""

    scale: int | None
    scored: int
    mean: float | None
    unscored: int

    @property
    def label(self) -> str:
        """``/5``, or ``unknown scale`` for rows that carry no max_score."""
        return f"/{self.scale}" if self.scale is not None else "unknown scale"

    def text(self) -> str:
        """``mean 4.4/5 over 9 verdicts (1 row of this scale has no score)``: never a mean without its basis."""
        if not self.scored:
            return f"{self.label}: no scored verdict ({self.unscored} rows without a score)"
        mean = f"mean {fmt_score(self.mean)}{self.label if self.scale is not None else ''}"
        extra = f" ({self.unscored} {'row' if self.unscored == 1 else 'rows'} without a score)" if self.unscored else ""
        unit = "verdict" if self.scored == 1 else "verdicts"
        return f"{mean} over {self.scored} scored {unit}{extra}"


def scale_facts(df: pd.DataFrame) -> list[ScaleFacts]:
    """Per scale (smallest first), for the non-pairwise rows: how many scored, their mean, how many not."""
    single = df[(df["kind"] != "pairwise").fillna(True)]
    out = []
    for scale, group in _by_scale(single):
        scores = group["score"].dropna()
        out.append(ScaleFacts(scale, len(scores), float(scores.mean()) if len(scores) else None,
                              len(group) - len(scores)))
    return out


def _by_scale(df: pd.DataFrame) -> list[tuple[int | None, pd.DataFrame]]:
    known = df[df["max_score"].notna()]
    groups: list[tuple[int | None, pd.DataFrame]] = [(int(k), g) for k, g in known.groupby("max_score", sort=True)]
    unknown = df[df["max_score"].isna()]
    if len(unknown):
        groups.append((None, unknown))
    return groups


def score_bin(score: float, low: int, top: int) -> int:
    """The integer bar a score falls in (half up), kept within the scale."""
    return min(max(int(math.floor(float(score) + 0.5)), low), top)


@dataclass(frozen=True)
class Chart:
    """One score distribution to draw: a title, its scale's bins, and the rows (with their page status)."""

    title: str
    scale: int
    rows: pd.DataFrame
    unscored: int = 0

    @property
    def bins(self) -> list[int]:
        """Every score of the scale, from 1 (0 when a score is below 0.5) to the top."""
        low = 0 if len(self.rows) and float(self.rows["score"].min()) < 0.5 else 1
        return list(range(low, self.scale + 1))


def chart_plan(df: pd.DataFrame) -> tuple[list[Chart], list[str]]:
    """The charts worth drawing, and one line of text for each distribution not worth a chart.

    One chart per scale (never two scales on one axis); per model and per scene only when there are
    several groups, each charted group having at least :data:`MIN_CHART_VERDICTS` scored verdicts; never
    a chart of a single bar (that is a sentence: "all 6 scored 5/5").
    """
    frame = df.assign(**{STATUS_COLUMN: [case_status(r) for r in df.to_dict(orient="records")]})
    single = frame[(frame["kind"] != "pairwise").fillna(True)]
    charts: list[Chart] = []
    notes: list[str] = []
    for scale, group in _by_scale(single):
        scored = group[group["score"].notna()]
        if scale is None or scored.empty:
            if len(scored):
                notes.append(f"{len(scored)} verdicts on an unknown scale: mean {fmt_score(scored['score'].mean())}")
            continue
        unscored = len(group) - len(scored)
        _add_chart(charts, notes, Chart(f"All verdicts on /{scale}", scale, scored, unscored))
        for column, label in (("model", "model"), ("scene", "scene")):
            named = scored.assign(_g=scored[column].fillna(NO_SCENE if column == "scene" else "(none)"))
            groups = list(named.groupby("_g", sort=True))
            if len(groups) < 2:
                continue
            for name, sub in groups:
                sub = sub.drop(columns="_g")
                if len(sub) < MIN_CHART_VERDICTS:
                    notes.append(f"{label} {clean_text(name)} on /{scale}: {len(sub)} "
                                 f"{'verdict' if len(sub) == 1 else 'verdicts'}, mean {fmt_score(sub['score'].mean())} "
                                 f"(fewer than {MIN_CHART_VERDICTS}: no chart)")
                else:
                    _add_chart(charts, notes, Chart(f"{label} {clean_text(name)}, /{scale}", scale, sub))
    pairs = frame[(frame["kind"] == "pairwise").fillna(False)]
    if len(pairs):
        winners = pairs["winner"].dropna().value_counts()
        shown = ", ".join(f"{'winner answer ' + k if k in ('1', '2') else k}: {v}" for k, v in winners.items())
        notes.append(f"{len(pairs)} pairwise {'comparison' if len(pairs) == 1 else 'comparisons'}"
                     + (f": {shown}" if shown else ": no winner read"))
    return charts, notes


def _add_chart(charts: list[Chart], notes: list[str], chart: Chart) -> None:
    chart_bins = {score_bin(s, chart.bins[0], chart.scale) for s in chart.rows["score"]}
    if len(chart_bins) > 1:
        charts.append(chart)
        return
    n = len(chart.rows)
    notes.append(f"{chart.title}: {'the one verdict' if n == 1 else f'all {n} verdicts'} scored "
                 f"{next(iter(chart_bins))}/{chart.scale}"
                 + (f" ({chart.unscored} without a score)" if chart.unscored else ""))


# --------------------------------------------------------------------------- texts


def clip(text: str, limit: int = CLIP_CHARS) -> tuple[str, str]:
    """(shown, rest): ``text`` cut near ``limit`` characters, at a space when one is close."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind(" ", limit - 80, limit)
    cut = cut if cut > 0 else limit
    return text[:cut], text[cut:]


def judge_fields(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The judge request fields this row carries (only columns the frame has), as (name, cleaned text)."""
    return [(name, clean_text(row[name])) for name in JUDGE_FIELDS
            if name in row and not isna(row[name]) and clean_text(row[name]).strip()]


def criteria_rows(row: dict[str, Any]) -> tuple[list[tuple[str, Any, Any]], bool]:
    """Per criterion (name, answer 1's score, answer 2's score), and whether answer 2's were recorded.

    Answer 2's criteria come from a ``criteria2`` column (same shape as ``criteria``) when the frame
    has one; without it a pairwise row shows answer 1's criteria and says answer 2's are not recorded.
    """
    first = dict(row.get("criteria") or {})
    second_raw = row.get("criteria2")
    if isinstance(second_raw, str) and second_raw.strip():  # read back from CSV / Parquet: JSON text
        second_raw = json.loads(second_raw)
    second = dict(second_raw) if isinstance(second_raw, dict) else {}
    names = list(first) + [k for k in second if k not in first]
    return [(k, first.get(k), second.get(k)) for k in names], isinstance(second_raw, dict)
