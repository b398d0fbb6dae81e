"""--judge-estimate and the budgets (--judge-max-calls / --judge-max-tokens), against a real local server."""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest

SUITE = textwrap.dedent("""
    import pytest
    from pytest_pai_judge import assert_judge_prefers, assert_judge_score

    @pytest.mark.parametrize("i", range(8))
    def test_score(i):
        assert_judge_score(f"What is the capital of France? (case {i})", "Paris is the capital of France.", min=1)

    def test_pair():
        assert_judge_prefers("What is the capital of France?", "Paris is the capital of France.", "Bananas.")
""")


def run(pytester: pytest.Pytester, server, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "--judge-base-url", server.url, *args)


def prompt_tokens_in_cache(pytester: pytest.Pytester, after: float) -> int:
    db = sqlite3.connect(next(pytester.path.glob(".pai_judge_cache/*.sqlite*")))
    rows = db.execute("SELECT usage FROM replies WHERE created_at > ?", (after,)).fetchall()
    return sum(json.loads(u)["prompt_tokens"] for (u,) in rows)


@pytest.mark.parametrize("mode", ["immediate", "batch"])
def test_the_estimate_of_a_half_cached_suite_matches_the_run_after_it(pytester: pytest.Pytester, make_judge_server,
                                                                      mode: str) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_spend=SUITE)
    pytester.makeini("[pytest]\njudge_price_per_1k_input = 0.002\njudge_price_per_1k_output = 0.006\n")
    run(pytester, server, "-k", "score and (0 or 1 or 2 or 3)").assert_outcomes(passed=4, deselected=5)
    before = dict(server.stats)
    estimate = run(pytester, server, "--judge-estimate", f"--judge-mode={mode}")
    estimate.assert_outcomes(skipped=9)
    assert dict(server.stats) == before, "the estimate sent nothing"
    out = estimate.stdout.str()
    calls = int(out.split("calls needed: ")[1].split(" ")[0])
    cached = int(out.split("verdicts in the cache: ")[1].split()[0])
    prompt = int(out.split("prompt tokens: ")[1].split(" ")[0].replace(",", ""))
    assert (calls, cached) == (6, 4)  # 4 single + both orders of the pair still to judge; 4 cached
    assert "expected price: " in out
    estimate.stdout.fnmatch_lines(["*expected completion tokens: * (per verdict, from the cache: pai-judge/single *"])
    if mode == "batch":
        estimate.stdout.fnmatch_lines(["batch jobs: 1 (6 lines)"])
    import time
    started = time.time()
    real = run(pytester, server, f"--judge-mode={mode}", "--judge-report=r.json")
    real.assert_outcomes(passed=9)
    rows = json.loads((pytester.path / "r.json").read_text("utf-8"))
    assert sum(r["calls"] for r in rows) == calls
    assert sum(r["cached_verdicts"] for r in rows) == cached
    assert prompt_tokens_in_cache(pytester, started) == prompt  # counted as the server counts them


def test_values_in_an_estimate_are_counted_and_skip_their_test(pytester: pytest.Pytester, make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(textwrap.dedent("""
        def test_value(judge):
            judge.score("What is 1+1?", "2")
            raise AssertionError("not reached: the value is not known in an estimate")
    """))
    result = run(pytester, server, "--judge-estimate", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*estimate*", "calls needed: 1 *"])


@pytest.mark.parametrize("mode", ["immediate", "deferred", "batch"])
def test_max_calls_stops_sending_and_the_rest_error(pytester: pytest.Pytester, make_judge_server, mode: str) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_spend=SUITE)
    result = run(pytester, server, "--judge-cache=off", f"--judge-mode={mode}", "--judge-max-calls=5",
                 "--judge-concurrency=1")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) + outcomes.get("error", 0) == 9
    if mode == "batch":  # the whole job (10 lines) is over the cap: refused before uploading
        assert outcomes.get("passed", 0) == 0
        assert server.stats["files_created"] == 0 and server.stats["batches_created"] == 0
        result.stdout.fnmatch_lines(["*budget reached: the batch job of 10 lines was not sent: 0 of "
                                     "--judge-max-calls=5 calls are spent and it needs 10 more*"])
    else:
        assert server.stats["chat_completions"] == 5
        assert outcomes.get("passed", 0) == 5  # one call at a time, in order: the first five tests
        result.stdout.fnmatch_lines(["*BudgetReached: budget reached: * was not sent: 5 of --judge-max-calls=5 "
                                     "calls are spent and it needs 1 more*"])
    result.stdout.fnmatch_lines(["*pai-judge budget: * calls * spent; * calls were refused (budget reached): their tests failed*"])


def test_max_tokens_is_checked_before_each_call(pytester: pytest.Pytester, make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_spend=SUITE)
    result = run(pytester, server, "--judge-cache=off", "--judge-max-tokens=4000", "-k", "score")
    outcomes = result.parseoutcomes()
    assert 1 <= outcomes.get("passed", 0) < 8 and outcomes.get("failed", 0) == 8 - outcomes["passed"]
    result.stdout.fnmatch_lines(["*tokens are spent and it is expected to take * more*"])
    spent = int(result.stdout.str().split("pai-judge budget: ")[1].split(" calls")[0])
    assert spent == outcomes["passed"] == server.stats["chat_completions"]


def test_bad_budget_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-max-calls=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    pytester.makeini("[pytest]\njudge_price_per_1k_input = cheap\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*ini key judge_price_per_1k_input must be a number, got 'cheap'*"])


def test_the_reports_say_where_the_tokens_went_and_what_they_cost(pytester: pytest.Pytester,
                                                                   make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_spend=SUITE)
    pytester.makeini("[pytest]\njudge_price_per_1k_input = 0.002\njudge_price_per_1k_output = 0.006\n")
    result = run(pytester, server, "--judge-cache=off", "--judge-report=r.html", "--judge-report=r.md",
                 "--judge-report=r.json")
    result.assert_outcomes(passed=9)
    rows = json.loads((pytester.path / "r.json").read_text("utf-8"))
    prompt, total = sum(r["prompt_tokens"] for r in rows), sum(r["tokens"] for r in rows)
    assert 0 < prompt < total
    cost = prompt / 1000 * 0.002 + (total - prompt) / 1000 * 0.006
    result.stdout.fnmatch_lines([f"pai-judge cost this run: {cost:,.4f} ({prompt:,} prompt and {total - prompt:,} "
                                 "completion tokens*"])
    page = (pytester.path / "r.html").read_text("utf-8")
    assert "<section id='spend'>" in page and f"{total:,}" in page and f"{cost:,.4f}" in page
    markdown = (pytester.path / "r.md").read_text("utf-8")
    assert "## Where the tokens went" in markdown and f"| pai-judge | 9 | 10 | {total:,} | 100% | {cost:,.4f} |" \
        in markdown


def test_estimated_values_count_every_order_and_sample_and_skip(pytester: pytest.Pytester, make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(textwrap.dedent("""
        def test_compare(judge):
            judge.compare("What is 1+1?", "2", "3")

        def test_sampled(judge):
            judge.score("What is 1+1?", "2", samples=4, temperature=0.7)
    """))
    result = run(pytester, server, "--judge-estimate")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["calls needed: 5 (for 6 verdicts;*"])  # 2 orders + 4 samples in 3 blocks


def test_a_compare_stopped_halfway_by_the_budget_reports_the_order_it_paid_for(pytester: pytest.Pytester,
                                                                               make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(textwrap.dedent("""
        def test_compare(judge):
            judge.compare("What is 1+1?", "2", "3")
    """))
    result = run(pytester, server, "--judge-cache=off", "--judge-max-calls=1", "--judge-report=r.json")
    result.assert_outcomes(failed=1)
    row, = json.loads((pytester.path / "r.json").read_text("utf-8"))
    assert row["calls"] == 1 and row["tokens"] > 0 and row["error"].startswith("BudgetReached")
