"""What pytest decided for each test: the xfail rule for judge errors, and one outcome per test.

- **A judge error is never an expected failure.** A :class:`~pytest_pai_judge.errors.JudgeError`
  (replay miss, wrong token, a judge that cannot be reached, ...) or an ``UnreadableVerdict`` in an
  xfail-marked test fails it, unless the mark's ``raises=`` names that error: ``xfail`` says the
  *answer* is known to be bad, not that the judge may break. Applied where pytest makes each phase's
  report, the one place every mode's reports pass through (deferred and batch mode judge
  xfail-marked tests synchronously), so immediate, deferred and batch mode agree.
- **One outcome per test**, in pytest's own words: each phase's category from
  ``pytest_report_teststatus`` (what the terminal counts), folded into the worst one. The counts
  (:mod:`~pytest_pai_judge.counts`) read it from the report rows' ``outcome``; junitxml gets it as
  the property ``judge_outcome`` of every judged test.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import pytest

from . import errors
from .interning import shared
from .pytest_compat import is_xdist_worker, xfail_raises
from .record_store import WithOutcomes
from .records import JudgeRecord

WORST_FIRST = ("failed", "error", "xpassed", "xfailed", "skipped", "passed")
"""A test's phases folded into one outcome: the first of these any phase had."""


def judge_failure(exc: BaseException | None) -> bool:
    """Whether an exception says the judge gave no verdict (not that the answer fell short)."""
    if exc is None:
        return False
    from .verdict import UnreadableVerdict

    return isinstance(exc, (errors.JudgeError, UnreadableVerdict))


class TestOutcomes:
    """A pytest plugin (one per process): applies the xfail rule and remembers each test's outcome."""

    __test__ = False  # not a test class, whatever pytest collects

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = is_xdist_worker(config)
        self.outcomes: dict[str, str] = {}
        """Node id -> the test's outcome, once its last phase was reported."""
        self._phases: dict[str, list[str]] = {}

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Outermost: after pytest's xfail handling, fail an xfailed phase whose exception is a judge error."""
        report = yield
        if report.skipped and hasattr(report, "wasxfail") and call.excinfo is not None \
                and judge_failure(call.excinfo.value) and xfail_raises(item) is None:
            report.outcome = "failed"  # longrepr already holds the error's traceback
            del report.wasxfail
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each phase into the test's outcome; at its last phase, tell junitxml (before it writes)."""
        status = self.config.hook.pytest_report_teststatus(report=report, config=self.config)
        category = str(status[0]) if status else report.outcome
        if category == "rerun":  # pytest-rerunfailures: the test starts over
            self._phases.pop(report.nodeid, None)
            return
        self._phases.setdefault(report.nodeid, []).append(category)
        if report.when != "teardown":
            return
        seen = self._phases.pop(report.nodeid)
        outcome = next((o for o in WORST_FIRST if o in seen), "passed")
        self.outcomes[report.nodeid] = outcome
        if not self.is_worker and any(str(name).startswith("judge_") for name, _ in report.user_properties):
            report.user_properties.append(shared(("judge_outcome", outcome)))

    def fill(self, records: Sequence[JudgeRecord]) -> Sequence[JudgeRecord]:
        """The rows with their tests' outcomes, set as each is read (a worker's rows reach the controller without
        them, and a stored row is read back anew each time)."""
        return WithOutcomes(records, self.outcomes)

    def ran(self) -> set[str]:
        """Tests this run reported as run (a skipped test did not run its judge assertions)."""
        return {nodeid for nodeid, outcome in self.outcomes.items() if outcome != "skipped"}

