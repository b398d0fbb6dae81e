"""Agreement with human labels through the plugin: real runs against a local judge server."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

LABELS = Path(__file__).resolve().parents[1] / "examples" / "labels.jsonl"


def test_labels_equal_to_the_judges_own_scores_give_kappa_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(textwrap.dedent(f"""
        import json

        def test_self(judge, tmp_path):
            rows = [json.loads(line) for line in open({str(LABELS)!r}, encoding="utf-8")]
            path = tmp_path / "self.jsonl"
            with open(path, "w", encoding="utf-8") as f:
                for r in rows:
                    v = judge.score(r["question"], r["answer"], ref_answer=r["ref_answer"], temperature=0)
                    f.write(json.dumps({{**r, "human_score": v.score}}, ensure_ascii=False) + "\\n")
            agreement = judge.agreement(path, id="id", threshold=4, temperature=0)
            assert agreement["kappa"].value == 1 and agreement["exact"].value == 1, agreement.text()
            assert agreement["tpr"].value == 1 and agreement["tnr"].value == 1
            assert agreement.worst() == []
    """))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_judge_that_disagrees_fails_with_the_figures_and_the_worst_rows(pytester: pytest.Pytester) -> None:
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        from pytest_pai_judge import assert_judge_agrees

        def test_agrees():
            assert_judge_agrees("labels.jsonl", id="id", min_kappa=0.9, min_within_one=0.95, temperature=0)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*JudgeAssertionError: the judge disagrees with the labels: quadratic-weighted kappa 0.* is below "
        "min_kappa=0.9; within-one agreement 0.* is below min_within_one=0.95 (24 labelled rows)*",
        "*quadratic-weighted kappa: 0.* (n=24)*",
        "*worst disagreements (case: human vs judge):*",
        "*capital-fr-wrong: human 1 vs judge *",
    ])


def test_pairwise_labels(pytester: pytest.Pytester) -> None:
    rows = [
        {"q": "What is the capital of France?", "a1": "Paris is the capital of France.", "a2": "Bananas.",
         "ref": "Paris is the capital of France.", "winner": "1"},
        {"q": "What is the capital of France?", "a1": "Lyon.", "a2": "Paris is the capital of France.",
         "ref": "Paris is the capital of France.", "winner": "2"},
        {"q": "What is the capital of France?", "a1": "Paris.", "a2": "Paris.",
         "ref": "Paris is the capital of France.", "winner": "tie"},
        {"q": "中国的首都是哪里?", "a1": "中国的首都是北京。", "a2": "上海。", "ref": "中国的首都是北京。", "winner": "2"},
    ]
    (pytester.path / "pairs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                               encoding="utf-8")
    pytester.makepyfile(textwrap.dedent("""
        def test_pairs(judge):
            a = judge.agreement("pairs.jsonl", question="q", answer1="a1", answer2="a2", human_winner="winner",
                                ref_answer="ref", temperature=0)
            assert a.kind == "pairwise" and a["agreement"].n == 4
            assert a["agreement"].value == 0.75, a.text()  # the last label is wrong on purpose
            assert a["position_consistency"].value == 1
            assert [r.case for r in a.worst()] == ["3"]
    """))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_the_same_figures_in_every_mode(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                       mode: str) -> None:
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        import json, os
        from pytest_pai_judge import assert_judge_agrees

        def test_agrees():
            a = assert_judge_agrees("labels.jsonl", id="id", threshold=4, min_spearman=0.1, temperature=0)
            with open(os.environ["FIGURES"], "w") as f:
                json.dump({k: v.to_dict() for k, v in a.figures.items()}, f)
    """))
    figures = {}
    for run in ("immediate", mode):
        written = pytester.path / f"{run}.json"
        monkeypatch.setenv("FIGURES", str(written))
        pytester.runpytest("-p", "no:cacheprovider", f"--judge-mode={run}", "--judge-cache=off").assert_outcomes(
            passed=1)
        figures[run] = json.loads(written.read_text())
    assert figures[mode] == figures["immediate"]
    assert 0 < figures[mode]["kappa"]["value"] < 0.6  # the lexical stand-in agrees only partly
