"""Batch mode end to end: one PAI batch job per run, counted at a real local server.

Also: a failed line fails only its test; a batch that expires fails every waiting test; an
interrupted run (timeout or Ctrl-C) keeps the batch id and the next run collects the results
without a new job; a run waits only for remembered jobs holding requests it needs; the embedded
server's jobs are never promised to a later run; PAI's and OpenAI's status words; the 10 MB
split. Unit tests of the JSONL helpers come last.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest
from test_deferred import SUITE, junit_outcomes, run_inner, stats  # tests/ is on sys.path (rootdir conftest)

from pytest_pai_judge import errors, protocol
from pytest_pai_judge.client import JudgeReply
from pytest_pai_judge.deferred.batch_files import custom_id, encode_line, key_of, outcome_of_line, split_files
from pytest_pai_judge.deferred.ledger import BatchLedger
from pytest_pai_judge.request import JudgeRequest
from pytest_pai_judge.server import Fault, LocalJudgeServer

PARAMETRIZED = '''
import pytest
from pytest_pai_judge import assert_judge_score

@pytest.mark.parametrize("i", range({n}))
def test_judged(i):
    assert_judge_score(f"What is the capital of France? (case {{i}})", "Paris is the capital of France.", min=1)
'''


def ledger(pytester: pytest.Pytester) -> dict[str, dict]:
    path = pytester.path / ".pai_judge_cache" / "batches.json"
    return json.loads(path.read_text())["batches"] if path.exists() else {}


# --------------------------------------------------------------------------- one job


@pytest.mark.parametrize("dialect", ["pai", "openai"])
def test_one_batch_job_for_the_run(pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer],
                                   dialect: str) -> None:
    server = make_judge_server(latency_ms=30, status_dialect=dialect, faults=[Fault("BOOM", "500")])
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=12), test_boom='''
        from pytest_pai_judge import assert_judge_score

        def test_boom():
            assert_judge_score("BOOM: what is the capital of France?", "Paris is the capital of France.", min=1)
    ''')
    result, outcomes = run_inner(pytester, server, "batch")
    result.assert_outcomes(passed=12, failed=1)
    assert "ModelServiceFailed" in outcomes["test_boom"][1]  # the failed line fails only its own test
    counts = stats(server)
    # the BOOM line fails every time: it is retried in 3 follow-up jobs of one line, as an online call is retried
    assert counts.get("batches_created") == 4 and counts.get("files_created") == 4
    assert counts.get("batch_lines_judged") == 16 and counts.get("chat_completions", 0) == 0
    result.stdout.fnmatch_lines(["pai-judge: judging 13 deferred verdicts in 1 batch job…",
                                 "pai-judge: batch_* Succeeded: 12/13 completed, 1 failed, *s elapsed"
                                 if dialect == "pai" else
                                 "pai-judge: batch_* completed: 12/13 completed, 1 failed, *s elapsed"])
    assert ledger(pytester) == {}  # collected, so forgotten


def test_one_batch_job_under_xdist(pytester: pytest.Pytester,
                                   make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=30, faults=[Fault("BOOM", "500"), Fault("GARBLE", "unreadable")])
    pytester.makepyfile(test_suite=SUITE)
    _, single = run_inner(pytester, server, "batch", "--judge-retries=0")
    assert stats(server).get("batches_created") == 1
    result, spread = run_inner(pytester, server, "batch", "-n", "2", "--judge-retries=0", subprocess=True)
    assert stats(server).get("batches_created") == 2  # the controller submitted one job for both workers
    assert spread == single
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_identical_requests_are_sent_once(pytester: pytest.Pytester,
                                          make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=10)
    pytester.makepyfile(test_same='''
        import pytest
        from pytest_pai_judge import assert_judge_score

        @pytest.mark.parametrize("i", range(3))
        def test_same(i):
            assert_judge_score("What is the capital of France?", "bananas", min=4)
    ''')
    result, outcomes = run_inner(pytester, server, "batch")
    result.assert_outcomes(failed=3)
    assert stats(server).get("batch_lines_judged") == 1
    assert len({message for _, message in outcomes.values()}) == 1


# --------------------------------------------------------------------------- failures are never passes


def test_expired_batch_fails_every_waiting_test(pytester: pytest.Pytester,
                                                make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=1500, batch_window_s=0.3)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=3))
    result, outcomes = run_inner(pytester, server, "batch")
    result.assert_outcomes(failed=3)
    for outcome, message in outcomes.values():
        assert outcome == "failed" and "expired" in message
    assert ledger(pytester) == {}  # nothing left to collect


def test_upload_refused_fails_every_waiting_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                 make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    monkeypatch.delenv("JUDGE_MODEL_TOKEN", raising=False)
    server = make_judge_server(token="the-right-token")
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=2))
    result, outcomes = run_inner(pytester, server, "batch")
    result.assert_outcomes(failed=2)
    assert all("InvalidToken" in message for _, message in outcomes.values())


# --------------------------------------------------------------------------- interrupted runs lose nothing


def test_timeout_keeps_the_batch_and_the_next_run_collects_it(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=1200)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=3))
    result, outcomes = run_inner(pytester, server, "batch", "--judge-batch-timeout=0.3")
    result.assert_outcomes(failed=3)
    (batch_id,) = ledger(pytester)
    for _, message in outcomes.values():
        assert "VerdictUnavailable" in message and "--judge-batch-resume batch_<id>" in message  # ids masked
        assert "the job keeps running on the server and its id stays in" in message
    again, _ = run_inner(pytester, server, "batch", name="again")
    again.assert_outcomes(passed=3)
    again.stdout.fnmatch_lines([f"pai-judge: collecting 3 verdicts from {batch_id} (an earlier run's batch)…"])
    assert stats(server).get("batches_created") == 1  # collected, not paid for again
    # The same when the earlier batch has already finished by the time the next run starts.
    (pytester.path / "test_many.py").write_text(PARAMETRIZED.format(n=3).replace("France?", "France ?"))
    run_inner(pytester, server, "batch", "--judge-batch-timeout=0.3", name="third")
    (second_id,) = ledger(pytester)
    time.sleep(1.5)
    fourth, _ = run_inner(pytester, server, "batch", name="fourth")
    fourth.assert_outcomes(passed=3)
    fourth.stdout.fnmatch_lines([f"pai-judge: collecting 3 verdicts from {second_id} (an earlier run's batch)…"])
    assert stats(server).get("batches_created") == 2
    assert ledger(pytester) == {}


def test_resume_by_id(pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=600)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=2))
    run_inner(pytester, server, "batch", "--judge-batch-timeout=0.2")
    (batch_id,) = ledger(pytester)
    (pytester.path / ".pai_judge_cache" / "batches.json").unlink()  # e.g. a fresh CI checkout
    again, _ = run_inner(pytester, server, "batch", f"--judge-batch-resume={batch_id}", name="again")
    again.assert_outcomes(passed=2)
    assert stats(server).get("batches_created") == 1


def test_resume_of_an_unknown_id_submits_nothing(pytester: pytest.Pytester,
                                                  make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=2))
    result, outcomes = run_inner(pytester, server, "batch", "--judge-batch-resume=batch_typo")
    result.assert_outcomes(failed=2)
    assert all("does not know this batch" in message for _, message in outcomes.values())
    assert all("BatchError: BatchError" not in message for _, message in outcomes.values())  # said once
    assert not stats(server).get("batches_created")
    usage = pytester.runpytest("--judge-base-url", server.url or "", "--judge-batch-resume=batch_x")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    usage.stderr.fnmatch_lines(["*--judge-batch-resume collects a batch job's results: it needs --judge-mode=batch*"])


def test_ctrl_c_while_waiting(pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=2000)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=3))
    argv = [sys.executable, "-m", "pytest", "-p", "no:randomly", "--judge-base-url", server.url or "",
            "--judge-mode=batch", "--judge-cache=off", "--junitxml=interrupted.xml"]
    proc = subprocess.Popen(argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not ledger(pytester) and time.monotonic() < deadline:  # the job exists and is remembered
        time.sleep(0.05)
    time.sleep(0.2)  # now polling
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "3 failed" in output and "passed" not in output.splitlines()[-1]
    assert output.count("the run was interrupted (Ctrl-C) while waiting for batch") == 3
    assert output.count("the server keeps running it and its id stays in") == 3
    (batch_id,) = ledger(pytester)
    assert batch_id in output
    junit = (pytester.path / "interrupted.xml").read_text()
    assert 'failures="3"' in junit
    again, _ = run_inner(pytester, server, "batch", name="again")
    again.assert_outcomes(passed=3)
    assert stats(server).get("batches_created") == 1


# --------------------------------------------------------------------------- a run waits only for what it needs

ONE_QUESTION = '''
from pytest_pai_judge import assert_judge_score

def test_{name}():
    assert_judge_score("{question}", "{answer}", min=1)
'''


def server_batch(server: LocalJudgeServer, batch_id: str) -> dict:
    """A batch as the server reports it over HTTP (not through the plugin under test)."""
    with urllib.request.urlopen(f"{server.url}/batches/{batch_id}") as response:  # type: ignore[str-bytes-safe]
        return json.load(response)


def leave_a_job_running(pytester: pytest.Pytester, server: LocalJudgeServer) -> str:
    """A first run times out on a job whose SLOW line the server holds; returns the remembered id."""
    pytester.makepyfile(test_old=PARAMETRIZED.format(n=3) + ONE_QUESTION.format(
        name="slow", question="SLOW: what is the capital of France?", answer="Paris."))
    first, _ = run_inner(pytester, server, "batch", "--judge-cache=use", "--judge-batch-timeout=0.5", name="first")
    first.assert_outcomes(failed=4)
    (old_id,) = ledger(pytester)
    (pytester.path / "test_old.py").unlink()
    return old_id


def test_a_remembered_job_the_run_does_not_need_is_not_waited_for(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=10, faults=[Fault("SLOW", "timeout")], fault_timeout_s=60)
    old_id = leave_a_job_running(pytester, server)
    pytester.makepyfile(test_new=PARAMETRIZED.format(n=2).replace("France", "Italy").replace("Paris", "Rome"))
    second, _ = run_inner(pytester, server, "batch", "--judge-cache=use", name="second")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines([f"pai-judge: not waiting for {old_id} (an earlier run's batch, Running: 4 requests, "
                                 "none needed by this run); it stays remembered for a later run to collect",
                                 "pai-judge: judging 2 deferred verdicts in 1 batch job…",
                                 "pai-judge: batch_* Succeeded: 2/2 completed, 0 failed, *s elapsed"])
    assert "2 batch jobs" not in second.stdout.str()
    assert server_batch(server, old_id)["status"] == "Running"  # the second run ended long before the old job
    assert set(ledger(pytester)) == {old_id}  # still there for a run that needs it
    assert stats(server).get("batches_created") == 2


def test_a_run_waits_for_the_remembered_job_it_needs_and_counts_only_its_requests(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=10, faults=[Fault("SLOW", "timeout")], fault_timeout_s=6)
    old_id = leave_a_job_running(pytester, server)
    pytester.makepyfile(test_mixed=PARAMETRIZED.format(n=1) + ONE_QUESTION.format(
        name="spain", question="What is the capital of Spain?", answer="Madrid is the capital of Spain."))
    second, _ = run_inner(pytester, server, "batch", "--judge-cache=use", name="second")
    second.assert_outcomes(passed=2)
    # 1 request of the old job's 4 (its SLOW line fails, but no test of this run needs it) + 1 new one
    second.stdout.fnmatch_lines(["pai-judge: judging 1 deferred verdict in 1 batch job; collecting 1 verdict from "
                                 f"{old_id} (an earlier run's batch)…",
                                 "pai-judge: 2 batch jobs *Succeeded: 2/2 completed, 0 failed, *s elapsed"])
    assert ledger(pytester) == {} and stats(server).get("batches_created") == 2
    # The old job's lines no test of that run needed went to the cache: no new job.
    (pytester.path / "test_mixed.py").unlink()
    pytester.makepyfile(test_old=PARAMETRIZED.format(n=3))
    third, _ = run_inner(pytester, server, "batch", "--judge-cache=use", name="third")
    third.assert_outcomes(passed=3)
    assert stats(server).get("batches_created") == 2


# --------------------------------------------------------------------------- the embedded server forgets its jobs

SLOW_EMBEDDED_SERVER = '''
import pytest_pai_judge.server as server

_start = server.LocalJudgeServer.__init__


def _slow(self, config=None, **overrides):  # the embedded server, but each judgement takes 1.5 s
    overrides.setdefault("latency_ms", 1500)
    _start(self, config, **overrides)


server.LocalJudgeServer.__init__ = _slow
'''


def test_embedded_server_promises_no_resume(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SLOW_EMBEDDED_SERVER)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=2))
    argv = ["--judge-mode=batch", "--judge-cache=off", "-p", "no:randomly", "--junitxml=embedded.xml"]
    result = pytester.runpytest_subprocess(*argv, "--judge-batch-timeout=0.3")  # own process: the patch stays there
    result.assert_outcomes(failed=2)
    for _, message in junit_outcomes(pytester.path / "embedded.xml").values():
        assert "the embedded local server stops with this run, so the job and its results are lost" in message
        assert "(--judge-base-url)" in message and "--judge-batch-resume" not in message
        assert "VerdictUnavailable" in message and "0 of its 2 lines done" in message  # no partial results
    assert ledger(pytester) == {}  # nothing a later run could collect
    resumed = pytester.runpytest_subprocess(*argv, "--judge-batch-resume=batch_x")
    assert resumed.ret == pytest.ExitCode.USAGE_ERROR  # refused before anything runs
    resumed.stderr.fnmatch_lines(["*--judge-batch-resume needs --judge-base-url*the embedded local server keeps "
                                  "batches only while its run lasts*"])


# --------------------------------------------------------------------------- the 10 MB split


def test_split_only_past_the_file_limit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                        make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=10)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=5))
    line = len(encode_line(custom_id("test_many.py::test_judged[0]", "0" * 64),
                           JudgeRequest.single("What is the capital of France? (case 0)",
                                               "Paris is the capital of France.")))
    monkeypatch.setattr(protocol, "MAX_BATCH_FILE_BYTES", 2 * line + 10)  # two lines per file
    result, _ = run_inner(pytester, server, "batch")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["pai-judge: judging 5 deferred verdicts in 3 batch jobs (the input is over the "
                                 "* file limit)…"])
    assert stats(server).get("batches_created") == 3


# --------------------------------------------------------------------------- units


def test_custom_id_names_the_test_and_the_request() -> None:
    key = "ab" * 32
    assert custom_id("tests/test_x.py::test_y[a#b]", key) == f"tests/test_x.py::test_y[a#b]#{key}"
    assert key_of(custom_id("tests/test_x.py::test_y[a#b]", key)) == key
    long = custom_id("t.py::test_" + "x" * 500, key)
    assert len(long) < 260 and key_of(long) == key


def test_split_files() -> None:
    lines = [(str(i), b"x" * 40 + b"\n") for i in range(5)]
    files, too_big = split_files(lines, limit=100)
    assert [[k for k, _ in f] for f in files] == [["0", "1"], ["2", "3"], ["4"]] and too_big == []
    files, too_big = split_files([lines[0], ("big", b"y" * 200)], limit=100)
    assert files == [[lines[0]]] and too_big == [("big", 200)]
    assert len(split_files(lines)[0]) == 1  # the real limit: 10 MB


def test_outcome_of_output_and_error_lines() -> None:
    ok = {"custom_id": "t#k", "error": None, "response": {"status_code": 200, "body": {
        "model": "pai-judge", "choices": [{"message": {"content": "score [[4]]"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}}}
    reply = outcome_of_line(ok)
    assert isinstance(reply, JudgeReply) and reply.raw == "score [[4]]" and reply.usage["total_tokens"] == 5
    failed = {"custom_id": "t#k", "response": {"status_code": 500, "body": {"error": {
        "code": "ModelServiceFailed", "message": "Request_judge_model, load error"}}},
        "error": {"code": "ModelServiceFailed", "message": "Request_judge_model, load error"}}
    error = outcome_of_line(failed)
    assert isinstance(error, errors.ModelServiceFailed) and error.status == 500
    online = errors.from_code(500, "ModelServiceFailed", "Request_judge_model, load error")
    assert str(error) == str(online)  # word for word what the online call raises
    expired = {"custom_id": "t#k", "response": None, "error": {"code": "batch_expired", "message": "too late"}}
    late = outcome_of_line(expired)
    assert isinstance(late, errors.BatchError) and "too late" in str(late)


def test_ledger_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    book = BatchLedger(tmp_path / "cache")
    request = JudgeRequest.single("q?", "a.")
    book.remember("batch_1", "http://h/v1", {"k1": request})
    book.remember("batch_2", "http://other/v1", {})
    assert set(book.entries("http://h/v1")) == {"batch_1"}
    assert book.entries("http://h/v1")["batch_1"]["requests"]["k1"]["fields"] == {"question": "q?", "answer": "a."}
    book.forget("batch_1")
    assert book.entries("http://h/v1") == {} and set(book.entries("http://other/v1")) == {"batch_2"}


def test_ledger_is_one_json_object_one_job_per_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Any JSON reader reads it; forgetting a job copies the others' lines as they are; a ledger of the
    old one-line layout is still read; a job's line cut short makes the ledger unreadable (moved aside)."""
    book = BatchLedger(tmp_path)
    requests = {f"k{i}": JudgeRequest.single(f"q{i} é?", "a\nb") for i in range(3)}
    book.remember("batch_1", "h", requests)
    book.remember("batch_2", "h", {"k9": JudgeRequest.single("q9", "a9")})
    book.remember("batch_3", "h", {})
    text = book.path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 5 and set(json.loads(text)["batches"]) == {"batch_1", "batch_2", "batch_3"}
    book.forget("batch_1")
    data = json.loads(book.path.read_text(encoding="utf-8"))
    assert set(data["batches"]) == {"batch_2", "batch_3"} and set(data["collected"]) == {"batch_1"}
    assert book.entries("h")["batch_2"]["requests"]["k9"]["fields"] == {"question": "q9", "answer": "a9"}
    book.forget("batch_2")
    assert set(book.entries("h")) == {"batch_3"} and set(book.collected()) == {"batch_1", "batch_2"}
    book.path.write_text(json.dumps({"version": 1, "batches": {"old": {"identity": "h", "requests": {}}},
                                     "collected": {"batch_1": int(time.time())}}))  # an earlier plugin's ledger
    assert set(book.entries("h")) == {"old"} and set(book.collected()) == {"batch_1"}
    book.remember("batch_4", "h", requests)
    assert set(book.entries("h")) == {"old", "batch_4"} and len(book.entries("h")["batch_4"]["requests"]) == 3
    lines = book.path.read_text(encoding="utf-8").splitlines(keepends=True)
    book.path.write_text("".join(lines[:-1])[:-20], encoding="utf-8")  # the last job's line cut short
    assert book.entries("h") == {} and book.problem is not None and "could not be read (not JSON" in book.problem
    assert not book.path.exists() and list(tmp_path.glob("batches.json.unreadable-*"))


def test_ctrl_c_is_held_while_a_job_is_created_and_remembered() -> None:
    import os

    from pytest_pai_judge.deferred.ctrl_c import hold_ctrl_c

    steps = []
    with pytest.raises(KeyboardInterrupt), hold_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        steps.append("remembered")  # the block finishes: the job id is in the ledger
    assert steps == ["remembered"]
    with pytest.raises(KeyboardInterrupt), hold_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C is not held
        time.sleep(0.05)
        steps.append("not reached")
    assert steps == ["remembered"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("damage", ["corrupt", "lost"])
def test_a_job_the_ledger_does_not_know_is_found_on_the_server(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer], damage: str) -> None:
    """A ledger written when the job was created but cut short, or never written (a SIGKILL between
    creating the job and remembering it): the next run finds the job by its metadata, pays nothing."""
    server = make_judge_server(latency_ms=1200)
    pytester.makepyfile(test_many=PARAMETRIZED.format(n=3))
    first, _ = run_inner(pytester, server, "batch", "--judge-batch-timeout=0.3")
    first.assert_outcomes(failed=3)
    (batch_id,) = ledger(pytester)
    path = pytester.path / ".pai_judge_cache" / "batches.json"
    if damage == "corrupt":
        path.write_text(path.read_text()[:40])  # a write cut short by a crash
    else:
        path.unlink()
    again, _ = run_inner(pytester, server, "batch", name="again")
    again.assert_outcomes(passed=3)
    again.stdout.fnmatch_lines([f"pai-judge: collecting 3 verdicts from {batch_id} (an earlier run's batch)…"])
    assert stats(server).get("batches_created") == 1, "found, not paid for again"
    if damage == "corrupt":
        again.stdout.fnmatch_lines(["*the batch ledger * could not be read (not JSON*; moved to batches.json.unreadable-*"
                                    "found 1 of this cache's batch jobs on the judge service by their metadata*"])
    third, _ = run_inner(pytester, server, "batch", name="third")  # --judge-cache=off: judged again
    third.assert_outcomes(passed=3)
    assert "collecting" not in third.stdout.str(), "a collected job is not collected twice"


def test_a_batch_line_that_fails_once_is_retried_like_an_online_call(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    """A transient 500 on one line: immediate and deferred mode retry the call (the SDK), batch mode
    judges that line again in a follow-up job of just that line; all three pass."""
    pytester.makepyfile(test_flaky=PARAMETRIZED.format(n=3).replace("France?", "France? FLAKY"))
    for mode in ("immediate", "deferred", "batch"):
        server = make_judge_server(latency_ms=10, faults=[Fault("FLAKY", "500once")])
        result, _ = run_inner(pytester, server, mode, name=mode)
        result.assert_outcomes(passed=3)
        if mode == "batch":
            assert stats(server).get("batches_created") == 2, "the run's job, then one follow-up job"
            result.stdout.fnmatch_lines(["*3 batch lines failed with a retryable error; judging them again in a "
                                         "follow-up job (retry 1 of 3)…*"])
