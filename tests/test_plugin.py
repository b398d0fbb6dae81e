"""The pytest plugin end to end: inner pytest sessions (pytester) against a real local judge server."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_pai_judge.server.config import Fault

pytest_plugins = ["pytester"]
TESTS_DIR = str(Path(__file__).parent)

GOOD = ('"What is the capital of France?"', '"The capital of France is Paris."', '"Paris is the capital of France."')
BAD = ('"What is the capital of France?"', '"Bananas are yellow fruit."', '"Paris is the capital of France."')


@pytest.fixture
def server(make_judge_server):
    return make_judge_server()


def run(pytester: pytest.Pytester, server, *args: str, subprocess: bool = False):
    args = ("--judge-base-url", server.url, "-p", "no:cacheprovider", *args)
    if subprocess:
        return pytester.runpytest_subprocess(*args)
    return pytester.runpytest(*args)


def judge_test(name: str, qa: tuple[str, str, str], extra: str = "") -> str:
    q, a, ref = qa
    return textwrap.dedent(f"""
        def {name}():
            assert_judge_score({q}, {a}, ref_answer={ref}{extra})
    """)


HEADER = "from pytest_pai_judge import assert_judge_score, assert_judge_prefers, assert_judge_not_worse\nimport pytest\n"


def test_pass_and_fail_by_threshold(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD) + judge_test("test_bad", BAD))
    result = run(pytester, server)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*judge score 2/5 is below the minimum 4 (model=pai-judge)*",
                                 "*question: What is the capital of France?*",
                                 "*judge's reasons:*",
                                 "*rerun only this test: pytest \"test_pass_and_fail_by_threshold.py::test_bad\"*",
                                 "*pai-judge summary*", "2 judged tests (as pytest counts them): 1 passed, 1 failed",
                                 "2 judged assertions: 1 met, 1 not met"])
    assert "pytest_pai_judge/" not in result.stdout.str()  # plugin frames are hidden from the traceback
    assert result.ret == 1


def test_header_names_the_judge(pytester, server):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = run(pytester, server)
    result.stdout.fnmatch_lines([f"pai-judge: {server.url}; model=pai-judge, min_score=4, mode=immediate, cache=use"])
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["pai-judge: embedded local server (lexical engine*"])


def test_threshold_precedence_argument_marker_cli_ini(pytester, server):
    """The lexical judge gives 'Paris.' vs the reference a middling score; thresholds decide."""
    pytester.makeini("[pytest]\njudge_min_score = 1\n")
    pytester.makepyfile(HEADER + textwrap.dedent("""
        Q, A, REF = "What is the capital of France?", "Bananas are yellow fruit.", "Paris is the capital of France."
        pytestmark = pytest.mark.judge(min_score=3)

        def test_module_marker():            # module marker 3 beats ini 1 -> fails (score 2)
            assert_judge_score(Q, A, ref_answer=REF)

        @pytest.mark.judge(min_score=1)
        def test_function_marker():          # function marker beats module marker -> passes
            assert_judge_score(Q, A, ref_answer=REF)

        @pytest.mark.judge(min_score=5)
        def test_argument_wins():            # argument beats every marker -> passes
            assert_judge_score(Q, A, 1, ref_answer=REF)

        @pytest.mark.judge(min_score=1)
        class TestClass:
            def test_class_marker(self):     # class marker beats module marker -> passes
                assert_judge_score(Q, A, ref_answer=REF)

            @pytest.mark.judge(min_score=3)
            def test_method_marker(self):    # closest marker wins -> fails
                assert_judge_score(Q, A, ref_answer=REF)
    """))
    result = run(pytester, server, "-v")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*test_module_marker FAILED*", "*test_function_marker PASSED*",
                                 "*test_argument_wins PASSED*", "*test_class_marker PASSED*",
                                 "*test_method_marker FAILED*"])


def test_cli_beats_ini_and_ini_beats_default(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_bad", BAD))
    pytester.makeini("[pytest]\njudge_min_score = 1\njudge_model = pai-judge-plus\n")
    result = run(pytester, server)  # ini 1 beats default 4
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*model=pai-judge-plus, min_score=1*"])
    result = run(pytester, server, "--judge-min-score", "3", "--judge-model", "pai-judge")  # CLI beats ini
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*below the minimum 3 (model=pai-judge)*"])


def test_marker_model_and_unknown_model(pytester, server):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        from pytest_pai_judge import errors

        @pytest.mark.judge(model="pai-judge-plus")
        def test_plus(judge):
            assert judge.score("1+1?", "2").model == "pai-judge-plus"

        @pytest.mark.judge(model="gpt-judge")
        def test_unknown_model():
            with pytest.raises(errors.ModelNotFound) as info:
                assert_judge_score("1+1?", "2")
            assert info.value.status == 404 and "model must in" in info.value.message
    """))
    run(pytester, server).assert_outcomes(passed=2)


@pytest.mark.parametrize("marker,problem", [
    ("judge(min_scor=3)", "unknown argument(s) min_scor (known: min_score, model, samples, defer, group)"),
    ("judge(3)", "takes keyword arguments only"),
    ('judge(defer="no")', "defer must be True or False, got 'no'"),
    ('judge(group="")', "group must be a name (a non-empty string), got ''"),
    ('judge(min_score="high")', "min_score must be a positive number, got 'high'"),
])
def test_bad_marker_arguments_are_usage_errors(pytester, server, marker, problem):
    pytester.makepyfile(HEADER + f"@pytest.mark.{marker}\ndef test_x():\n    pass\n")
    result = run(pytester, server)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*@pytest.mark.judge on *test_x: {problem}*"])


@pytest.mark.parametrize("args,ini,message", [
    (["--judge-base-url", "aiservice.cn-hangzhou.aliyuncs.com/v1"], "",
     "*judge base URL must start with http:// or https://*"),
    ([], "judge_min_score = abc", "*ini key judge_min_score must be a number, got 'abc'*"),
    (["--judge-timeout", "-3"], "", "*--judge-timeout must be a positive number of seconds, got -3*"),
    ([], "judge_concurrency = x", "*ini key judge_concurrency must be a number, got 'x'*"),  # in immediate mode too
    (["--judge-concurrency", "0"], "", "*--judge-concurrency must be a whole number of calls, 1 or more, got 0*"),
    ([], "judge_concurrency = 0", "*ini key judge_concurrency must be a whole number of calls, 1 or more, got 0*"),
    (["--judge-concurrency", "8", "--judge-max-concurrency", "4"], "",
     "*--judge-max-concurrency must be a whole number of calls, at least --judge-concurrency (8), got 4*"),
    (["--judge-batch-poll", "0"], "", "*--judge-batch-poll must be a positive number of seconds, got 0*"),
    ([], "judge_cache_prune = maybe", "*ini key judge_cache_prune must be true or false*"),
])
def test_bad_settings_are_usage_errors(pytester, args, ini, message):
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_threshold_above_max_score_is_an_error(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_high", GOOD, ", min=6"))
    result = run(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*minimum score 6 is above max_score 5: this assertion could never pass*"])
    assert server.stats["chat_completions"] == 0


@pytest.mark.parametrize("call,message", [
    ('assert_judge_score("q", "a", min=0)', "ValueError: min must be a positive number, got 0*"),
    ('assert_judge_score("q", "a", min=-1)', "ValueError: min must be a positive number, got -1*"),
    ('assert_judge_score("q", "a", min="4")', "TypeError: min must be a number, got str '4'"),
    ('assert_judge_score("q", 4)', "TypeError: answer must be a string, got int 4 (convert it with str()*"),
    ('assert_judge_score("q", "a", max_score=0, score_desc="x")', "*ContentError*"),
])
def test_bad_thresholds_and_values_are_clear_errors(pytester, server, call, message):
    pytester.makepyfile(HEADER + f"def test_it():\n    {call}\n")
    result = run(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E * {message}" if not message.startswith("*") else message])
    assert server.stats["chat_completions"] == 0


def test_rerun_hint_works_from_where_pytest_was_started(pytester, server, monkeypatch):
    pytester.makeini("[pytest]\n")
    sub = pytester.mkpydir("suite")
    (sub / "test_it.py").write_text(HEADER + judge_test("test_bad", BAD))
    monkeypatch.chdir(sub)
    result = run(pytester, server, "test_it.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*rerun only this test: pytest "test_it.py::test_bad"'])
    monkeypatch.chdir(pytester.path)
    result = run(pytester, server, "suite")
    result.stdout.fnmatch_lines(['*rerun only this test: pytest "suite/test_it.py::test_bad"'])


def test_xfail_raises_decides_whether_a_failed_judgement_is_expected(pytester, server):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        @pytest.mark.xfail(raises=ZeroDivisionError)
        def test_other_exception():
            assert_judge_score("What is the capital of France?", "bananas", min=4)

        @pytest.mark.xfail(raises=AssertionError)
        def test_assertion_expected():
            assert_judge_score("What is the capital of France?", "bananas again", min=4)
    """))
    result = run(pytester, server)
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["2 judged tests (as pytest counts them): 1 failed, 1 xfailed",
                                 "2 judged assertions: 2 not met", "*xfail ?/5 (min 4)*test_assertion_expected"])


def test_marker_is_registered_for_strict_markers(pytester, server):
    pytester.makepyfile(HEADER + "@pytest.mark.judge(min_score=1)\ndef test_x():\n    pass\n")
    run(pytester, server, "--strict-markers").assert_outcomes(passed=1)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.judge(min_score=None, model=None, samples=None, defer=None, group=None)*"])


def test_pairwise_both_orders(pytester, server):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        Q = "How do I reverse a list in Python?"
        GOOD = "Use list.reverse() to reverse a list in place, or list[::-1] to get a reversed copy."
        BAD = "Bananas."

        def test_prefers():
            result = assert_judge_prefers(Q, GOOD, BAD, ref_answer="Call list.reverse() or use slicing list[::-1].")
            assert result.consistent and result.winner == "1"

        def test_prefers_fails_the_other_way():
            assert_judge_prefers(Q, BAD, GOOD, ref_answer="Call list.reverse() or use slicing list[::-1].")

        def test_not_worse_tie_passes():
            assert_judge_not_worse(Q, GOOD, GOOD)
    """))
    result = run(pytester, server, "--judge-cache=off")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*judge verdict: worse (both orders agree); expected the first answer to win*"])
    assert server.stats["chat_completions"] == 6  # every pairwise assertion judged both orders


def test_position_bias_counts_as_tie(pytester, make_judge_server):
    sys.path.insert(0, TESTS_DIR)
    server = make_judge_server(engine="judge_engines:FirstAnswerEngine")
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_prefers_is_not_fooled():
            assert_judge_prefers("q?", "answer a", "answer b")

        def test_not_worse_passes_on_tie(judge):
            assert_judge_not_worse("q?", "answer b", "answer a")
            comparison = judge.compare("q?", "answer a", "answer b")
            assert comparison.winner == "tie" and not comparison.consistent
            assert judge.compare("q?", "answer a", "answer b", both_orders=False).winner == "1"
    """))
    result = run(pytester, server)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*judge verdict: tie (the orders disagree (A-B: better, B-A: worse) - position "
                                 "bias, counted as a tie)*"])


@pytest.mark.parametrize("reply_id", ["en-single", "zh-single", "en-pairwise", "zh-pairwise", "en-custom",
                                      "zh-custom", "zh-json-object"])
def test_every_spec_reply_shape_from_the_server(pytester, make_judge_server, reply_id):
    """The server answers with the spec's exact text; the plugin reads what judge-replies.json expects."""
    sys.path.insert(0, TESTS_DIR)
    server = make_judge_server(engine="judge_engines:SpecReplyEngine")
    expected = json.loads((Path(TESTS_DIR) / "data" / "judge-replies.json").read_text("utf-8"))
    spec = next(r for r in expected["replies"] if r["id"] == reply_id)
    call = {"single": f'judge.score("q #reply={reply_id}", "a")',
            "pairwise": f'judge.compare("q #reply={reply_id}", "a", "b", both_orders=False).forward',
            "custom": f'judge.custom("q #reply={reply_id}")'}[spec["mode"]]
    if reply_id == "zh-json-object":
        call = f'judge.score("q #reply={reply_id}", "a", response_format={{"type": "json_object"}})'
    pytester.makepyfile(textwrap.dedent(f"""
        import json
        def test_reply(judge):
            verdict = {call}
            open("verdict.json", "w").write(json.dumps({{"score": verdict.score, "winner": verdict.winner,
                                         "score1": verdict.score1, "score2": verdict.score2,
                                         "criteria": [c.score for c in verdict.criteria]}}))
    """))
    result = run(pytester, server)
    result.assert_outcomes(passed=1)
    got = json.loads((pytester.path / "verdict.json").read_text())
    for key, value in spec["expect"].items():
        if key == "criteria_scores":
            assert got["criteria"] == value
        elif key == "winner":
            assert got["winner"] == value
        else:
            assert got[key] == value, key


def test_unreadable_verdict_fails_with_raw_text(pytester, make_judge_server):
    server = make_judge_server(faults=[Fault("GARBLE", "unreadable")])
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_unreadable():
            assert_judge_score("GARBLE what is 1+1?", "2", 1)

        def test_unreadable_value(judge):
            judge.score("GARBLE what is 1+1?", "2")
    """))
    result = run(pytester, server, "--tb=long", "--judge-report=r.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*UnreadableVerdict*", "*raw*"])
    text = result.stdout.str()
    assert "verdict.py" not in text and "def parse_reply" not in text  # the test's line, not the parser's source
    # an unreadable reply was still a reply (counted, tokens spent); the value read reuses it from the cache
    result.stdout.fnmatch_lines(["2 judged tests (as pytest counts them): 2 failed",
                                 "1 judged assertion: 1 error (no verdict); 1 verdict read as a value (1 without a verdict)",
                                 "verdicts: 1 fresh, 1 from cache; fresh calls: 1; report rows: 2; tokens: 1* spent this "
                                 "run, 1* recorded with cached verdicts*"])
    again = run(pytester, server, "--judge-report=r.json")
    again.assert_outcomes(failed=2)
    again.stdout.fnmatch_lines(["*verdicts: 0 fresh, 2 from cache; fresh calls: 0; report rows: 2; tokens: 0 spent*"])
    rows = json.loads((pytester.path / "r.json").read_text("utf-8"))
    assert [row["cached"] for row in rows] == [True, True] and all(row["error"] for row in rows)


def test_a_fixture_error_shows_no_plugin_frame(pytester, server):
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def broken():
            assert 1 == 2, "plain"
    """)
    pytester.makepyfile("def test_z(broken):\n    pass\n")
    result = run(pytester, server, "--tb=long")
    result.assert_outcomes(errors=1)
    assert "plugin.py" not in result.stdout.str() and "current_item" not in result.stdout.str()


@pytest.mark.parametrize("fault,exception,status", [("500", "ModelServiceFailed", 500),
                                                     ("greennet", "GreenNetFilter", 403),
                                                     ("429", "RateLimited", 429)])
def test_server_errors_surface_as_their_exception(pytester, make_judge_server, fault, exception, status):
    server = make_judge_server(faults=[Fault("BOOM", fault)])
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        from pytest_pai_judge import errors

        def test_raises():
            with pytest.raises(errors.{exception}) as info:
                assert_judge_score("BOOM what is 1+1?", "2")
            assert info.value.status == {status}
            assert isinstance(info.value, errors.JudgeError)

        def test_fails_plain():
            assert_judge_score("BOOM what is 1+1?", "2")
    """))
    result = run(pytester, server, "--judge-timeout", "5")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*{exception}*"])
    if fault in ("500", "429"):  # retried with backoff before giving up
        assert server.stats["chat_completions"] >= 2 * 4


@pytest.mark.parametrize("call,exception", [
    ('assert_judge_score("", "a")', "QuestionError"),
    ('assert_judge_score("q", "")', "AnswerError"),
    ('assert_judge_prefers("q", "", "b")', "AnswerError"),
    ('assert_judge_score("q", "a", scene="my scene")', "SceneError"),
    ('assert_judge_score("q", "a", scene="my scene", scene_desc="d")', "SceneError"),
    ('assert_judge_score("q", "a", metric="m")', "SceneError"),
    ('assert_judge_score("q", "a", max_score=10)', "ScoreError"),
    ('assert_judge_score("q", "a", score_desc="1: bad")', "ScoreError"),
    ('assert_judge_score("q", "a", response_format={"type": "xml"})', "ResponseFormatError"),
    ('assert_judge_score("q", "a", temperature=2)', "InvalidParameter"),
    ('assert_judge_score("q", "a", top_logprobs=3)', "InvalidParameter"),
])
def test_bad_requests_fail_fast_without_network(pytester, server, call, exception):
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        from pytest_pai_judge import errors

        def test_bad():
            with pytest.raises(errors.{exception}) as info:
                {call}
            assert info.value.status == 400
    """))
    result = run(pytester, server, "--judge-report=r.json")
    result.assert_outcomes(passed=1)
    assert server.stats["chat_completions"] == 0
    rows = json.loads((pytester.path / "r.json").read_text("utf-8"))  # refused, but still a row that says why
    assert len(rows) == 1 and rows[0]["error"].startswith(exception) and rows[0]["passed"] is None


def test_an_unreachable_judge_fails_fast_after_two_calls(pytester):
    """Each test waiting out its own retries against a dead URL made a 10-test suite take 30 s."""
    import socket
    import time

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    pytester.makepyfile(HEADER + "".join(judge_test(f"test_{i}", GOOD) for i in range(6)))
    started = time.monotonic()
    result = pytester.runpytest("--judge-base-url", dead, "--judge-retries", "1", "-p", "no:cacheprovider")
    elapsed = time.monotonic() - started
    result.assert_outcomes(failed=6)
    text = result.stdout.str()
    assert text.count("JudgeConnectionError") >= 6
    assert text.count("not sent: the judge failed the last 2 calls of this run the same way") == 4
    assert elapsed < 30, elapsed


@pytest.mark.parametrize("value", ["-1", "1.5", "many"])
def test_bad_retries_are_usage_errors(pytester, value):
    result = pytester.runpytest(f"--judge-retries={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_token_without_a_base_url_warns(pytester, monkeypatch):
    monkeypatch.setenv("JUDGE_MODEL_TOKEN", "secret-token-value")
    monkeypatch.delenv("JUDGE_MODEL_BASE_URL", raising=False)
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*JUDGE_MODEL_TOKEN is set but unused*",
                                 "*JUDGE_MODEL_TOKEN is set but no judge base URL is*embedded offline lexical engine*"])
    assert "secret-token-value" not in result.stdout.str()


def test_context_length_exceeded_has_its_own_exception(pytester, server):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        from pytest_pai_judge import errors

        def test_long():
            with pytest.raises(errors.ContextLengthExceeded) as info:
                assert_judge_score("q", "a", max_tokens=40000)
            assert info.value.status == 400 and "maximum context length" in info.value.message
    """))
    run(pytester, server).assert_outcomes(passed=1)


def test_invalid_token(pytester, make_judge_server, monkeypatch):
    server = make_judge_server(token="s3cret-token")
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD))
    monkeypatch.setenv("JUDGE_MODEL_TOKEN", "wrong")
    result = run(pytester, server)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*InvalidToken*Invalid Token provided.*"])
    monkeypatch.setenv("JUDGE_MODEL_TOKEN", "Authorization: Bearer s3cret-token")  # the vendor sample's form
    result = run(pytester, server)
    result.assert_outcomes(passed=1)
    assert "s3cret-token" not in result.stdout.str() + result.stderr.str()
    cache_files = list(pytester.path.joinpath(".pai_judge_cache").glob("*"))
    assert cache_files and all(b"s3cret-token" not in f.read_bytes() for f in cache_files if f.is_file())


def test_cache_hit_on_rerun_makes_no_request(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD) + judge_test("test_bad", BAD))
    first = run(pytester, server)
    first.assert_outcomes(passed=1, failed=1)
    calls = server.stats["chat_completions"]
    assert calls == 2
    second = run(pytester, server)
    second.assert_outcomes(passed=1, failed=1)
    second.stdout.fnmatch_lines(["*cached verdict*", "*verdicts: 0 fresh, 2 from cache*"])
    assert server.stats["chat_completions"] == calls  # zero HTTP requests on the warm run
    run(pytester, server, "--judge-cache=refresh").assert_outcomes(passed=1, failed=1)
    assert server.stats["chat_completions"] == calls + 2
    run(pytester, server, "--judge-cache=off").assert_outcomes(passed=1, failed=1)
    assert server.stats["chat_completions"] == calls + 4


def test_cache_key_covers_the_whole_request(pytester, server):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_a():
            assert_judge_score("What is the capital of France?", "Paris.", 1)
        def test_b():
            assert_judge_score("What is the capital of France?", "Paris.", 1, temperature=0.0)
        def test_c():
            assert_judge_score("What is the capital of France?", "Paris.", 1, ref_answer="Paris")
        @pytest.mark.judge(model="pai-judge-plus")
        def test_d():
            assert_judge_score("What is the capital of France?", "Paris.", 1)
    """))
    run(pytester, server).assert_outcomes(passed=4)
    assert server.stats["chat_completions"] == 4


def test_replay_mode_fails_on_a_miss(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD))
    result = run(pytester, server, "--judge-cache=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ReplayMiss*--judge-cache=replay forbids calling the judge*"])
    assert server.stats["chat_completions"] == 0
    run(pytester, server).assert_outcomes(passed=1)
    run(pytester, server, "--judge-cache=replay").assert_outcomes(passed=1)
    assert server.stats["chat_completions"] == 1


def test_cache_prune_drops_unused_entries(pytester, server):
    pytester.makepyfile(test_it=HEADER + judge_test("test_good", GOOD) + judge_test("test_bad", BAD))
    run(pytester, server).assert_outcomes(passed=1, failed=1)
    result = run(pytester, server, "-k", "good", "--judge-cache-prune")  # a partial run never prunes
    result.stdout.fnmatch_lines(["*--judge-cache-prune skipped: 1 tests were deselected*"])
    run(pytester, server, "--judge-cache=replay").assert_outcomes(passed=1, failed=1)
    pytester.makepyfile(test_it=HEADER + judge_test("test_good", GOOD))  # test_bad is gone
    result = run(pytester, server, "--judge-cache-prune")
    result.stdout.fnmatch_lines(["*pruned 1 entries*"])
    pytester.makepyfile(test_it=HEADER + judge_test("test_good", GOOD) + judge_test("test_bad", BAD))
    result = run(pytester, server, "--judge-cache=replay")  # test_bad's verdict was pruned
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ReplayMiss*"])


def test_cache_prune_never_runs_on_a_path_or_node_id_subset(pytester, server):
    """Pruning after `pytest test_a.py` or `pytest test_a.py::test_x` would drop the rest of the suite's verdicts."""
    pytester.makeini("[pytest]\njudge_cache_prune = true\n")
    pytester.makepyfile(test_a=HEADER + judge_test("test_good", GOOD), test_b=HEADER + judge_test("test_bad", BAD))
    run(pytester, server).assert_outcomes(passed=1, failed=1)
    for args, why in ((["test_a.py"], "test_a.py is only part of the suite"),
                      (["test_a.py::test_good"], "test_a.py::test_good names single tests")):
        result = run(pytester, server, *args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*--judge-cache-prune skipped: {why}*"])
        assert "pruned" not in result.stdout.str()
    run(pytester, server, "--judge-cache=replay").assert_outcomes(passed=1, failed=1)  # nothing was dropped
    result = run(pytester, server, "--ignore=test_b.py")
    result.stdout.fnmatch_lines(["*--judge-cache-prune skipped: --ignore left part of the suite out*"])
    result = run(pytester, server, "--no-judge-cache-prune", "test_a.py")  # the command line wins over the ini
    assert "--judge-cache-prune skipped" not in result.stdout.str()
    result = run(pytester, server, str(pytester.path))  # the rootdir itself is the whole suite
    result.assert_outcomes(passed=1, failed=1)
    assert "--judge-cache-prune skipped" not in result.stdout.str()


def test_unusable_cache_warns_once_and_runs_uncached(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD))
    (pytester.path / "not-a-dir").write_text("x")
    result = run(pytester, server, "--judge-cache-dir", "not-a-dir/cache")
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("verdict cache disabled") == 1
    cache = pytester.path / ".pai_judge_cache"
    cache.mkdir()
    (cache / "verdicts.sqlite3").write_bytes(b"garbage" * 1000)
    result = run(pytester, server)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pai-judge verdict cache disabled*"])
    result = run(pytester, server, "-n", "2", subprocess=True)  # the workers' warning reaches the terminal once
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("pai-judge verdict cache disabled") == 1, result.stdout.str()


def test_two_xdist_workers_share_the_cache(pytester, server):
    pytester.makepyfile(HEADER + "\n".join(
        judge_test(f"test_{i}", ('"What is the capital of France?"', f'"Paris, answer {i}."', '"Paris"'), ", min=1")
        for i in range(12)))
    first = run(pytester, server, "-n", "2", subprocess=True)
    first.assert_outcomes(passed=12)
    first.stdout.fnmatch_lines(["12 judged tests (as pytest counts them): 12 passed", "12 judged assertions: 12 met",
                                  "verdicts: 12 fresh, 0 from cache; fresh calls: 12; report rows: 12;*"])
    assert server.stats["chat_completions"] == 12
    second = run(pytester, server, "-n", "2", "--judge-cache-prune", subprocess=True)
    second.assert_outcomes(passed=12)
    second.stdout.fnmatch_lines(["*verdicts: 0 fresh, 12 from cache*"])
    assert "pruned" not in second.stdout.str()  # every worker's uses reached the cache before the prune
    assert server.stats["chat_completions"] == 12
    third = run(pytester, server, "-n", "2", "--judge-cache=replay", subprocess=True)
    third.assert_outcomes(passed=12)


def test_disabled_with_p_no(pytester, server):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:pai_judge")
    result.assert_outcomes(passed=1)
    assert "pai-judge" not in result.stdout.str()
    pytester.makepyfile(test_judged=HEADER + judge_test("test_good", GOOD))
    result = pytester.runpytest_subprocess("-p", "no:pai_judge", "test_judged.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pytest-pai-judge is not active*"])


def test_judge_fixture_custom_template(pytester, server):
    pytester.makepyfile(textwrap.dedent("""
        def test_custom(judge):
            verdict = judge.custom([
                {"role": "system", "content": "You are a fair judge."},
                {"role": "user", "content": "Please score the following answer to the question on a scale of 1 to 5:\\n"
                                            "Question: What is 2+2?\\nAnswer: 4"}])
            assert verdict.mode == "custom" and 1 <= verdict.score <= 5
            assert verdict.usage["total_tokens"] > 0
    """))
    run(pytester, server).assert_outcomes(passed=1)


def test_compare_is_one_report_row_with_the_consensus(pytester, server):
    pytester.makepyfile(textwrap.dedent("""
        def test_compare(judge):
            result = judge.compare("What is the capital of France?", "Paris is the capital of France.", "I don't know.")
            assert result.winner in ("1", "2", "tie")
    """))
    result = run(pytester, server, "--judge-report=r.json")
    result.assert_outcomes(passed=1)
    rows = json.loads((pytester.path / "r.json").read_text("utf-8"))
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["assertion"], row["kind"]) == ("value", "pairwise")
    assert row["answer2"] == "I don't know." and row["score2"] is not None
    assert row["tokens"] > 0 and server.stats["chat_completions"] == 2
    result.stdout.fnmatch_lines(["1 judged test (as pytest counts them): 1 passed", "1 verdict read as a value",
                                 "verdicts: 2 fresh, 0 from cache; fresh calls: 2; report rows: 1;*"])


def test_junitxml_gets_scores(pytester, server):
    pytester.makepyfile(HEADER + judge_test("test_good", GOOD))
    run(pytester, server, "--junitxml=out.xml").assert_outcomes(passed=1)
    xml = (pytester.path / "out.xml").read_text()
    assert 'name="judge_score" value="5' in xml or 'name="judge_score" value="4' in xml
    assert 'name="judge_threshold" value="4.0"' in xml


def test_judge_errors_point_at_the_test_not_at_the_plugin(pytester, server):
    """A replay miss, a request refused before sending and a request the judge refuses each fail at the
    test's own line; no frame of the plugin shows (immediate mode)."""
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_replay_miss():
            assert_judge_score("never recorded?", "no.", 1)

        def test_refused_before_sending():
            assert_judge_score("q?", "a.", 1, scene="x", scene_desc="y")
    """))
    result = run(pytester, server, "--judge-cache=replay")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert "pytest_pai_judge/" not in text, text
    result.stdout.fnmatch_lines(["*test_judge_errors_point_at_the_test_not_at_the_plugin.py:5: ReplayMiss*",
                                 "*test_judge_errors_point_at_the_test_not_at_the_plugin.py:8: SceneError*"])


def test_an_error_while_preparing_a_request_is_a_report_row(pytester, server, tmp_path):
    """A local check the judge would refuse (an unknown model on the embedded server) or a failing
    pytest_judge_request hook fails its test and is still counted and reported."""
    pytester.makeconftest(textwrap.dedent("""
        def pytest_judge_request(request, item):
            if request.fields.get("question") == "hook fails?":
                raise RuntimeError("the hook refused")
    """))
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_hook_fails():
            assert_judge_score("hook fails?", "a.", 1)

        def test_fine():
            assert_judge_score("What is the capital of France?", "Paris.", 1)
    """))
    report = tmp_path / "r.csv"
    result = run(pytester, server, f"--judge-report={report}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the hook refused*",
                                 "2 judged tests (as pytest counts them): 1 passed, 1 failed",
                                 "2 judged assertions: 1 met, 1 error (no verdict)"])
    import pandas

    rows = pandas.read_csv(report)
    assert len(rows) == 2 and rows["error"].notna().sum() == 1


def test_slow_calls_do_not_fail_the_healthy_tests_after_them(pytester, make_judge_server):
    """Two calls that time out used to make every later test fail fast ("not sent: ..."): a timeout
    means the judge is there, only "cannot reach the judge" opens the breaker."""
    server = make_judge_server(faults=[Fault("slow question", "timeout")], fault_timeout_s=5.0)
    pytester.makepyfile(HEADER + textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("i", range(2))
        def test_slow(i):
            assert_judge_score(f"slow question {i}?", "a.", 1)

        @pytest.mark.parametrize("i", range(10))
        def test_healthy(i):
            assert_judge_score(f"What is the capital of France? ({i})", "Paris.", 1)
    """))
    result = run(pytester, server, "--judge-timeout=0.5", "--judge-retries=0")
    result.assert_outcomes(passed=10, failed=2)
    assert "not sent" not in result.stdout.str()


def test_a_judge_that_comes_back_is_used_again(pytester):
    """While the judge cannot be reached calls fail fast, but one call every 2 s is tried: once the
    judge is back, the tests after it pass."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on yet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        import time
        import pytest
        from pytest_pai_judge.server import LocalJudgeServer

        @pytest.mark.parametrize("i", range(3))
        def test_down(i):
            assert_judge_score(f"q{{i}}?", "a.", 1)

        def test_judge_comes_back():
            pytest.server = LocalJudgeServer(port={port}).__enter__()
            time.sleep(2.1)

        @pytest.mark.parametrize("i", range(3))
        def test_up(i):
            assert_judge_score(f"What is the capital of France? ({{i}})", "Paris.", 1)

        def test_stop():
            pytest.server.__exit__(None, None, None)
    """))
    result = pytester.runpytest("--judge-base-url", f"http://127.0.0.1:{port}/v1", "--judge-retries=0",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=3)
    assert result.stdout.str().count("not sent: the judge failed the last 2 calls") == 1


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_a_reply_cut_at_max_tokens_says_so(pytester, server, mode):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_cut():
            assert_judge_score("What is the capital of France?", "Paris.", 1, max_tokens=5)
    """))
    result = run(pytester, server, f"--judge-mode={mode}", "--judge-cache=off")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*UnreadableVerdict: unreadable single verdict: *; the reply was cut at max_tokens "
                                 "(finish_reason \"length\"): give the judge more room with max_tokens=*"])


def test_deferred_mode_settings_are_checked_in_immediate_mode_too(pytester):
    """A bad judge_batch_fallback in the ini fails today's immediate run, not the day the mode changes."""
    pytester.makeini("[pytest]\njudge_batch_fallback = sync\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*judge_batch_fallback must be error or immediate, got 'sync'*"])


def test_a_credential_in_a_request_is_refused_before_it_is_sent(pytester, server):
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_secret(judge):
            judge.custom([{"role": "user", "content": "rate [[1-5]]", "api_key": "sk-x"}])
    """))
    calls_before = server.stats.get("chat_completions", 0)
    result = run(pytester, server, "--judge-cache=off")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: refusing a request with a credential-like key*api_key*"])
    assert server.stats.get("chat_completions", 0) == calls_before, "nothing was sent"
