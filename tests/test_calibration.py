"""Agreement with human labels through the plugin: real runs against a local judge server."""

from __future__ import annotations

import json
import re
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


def _checks(pytester: pytest.Pytester, report: str) -> list[dict]:
    return json.loads((pytester.path / report.replace(".json", ".calibration.json")).read_text("utf-8"))["checks"]


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_the_same_figures_in_every_mode(pytester: pytest.Pytester, make_judge_server, mode: str) -> None:
    """Held like any assertion: deferred mode judges the rows concurrently, batch mode in the run's one job."""
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        from pytest_pai_judge import assert_judge_agrees

        def test_agrees():
            assert_judge_agrees("labels.jsonl", id="id", threshold=4, min_spearman=0.1, temperature=0)

        def test_fails():
            assert_judge_agrees("labels.jsonl", id="id", min_kappa=0.9, temperature=0)
    """))
    server = make_judge_server()
    figures = {}
    for run in ("immediate", mode):
        result = pytester.runpytest("-p", "no:cacheprovider", f"--judge-mode={run}", "--judge-cache=off",
                                    "--judge-base-url", server.url, f"--judge-report={run}.json")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*the judge disagrees with the labels: quadratic-weighted kappa 0.* is below "
                                     "min_kappa=0.9 (24 labelled rows)*"])
        checks = sorted(_checks(pytester, f"{run}.json"), key=lambda c: c["nodeid"])
        assert [c["nodeid"] for c in checks] == ["test_the_same_figures_in_every_mode.py::test_agrees",
                                                 "test_the_same_figures_in_every_mode.py::test_fails"]
        figures[run] = checks[0]["figures"]
        assert checks[1]["misses"] and not checks[0]["misses"]
    assert figures[mode] == figures["immediate"]
    assert 0 < figures[mode]["kappa"]["value"] < 0.6  # the lexical stand-in agrees only partly
    if mode == "batch":
        from openai import OpenAI

        batches = OpenAI(base_url=server.url, api_key="unused").batches.list().data
        # every row in the run's one job; the two sets ask the same 24 requests, sent once
        assert len(batches) == 1 and batches[0].request_counts.total == 24


def test_samples_judge_each_row_several_times_the_same_in_batch_mode(pytester: pytest.Pytester) -> None:
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        from pytest_pai_judge import assert_judge_agrees

        def test_sampled():
            assert_judge_agrees("labels.jsonl", id="id", samples=3, temperature=0.9, min_within_one=0.1)
    """))
    checks, rows = {}, {}
    for run in ("immediate", "batch"):
        pytester.runpytest("-p", "no:cacheprovider", f"--judge-mode={run}", "--judge-cache=off",
                           f"--judge-report={run}.json").assert_outcomes(passed=1)
        checks[run], = _checks(pytester, f"{run}.json")
        rows[run] = json.loads((pytester.path / f"{run}.json").read_text("utf-8"))
    assert checks["batch"]["figures"] == checks["immediate"]["figures"]
    assert checks["batch"]["samples"] == 3
    assert {r["samples"] for r in rows["batch"]} == {3} and len(rows["batch"]) == 24
    assert all(r["assertion"] == "agrees" and r["human"] is not None and r["case"] for r in rows["batch"])
    spread = [r for r in rows["batch"] if len(set(r["scores"])) > 1]
    assert spread, "at temperature 0.9 some rows' samples differ"
    for r in spread:  # a row's judge score is its samples' median
        assert r["score"] == sorted(r["scores"])[1]


def test_agreement_crosses_xdist_workers(pytester: pytest.Pytester) -> None:
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        import pytest
        from pytest_pai_judge import assert_judge_agrees

        @pytest.mark.parametrize("n", [1, 2])
        def test_agrees(n):
            assert_judge_agrees("labels.jsonl", id="id", min_spearman=0.1, temperature=0)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2", "--judge-mode=batch", "--judge-cache=off",
                                "--judge-report=r.json", "--judge-report=r.md")
    result.assert_outcomes(passed=2)
    assert len(_checks(pytester, "r.json")) == 2
    result.stdout.fnmatch_lines(["*judge agreement with 24 labelled rows (*test_agrees[[]1]): kappa 0.*"])
    page = (pytester.path / "r.md").read_text("utf-8")
    assert page.count("### Agreement with 24 human scores") == 2


def test_the_reports_calibration_section(pytester: pytest.Pytester) -> None:
    """HTML: figures, an SVG heatmap whose cells are the confusion counts, the disagreements; Markdown likewise;
    the figures in ``<stem>.calibration.json``; the probes beside them."""
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        from pytest_pai_judge import assert_judge_agrees, assert_judge_unbiased

        def test_agrees():
            assert_judge_agrees("labels.jsonl", id="id", threshold=4, min_kappa=0.2, temperature=0)

        def test_probes():
            assert_judge_unbiased("What is 2+2?", "4", temperature=0.2)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-cache=off", "--judge-report=r.html",
                                "--judge-report=r.md", "--judge-report=r.csv")
    result.assert_outcomes(passed=2)
    checks = json.loads((pytester.path / "r.calibration.json").read_text("utf-8"))["checks"]
    agreement = next(c for c in checks if c["check"] == "agreement")
    probes = next(c for c in checks if c["check"] == "probes")
    page = (pytester.path / "r.html").read_text("utf-8")
    section = page[page.index("<section id='calibration'>"):]
    section = section[:section.index("</section>")]
    heat = section[section.index("<svg"):section.index("</svg>")]
    cells = {(h, j): int(n) for h, j, n in re.findall(r"<title>human (\S+), judge (\S+): (\d+) rows</title>", heat)}
    assert len(cells) == 25 and sum(cells.values()) == 24  # a 5 x 5 grid, every labelled row in one cell
    assert {(str(h), str(j)): n for h, j, n in agreement["confusion"]} == {k: n for k, n in cells.items() if n}
    assert "held: min_kappa=0.2" in section and "quadratic-weighted kappa" in section
    assert "Disagreements, worst first (10 shown)" in section and "capital-fr-wrong" in section
    assert "Bias probes" in section and "flip rate" in section
    markdown = (pytester.path / "r.md").read_text("utf-8")
    assert "## Judge calibration" in markdown and "| human \\ judge | 1 | 2 | 3 | 4 | 5 |" in markdown
    kappa = agreement["figures"]["kappa"]
    assert f"| quadratic-weighted kappa | {kappa['value']:.2f} | [{kappa['low']:.2f}, {kappa['high']:.2f}] | 24 |" \
        in markdown
    assert set(probes["effects"]) == {"position", "verbosity", "consistency"}


def test_bad_labels_and_bounds_are_refused_before_anything_is_judged(pytester: pytest.Pytester) -> None:
    rows = [{"question": "q?", "answer": "a", "human_score": 9}]
    (pytester.path / "ten.jsonl").write_text(json.dumps(rows) + "\n", encoding="utf-8")
    (pytester.path / "word.jsonl").write_text(json.dumps({**rows[0], "human_score": "good"}) + "\n",
                                             encoding="utf-8")
    (pytester.path / "five.jsonl").write_text(json.dumps({**rows[0], "human_score": 5}) + "\n", encoding="utf-8")
    pytester.makepyfile(textwrap.dedent("""
        import re
        import pytest
        from pytest_pai_judge import assert_judge_agrees

        @pytest.mark.parametrize("data, kwargs, message", [
            ("ten.jsonl", {}, "labelled row '0': human_score 9 is outside the 1..5 scale (a 10-point set? pass "
                              "max_score=10)"),
            ("word.jsonl", {}, "labelled row '0': human_score must be a number, got 'good'"),
            ("ten.jsonl", {"max_score": 10, "min_kappa": 2}, "min_kappa=2 can never be met or never fail"),
            ("five.jsonl", {"threshold": 9}, "threshold=9 is not a pass mark on the 1..5 scale"),
            ("five.jsonl", {"min_kapa": 0.5}, "unknown bound min_kapa=; the bounds are min_kappa"),
        ])
        def test_refused(judge, data, kwargs, message):
            with pytest.raises((ValueError, TypeError), match=re.escape(message)):
                assert_judge_agrees(data, **kwargs)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-base-url", "http://127.0.0.1:9/v1")
    result.assert_outcomes(passed=5)


def test_a_judge_that_cannot_be_reached_measures_nothing(pytester: pytest.Pytester) -> None:
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    pytester.makepyfile(textwrap.dedent("""
        from pytest_pai_judge import assert_judge_agrees

        def test_gone():
            assert_judge_agrees("labels.jsonl", id="id", min_kappa=0.2)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-cache=off", "--judge-retries=0",
                                "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-report=r.md",
                                "--judge-report=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*JudgeConnectionError*",
                                 "*judge agreement with 24 labelled rows (*): not measured: 24 of 24 calls got no "
                                 "answer: JudgeConnectionError*"])
    check, = _checks(pytester, "r.json")
    assert check["error"].startswith("24 of 24 calls got no answer") and check["misses"] == []
    page = (pytester.path / "r.md").read_text("utf-8")
    assert "**not measured: 24 of 24 calls" in page and "held:" not in page and "| figure |" not in page
    assert "Judge checks FAILED" in page


def test_a_missed_bound_fails_the_pages_verdict_and_pairwise_rows_keep_their_reference(
        pytester: pytest.Pytester) -> None:
    shutil.copy(LABELS, pytester.path / "labels.jsonl")
    rows = [{"q": "What is the capital of France?", "a1": "Paris.", "a2": "Bananas.", "winner": "1",
             "ref_answer": "Paris is the capital of France."}]
    (pytester.path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pytester.makepyfile(textwrap.dedent("""
        from pytest_pai_judge import assert_judge_agrees

        def test_scores():
            assert_judge_agrees("labels.jsonl", id="id", min_kappa=0.9, temperature=0)

        def test_pairs(judge):
            judge.agreement("pairs.jsonl", question="q", answer1="a1", answer2="a2", human_winner="winner")
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-cache=off", "--judge-report=r.md",
                                "--judge-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    page = (pytester.path / "r.md").read_text("utf-8")
    assert "**Judge checks FAILED**" in page and "judge check failed (" in page and "min_kappa=0.9" in page
    table = json.loads((pytester.path / "r.json").read_text("utf-8"))
    pair_rows = [r for r in table if r["kind"] == "pairwise"]
    assert pair_rows and all(r["ref_answer"] == "Paris is the capital of France." for r in pair_rows)
    pairwise = next(c for c in _checks(pytester, "r.json") if c["kind"] == "pairwise")
    assert sum(n for _, _, n in pairwise["confusion"]) == 1
