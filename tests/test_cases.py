"""cases(): pytest.params from a Dataset, a DataFrame and local JSONL / JSON / CSV / Parquet files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from pytest_pai_judge.dataset_cases import CasesError, cases

ROWS = [
    {"id": "zh-1", "q": "长城主要是在哪个朝代修建的?", "a": "明朝。", "ref": "现存长城大部分修建于明朝。", "scene": "回答开放性问题"},
    {"id": "en-1", "q": "What is the capital of France?", "a": "Paris.", "ref": None, "scene": "通用"},
]


def write_sources(tmp_path: Path) -> dict[str, Path]:
    df = pd.DataFrame(ROWS)
    paths = {s: tmp_path / f"qa{s}" for s in (".jsonl", ".json", ".csv", ".parquet")}
    paths[".jsonl"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), "utf-8")
    paths[".json"].write_text(json.dumps(ROWS, ensure_ascii=False), "utf-8")
    df.to_csv(paths[".csv"], index=False)
    df.to_parquet(paths[".parquet"], index=False)
    return paths


def values(params: list) -> list[tuple]:
    return [tuple(p.values) for p in params]


def ids(params: list) -> list[str]:
    return [p.id for p in params]


EXPECTED = [("长城主要是在哪个朝代修建的?", "明朝。", "现存长城大部分修建于明朝。"), ("What is the capital of France?", "Paris.", None)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_cases_from_local_files(tmp_path: Path, suffix: str) -> None:
    params = cases(write_sources(tmp_path)[suffix], question="q", answer="a", ref_answer="ref", id="id")
    assert values(params) == EXPECTED
    assert ids(params) == ["zh-1", "en-1"]


def test_cases_from_a_dataframe_missing_values_become_none() -> None:
    df = pd.DataFrame(ROWS)
    df.loc[1, "ref"] = float("nan")
    params = cases(df, question="q", answer="a", ref_answer="ref", id="id")
    assert values(params) == EXPECTED and ids(params) == ["zh-1", "en-1"]


def test_cases_from_a_dataset() -> None:
    import datasets

    params = cases(datasets.Dataset.from_list(ROWS), question="q", answer="a", ref_answer="ref", id="id")
    assert values(params) == EXPECTED and ids(params) == ["zh-1", "en-1"]


def test_only_the_given_columns_in_order_then_extras() -> None:
    df = pd.DataFrame(ROWS)
    assert values(cases(df, answer="a", question="q")) == [(r["q"], r["a"]) for r in ROWS]
    assert values(cases(df, question="q", scene="scene", answer2="a")) == [(r["q"], r["scene"], r["a"]) for r in ROWS]
    assert ids(cases(df, question="q")) == ["0", "1"], "row numbers without id="
    assert ids(cases(df, question="q", id=lambda row: f"{row['id']}:{len(row['q'])}")) == ["zh-1:14", "en-1:30"]


@pytest.mark.parametrize("kind", ["dataframe", "dataset", ".jsonl", ".csv", ".parquet", ".json"])
def test_missing_column_names_it_and_lists_the_available_ones(tmp_path: Path, kind: str) -> None:
    if kind == "dataframe":
        source = pd.DataFrame(ROWS)
    elif kind == "dataset":
        import datasets

        source = datasets.Dataset.from_list(ROWS)
    else:
        source = write_sources(tmp_path)[kind]
    with pytest.raises(CasesError) as info:
        cases(source, question="prompt", answer="a", id="case_id")
    message = str(info.value)
    assert "'prompt' (for question=)" in message and "'case_id' (for id=)" in message
    assert "available columns: id, q, a, ref, scene" in message


def test_bad_sources_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CasesError, match=r"no such file 'nope.jsonl'") as info:
        cases("nope.jsonl", question="q")
    assert f"looked at {Path(__file__).parent / 'nope.jsonl'};" in str(info.value), "names the path tried"
    with pytest.raises(CasesError, match=r"no such file '/nowhere/nope.csv'"):
        cases("/nowhere/nope.csv", question="q")
    with pytest.raises(CasesError, match=r"cannot read 'data.txt'.*\.jsonl"):
        cases("data.txt", question="q")
    with pytest.raises(CasesError, match="source must be"):
        cases([{"q": 1}], question="q")
    with pytest.raises(CasesError, match="name at least one column"):
        cases(pd.DataFrame(ROWS))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"q": 1}\n{not json\n', "utf-8")
    with pytest.raises(CasesError, match="could not read"):
        cases(broken, question="q")


def test_a_dataset_dict_asks_for_a_split() -> None:
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS)})
    with pytest.raises(CasesError, match=r"DatasetDict with splits train, test; pass one split"):
        cases(dd, question="q")


def test_loading_is_offline_lazy_and_leaves_no_cache_in_home(tmp_path: Path) -> None:
    """In a fresh interpreter with no network: importing cases loads neither datasets nor pandas,
    a file loads with HF_DATASETS_OFFLINE=1, and nothing is written under $HOME."""
    paths = write_sources(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    script = textwrap.dedent(f"""
        import socket, sys
        def no_network(*args, **kwargs):
            raise RuntimeError("network used")
        socket.socket.connect = no_network
        from pytest_pai_judge.dataset_cases import cases
        assert "datasets" not in sys.modules and "pandas" not in sys.modules, "eager import"
        for path in {[str(p) for p in paths.values()]!r}:
            params = cases(path, question="q", answer="a", id="id")
            assert [p.id for p in params] == ["zh-1", "en-1"], params
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_"))}
    env.update(HOME=str(home), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "Generating train split" not in done.stderr, "progress bars are silenced"
    assert list(home.rglob("*")) == [], "no cache left in $HOME"


def test_relative_path_is_the_calling_files_directory(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("suite")
    (sub / "data").mkdir()
    (sub / "data" / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), "utf-8")
    (sub / "test_data.py").write_text(textwrap.dedent("""
        import pytest
        from pytest_pai_judge.dataset_cases import cases

        @pytest.mark.parametrize("question,answer,ref_answer",
                                 cases("data/qa.jsonl", question="q", answer="a", ref_answer="ref", id="id"))
        def test_rows(question, answer, ref_answer):
            assert question and answer
    """), "utf-8")
    result = pytester.runpytest("-v", "-p", "no:pai_judge", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*test_rows?zh-1? PASSED*", "*test_rows?en-1? PASSED*"])
    assert result.ret == 0


def test_missing_column_is_a_collection_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad="""
        import pandas as pd
        import pytest
        from pytest_pai_judge.dataset_cases import cases

        DF = pd.DataFrame({"prompt": ["hi"], "reply": ["hello"]})

        @pytest.mark.parametrize("question,answer", cases(DF, question="question", answer="reply"))
        def test_rows(question, answer):
            pass
    """)
    result = pytester.runpytest("-p", "no:pai_judge", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        "*ERROR collecting test_bad.py*",
        "*CasesError: cases(): column 'question' (for question=) not found in the DataFrame; "
        "available columns: prompt, reply",
        "*1 error*",
    ])
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "pytest_pai_judge/dataset_cases.py" not in result.stdout.str(), "traceback hides cases() internals"


def test_package_level_cases_is_the_function_whatever_was_imported_first() -> None:
    """``pytest_pai_judge.cases`` is the public function even after its module was imported (the module
    is named ``dataset_cases`` so that importing it never shadows the package attribute)."""
    import pytest_pai_judge.dataset_cases  # noqa: F401
    from pytest_pai_judge import cases as public

    assert public is cases, f"pytest_pai_judge.cases is {public!r}"


# --------------------------------------------------------------------------- where relative paths point


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def test_a_stray_file_in_the_current_directory_never_shadows_the_one_next_to_the_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data a test runs on must not depend on where pytest is started: ``cases("qa.jsonl")`` in
    p3/test_qa.py is p3/qa.jsonl, from the rootdir, from p3 itself, or from anywhere else."""
    p3 = pytester.mkdir("p3")
    (p3 / "qa.jsonl").write_text(jsonl([{"id": "next-to-test", "q": "Q?", "a": "A."}]), "utf-8")
    (pytester.path / "qa.jsonl").write_text(jsonl([{"id": "stray-in-cwd", "q": "Q?", "a": "A."}]), "utf-8")
    (p3 / "test_qa.py").write_text(textwrap.dedent("""
        import pytest
        from pytest_pai_judge import cases

        @pytest.mark.parametrize("question,answer", cases("qa.jsonl", question="q", answer="a", id="id"))
        def test_rows(question, answer):
            pass
    """), "utf-8")
    elsewhere = pytester.mkdir("elsewhere")
    for cwd, target in ((pytester.path, "p3"), (p3, "."), (elsewhere, str(p3))):
        monkeypatch.chdir(cwd)
        result = pytester.runpytest(target, "-v", "-p", "no:pai_judge", "-p", "no:cacheprovider")
        result.stdout.fnmatch_lines(["*test_rows?next-to-test? PASSED*"])
        assert "stray-in-cwd" not in result.stdout.str(), f"run from {cwd}"
        assert result.ret == 0


def test_a_file_only_in_the_current_directory_is_an_error_naming_both_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "only_in_cwd.jsonl").write_text(jsonl(ROWS), "utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CasesError) as info:
        cases("only_in_cwd.jsonl", question="q")
    message = str(info.value)
    assert f"looked at {Path(__file__).parent / 'only_in_cwd.jsonl'}" in message
    assert f"{tmp_path / 'only_in_cwd.jsonl'} exists, but the current directory is not searched" in message


def test_without_a_calling_file_relative_paths_are_from_the_current_directory(tmp_path: Path) -> None:
    """``python -c`` / a REPL has no file to be relative to: there (only) the current directory is used."""
    (tmp_path / "qa.jsonl").write_text(jsonl(ROWS), "utf-8")
    script = ("from pytest_pai_judge import cases\n"
              "print([p.id for p in cases('qa.jsonl', question='q', id='id')])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['zh-1', 'en-1']"


# --------------------------------------------------------------------------- texts are str


NUMERIC_CSV = "id,q,answer,ref,min\n001,What is 2+2?,4,4,3\n2,What is 3+3?,6,,3\n3,Write 8 with one decimal,8.0,8.0,2\n"


def test_numeric_csv_cells_are_texts_as_written_and_ids_keep_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text(NUMERIC_CSV, "utf-8")
    params = cases(path, question="q", answer="answer", ref_answer="ref", id="id", min_score="min")
    assert values(params) == [("What is 2+2?", "4", "4", 3), ("What is 3+3?", "6", None, 3),
                              ("Write 8 with one decimal", "8.0", "8.0", 2)]
    assert ids(params) == ["001", "2", "3"]


def test_numbers_from_other_sources_become_their_text(tmp_path: Path) -> None:
    (tmp_path / "n.jsonl").write_text(jsonl([{"q": "x", "a": 4, "c": 1.5}, {"q": "y", "a": 6.5, "c": 2}]), "utf-8")
    assert values(cases(tmp_path / "n.jsonl", question="q", answer="a", candidate="c")) == \
        [("x", "4", "1.5"), ("y", "6.5", "2")]
    widened = pd.DataFrame({"id": [1, 2, 3], "q": ["a", "b", "c"], "a": [4, None, 8]})  # float64 with a NaN
    params = cases(widened, question="q", answer="a", id="id", score="a")
    assert values(params) == [("a", "4", 4.0), ("b", None, None), ("c", "8", 8.0)], "non-text extras keep their type"
    assert ids(params) == ["1", "2", "3"]


def test_a_list_in_a_text_column_is_an_error_naming_the_cell() -> None:
    df = pd.DataFrame({"id": ["ok", "bad"], "q": ["q1", "q2"], "a": ["fine", ["a", "list"]]})
    with pytest.raises(CasesError, match=r"column 'a' \(for answer=\) holds a list in row 1 \(id 'bad'\), not a text"):
        cases(df, question="q", answer="a", id="id")


def test_text_args_cover_every_judge_text_field() -> None:
    from pytest_pai_judge.dataset_cases import TEXT_ARGS
    from pytest_pai_judge.protocol import JUDGE_FIELDS

    assert set(JUDGE_FIELDS) - {"max_score"} <= TEXT_ARGS
    assert {"better", "worse", "candidate", "baseline"} <= TEXT_ARGS


def test_a_numeric_csv_answer_is_judged_as_text(pytester: pytest.Pytester, judge_server) -> None:
    """The user-visible failure: an int answer used to reach the judge and fail with a ContentError."""
    (pytester.path / "numbers.csv").write_text(NUMERIC_CSV, "utf-8")
    pytester.makepyfile(test_numbers="""
        import pytest
        from pytest_pai_judge import assert_judge_score, cases

        @pytest.mark.parametrize("question,answer,ref_answer",
                                 cases("numbers.csv", question="q", answer="answer", ref_answer="ref", id="id"))
        def test_math(question, answer, ref_answer):
            assert_judge_score(question, answer, 1, ref_answer=ref_answer)
    """)
    result = pytester.runpytest("--judge-base-url", judge_server.url or "", "--judge-cache=off",
                                "-p", "no:cacheprovider")
    assert "ContentError" not in result.stdout.str()
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("marks, message", [
    ({2: pytest.mark.xfail}, "marks= keys are case ids, which are strings; got 2 (write '2')"),
    ({"2": "xfail"}, "marks= for case '2' gave 'xfail'; give pytest marks"),
    (lambda row: "skip", "marks= for case '1' gave 'skip'; give pytest marks"),
])
def test_bad_marks_are_clear_errors(marks, message) -> None:
    frame = pd.DataFrame({"id": ["1", "2"], "question": ["q1", "q2"], "answer": ["a1", "a2"]})
    with pytest.raises(CasesError) as info:
        cases(frame, question="question", answer="answer", id="id", marks=marks)
    assert message in str(info.value)
