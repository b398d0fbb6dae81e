"""report/drift.py: score then → now per case and per scene, case keys, drops, a baseline sharing no case."""

from __future__ import annotations

import pandas as pd
import pytest
from report_records import frame, rec

from pytest_pai_judge.report.drift import compute_drift, drops_beyond, no_shared_cases
from pytest_pai_judge.report.table import records_to_frame


def test_drift_per_case_and_per_scene() -> None:
    then = frame([("a", "q", 8, "s1"), ("b", "q", 6, "s1"), ("c", "q", 5, "s2"), ("gone", "q", 9, "s2")])
    now = frame([("a", "q", 5, "s1"), ("b", "q", 7, "s1"), ("c", "q", 5, "s2"), ("new", "q", 3, "s2")])
    per_case, per_scene = compute_drift(then, now)
    by_key = per_case.set_index("key")
    assert by_key.loc["a", "change"] == -3 and by_key.loc["a", "status"] == "down"
    assert by_key.loc["b", "change"] == 1 and by_key.loc["b", "status"] == "up"
    assert by_key.loc["c", "status"] == "same"
    assert by_key.loc["gone", "status"] == "not run" and pd.isna(by_key.loc["gone", "change"])
    ran, _ = compute_drift(then, now, ran={"gone"})
    assert ran.set_index("key").loc["gone", "status"] == "gone", "its test ran without this case"
    assert by_key.loc["new", "status"] == "new" and by_key.loc["new", "score_now"] == 3
    assert per_case["key"].tolist()[0] == "a", "biggest drop first"
    scenes = per_scene.set_index("scene")
    assert scenes.loc["s1", "cases"] == 2 and scenes.loc["s1", "mean_change"] == pytest.approx(-1.0)
    assert scenes.loc["s1", "mean_then"] == pytest.approx(7.0) and scenes.loc["s1", "mean_now"] == pytest.approx(6.0)
    assert scenes.loc["s2", "cases"] == 1 and scenes.loc["s2", "mean_change"] == 0
    assert per_scene["scene"].tolist() == ["s1", "s2"], "most negative mean change first"


def test_drift_key_splits_multi_assert_tests_by_question_then_order() -> None:
    then = frame([("t", "q1", 8, None), ("t", "q2", 6, None), ("t", "q2", 9, None), ("solo", "x", 5, None)])
    now = frame([("t", "q2", 6, None), ("t", "q1", 7, None), ("t", "q2", 4, None), ("solo", "renamed", 5, None)])
    per_case, per_scene = compute_drift(then, now)
    changes = dict(zip(per_case["key"], per_case["change"]))
    assert changes == {"t [q1]": -1, "t [q2]": 0, "t [q2] #2": -5, "solo": 0}
    assert per_scene["scene"].tolist() == ["(no scene)"]


def test_a_test_that_gains_an_assertion_keeps_its_first_one_comparable() -> None:
    then = frame([("t", "q1", 8, None)])
    now = frame([("t", "q1", 6, None), ("t", "q2", 9, None)])
    per_case, _ = compute_drift(then, now)
    assert dict(zip(per_case["key"], per_case["status"])) == {"t [q1]": "down", "t [q2]": "new"}


def test_unscored_and_error_rows_are_not_drops() -> None:
    then = records_to_frame([rec("a", 9), rec("p", 7)])
    now = records_to_frame([rec("a", None, error="boom"), rec("p", None, kind="pairwise", winner="2")])
    per_case, per_scene = compute_drift(then, now)
    assert set(per_case["status"]) == {"unscored"} and per_scene.empty
    assert drops_beyond(per_case, 0).empty


def test_max_drop_is_strictly_more_than() -> None:
    per_case, _ = compute_drift(frame([("a", "q", 8, None), ("b", "q", 8, None)]),
                                frame([("a", "q", 7, None), ("b", "q", 6.5, None)]))
    assert drops_beyond(per_case, 1.0)["key"].tolist() == ["b"]
    assert drops_beyond(per_case, 1.5).empty
    assert drops_beyond(per_case, 0.5)["key"].tolist() == ["b", "a"]


def test_drift_of_empty_runs() -> None:
    per_case, per_scene = compute_drift(records_to_frame([]), records_to_frame([]))
    assert per_case.empty and per_scene.empty


# --------------------------------------------------------------------------- a baseline sharing no case


def test_no_shared_cases_warns_only_when_nothing_was_compared() -> None:
    then = frame([("other/t.py::a", "q", 8, None), ("other/t.py::b", "q", 6, None)])
    now = frame([("t.py::a", "q", 8, None), ("t.py::b", "q", 6, None), ("t.py::c", "q", 6, None)])
    per_case, _ = compute_drift(then, now)
    assert no_shared_cases(per_case) == (
        "the baseline shares no case with this run (2 in the baseline, 3 in this run), so nothing was compared. "
        "Cases match by test node id, which is relative to the rootdir: was the baseline written by these "
        "tests, run from the same rootdir?")
    partly, _ = compute_drift(frame([("t.py::a", "q", 8, None), ("gone", "q", 1, None)]), now)
    assert no_shared_cases(partly) is None
    unscored, _ = compute_drift(records_to_frame([rec("a", 9)]), records_to_frame([rec("a", None, error="x")]))
    assert no_shared_cases(unscored) is None, "a case in both runs was matched, even without a score"


def test_per_scene_means_keep_each_scale_apart() -> None:
    """A /10 and a /5 case of one scene were averaged as raw points; now each scale is a row of its own."""
    import pandas as pd

    from pytest_pai_judge.report.drift import compute_drift

    def frame(five: float, ten: float) -> pd.DataFrame:
        return pd.DataFrame([
            {"nodeid": "t.py::test_five", "question": "q5", "model": "m", "scene": "s", "score": five, "max_score": 5},
            {"nodeid": "t.py::test_ten", "question": "q10", "model": "m", "scene": "s", "score": ten, "max_score": 10},
        ])

    per_case, per_scene = compute_drift(frame(4, 8), frame(3, 9))
    rows = {r["scene"]: r for r in per_scene.to_dict(orient="records")}
    assert set(rows) == {"s", "s (/10)"}
    assert (rows["s"]["mean_then"], rows["s"]["mean_now"]) == (4, 3)
    assert (rows["s (/10)"]["mean_then"], rows["s (/10)"]["mean_now"]) == (8, 9)
    assert sorted(per_case["max_score"].tolist()) == [5, 10]
