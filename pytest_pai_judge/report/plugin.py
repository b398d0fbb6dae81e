"""Reports, baseline drift and ``--judge-max-drop``: a pytest plugin class the core plugin registers.

The core calls :func:`add_options` from its ``pytest_addoption`` and registers
``JudgeReporting(config, get_records)`` in its ``pytest_configure``. Records are read at
``pytest_sessionfinish``, after the core's ``pytest_runtestloop`` wrapper has settled deferred /
batch verdicts and after xdist workers have handed theirs to the controller. The pandas-using
modules (and so pandas) are imported only inside the hooks that need them: when a report or
baseline option was given, or a plugin implements ``pytest_judge_results``.

The table, the drift, ``--judge-max-drop`` and ``--judge-regression`` are computed first thing at
``pytest_sessionfinish`` (tryfirst: before junitxml writes its file, so the regression is a property of
its test suite); the reports are written and plugins get the table last (trylast).

Precedence: command line > ini (``judge_report`` lines, ``judge_baseline``, ``judge_max_drop``,
``judge_regression``).
Relative paths are relative to the invocation directory on the command line and to the ini
file's directory in the ini file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..counts import plural
from ..pytest_compat import add_suite_property
from ..records import JudgeRecord
from ..terminal import display_width, pad
from .formats import READABLE_SUFFIXES, REPORT_SUFFIXES
from .regression import Regression, RegressionLimit, parse_limit

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from ..gates import GateResult

SHOWN_CASES = 10
"""Moved cases listed in the terminal drift table without ``-v`` (all of them with ``-v``; drops past
``--judge-max-drop`` are always listed in full)."""


def add_options(group: Any, parser: pytest.Parser) -> None:
    """Add ``--judge-report``, ``--judge-baseline``, ``--judge-max-drop``, ``--judge-regression`` and their ini keys."""
    group.addoption("--judge-report", dest="judge_report", action="append", default=None, metavar="PATH",
                    help="write the judged results to PATH; the suffix picks the format: "
                         f"{' '.join(REPORT_SUFFIXES)} (may be given several times)")
    parser.addini("judge_report", type="linelist", default=[],
                  help="report paths, one per line (relative to the ini file); --judge-report replaces them")
    group.addoption("--judge-baseline", dest="judge_baseline", default=None, metavar="PATH",
                    help=f"a report of an earlier run ({' '.join(READABLE_SUFFIXES)}): show score drift per case "
                         "and per scene in the summary and the reports")
    parser.addini("judge_baseline", type="string", default=None, help="baseline report (see --judge-baseline)")
    group.addoption("--judge-max-drop", dest="judge_max_drop", default=None, type=float, metavar="POINTS",
                    help="with a baseline: fail the run when any case's score falls by more than POINTS")
    parser.addini("judge_max_drop", type="string", default=None, help="see --judge-max-drop")
    group.addoption("--judge-regression", dest="judge_regression", default=None, metavar="POINTS[@CONF]",
                    help="with a baseline: fail the run when the suite's mean score (5-point scale, over the "
                         "cases matched with the baseline, tested as pairs) dropped by more than POINTS with "
                         "confidence CONF (one-sided; default 95%%), e.g. 0.2@95%%")
    parser.addini("judge_regression", type="string", default=None, help="see --judge-regression")


class JudgeReporting:
    """Writes ``--judge-report`` files, compares with ``--judge-baseline``, enforces ``--judge-max-drop``."""

    def __init__(self, config: pytest.Config, get_records: Callable[[], Sequence[JudgeRecord]],
                 get_ran: Callable[[], set[str]] | None = None, *,
                 get_gates: Callable[[], Sequence[GateResult]] | None = None,
                 get_checks: Callable[[], Sequence[dict[str, Any]]] | None = None) -> None:
        self.config = config
        self.get_records = get_records
        self.get_gates = get_gates or (lambda: ())
        """The run's suite gates, evaluated before the reports are written (shown in them, and a sidecar)."""
        self.get_checks = get_checks or (lambda: ())
        """The run's judge checks (agreement with labels, bias probes): a calibration section and sidecar."""
        self.get_ran = get_ran
        """The node ids of the tests this run ran: a baseline case of a test that did not run is "not run"."""
        self.is_worker = hasattr(config, "workerinput")
        self.reports: list[Path] = []
        self.baseline: Path | None = None
        self.max_drop: float | None = None
        self.baseline_df: pandas.DataFrame | None = None
        self.drift: tuple[pandas.DataFrame, pandas.DataFrame] | None = None
        self.dropped: pandas.DataFrame | None = None
        self.regression_limit: RegressionLimit | None = None
        self.regression: Regression | None = None
        self.df: pandas.DataFrame | None = None
        """The results table, once built at session finish (None: nothing asked for it)."""
        self.written: list[Path] = []
        self.problems: list[str] = []
        self.kept: str | None = None
        """Why this run has no report rows (then existing report files are left as they were)."""
        self.not_written: list[Path] = []
        self._resolve_options()
        if self.baseline is not None and not self.is_worker:
            self._read_baseline()

    # ------------------------------------------------------------------ configure

    def _resolve_options(self) -> None:
        """CLI > ini; raise ``pytest.UsageError`` for an unknown suffix or a max drop without a baseline."""
        config = self.config
        cli_dir = config.invocation_params.dir
        ini_dir = config.inipath.parent if config.inipath else config.rootpath

        cli_reports = config.getoption("judge_report", None)
        if cli_reports:
            raw = [(p, cli_dir, "--judge-report") for p in cli_reports]
        else:
            raw = [(p, ini_dir, "judge_report (ini)") for p in (config.getini("judge_report") or []) if p.strip()]
        for text, base, source in raw:
            path = _absolute(text.strip(), base)
            if path.suffix.lower() not in REPORT_SUFFIXES:
                raise pytest.UsageError(f"{source}={text}: unknown report format "
                                        f"{path.suffix or '(no suffix)'!r}; the suffix must be one of "
                                        f"{', '.join(REPORT_SUFFIXES)}")
            if path not in self.reports:
                self.reports.append(path)

        baseline = config.getoption("judge_baseline", None)
        source = "--judge-baseline"
        base = cli_dir
        if not baseline:
            baseline, source, base = config.getini("judge_baseline") or None, "judge_baseline (ini)", ini_dir
        if baseline:
            self.baseline = _absolute(str(baseline).strip(), base)
            if self.baseline.suffix.lower() not in READABLE_SUFFIXES:
                raise pytest.UsageError(f"{source}={baseline}: a baseline must be a machine-readable report "
                                        f"({', '.join(READABLE_SUFFIXES)}), "
                                        f"not {self.baseline.suffix or 'no suffix'!r}")

        max_drop = config.getoption("judge_max_drop", None)
        source = "--judge-max-drop"
        if max_drop is None:
            ini = config.getini("judge_max_drop")
            source = "judge_max_drop (ini)"
            if ini not in (None, ""):
                try:
                    max_drop = float(ini)
                except ValueError:
                    raise pytest.UsageError(f"{source}={ini!r}: not a number of score points") from None
        if max_drop is not None:
            if max_drop != max_drop or max_drop < 0:
                raise pytest.UsageError(f"{source}={max_drop}: must be a number of score points >= 0")
            if self.baseline is None:
                raise pytest.UsageError(f"{source} needs a baseline to compare with: give --judge-baseline=PATH "
                                        "(a report of an earlier run)")
            self.max_drop = float(max_drop)

        regression, source = config.getoption("judge_regression", None), "--judge-regression"
        if regression is None:
            regression, source = config.getini("judge_regression") or None, "judge_regression (ini)"
        if regression is not None and str(regression).strip():
            try:
                self.regression_limit = parse_limit(str(regression))
            except ValueError as exc:
                raise pytest.UsageError(f"{source}={regression}: {exc}") from None
            if self.baseline is None:
                raise pytest.UsageError(f"{source} needs a baseline to compare with: give --judge-baseline=PATH "
                                        "(a report of an earlier run)")

    def _read_baseline(self) -> None:
        """Read the baseline now, so a wrong path fails before any judging."""
        assert self.baseline is not None
        if not self.baseline.is_file():
            raise pytest.UsageError(f"--judge-baseline: no such file {str(self.baseline)!r}")
        from .table import read_report

        try:
            self.baseline_df = read_report(self.baseline)
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: say which and why
            raise pytest.UsageError(f"--judge-baseline: cannot read {str(self.baseline)!r} as a report: "
                                    f"{type(exc).__name__}: {exc}") from None
        if self.baseline_df["nodeid"].isna().all() and len(self.baseline_df):
            raise pytest.UsageError(f"--judge-baseline: {str(self.baseline)!r} has no 'nodeid' column")

    # ------------------------------------------------------------------ session finish

    @pytest.hookimpl(tryfirst=True, specname="pytest_sessionfinish")
    def pytest_sessionfinish_compare(self, session: pytest.Session) -> None:
        """Build the table, compare with the baseline, decide ``--judge-max-drop`` and ``--judge-regression``.

        First thing at session finish, so junitxml (which writes at session finish) gets the regression.
        (pytest only looks at methods named ``pytest_*``; ``specname`` names the hook.)
        """
        if self.is_worker or self.config.option.collectonly:
            return
        records = self.get_records()
        wanted_by_plugins = bool(self.config.hook.pytest_judge_results.get_hookimpls())
        if not len(records) or (not self.reports and self.baseline_df is None and not wanted_by_plugins):
            return  # nothing asks for the table: never import pandas, never read the rows
        from .drift import compute_drift, drops_beyond
        from .table import records_to_frame

        df = self.df = records_to_frame(records)
        if self.baseline_df is None:
            return
        self.drift = compute_drift(self.baseline_df, df, ran=self.get_ran() if self.get_ran else None)
        failed = False
        if self.max_drop is not None:
            self.dropped = drops_beyond(self.drift[0], self.max_drop)
            failed = bool(len(self.dropped))
        if self.regression_limit is not None:
            from .regression import compute_regression

            self.regression = compute_regression(self.regression_limit, self.drift[0], self.baseline_df, df)
            failed = failed or self.regression.failed
            for name, value in self.regression.junit_properties():
                add_suite_property(self.config, name, value)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the reports, then hand the table to plugins (a run that judged nothing keeps its reports)."""
        if self.is_worker or self.config.option.collectonly:
            return
        if self.df is None:
            if self.reports or self.baseline_df is not None:
                self._judged_nothing(session, exitstatus)
            return
        from .files import write_report

        df = self.df
        gates = list(self.get_gates())
        checks = list(self.get_checks())
        from ..spending import Spending

        spending = Spending.from_config(self.config)
        for path in self.reports:
            try:
                write_report(df, path, self.drift, baseline=self._baseline_label(), max_drop=self.max_drop,
                             regression=self.regression, gates=gates, checks=checks, spending=spending)
                self.written.append(path)
            except (OSError, ValueError) as exc:
                self.problems.append(f"could not write report {str(path)!r}: {type(exc).__name__}: {exc}")
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        self.config.hook.pytest_judge_results(df=df, config=self.config)

    def _judged_nothing(self, session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
        """A run without a single report row never replaces a report: the last real one stays as it was.

        A report that does not exist yet is written empty when the run itself completed (so a CI step
        that uploads it finds a file), not after a usage error, a collection error or an interrupt.
        """
        self.kept = _why_nothing(session, exitstatus)
        completed = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                                   pytest.ExitCode.NO_TESTS_COLLECTED)
        fresh = [p for p in self.reports if not p.exists()] if completed else []
        self.not_written = [p for p in self.reports if p not in fresh]
        if not fresh:
            return
        from .files import write_report
        from .table import records_to_frame

        df = records_to_frame([])
        for path in fresh:
            try:
                write_report(df, path)
                self.written.append(path)
            except (OSError, ValueError) as exc:
                self.problems.append(f"could not write report {str(path)!r}: {type(exc).__name__}: {exc}")

    def _baseline_label(self) -> str | None:
        if self.baseline is None:
            return None
        try:
            return str(self.baseline.relative_to(self.config.invocation_params.dir))
        except ValueError:
            return str(self.baseline)

    # ------------------------------------------------------------------ terminal summary

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        """Drift per scene and per case, the drops past ``--judge-max-drop``, and where the reports went."""
        if self.is_worker:
            return
        tr = terminalreporter
        if self.drift is not None:
            self._write_drift(tr)
        for problem in self.problems:
            tr.write_line(f"pai-judge: {problem}", red=True, bold=True)
        for path in self.written:
            tr.write_line(f"pai-judge report: {_shown(path, config)}")
        if self.kept is not None:
            if self.not_written:
                names = ", ".join(_shown(p, config) for p in self.not_written)
                tr.write_line(f"pai-judge: nothing was judged ({self.kept}): no report written, {names} left as "
                              f"{'it was' if len(self.not_written) == 1 else 'they were'}", yellow=True)
            if self.baseline_df is not None:
                checks = [f for f, on in (("--judge-max-drop", self.max_drop is not None),
                                          ("--judge-regression", self.regression_limit is not None)) if on]
                checked = f" and {' and '.join(checks)} checked nothing" if checks else ""
                tr.write_line(f"pai-judge: nothing was judged ({self.kept}), so nothing was compared with the "
                              f"baseline{checked}", yellow=True)


    def _write_drift(self, tr: Any) -> None:
        from .drift import DRIFT_STATUSES, no_shared_cases
        from .table import NO_SCENE, fmt_change, fmt_points, fmt_score

        per_case, per_scene = self.drift  # type: ignore[misc]
        tr.section(f"pai-judge drift vs {self._baseline_label()}")
        counts = per_case["status"].value_counts()
        tr.write_line(", ".join(f"{int(counts.get(k, 0))} {k}" for k in DRIFT_STATUSES) + " (score points)")
        nothing_shared = no_shared_cases(per_case)
        if nothing_shared:
            tr.write_line(f"WARNING: {nothing_shared}", yellow=True, bold=True)
        if len(per_scene):
            width = max(display_width(NO_SCENE), *(display_width(str(s)) for s in per_scene["scene"]))
            tr.write_line(f"  {pad('scene', width)}  cases   then →  now  change")
            for r in per_scene.to_dict(orient="records"):
                tr.write_line(f"  {pad(str(r['scene']), width)}  {r['cases']:>5}  {fmt_score(r['mean_then']):>5} → "
                              f"{fmt_score(r['mean_now']):<5} {fmt_change(r['mean_change']):>6}",
                              red=r["mean_change"] < 0, green=r["mean_change"] > 0)
        moved = per_case[per_case["status"].isin(["down", "up"])]
        verbose = self.config.get_verbosity() > 0
        shown = moved if verbose else moved.head(SHOWN_CASES)
        if len(shown):
            tr.write_line("  change   then →  now   case")
            for r in shown.to_dict(orient="records"):
                tr.write_line(self._case_line(r), red=r["change"] < 0, green=r["change"] > 0)
            if len(moved) > len(shown):
                tr.write_line(f"  … {len(moved) - len(shown)} more moved cases (-v lists all; the reports have them)")
        if self.max_drop is not None:
            assert self.dropped is not None
            limit = fmt_score(self.max_drop)
            if len(self.dropped):
                tr.write_line(f"FAILED --judge-max-drop={limit}: {plural(len(self.dropped), 'case')} dropped by "
                              f"more than {fmt_points(self.max_drop)}:", red=True, bold=True)
                for r in self.dropped.to_dict(orient="records"):
                    tr.write_line(f"  dropped by {-r['change']:g}: {r['key']} ({fmt_score(r['score_then'])} → "
                                  f"{fmt_score(r['score_now'])})", red=True)
            elif nothing_shared:
                tr.write_line(f"WARNING: --judge-max-drop={limit} checked nothing: no case of this run is in the "
                              f"baseline", yellow=True, bold=True)
            else:
                tr.write_line(f"no case dropped by more than {fmt_points(self.max_drop)} (--judge-max-drop)",
                              green=True)
        if self.regression is not None:
            r = self.regression
            tr.write_line(r.line(), red=r.failed, bold=r.failed, green=r.status == "held",
                          yellow=r.status == "too few")

    @staticmethod
    def _case_line(r: dict[str, Any]) -> str:
        from .table import fmt_change, fmt_score

        return (f"  {fmt_change(r['change']):>6}  {fmt_score(r['score_then']):>5} → {fmt_score(r['score_now']):<5} "
                f"{r['key']}")


def _why_nothing(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> str:
    """Why a run has no report rows, in a few words for the terminal."""
    if exitstatus == pytest.ExitCode.USAGE_ERROR:
        return "a usage error stopped the run"
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "collection failed" if session.testsfailed else "the run was interrupted first"
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        return "no test was selected (-k / -m deselected them all)" if session.testscollected else \
            "no test was collected"
    return "no test of this run made a judge assertion"


def _absolute(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(base) / path


def _shown(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)
