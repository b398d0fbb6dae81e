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
    with pytest.raises(CasesError, match=r"no such file 'nope.jsonl'"):
        cases("nope.jsonl", question="q")
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


def test_relative_path_falls_back_to_the_calling_file(pytester: pytest.Pytester) -> None:
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
    import pytest_pai_judge
    import pytest_pai_judge.dataset_cases  # noqa: F401

    from pytest_pai_judge import cases as public

    assert public is cases, f"pytest_pai_judge.cases is {public!r}"
