"""Test cases from data: rows of a dataset / DataFrame / local file as ``pytest.param``s.

``datasets`` is imported only when a path or a ``datasets.Dataset`` is given, and pandas only
when it is already in use (a DataFrame was passed), so a test module using ``cases`` costs
nothing extra at import unless it loads a file.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
"""Suffix → the ``datasets`` packaged builder that reads it (all local, no hub)."""

TEXT_ARGS = frozenset({
    "question", "answer", "answer1", "answer2", "ref_answer", "scene", "scene_desc", "metric", "score_desc",
    "steps", "better", "worse", "candidate", "baseline",
})
"""Argument names whose values are judge texts (the judge fields but ``max_score``, and the pairwise
assertions' answers): ``cases()`` hands them over as ``str``, so a CSV column of numbers (an answer
"4") does not reach the judge as an int and fail there with a content error."""


class CasesError(ValueError):
    """A ``cases()`` call that cannot produce cases (bad source, missing column); raised at collection."""


def cases(source: Any, question: str | None = None, answer: str | None = None, ref_answer: str | None = None,
          *, id: str | Callable[[dict[str, Any]], Any] | None = None,  # noqa: A002 - pytest.param's own name
          marks: Mapping[str, Any] | Callable[[dict[str, Any]], Any] | None = None, **extra: str) -> list[Any]:
    """One ``pytest.param`` per row, holding the named columns for ``@pytest.mark.parametrize``.

    ``question`` / ``answer`` / ``ref_answer`` name the source's columns for those values. Each param
    holds its values in a FIXED order: question, answer, ref_answer (those given), then the ``extra``
    ones (``name=column``) in the order passed, whatever order the keywords are written in; the
    parametrize argnames must list them in that order. ``id`` names a column (or is a function of the
    row) for the test id; without it ids are the row numbers. ``source`` is a ``datasets.Dataset``, a
    pandas DataFrame, or a local ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` path; a relative path
    is resolved against the directory of the file calling ``cases()`` (the test module), never the
    current directory, so the data does not depend on where pytest is run.

    Values for judge texts (``question``, ``answer``, ``ref_answer`` and extras named like a judge
    field or a pairwise answer, see :data:`TEXT_ARGS`) and ids are ``str``: a CSV cell is taken as
    written (``4`` → ``"4"``, ``004`` → ``"004"``), a number from another source becomes its text (an
    integral float, e.g. pandas widening a column with gaps, without ``.0``). Other extras keep their
    type. Missing values (None / NaN, an empty CSV cell) become None, which a judge request leaves out.
    ``marks`` maps a case id to a mark (or a list of marks), e.g.
    ``{"moon-landing": pytest.mark.xfail(strict=True)}``, or is a function of the row returning marks;
    a mapping key that names no case is an error.

        @pytest.mark.parametrize("question,answer,ref_answer",
                                 cases("data/qa.jsonl", question="q", answer="a", ref_answer="ref", id="id"))
        def test_qa(judge, question, answer, ref_answer): ...
    """
    __tracebackhide__ = True
    wanted: list[tuple[str, str]] = [(arg, col) for arg, col in
                                     (("question", question), ("answer", answer), ("ref_answer", ref_answer))
                                     if col is not None]
    for arg, col in extra.items():
        if not isinstance(col, str):
            raise CasesError(f"cases(): {arg}= must name a column (a str), got {col!r}")
        wanted.append((arg, col))
    if not wanted:
        raise CasesError("cases(): name at least one column, e.g. cases(source, question='q', answer='a')")
    text_columns = {col for arg, col in wanted if arg in TEXT_ARGS} | ({id} if isinstance(id, str) else set())
    columns, rows, label = _load(source, _caller_dir(), text_columns)
    needed = [(arg, col) for arg, col in wanted] + ([("id", id)] if isinstance(id, str) else [])
    missing = [(arg, col) for arg, col in needed if col not in columns]
    if missing:
        named = ", ".join(f"{col!r} (for {arg}=)" for arg, col in missing)
        raise CasesError(f"cases(): column {named} not found in {label}; available columns: "
                         f"{', '.join(map(str, columns)) or '(none)'}")
    params = []
    for number, row in enumerate(rows):
        if id is None:
            case_id = str(number)
        elif callable(id):
            case_id = str(id(cast(dict[str, Any], row)))
        else:
            raw = _text(_clean(row.get(id)), f"column {id!r} (for id=)", number)
            case_id = str(number) if raw is None else raw
        values = [_text(_clean(row.get(col)), f"column {col!r} (for {arg}=)", number, case_id)
                  if arg in TEXT_ARGS else _clean(row.get(col)) for arg, col in wanted]
        case_marks = marks(cast(dict[str, Any], row)) if callable(marks) else (marks or {}).get(case_id)
        if case_marks is None:
            case_marks = ()
        elif not isinstance(case_marks, (list, tuple)):
            case_marks = (case_marks,)
        bad = [m for m in case_marks if not isinstance(m, (pytest.MarkDecorator, pytest.Mark))]
        if bad:
            raise CasesError(f"cases(): marks= for case {case_id!r} gave {bad[0]!r}; give pytest marks, "
                             "e.g. pytest.mark.xfail(strict=True) or a list of them")
        params.append(pytest.param(*values, id=case_id, marks=tuple(case_marks)))
    if isinstance(marks, Mapping):
        not_ids = [k for k in marks if not isinstance(k, str)]
        if not_ids:
            raise CasesError(f"cases(): marks= keys are case ids, which are strings; got {not_ids[0]!r} "
                             f"(write {str(not_ids[0])!r})")
        unknown = sorted(set(marks) - {p.id for p in params})
        if unknown:
            raise CasesError(f"cases(): marks= names cases that do not exist: {', '.join(unknown)}")
    return params


# --------------------------------------------------------------------------- sources


def _load(source: Any, caller_dir: Path | None, text_columns: Collection[str] = ()
          ) -> tuple[list[str], Sequence[Mapping[str, Any]], str]:
    """(column names, rows as dicts, a label for messages)."""
    __tracebackhide__ = True
    if isinstance(source, (str, os.PathLike)):
        path = _resolve(Path(source), caller_dir)
        return *_dataset_rows(_load_file(path, text_columns)), str(source)
    module = type(source).__module__.split(".")[0]
    if module == "pandas" and hasattr(source, "columns") and hasattr(source, "to_dict"):
        if not all(isinstance(c, str) for c in source.columns):
            source = source.rename(columns=str)
        return list(source.columns), source.to_dict(orient="records"), "the DataFrame"
    if module == "datasets":
        if hasattr(source, "keys") and not hasattr(source, "column_names") or \
                isinstance(getattr(source, "column_names", None), dict):
            raise CasesError(f"cases(): got a DatasetDict with splits {', '.join(map(str, source.keys()))}; "
                             f"pass one split, e.g. ds['train']")
        return *_dataset_rows(source), "the dataset"
    raise CasesError(f"cases(): source must be a datasets.Dataset, a pandas DataFrame or a path to a "
                     f"{'/'.join(FILE_BUILDERS)} file, got {type(source).__name__}")


def _dataset_rows(ds: Any) -> tuple[list[str], list[dict[str, Any]]]:
    columns = list(ds.column_names or [])
    if hasattr(ds, "to_dict") and hasattr(ds, "__len__"):
        data = ds.to_dict()
        return columns, [{c: data[c][i] for c in columns} for i in range(len(ds))]
    rows = [dict(r) for r in ds]  # an IterableDataset
    return columns or (list(rows[0]) if rows else []), rows


def _resolve(path: Path, caller_dir: Path | None) -> Path:
    __tracebackhide__ = True
    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        raise CasesError(f"cases(): cannot read {str(path)!r}: use a {', '.join(FILE_BUILDERS)} file, "
                         f"or pass a datasets.Dataset / pandas DataFrame")
    path = path.expanduser()
    if path.is_absolute():
        if path.is_file():
            return path
        raise CasesError(f"cases(): no such file {str(path)!r}")
    base = caller_dir if caller_dir is not None else Path.cwd()
    candidate = base / path
    if candidate.is_file():
        return candidate
    where = "the directory of the file calling cases()" if caller_dir is not None else "the current directory"
    message = (f"cases(): no such file {str(path)!r} (looked at {candidate}; a relative path is resolved "
               f"against {where})")
    elsewhere = Path.cwd() / path
    if caller_dir is not None and elsewhere.is_file() and elsewhere.resolve() != candidate.resolve():
        message += (f"; {elsewhere} exists, but the current directory is not searched: give the path relative "
                    f"to {base} or an absolute one")
    raise CasesError(message)


def _load_file(path: Path, text_columns: Collection[str] = ()) -> Any:
    """Read a local file with ``datasets``' packaged builders: offline, in memory, no cache left in $HOME.

    CSV cells of ``text_columns`` are read as written (``str`` converters), not parsed as numbers: an
    answer ``004`` or ``8.0`` stays exactly that text.
    """
    import datasets
    from datasets import utils as ds_utils
    from datasets.utils import logging as ds_logging

    cache_dir = tempfile.mkdtemp(prefix="pai-judge-cases-")
    bars_were_on = not ds_utils.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    try:
        ds_utils.disable_progress_bars()  # the user's own progress-bar setting is restored below
        ds_logging.set_verbosity_error()
        builder = FILE_BUILDERS[path.suffix.lower()]
        options: dict[str, Any] = {}
        if builder == "csv" and text_columns:
            options["converters"] = {col: str for col in sorted(text_columns)}
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir,
                                     keep_in_memory=True, **options)
    except Exception as exc:
        raise CasesError(f"cases(): could not read {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        if bars_were_on:
            ds_utils.enable_progress_bars()
        ds_logging.set_verbosity(verbosity)
        shutil.rmtree(cache_dir, ignore_errors=True)


def _caller_dir() -> Path | None:
    """The directory of the file that called ``cases()`` (for paths relative to the test module)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep  # judge_agreement() calls it for a test too
    frame = inspect.currentframe()
    try:
        while frame is not None:
            filename = frame.f_code.co_filename
            if not os.path.abspath(filename).startswith(package) and not filename.startswith("<"):
                return Path(filename).resolve().parent
            frame = frame.f_back
    finally:
        del frame
    return None


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if "pandas" in sys.modules and value is sys.modules["pandas"].NA:
        return None
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value


def _text(value: Any, what: str, number: int, case_id: str | None = None) -> str | None:
    """A judge text or an id as ``str`` (None stays None); a list / dict cannot be one: say which cell."""
    __tracebackhide__ = True
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict, set, bytes, bytearray)):
        row = f"row {number}" + (f" (id {case_id!r})" if case_id is not None and case_id != str(number) else "")
        raise CasesError(f"cases(): {what} holds a {type(value).__name__} in {row}, not a text: {value!r:.80}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
