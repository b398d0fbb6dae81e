"""The run's counts, defined once: what the terminal summary, every report and junitxml say.

Two views, never mixed:

- **tests**, by the outcome pytest gave them (:data:`TEST_OUTCOMES`; see
  :mod:`~pytest_pai_judge.outcomes`): a strict XPASS is *failed*, a judge error in an
  xfail-marked test is *failed* unless the mark's ``raises=`` names it;
- **assertions**, by what the judge said (:data:`ASSERTION_STATUSES`): met, not met,
  inconclusive, error (no verdict), or a value (a verdict read without a threshold).

And what the run cost, per report row (:func:`cost_columns`): fresh calls made this run, the
verdicts they answered, verdicts read from the cache, tokens spent this run, and the tokens
recorded with the cached verdicts (spent by an earlier run). Rows are report rows, one per judged
assertion or value read. Scores are summarised per scale (``max_score``), never across scales.

Pandas-free: rows are mappings (a :class:`~pytest_pai_judge.records.JudgeRecord`'s ``to_dict()``
or a results-table row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .sampling import block_of

TEST_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
"""A judged test's outcome, as pytest reports it (a test is counted once, by its worst phase)."""
ASSERTION_STATUSES = ("met", "not met", "inconclusive", "error", "value")
"""A report row's verdict, as the judge gave it (``error``: no verdict could be had)."""
VALUE_ASSERTIONS = ("value", "agrees", "unbiased")
"""Rows that read verdicts without a threshold of their own: values (the ``judge`` fixture) and the rows of the
judge checks (``assert_judge_agrees``' labelled rows, ``assert_judge_unbiased``' probes). Not assertions."""
ROW_STATUSES = ("error", "failed", "xpassed", "xfailed", "skipped", "no threshold", "passed")
"""A row's status in the reports, failing first: its assertion's verdict seen through its test's outcome."""


def missing(value: Any) -> bool:
    """A missing cell: None, NaN or pandas' NA (a dict or list is a value)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and math.isnan(value)


def _flag(value: Any) -> bool:
    if missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


# --------------------------------------------------------------------------- per row


def assertion_status(row: Mapping[str, Any]) -> str:
    """The judge's verdict of one row: ``met`` / ``not met`` / ``inconclusive`` / ``error`` / ``value``."""
    if not missing(row.get("error")):
        return "error"
    if row.get("assertion") in VALUE_ASSERTIONS or missing(row.get("passed")):
        return "value"
    decision = row.get("decision")
    if decision == "inconclusive":
        return "inconclusive"
    return "met" if _flag(row.get("passed")) else "not met"


def row_status(row: Mapping[str, Any]) -> str:
    """A row's status in the reports (:data:`ROW_STATUSES`), consistent with its test's outcome.

    ``outcome`` is pytest's outcome of the row's test (missing in a report written before it was
    recorded: then the xfail flag decides, as it used to). In an xfail-marked test a verdict that
    did not pass is ``xfailed`` and one that did is ``xpassed`` -- unless pytest failed the test
    (a strict XPASS: ``failed``); a row without a verdict is an ``error`` unless pytest counted
    the test as xfailed (its ``raises=`` named the error). A row of a skipped test (e.g.
    ``--judge-inconclusive=skip``) is ``skipped``.
    """
    outcome = row.get("outcome")
    outcome = None if missing(outcome) else str(outcome)
    error = not missing(row.get("error"))
    if error:
        return "xfailed" if outcome == "xfailed" else "error"
    passed = row.get("passed")
    if missing(passed):
        return "no threshold"
    if outcome == "skipped":
        return "skipped"
    if _flag(row.get("xfail")) or outcome in ("xfailed", "xpassed"):
        if outcome == "failed":
            return "failed"
        if outcome in ("xfailed", "xpassed"):
            return outcome
        return "xpassed" if _flag(passed) else "xfailed"
    return "passed" if _flag(passed) else "failed"


def cost_columns(per_request: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """What one row's verdicts cost: ``per_request[i][j]`` is sample ``j`` of request ``i`` (a verdict or
    the exception in its place).

    A verdict (or an unreadable reply) is *answered*; a failed call is not. ``calls`` counts the fresh
    calls behind the row (samples drawn in one block are one call); ``tokens`` are the tokens of
    those calls, ``cached_tokens`` the tokens recorded with the verdicts read from the cache.
    ``cached`` is True when every outcome is a cached verdict; ``prompt_tokens`` is the prompts' part of
    ``tokens`` (the rest is completion: what a price per input / output token needs).
    """
    verdicts = cached_verdicts = tokens = cached_tokens = calls = prompt_tokens = 0
    every_cached = any(per_request)
    for outcomes in per_request:
        blocks: set[int] = set()
        for index, outcome in enumerate(outcomes):
            answered, cached, spent, prompt = _answer(outcome)
            every_cached = every_cached and answered and cached
            if not answered:
                continue
            verdicts += 1
            if cached:
                cached_verdicts += 1
                cached_tokens += spent
            else:
                tokens += spent
                prompt_tokens += prompt
                blocks.add(block_of(index))
        calls += len(blocks)
    return {"verdicts": verdicts, "cached_verdicts": cached_verdicts, "calls": calls, "tokens": tokens,
            "cached_tokens": cached_tokens, "cached": every_cached, "prompt_tokens": prompt_tokens}


def _answer(outcome: Any) -> tuple[bool, bool, int, int]:
    """(answered by the judge, read from the cache, its tokens, of them the prompt's)."""
    if isinstance(outcome, BaseException):
        if not hasattr(outcome, "judge_cached"):  # a failed call, a refused request: no reply
            return False, False, 0, 0
        usage = getattr(outcome, "judge_usage", None) or {}
        return True, bool(outcome.judge_cached), int(usage.get("total_tokens") or 0), \
            int(usage.get("prompt_tokens") or 0)
    usage = getattr(outcome, "usage", None) or {}
    return True, bool(getattr(outcome, "cached", False)), int(usage.get("total_tokens") or 0), \
        int(usage.get("prompt_tokens") or 0)


# --------------------------------------------------------------------------- the run


def count_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Every count the terminal and the reports show, from the report rows.

    ``tests``: judged tests (those with a row) by pytest's outcome, once each (``unreported``: no
    outcome known, e.g. a row made outside a test); ``assertions``: the judge assertions' rows by
    :func:`assertion_status`; ``values``: rows of verdicts read as values (``value_errors`` of them
    without a verdict);
    ``statuses``: rows by :func:`row_status`; ``rows``, ``calls`` (fresh), ``fresh_verdicts``,
    ``cached_verdicts``, ``tokens_spent`` (this run) and ``tokens_cached`` (recorded with cached
    verdicts); ``scales``: per ``max_score``, the scored rows' count and mean score.
    """
    outcome_of: dict[str, str | None] = {}
    assertions = dict.fromkeys(ASSERTION_STATUSES, 0)
    statuses = dict.fromkeys(ROW_STATUSES, 0)
    totals = dict.fromkeys(("calls", "verdicts", "cached_verdicts", "tokens", "cached_tokens"), 0)
    by_scale: dict[int, list[float]] = {}
    count = values = value_errors = check_rows = 0
    for row in rows:  # one pass: the rows may be read back from a file (a RecordStore)
        count += 1
        outcome = row.get("outcome")
        nodeid = str(row.get("nodeid"))
        if outcome_of.get(nodeid) is None:
            outcome_of[nodeid] = None if missing(outcome) else str(outcome)
        statuses[row_status(row)] += 1
        if row.get("assertion") in VALUE_ASSERTIONS[1:]:  # a judge check's labelled row or probe
            check_rows += 1
        elif row.get("assertion") == "value":  # a verdict read as a value: no threshold, not an assertion
            values += 1
            value_errors += not missing(row.get("error"))
        else:
            assertions[assertion_status(row)] += 1
        for column in totals:
            totals[column] += 0 if missing(row.get(column)) else int(row[column])
        add_to_scale(by_scale, row)
    tests = dict.fromkeys(TEST_OUTCOMES, 0)
    tests["unreported"] = 0
    for known in outcome_of.values():
        tests[known if known in tests else "unreported"] += 1
    return {
        "rows": count, "tests": tests, "judged_tests": len(outcome_of), "assertions": assertions,
        "values": values, "value_errors": value_errors, "check_rows": check_rows,
        "statuses": statuses, "calls": totals["calls"],
        "fresh_verdicts": totals["verdicts"] - totals["cached_verdicts"],
        "cached_verdicts": totals["cached_verdicts"], "tokens_spent": totals["tokens"],
        "tokens_cached": totals["cached_tokens"], "scales": scale_means(by_scale),
    }


def add_to_scale(by_scale: dict[int, list[float]], row: Mapping[str, Any]) -> None:
    """Per scale (``max_score``): a /5 and a /10 score are never averaged together; pairwise rows (two answers,
    no single score) are left out, as the pages and the ``mean_score`` gate leave them out."""
    if row.get("kind") == "pairwise":
        return
    score: Any = row.get("score")
    top: Any = row.get("max_score")
    if not (missing(score) or missing(top)):
        by_scale.setdefault(int(top), []).append(float(score))


def scale_means(by_scale: dict[int, list[float]]) -> list[dict[str, Any]]:
    """Per scale, smallest first: how many rows have a score on it, and their mean."""
    return [{"max_score": top, "scored": len(values), "mean": sum(values) / len(values)}
            for top, values in sorted(by_scale.items())]


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def describe_tests(tests: Mapping[str, int]) -> str:
    """``2 passed, 1 failed, 1 xfailed``: the non-zero outcomes, in pytest's words."""
    parts = [f"{tests[k]} {k}" for k in (*TEST_OUTCOMES, "unreported") if tests.get(k)]
    return ", ".join(parts) or "none"


def describe_assertions(assertions: Mapping[str, int]) -> str:
    """``3 met, 1 not met, 1 error (no verdict)``: the non-zero statuses of the judge assertions."""
    parts = [plural(assertions[k], "error") + " (no verdict)" if k == "error" else f"{assertions[k]:,} {k}"
             for k in ASSERTION_STATUSES[:-1] if assertions.get(k)]
    return ", ".join(parts) or "none"


def describe_scales(found: Sequence[Mapping[str, Any]]) -> str:
    """``mean 4.2/5 (12 scores), 7.5/10 (3 scores)``; ``–`` when nothing was scored."""
    if not found:
        return "–"
    return ", ".join(f"{_number(s['mean'])}/{s['max_score']} ({plural(int(s['scored']), 'score')})" for s in found)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")
