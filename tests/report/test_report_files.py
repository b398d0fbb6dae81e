"""report/files.py and formats.py: every format's round trip, the drift file, refused suffixes, file modes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from report_records import rec, sample_records, xfail_records

from pytest_pai_judge.records import JudgeRecord
from pytest_pai_judge.report import files
from pytest_pai_judge.report import plugin as report_plugin
from pytest_pai_judge.report.drift import compute_drift
from pytest_pai_judge.report.files import write_report
from pytest_pai_judge.report.formats import READABLE_SUFFIXES, REPORT_SUFFIXES
from pytest_pai_judge.report.table import COLUMNS, read_report, records_to_frame


@pytest.mark.parametrize("suffix", READABLE_SUFFIXES)
def test_every_machine_format_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    df = records_to_frame(sample_records())
    path = write_report(df, tmp_path / f"nested/dir/results{suffix}")
    pd.testing.assert_frame_equal(read_report(path), df)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no temp file left behind"


def test_plain_pandas_reads_every_format(tmp_path: Path) -> None:
    """A tool that only knows pandas gets the same rows; criteria are JSON text in CSV / Parquet."""
    df = records_to_frame(sample_records())
    for suffix in READABLE_SUFFIXES:
        write_report(df, tmp_path / f"r{suffix}")
    csv = pd.read_csv(tmp_path / "r.csv")
    parquet = pd.read_parquet(tmp_path / "r.parquet")
    jsn = pd.read_json(tmp_path / "r.json", orient="records")
    jsonl = pd.read_json(tmp_path / "r.jsonl", lines=True)
    for other in (csv, parquet, jsn, jsonl):
        assert list(other.columns) == list(COLUMNS)
        assert other["nodeid"].tolist() == df["nodeid"].tolist()
        assert other["score"].tolist()[:2] == [8.0, 4.0]
    assert json.loads(csv.loc[0, "criteria"]) == {"准确性": 8.0, "clarity": None}
    assert json.loads(parquet.loc[0, "criteria"]) == {"准确性": 8.0, "clarity": None}
    assert jsonl.loc[0, "criteria"] == {"准确性": 8.0, "clarity": None}
    assert "什么是光合作用" in (tmp_path / "r.json").read_text("utf-8"), "UTF-8, not \\u escapes"


def test_csv_cannot_tell_empty_text_from_missing(tmp_path: Path) -> None:
    """The one documented CSV loss: an empty answer reads back as missing; everything else survives."""
    df = records_to_frame([rec(answer=""), rec("t.py::b", reasons="")])
    back = read_report(write_report(df, tmp_path / "r.csv"))
    assert back.loc[0, "answer"] is pd.NA
    assert back.loc[1, "reasons"] == ""
    pd.testing.assert_frame_equal(back.drop(columns="answer"), df.drop(columns="answer"))


def test_unknown_suffixes_are_refused(tmp_path: Path) -> None:
    df = records_to_frame(sample_records())
    with pytest.raises(ValueError, match=r"unknown report format '\.txt'.*\.csv"):
        write_report(df, tmp_path / "r.txt")
    write_report(df, tmp_path / "r.md")
    with pytest.raises(ValueError, match="for people"):
        read_report(tmp_path / "r.md")


def test_the_plugin_and_the_writers_share_one_suffix_list() -> None:
    """formats.py defines the suffixes once (without pandas, so that configuring never imports it)."""
    assert report_plugin.REPORT_SUFFIXES == REPORT_SUFFIXES and report_plugin.READABLE_SUFFIXES == READABLE_SUFFIXES
    assert report_plugin.REPORT_SUFFIXES is files.REPORT_SUFFIXES


def test_drift_sidecar_next_to_machine_reports(tmp_path: Path) -> None:
    df = records_to_frame(sample_records())
    drift = compute_drift(df.assign(score=df["score"] + 1), df)
    write_report(df, tmp_path / "r.parquet", drift)
    pd.testing.assert_frame_equal(read_report(tmp_path / "r.parquet"), df)
    side = pd.read_parquet(tmp_path / "r.drift.parquet")
    assert set(side["status"]) == {"down", "unscored"}


def test_reports_get_the_usual_file_mode(tmp_path: Path) -> None:
    df = records_to_frame([JudgeRecord(nodeid="t::a", run_mode="immediate", kind="single", assertion="score",
                                       model="pai-judge", score=4.0, max_score=5, threshold=4.0, passed=True)])
    umask = os.umask(0o022)
    try:
        for suffix in (".csv", ".html"):
            path = tmp_path / f"r{suffix}"
            write_report(df, path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


# --------------------------------------------------------------------------- xfail-marked tests


@pytest.mark.parametrize("suffix", READABLE_SUFFIXES)
def test_xfail_column_round_trips(tmp_path: Path, suffix: str) -> None:
    df = records_to_frame(xfail_records())
    back = read_report(write_report(df, tmp_path / f"r{suffix}"))
    assert back["xfail"].tolist() == [False, False, True, True]
    pd.testing.assert_frame_equal(back, df)
