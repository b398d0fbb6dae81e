"""What keeps a 20,000-test batch run small: replies, held assertions and report rows in temp files.

The memory figure itself is a benchmark (``benchmarks/memory.py``); these tests pin the behaviour
the savings must not change: the batch calls' answers as dicts, and that what is read back from a
spool equals what went in.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_pai_judge import errors
from pytest_pai_judge.client import JudgeClient, JudgeReply
from pytest_pai_judge.deferred.held import Pending
from pytest_pai_judge.deferred.held_spool import PendingSpool, Spooled
from pytest_pai_judge.deferred.replies import Outcomes
from pytest_pai_judge.expectation import Expectation
from pytest_pai_judge.outcomes import TestOutcomes
from pytest_pai_judge.record_store import RecordStore
from pytest_pai_judge.records import JudgeRecord
from pytest_pai_judge.request import JudgeRequest
from pytest_pai_judge.server import LocalJudgeServer


def test_the_whole_batch_flow_over_real_http(tmp_path: Any) -> None:
    with LocalJudgeServer(data_dir=tmp_path / "server") as server:
        api = JudgeClient(server.url or "").batch_api
        line = json.dumps({"custom_id": "t#k", "body": JudgeRequest.single("q?", "a").body()}) + "\n"
        path = tmp_path / "in.jsonl"
        path.write_text(line, encoding="utf-8")
        with open(path, "rb") as data:
            uploaded = api.create_file("in.jsonl", data, "batch")
        assert api.file_content(uploaded["id"]) == line.encode()
        batch = api.create_batch(input_file_id=uploaded["id"], endpoint="/v1/chat/completions",
                                 completion_window="24h")
        assert [b["id"] for b in api.list_batches()] == [batch["id"]]


def test_outcomes_read_back_equal_replies_and_the_same_errors() -> None:
    outcomes = Outcomes()
    reply = JudgeReply("score [[4]] \ud800 é", "m", {"total_tokens": 3}, 0.25, ("more",), ("stop", "length"))
    error = errors.BatchError("gone")
    outcomes["a"] = reply
    outcomes["b"] = error
    outcomes.setdefault("b", errors.BatchError("other"))
    assert outcomes["a"] == reply and outcomes["b"] is error and len(outcomes) == 2 and outcomes.holds_reply("a")
    copy = Outcomes()
    copy.update(outcomes)
    assert dict(copy) == {"a": reply, "b": error}
    outcomes["a"] = error
    assert outcomes["a"] is error and not outcomes.holds_reply("a")
    del outcomes["a"]
    assert "a" not in outcomes and outcomes.pop("missing", None) is None
    outcomes.close()
    copy.close()


def pending(**params: Any) -> Pending:
    request = JudgeRequest.single("What is 2+2?", "4", ref_answer="4", **params)
    expectation = Expectation("score", [request], 3.0, "test_x.py::test_x[1]", "batch", {"rerun": "x"})
    return Pending(expectation, ["k" * 64], [["/t/test_x.py", 7, 5, "test_x", {"i": "1"}]])


def test_held_assertions_read_back_equal() -> None:
    spool = PendingSpool()
    entries = [pending(), pending(temperature=0.5)]
    kept = spool.keep(entries)
    assert isinstance(kept, Spooled) and list(kept) == entries and kept[1] == entries[1] and len(kept) == 2
    assert list(kept)[0] is not entries[0], "read back each time, not held"
    odd = [pending(logit_bias={1: 5})]  # an int key does not come back from JSON: kept in memory
    assert spool.keep(odd) is odd
    spool.close()


def row(i: int, **extra: Any) -> JudgeRecord:
    return JudgeRecord(nodeid=f"t.py::test[{i}]", run_mode="batch", kind="single", assertion="score", model="m",
                       question=f"q{i} \ud800 é", score=float(i % 5 + 1), criteria={"Accuracy": 4.0},
                       scores=[float(i % 5 + 1)], reasons="why " * 50, **extra)


def test_report_rows_read_back_equal_in_order_and_as_new_objects() -> None:
    made = [row(i) for i in range(50)]
    store = RecordStore(made[:10])
    store.extend(made[10:])
    assert len(store) == 50 and list(store) == made
    assert store[0] == made[0] and store[-1] == made[-1] and store[3:6] == made[3:6]
    first = store[0]
    first.score = 0.0  # a reader's change is its own
    assert store[0].score == made[0].score
    try:
        store[50]
    except IndexError:
        pass
    else:
        raise AssertionError("store[50] of 50 rows did not raise IndexError")
    store.close()
    assert len(store) == 0 and list(store) == []


def test_a_row_pickle_refuses_stays_in_memory_in_its_place() -> None:
    odd = row(1, human=lambda: "4")  # a value a hook put there
    store = RecordStore([row(0), odd, row(2)])
    assert store[1] is odd and [r.nodeid for r in store] == [row(i).nodeid for i in range(3)]


def test_rows_get_their_tests_outcomes_as_they_are_read() -> None:
    outcomes = TestOutcomes.__new__(TestOutcomes)
    outcomes.outcomes = {"t.py::test[1]": "failed"}
    store = RecordStore([row(0, outcome="skipped"), row(1)])
    filled = outcomes.fill(store)
    assert [r.outcome for r in filled] == ["skipped", "failed"] and filled[1].outcome == "failed"
    assert len(filled) == 2 and [r.outcome for r in filled[0:2]] == ["skipped", "failed"]
