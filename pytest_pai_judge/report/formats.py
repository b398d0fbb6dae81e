"""The report file formats: which suffixes can be written, and which of them can be read back.

Kept free of pandas, so that the plugin can check ``--judge-report`` / ``--judge-baseline`` paths
at configure time without importing it.
"""

from __future__ import annotations

READABLE_SUFFIXES: tuple[str, ...] = (".csv", ".json", ".jsonl", ".parquet")
"""Machine-readable formats: :func:`~pytest_pai_judge.report.table.read_report` reads them back, so any
of them can be the next run's baseline."""

REPORT_SUFFIXES: tuple[str, ...] = READABLE_SUFFIXES + (".md", ".html")
"""Every format :func:`~pytest_pai_judge.report.files.write_report` writes; ``.md`` and ``.html`` are for people."""
