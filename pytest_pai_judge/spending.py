"""Spend on purpose: what a run would cost before it pays (``--judge-estimate``), and caps on what it may.

**Estimate.** With ``--judge-estimate`` every judge assertion runs up to its cache lookups; a
verdict the cache holds is counted as cached, every other one as a call the run would make
(several samples in full, both orders of a pairwise assertion), and the test is skipped with
reason "estimate". Nothing is sent. Prompt tokens are counted as the local server counts them:
the PAI template of the request's mode filled in (:func:`prompt_tokens`), the same count its
``usage`` reports; PAI's own tokenizer may differ a little. Completion tokens are expected from the
cache's history (the mean over the last replies of the same model and mode), else
``DEFAULT_COMPLETION_TOKENS`` per verdict. With ``judge_price_per_1k_input`` / ``_output`` in the
ini the price is given too.

**Budgets.** ``--judge-max-calls N`` and ``--judge-max-tokens N``: before each call the run's
spending so far (all xdist workers together, in one small SQLite file per run) plus the call's
expected tokens is checked; a call that would pass a cap is not sent and its assertion errors
with ``BudgetReached`` (it never passes). Batch mode checks the whole job before uploading it.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors
from .request import JudgeRequest

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .cache import VerdictCache

DEFAULT_COMPLETION_TOKENS = 350
"""Expected completion tokens of one verdict with no history to go by (the spec's sample verdicts run
257-438)."""
HISTORY = 500
"""Cached replies read for the completion-token history (the newest)."""


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption("--judge-estimate", dest="judge_estimate", action="store_true", default=False,
                    help="count what the run would cost without calling the judge: cached verdicts, calls needed, "
                         "prompt and expected completion tokens, the price (judge_price_per_1k_input / _output) "
                         "and, in batch mode, the jobs; every judged test is skipped with reason 'estimate'")
    for name, what in (("judge-max-calls", "calls"), ("judge-max-tokens", "tokens (prompt + completion)")):
        dest = name.replace("-", "_")
        group.addoption(f"--{name}", dest=dest, type=int, default=None, metavar="N",
                        help=f"a cap on the judge {what} this run may spend (all xdist workers together): a call "
                             "that would pass it is not sent and its assertion errors with BudgetReached; batch "
                             "mode refuses a job over it before uploading")
        parser.addini(dest, type="string", default=None, help=f"like --{name}")
    for side in ("input", "output"):
        parser.addini(f"judge_price_per_1k_{side}", type="string", default=None,
                      help=f"price of 1,000 {side} tokens of the judge, in your currency: --judge-estimate and the "
                           "reports show the cost")


@dataclass(frozen=True)
class Spending:
    """The run's estimate flag, caps and prices."""

    estimate: bool = False
    max_calls: int | None = None
    max_tokens: int | None = None
    price_input: float | None = None
    price_output: float | None = None

    @property
    def capped(self) -> bool:
        return self.max_calls is not None or self.max_tokens is not None

    @property
    def priced(self) -> bool:
        return self.price_input is not None or self.price_output is not None

    def cost(self, prompt: float, completion: float) -> float | None:
        """The price of those tokens, or None when no price is set."""
        if not self.priced:
            return None
        return prompt / 1000 * (self.price_input or 0.0) + completion / 1000 * (self.price_output or 0.0)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Spending:
        from .options import usage_error

        def number(name: str, whole: bool) -> float | None:
            value = config.getoption(name, None)  # the prices have no command-line option: None
            source = "--" + name.replace("_", "-")
            if value is None:
                value, source = config.getini(name), f"ini key {name}"
            if value in (None, ""):
                return None
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise usage_error(f"{source} must be a number, got {value!r}") from None
            if number < 0 or (whole and not number.is_integer()):
                raise usage_error(f"{source} must be a {'whole ' if whole else ''}number, 0 or more, got {value!r}")
            return number

        calls, tokens = number("judge_max_calls", True), number("judge_max_tokens", True)
        return cls(bool(config.getoption("judge_estimate", False)), None if calls is None else int(calls),
                   None if tokens is None else int(tokens), number("judge_price_per_1k_input", False),
                   number("judge_price_per_1k_output", False))


# --------------------------------------------------------------------------- token counts


def prompt_tokens(request: JudgeRequest) -> int:
    """The request's prompt tokens as the local server counts them (its template filled in, then counted)."""
    from .server.engines.base import prompt_messages
    from .server.tokens import count_tokens

    call = request.validate(None)
    return sum(count_tokens(m["content"]) for m in prompt_messages(call))


def choices_of(request: JudgeRequest) -> int:
    n = request.params.get("n")
    return int(n) if isinstance(n, int) and n > 1 else 1


class CompletionHistory:
    """Expected completion tokens per (model, mode), from the cache's newest replies."""

    def __init__(self, cache: VerdictCache | None) -> None:
        self.means: dict[tuple[str, str], tuple[float, int]] = {}
        if cache is not None:
            from .cache import completion_history

            sums: dict[tuple[str, str], list[int]] = {}
            for model, kind, tokens in completion_history(cache, HISTORY):
                sums.setdefault((model, kind), []).append(tokens)
            self.means = {k: (sum(v) / len(v), len(v)) for k, v in sums.items()}

    def expected(self, request: JudgeRequest) -> float:
        found = self.means.get((request.model, request.kind))
        return found[0] if found is not None else float(DEFAULT_COMPLETION_TOKENS)

    def source(self) -> str:
        if not self.means:
            return f"no cached history: {DEFAULT_COMPLETION_TOKENS} per verdict assumed"
        parts = [f"{model}/{kind} {mean:.0f} (mean of {n})" for (model, kind), (mean, n) in sorted(self.means.items())]
        return "per verdict, from the cache: " + ", ".join(parts) + \
            f"; {DEFAULT_COMPLETION_TOKENS} for anything else"


# --------------------------------------------------------------------------- the estimate


@dataclass
class Estimate:
    """What the run would spend: counted as its assertions reach the judge (merged across xdist workers)."""

    calls: int = 0
    verdicts: int = 0
    """Verdicts the calls would bring (a call drawing n samples brings n)."""
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: float = 0.0
    tests: set[str] = field(default_factory=set)

    def count(self, request: JudgeRequest, history: CompletionHistory) -> None:
        choices = choices_of(request)
        self.calls += 1
        self.verdicts += choices
        self.prompt_tokens += prompt_tokens(request)
        self.completion_tokens += history.expected(request) * choices

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "verdicts": self.verdicts, "cached": self.cached,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "tests": sorted(self.tests)}

    def merge(self, data: dict[str, Any]) -> None:
        self.calls += int(data.get("calls") or 0)
        self.verdicts += int(data.get("verdicts") or 0)
        self.cached += int(data.get("cached") or 0)
        self.prompt_tokens += int(data.get("prompt_tokens") or 0)
        self.completion_tokens += float(data.get("completion_tokens") or 0)
        self.tests.update(data.get("tests") or [])

    def lines(self, spending: Spending, mode: str, history: str) -> list[str]:
        """The terminal's estimate section."""
        total = self.prompt_tokens + self.completion_tokens
        lines = [f"nothing was judged: {len(self.tests):,} judged tests skipped with reason 'estimate'",
                 f"calls needed: {self.calls:,} (for {self.verdicts:,} verdicts; several samples counted in full, "
                 f"both orders of a pairwise assertion); verdicts in the cache: {self.cached:,}",
                 f"prompt tokens: {self.prompt_tokens:,} (as the local server counts them, the PAI template of "
                 "each mode filled in)",
                 f"expected completion tokens: {self.completion_tokens:,.0f} ({history})",
                 f"expected tokens in all: {total:,.0f}"]
        cost = spending.cost(self.prompt_tokens, self.completion_tokens)
        if cost is not None:
            lines.append(f"expected price: {cost:,.4f} (judge_price_per_1k_input={spending.price_input or 0:g}, "
                         f"judge_price_per_1k_output={spending.price_output or 0:g})")
        else:
            lines.append("price: set judge_price_per_1k_input / judge_price_per_1k_output in the ini to see it")
        if mode == "batch":
            lines.append(f"batch jobs: {1 if self.calls else 0} ({self.calls:,} lines)" if self.calls else
                         "batch jobs: none (every verdict is cached)")
        for name, cap, value in (("--judge-max-calls", spending.max_calls, self.calls),
                                 ("--judge-max-tokens", spending.max_tokens, total)):
            if cap is not None:
                lines.append(f"{name}={cap:,}: {'within it' if value <= cap else 'the run would pass it'}")
        return lines


# --------------------------------------------------------------------------- budgets


class Budget:
    """The run's spending against its caps, shared by every process of the run (a SQLite file per run id).

    ``reserve`` takes a call's expected tokens before it is sent (refusing it past a cap);
    ``settle`` replaces them with what the call really spent.
    """

    def __init__(self, spending: Spending, run_id: str, directory: Path | None = None) -> None:
        self.spending = spending
        self.path = Path(directory or tempfile.gettempdir(), f"pai-judge-budget-{run_id}.sqlite")
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS spent (id INTEGER PRIMARY KEY CHECK (id = 1), "
                             "calls INTEGER NOT NULL, tokens REAL NOT NULL, refused INTEGER NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO spent VALUES (1, 0, 0, 0)")
        return self._db

    def reserve(self, calls: int, tokens: float, what: str) -> None:
        """Count ``calls`` expected to spend ``tokens``, or raise BudgetReached (counting the refusal)."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                spent_calls, spent_tokens = db.execute("SELECT calls, tokens FROM spent").fetchone()
                why = self._over(spent_calls, spent_tokens, calls, tokens)
                if why:
                    db.execute("UPDATE spent SET refused = refused + ?", (calls,))
                else:
                    db.execute("UPDATE spent SET calls = calls + ?, tokens = tokens + ?", (calls, tokens))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if why:
            raise errors.BudgetReached(f"budget reached: {what} was not sent: {why}")

    def _over(self, spent_calls: int, spent_tokens: float, calls: int, tokens: float) -> str:
        caps = self.spending
        if caps.max_calls is not None and spent_calls + calls > caps.max_calls:
            return (f"{spent_calls:,} of --judge-max-calls={caps.max_calls:,} calls are spent and it needs "
                    f"{calls:,} more")
        if caps.max_tokens is not None and spent_tokens + tokens > caps.max_tokens:
            return (f"{spent_tokens:,.0f} of --judge-max-tokens={caps.max_tokens:,} tokens are spent and it is "
                    f"expected to take {tokens:,.0f} more")
        return ""

    def settle(self, expected: float, spent: float) -> None:
        """A reserved call came back having spent ``spent`` tokens (0 when it failed without an answer)."""
        with self._lock:
            self._connection().execute("UPDATE spent SET tokens = tokens + ?", (spent - expected,))

    def state(self) -> tuple[int, float, int]:
        """(calls spent, tokens spent, calls refused) of the whole run so far."""
        with self._lock:
            row = self._connection().execute("SELECT calls, tokens, refused FROM spent").fetchone()
        return int(row[0]), float(row[1]), int(row[2])

    def line(self) -> str:
        calls, tokens, refused = self.state()
        caps = self.spending
        parts = [f"{calls:,}" + (f" of {caps.max_calls:,}" if caps.max_calls is not None else "") + " calls",
                 f"{tokens:,.0f}" + (f" of {caps.max_tokens:,}" if caps.max_tokens is not None else "") + " tokens"]
        text = f"budget: {' and '.join(parts)} spent"
        if refused:
            text += (f"; {refused:,} {'call was' if refused == 1 else 'calls were'} refused (budget reached): "
                     "their tests failed with BudgetReached, none passed")
        return text

    def close(self, *, remove: bool) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if remove:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def spent_tokens(usage: dict[str, Any] | None) -> float:
    return float((usage or {}).get("total_tokens") or 0)


def job_tokens(requests: Sequence[JudgeRequest], history: CompletionHistory) -> float:
    """Expected tokens of a batch job of these requests."""
    return sum(prompt_tokens(r) + history.expected(r) * choices_of(r) for r in requests)


__all__ = ["Budget", "CompletionHistory", "Estimate", "Spending", "add_options", "job_tokens", "prompt_tokens",
           "spent_tokens"]
