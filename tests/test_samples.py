"""Several samples per assertion: the decision rule, rounds with early stopping, inconclusive, the cache."""

from __future__ import annotations

import json
import math
import textwrap
import urllib.request

import pytest
from scipy import stats as scipy_stats

from pytest_pai_judge.decision import (
    PRIOR_DF,
    PRIOR_SD,
    Decision,
    boundary_of,
    decide_score,
    decide_winner,
    first_round,
    one_sided_p,
)
from pytest_pai_judge.sampling import block_seed, blocks, draw_request, round_end, sample_key

pytest_plugins = ["pytester"]
HEADER = ("from pytest_pai_judge import assert_judge_score, assert_judge_prefers, assert_judge_not_worse, "
          "assert_judge_custom\nimport pytest\n")
GOOD = ("What is the capital of France?", "The capital of France is Paris.", "Paris is the capital of France.")
BAD = ("What is the capital of France?", "Bananas are yellow fruit.", "Paris is the capital of France.")


# --------------------------------------------------------------------------- the rule, alone


def test_without_a_prior_the_p_values_are_scipys_t_test() -> None:
    for scores in ([4, 5, 4, 5, 3], [3, 4, 4, 2, 5, 4], [1.0, 2.5, 2.0], [4, 3]):
        for boundary in (2.5, 3.5, 4.5):
            p_met, p_not = one_sided_p(scores, boundary, prior_df=0)
            assert math.isclose(p_met, scipy_stats.ttest_1samp(scores, boundary, alternative="greater").pvalue)
            assert math.isclose(p_not, scipy_stats.ttest_1samp(scores, boundary, alternative="less").pvalue)


def test_the_prior_pools_with_the_samples_variance() -> None:
    # 4, 4, 4 against 3.5: variance (2 * 0.5**2 + 0) / (2 + 2) = 0.125, t = 0.5 / sqrt(0.125 / 3), 4 df
    t = 0.5 / math.sqrt(0.125 / 3)
    p_met, p_not = one_sided_p([4, 4, 4], 3.5)
    assert math.isclose(p_met, scipy_stats.t.sf(t, 4)) and math.isclose(p_not, scipy_stats.t.cdf(t, 4))
    assert PRIOR_DF == 2 and PRIOR_SD == 0.5


@pytest.mark.parametrize(("scores", "threshold", "final", "expected"), [
    ([5, 5], 4, False, Decision.MET),  # two samples far above the threshold decide it
    ([2, 2], 4, False, Decision.NOT_MET),  # ... and far below
    ([1, 2], 4, False, Decision.NOT_MET),
    ([4, 4], 4, True, Decision.INCONCLUSIVE),  # at the threshold two samples are not enough
    ([4, 4, 4], 4, True, Decision.MET),
    ([3, 3, 3], 4, True, Decision.NOT_MET),
    ([4, 3, 4, 3, 4], 4, True, Decision.INCONCLUSIVE),  # borderline: the samples cannot tell
    ([4, 4, 4, 4, 3], 4, True, Decision.INCONCLUSIVE),  # 4 of 5 at the threshold is not 95% evidence
    ([5], 4, True, Decision.INCONCLUSIVE),  # one readable sample of several asked is no evidence
    ([5], 4, False, Decision.UNDECIDED),
])
def test_score_decisions(scores: list[int], threshold: float, final: bool, expected: Decision) -> None:
    assert decide_score(scores, threshold, confidence=0.95, final=final).decision is expected


@pytest.mark.parametrize(("worse", "better"), [([4, 4, 4], [4, 4, 5]), ([3, 3, 2], [3, 3, 3])])
def test_a_better_sample_never_makes_a_case_worse(worse: list[int], better: list[int]) -> None:
    order = [Decision.NOT_MET, Decision.INCONCLUSIVE, Decision.MET]
    got = [decide_score(s, 4, confidence=0.95, final=True).decision for s in (worse, better)]
    assert order.index(got[1]) >= order.index(got[0]), got


def test_two_looks_each_use_half_the_error_rate() -> None:
    assert decide_score([4, 4, 4], 4, confidence=0.95, final=False, looks=1).decision is Decision.MET
    assert decide_score([4, 4, 4], 4, confidence=0.95, final=False, looks=2).decision is Decision.UNDECIDED


def test_a_lower_confidence_decides_sooner() -> None:
    assert decide_score([4, 4], 4, confidence=0.8, final=False).decision is Decision.MET
    assert decide_score([4, 4], 4, confidence=0.95, final=False).decision is Decision.UNDECIDED


def test_the_boundary_is_half_a_point_below_the_scores_a_threshold_admits() -> None:
    assert boundary_of(4, [4, 5]) == 3.5 and boundary_of(3.2, [4, 5]) == 3.5 and boundary_of(4, [4.5, 3.5]) == 4


@pytest.mark.parametrize(("votes", "samples", "final", "expected"), [
    (["1", "1"], 3, False, "1"),  # a strict majority of 3 is reached
    (["1", "2"], 3, False, None),  # the third sample decides
    (["1", "2", "tie"], 3, True, ""),  # no majority
    (["tie", "tie"], 3, False, "tie"),
    (["1"], 1, True, "1"),
])
def test_pairwise_majority(votes: list[str], samples: int, final: bool, expected: str | None) -> None:
    assert decide_winner(votes, samples, final=final) == expected


def test_rounds_start_with_the_fewest_samples_that_can_decide_in_whole_calls() -> None:
    assert first_round(1, pairwise=False) == 1 and first_round(5, pairwise=False, whole=round_end) == 3
    assert first_round(2, pairwise=False, whole=round_end) == 2
    assert first_round(5, pairwise=True, whole=round_end) == 3 and first_round(7, pairwise=True, whole=round_end) == 5


def test_a_sample_is_pinned_by_its_number_not_by_how_a_run_drew_it() -> None:
    from pytest_pai_judge.request import JudgeRequest

    request = JudgeRequest.single("q?", "a.", temperature=0.7)
    assert sample_key("k", 0) == "k", "sample 0 is the single verdict"
    assert len({sample_key("k", j) for j in range(6)}) == 6
    assert blocks([0, 1, 2]) == [[0], [1, 2]] and blocks([4]) == [[3, 4]] and blocks([2]) == [[1, 2]]
    assert draw_request(request, [0]) is request
    assert draw_request(request, [1, 2]).params == {"max_tokens": 1024, "temperature": 0.7, "seed": block_seed(request, 1), "n": 2}
    assert draw_request(request, [3]).params == {"max_tokens": 1024, "temperature": 0.7, "seed": block_seed(request, 2)}
    assert request.params == {"max_tokens": 1024, "temperature": 0.7} and 0 <= block_seed(request, 5) < 2**63


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def server(make_judge_server):
    return make_judge_server()


def calls(server) -> int:
    with urllib.request.urlopen(server.url.removesuffix("/v1") + "/_pai_judge/stats") as response:
        return int(json.load(response).get("chat_completions", 0))


def run(pytester: pytest.Pytester, server, *args: str):
    return pytester.runpytest("--judge-base-url", server.url, "-p", "no:cacheprovider", *args)


def case(name: str, qa: tuple[str, str, str], extra: str = "") -> str:
    q, a, ref = qa
    return f"\ndef {name}():\n    assert_judge_score({q!r}, {a!r}, ref_answer={ref!r}{extra})\n"


def test_clear_cases_stop_early_and_a_warm_rerun_makes_no_call(pytester, server, tmp_path) -> None:
    pytester.makepyfile(HEADER + case("test_good", GOOD, ", samples=5") + case("test_bad", BAD, ", samples=5"))
    report = tmp_path / "r.json"
    before = calls(server)
    result = run(pytester, server, f"--judge-report={report}")
    result.assert_outcomes(passed=1, failed=1)
    assert calls(server) - before == 4, "two calls per case (the request as written, then n=2): decided after one round"
    result.stdout.fnmatch_lines(["*judge score: not met after 3 of 5 samples against the minimum 4 at 95% confidence*",
                                 "*sample scores (out of 5): 2, 3, 2; median 2*"])
    rows = {r["nodeid"].rpartition("::")[2]: r for r in json.loads(report.read_text())}
    assert rows["test_good"]["samples"] == 3 and rows["test_good"]["decision"] == "met"
    assert rows["test_good"]["scores"] == [5.0, 5.0, 5.0] and rows["test_bad"]["decision"] == "not met"
    warm = run(pytester, server)
    warm.assert_outcomes(passed=1, failed=1)
    assert calls(server) - before == 4, "every sample came from the cache"
    warm.stdout.fnmatch_lines(["*verdicts: 0 fresh, 6 from cache*"])


def test_one_sample_is_exactly_the_single_verdict(pytester, server, tmp_path) -> None:
    pytester.makepyfile(HEADER + case("test_good", GOOD) + case("test_one", GOOD, ", samples=1"))
    report = tmp_path / "r.json"
    run(pytester, server, f"--judge-report={report}").assert_outcomes(passed=2)
    rows = json.loads(report.read_text())
    assert [(r["samples"], r["scores"], r["decision"]) for r in rows] == [(1, [5.0], "met")] * 2


def test_samples_from_the_marker_the_command_line_and_the_ini(pytester, server, tmp_path) -> None:
    pytester.makeini("[pytest]\njudge_samples = 4\n")
    pytester.makepyfile(HEADER + case("test_ini", GOOD) + "\n@pytest.mark.judge(samples=2)"
                        + case("test_marker", GOOD) + case("test_argument", GOOD, ", samples=3"))
    report = tmp_path / "r.json"
    run(pytester, server, f"--judge-report={report}").assert_outcomes(passed=3)
    got = {r["nodeid"].rpartition("::")[2]: r["samples"] for r in json.loads(report.read_text())}
    assert got == {"test_ini": 3, "test_marker": 2, "test_argument": 3}, "all clear: decided after the first round"
    result = run(pytester, server, "--judge-samples=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--judge-samples must be a whole number of samples from 1 to 128, got 0*"])


def test_bad_sample_settings_are_refused(pytester, server) -> None:
    pytester.makepyfile(HEADER + textwrap.dedent("""
        @pytest.mark.judge(samples=0)
        def test_x():
            pass
    """))
    result = run(pytester, server)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*samples must be a whole number from 1 to 128, got 0*"])
    pytester.makepyfile(HEADER + case("test_n", GOOD, ", samples=3, n=2") + case("test_zero", GOOD, ", samples=0"))
    result = run(pytester, server)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*draws its samples with n itself*", "*samples must be a whole number*"])
    for bad in ("--judge-confidence=1", "--judge-inconclusive=maybe"):
        assert run(pytester, server, bad).ret == pytest.ExitCode.USAGE_ERROR


def test_replay_needs_every_sample_recorded(pytester, server) -> None:
    pytester.makepyfile(HEADER + case("test_good", GOOD))
    run(pytester, server).assert_outcomes(passed=1)  # records sample 0 only
    pytester.makepyfile(HEADER + case("test_good", GOOD, ", samples=3"))
    result = run(pytester, server, "--judge-cache=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ReplayMiss: no cached verdict for this request*"])


def test_raising_samples_reuses_the_samples_already_paid_for(pytester, server) -> None:
    pytester.makepyfile(HEADER + case("test_good", GOOD))
    before = calls(server)
    run(pytester, server).assert_outcomes(passed=1)
    pytester.makepyfile(HEADER + case("test_good", GOOD, ", samples=3"))
    result = run(pytester, server)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*verdicts: 2 fresh, 1 from cache*"])  # sample 0 is the single verdict
    assert calls(server) - before == 2, "the single verdict, then one call of n=2 for samples 1 and 2"
    pytester.makepyfile(HEADER + case("test_good", GOOD, ", samples=1"))
    run(pytester, server).stdout.fnmatch_lines(["*verdicts: 0 fresh, 1 from cache*"])  # and back


def test_pairwise_samples_vote(pytester, server, tmp_path) -> None:
    q, good, _ref = GOOD
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        def test_prefers():
            result = assert_judge_prefers({q!r}, {good!r}, "Bananas.", samples=3)
            assert result.winner == "1"

        def test_not_worse_fails():
            assert_judge_not_worse({q!r}, "Bananas.", {good!r}, samples=3)
    """))
    report = tmp_path / "r.json"
    result = run(pytester, server, f"--judge-report={report}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*judge verdict: baseline (not met) after 3 of 3 samples, each in both orders*",
                                 "*votes: baseline, baseline, baseline (a win needs 2 of 3*"])
    rows = {r["nodeid"].rpartition("::")[2]: r for r in json.loads(report.read_text())}
    assert rows["test_prefers"]["samples"] == 3 and rows["test_prefers"]["winner"] == "1"


def test_a_custom_template_is_a_threshold_test(pytester, server) -> None:
    pytester.makepyfile(HEADER + textwrap.dedent("""
        TEMPLATE = ("Rate the answer from 1 to 5.\\n[Question]: What is the capital of France?\\n"
                    "[Answer]: {answer}\\nEnd your reply with the score as [[N]].")

        def test_custom_passes():
            verdict = assert_judge_custom(TEMPLATE.format(answer="Paris is the capital of France."), min=3)
            assert verdict.score >= 3

        def test_custom_fails(judge):
            judge.assert_custom(TEMPLATE.format(answer="Bananas are yellow."), min=5, samples=3)
    """))
    result = run(pytester, server)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*judge score: not met after 3 of 3 samples*"])


def test_a_value_read_with_samples_is_their_median(pytester, server) -> None:
    q, a, ref = GOOD
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        def test_value(judge):
            verdict = judge.score({q!r}, {a!r}, ref_answer={ref!r}, samples=3)
            assert verdict.samples == (5.0, 5.0, 5.0) and verdict.score == 5
    """))
    run(pytester, server).assert_outcomes(passed=1)


NOISY = ("What is the capital of France?", "Paris is the capital of France.")
"""At temperature 0.7 the lexical engine's scores spread by about 0.7 points (see its docstring).
The samples are reproducible (each sample's seed comes from the request body), so these cases are
known: "France's capital city is Paris." draws 5, 5, 5 (met at 4 after 3 of 5 samples), "Lyon is a big
city." 2, 2, 2 (not met after 3), and "I think it might be Paris." 2, 3, 3, then 3, 4: borderline,
inconclusive after all 5 (a second round, in batch mode a second job)."""


def modes_suite() -> str:
    q, ref = NOISY
    return HEADER + textwrap.dedent(f"""
        @pytest.mark.parametrize("answer", ["France's capital city is Paris.", "Lyon is a big city.",
                                            "I think it might be Paris."],
                                 ids=["good", "bad", "borderline"])
        def test_noisy(answer):
            assert_judge_score({q!r}, answer, 4, ref_answer={ref!r}, samples=5, temperature=0.7)

        def test_pairwise():
            assert_judge_prefers({GOOD[0]!r}, {GOOD[1]!r}, "Bananas.", samples=3)
    """)


def server_stats(server) -> dict[str, int]:
    with urllib.request.urlopen(server.url.removesuffix("/v1") + "/_pai_judge/stats") as response:
        return json.load(response)


@pytest.mark.parametrize("mode", ["immediate", "deferred", "batch"])
def test_samples_decide_alike_in_every_mode(pytester, make_judge_server, tmp_path, mode) -> None:
    server = make_judge_server()
    pytester.makepyfile(modes_suite())
    report = tmp_path / "r.json"
    result = run(pytester, server, f"--judge-mode={mode}", f"--judge-report={report}")
    result.assert_outcomes(passed=2, failed=2)
    rows = {r["nodeid"].rpartition("::")[2]: r for r in json.loads(report.read_text())}
    assert {k: (r["samples"], r["scores"], r["decision"]) for k, r in rows.items()} == {
        "test_noisy[good]": (3, [5.0, 5.0, 5.0], "met"), "test_noisy[bad]": (3, [2.0, 2.0, 2.0], "not met"),
        "test_noisy[borderline]": (5, [2.0, 3.0, 3.0, 3.0, 4.0], "inconclusive"),
        "test_pairwise": (3, [4.0, 4.0, 4.0], "met")}
    result.stdout.fnmatch_lines(["*JudgeInconclusive: judge score: inconclusive after 5 of 5 samples*",
                                 "*sample scores (out of 5): 2, 3, 3, 3, 4; median 3, mean 3.00, spread (sd) 0.71*",
                                 "*raise samples= or review the case*",
                                 "4 judged tests (as pytest counts them): 2 passed, 2 failed",
                                 "4 judged assertions: 2 met, 1 not met, 1 inconclusive"])
    got = server_stats(server)
    if mode == "batch":
        assert got.get("batches_created") == 2, "a second, smaller job for the undecided case"
        result.stdout.fnmatch_lines(["*second round: 1 undecided case draw the rest of their samples*"])
    else:
        # per request: the request as written, then one call per block: good 2, bad 2, borderline 3,
        # pairwise 2 per order
        assert got.get("chat_completions") == 11, got
    warm = run(pytester, server, f"--judge-mode={mode}")
    warm.assert_outcomes(passed=2, failed=2)
    assert server_stats(server) == got, "a warm rerun makes no call"


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_samples_under_xdist(pytester, make_judge_server, tmp_path, mode) -> None:
    server = make_judge_server()
    pytester.makepyfile(modes_suite())
    report = tmp_path / "r.json"
    result = run(pytester, server, f"--judge-mode={mode}", f"--judge-report={report}", "-n", "2")
    result.assert_outcomes(passed=2, failed=2)
    rows = {r["nodeid"].rpartition("::")[2]: (r["samples"], r["decision"]) for r in json.loads(report.read_text())}
    assert rows["test_noisy[borderline]"] == (5, "inconclusive") and rows["test_noisy[bad]"] == (3, "not met")


@pytest.mark.parametrize("mode", ["immediate", "deferred", "batch"])
@pytest.mark.parametrize(("policy", "outcome"), [("pass", "passed"), ("skip", "skipped")])
def test_inconclusive_can_pass_or_skip(pytester, server, policy, outcome, mode) -> None:
    pytester.makepyfile(modes_suite())
    result = run(pytester, server, f"--judge-inconclusive={policy}", "-k", "borderline", "-rs",
                 f"--judge-mode={mode}")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines([f"1 judged test (as pytest counts them): 1 {outcome}",
                                 "1 judged assertion: 1 inconclusive"])
    if outcome == "skipped":
        result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_inconclusive_can_pass_or_skip.py:*: judge score: "
                                     "inconclusive after 5 of 5 samples*"])


def test_reports_show_a_cases_samples(pytester, server, tmp_path) -> None:
    pytester.makepyfile(modes_suite())
    md, page, csv = tmp_path / "r.md", tmp_path / "r.html", tmp_path / "r.csv"
    run(pytester, server, "-k", "borderline", f"--judge-report={md}", f"--judge-report={page}",
        f"--judge-report={csv}").assert_outcomes(failed=1)
    shown = "median of 5 samples: 2, 3, 3, 3, 4 (sd 0.71); inconclusive"
    assert shown in md.read_text() and shown in page.read_text()
    from pytest_pai_judge.report.table import read_report

    back = read_report(csv).to_dict(orient="records")[0]
    assert (back["samples"], back["scores"], back["decision"]) == (5, [2.0, 3.0, 3.0, 3.0, 4.0], "inconclusive")


def test_compare_with_samples_takes_the_majority(pytester, server, tmp_path) -> None:
    q, good, _ref = GOOD
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        def test_compare(judge):
            result = judge.compare({q!r}, {good!r}, "Bananas.", samples=3)
            assert result.winner == "1" and result.consistent
    """))
    report = tmp_path / "r.json"
    run(pytester, server, f"--judge-report={report}").assert_outcomes(passed=1)
    row = json.loads(report.read_text())[0]
    assert (row["assertion"], row["samples"], row["winner"]) == ("value", 3, "1")


def test_samples_at_temperature_zero_are_flagged_once(pytester, server) -> None:
    pytester.makepyfile(HEADER + case("test_a", GOOD, ", samples=3, temperature=0")
                        + case("test_b", BAD, ", samples=3, temperature=0"))
    result = run(pytester, server)
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert text.count("samples=3 at temperature=0") == 1, text[-1500:]
    result.stdout.fnmatch_lines(["*samples=3 at temperature=0 (test_samples_at_temperature_zero_are_flagged_once.py"
                                 "::test_a): a judge that does not sample gives the same score every time*"])
