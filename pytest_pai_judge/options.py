"""Every command-line option, ini key and ``judge`` marker argument: declared, read and checked once.

:func:`add_options` declares them; :meth:`Options.from_config` reads and checks them at
``pytest_configure`` in every mode, so a bad ini value fails today, not the day the mode changes.
Everything downstream reads the frozen :class:`Options`; modes are enums, never strings.
Precedence everywhere: argument > marker > command line > ini > default.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cache import CACHE_MODES, DEFAULT_DIRNAME, CacheMode
from .client import BASE_URL_ENV, TOKEN_ENV, TOTAL_TIMEOUTS
from .decision import MAX_SAMPLES
from .request import judge_identity

DEFAULT_MODEL = "pai-judge"
DEFAULT_MIN_SCORE = 4.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 3
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_BATCH_POLL_S = 2.0
DEFAULT_BATCH_TIMEOUT_S = 86400.0
EMBEDDED_IDENTITY = "<embedded lexical engine>"
"""Cache host identity of the embedded server: its port changes every run, its verdicts do not."""
DEFAULT_SAMPLES = 1
DEFAULT_CONFIDENCE = 0.95
MARKER_ARGS = ("min_score", "model", "samples", "defer", "group")


class RunMode(str, enum.Enum):
    """When verdicts are fetched: inside each test, concurrently after it, or in one batch job."""

    IMMEDIATE = "immediate"
    DEFERRED = "deferred"
    BATCH = "batch"

    def __str__(self) -> str:
        return self.value


class ValueFallback(str, enum.Enum):
    """Deferred / batch mode: what a verdict read as a value in the test body does."""

    ERROR = "error"
    IMMEDIATE = "immediate"

    def __str__(self) -> str:
        return self.value


class Inconclusive(str, enum.Enum):
    """What a multi-sample assertion whose samples could not decide does to its test."""

    FAIL = "fail"
    PASS = "pass"
    SKIP = "skip"

    def __str__(self) -> str:
        return self.value


MODES: tuple[str, ...] = tuple(m.value for m in RunMode)


def add_options(parser: pytest.Parser) -> Any:
    """One option group, one prefix; every option also has an ini key. Returns the group (reports add to it)."""
    group = parser.getgroup("pai-judge", "judge-model assertions (pytest-pai-judge)")

    def option(name: str, help: str, **kwargs: Any) -> None:  # noqa: A002 - argparse's own keyword
        dest = name.replace("-", "_")
        group.addoption(f"--{name}", dest=dest, default=None, help=help, **kwargs)
        parser.addini(dest, help=help, type="string", default=None)

    option("judge-model", "judge model name (default: pai-judge; markers may override per test)")
    option("judge-base-url", "judge API base URL, e.g. https://aiservice.cn-hangzhou.aliyuncs.com/v1 "
           "(env JUDGE_MODEL_BASE_URL). Unset: an embedded local server with the offline lexical engine. "
           "The token comes from env JUDGE_MODEL_TOKEN only")
    option("judge-min-score", "minimum score for assert_judge_score (default 4)", type=float)
    option("judge-samples", "judge samples per assertion (default 1): several samples of a sampling judge, "
           "decided by a statistical rule with early stopping; see the README's 'Noisy judges'", type=int)
    option("judge-confidence", "with samples > 1: the confidence a decision needs (default 0.95); below it a "
           "case that used all its samples is inconclusive", type=float)
    option("judge-inconclusive", "what an inconclusive multi-sample assertion does to its test: fail (default), "
           "pass or skip", choices=tuple(m.value for m in Inconclusive))
    option("judge-timeout", "seconds to wait for one judge reply, per attempt (default 60); a call that timed "
           "out waiting for its answer is not resent (the judge may still be working on it)", type=float)
    option("judge-total-timeout", "seconds one judge call may take across all its attempts and the waits "
           "between them (default: twice --judge-timeout)", type=float)
    option("judge-retries", "retries of a judge call after a 408, 409, 429, 5xx or connection error, with "
           "backoff and retry-after (default 3); after 2 calls in a row could not reach the judge, later ones "
           "fail fast", type=int)
    option("judge-cache", "verdict cache: use (read+write, default), refresh (write only), off, "
           "replay (read only; a miss fails the test - for offline CI)", choices=CACHE_MODES)
    option("judge-cache-dir", "verdict cache directory (default: <rootdir>/.pai_judge_cache)")
    group.addoption("--judge-cache-prune", dest="judge_cache_prune", action="store_true", default=None,
                    help="after a complete run, drop cache entries that no test used in it (skipped when tests "
                         "were deselected, only some paths or node ids were given, or the run stopped early)")
    group.addoption("--no-judge-cache-prune", dest="judge_cache_prune", action="store_false",
                    help="do not prune, even if the ini file sets judge_cache_prune = true")
    parser.addini("judge_cache_prune", type="bool", default=False, help="like --judge-cache-prune")
    option("judge-mode", "immediate (default): judge inside each test; deferred: hold tests and judge "
           "with concurrent online calls; batch: one PAI batch job for the whole run", choices=MODES)
    option("judge-concurrency", "deferred mode: judge calls in flight at once to start with (default 8); the "
           "limit then adapts to the judge (see --judge-max-concurrency, --no-judge-adapt)", type=int)
    option("judge-max-concurrency", "deferred mode: the most calls in flight the adaptive limit may reach "
           "(default 64)", type=int)
    group.addoption("--judge-adapt", dest="judge_adapt", action="store_true", default=None,
                    help="deferred mode: adapt the calls in flight to the judge (the default): more while calls "
                         "answer in good time, half on a 429 (after its retry-after), fewer when answers slow down; "
                         "a 429 sends the call back to the queue instead of failing it")
    group.addoption("--no-judge-adapt", dest="judge_adapt", action="store_false",
                    help="deferred mode: keep --judge-concurrency calls in flight, whatever the judge answers")
    parser.addini("judge_adapt", type="bool", default=True, help="like --judge-adapt / --no-judge-adapt")
    option("judge-batch-timeout", "batch mode: seconds to wait for the batch job (default 86400)", type=float)
    option("judge-batch-poll", "batch mode: seconds between status polls (default 2)", type=float)
    group.addoption("--judge-batch-resume", dest="judge_batch_resume", default=None, metavar="BATCH_ID",
                    help="collect the results of an earlier, interrupted batch job instead of submitting a new one "
                         "(the last run's job is resumed automatically)")
    option("judge-batch-fallback", "deferred/batch mode: what a judge verdict read as a value in the "
           "test body does: error (default) or immediate (a synchronous call)",
           choices=tuple(f.value for f in ValueFallback))
    return group


@dataclass(frozen=True)
class Settings:
    """Resolved for one test: argument > marker > CLI > ini > default."""

    model: str
    min_score: float
    samples: int = DEFAULT_SAMPLES


@dataclass(frozen=True)
class Options:
    """The run's judge settings, read and checked once."""

    model: str
    min_score: float
    samples: int
    confidence: float
    inconclusive: Inconclusive
    timeout: float
    total_timeout: float
    retries: int
    concurrency: int
    """Deferred mode: judge calls in flight at once, for the whole run (where the adaptive limit starts)."""
    max_concurrency: int
    adapt: bool
    batch_poll: float
    batch_timeout: float
    batch_resume: str | None
    value_fallback: ValueFallback
    base_url: str | None
    """None: the embedded local server."""
    cache_identity: str
    """Names the judge in cache keys: a host:port, or a word no URL can produce for the embedded server."""
    run_mode: RunMode
    cache_mode: CacheMode
    cache_dir: Path
    prune: bool
    warnings: tuple[str, ...] = ()
    """Problems worth a line in the summary, found while reading the options."""

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Options:
        """Read every judge option (CLI > ini > default); a bad value is a ``pytest.UsageError`` naming it."""
        read = _Reader(config)
        min_score = read.number("judge_min_score", DEFAULT_MIN_SCORE)
        if min_score <= 0:
            raise usage_error(f"{read.source('judge_min_score')} must be a positive score, got {min_score:g}")
        samples = read.number("judge_samples", DEFAULT_SAMPLES)
        if not check_samples(samples):
            raise usage_error(f"{read.source('judge_samples')} must be a whole number of samples from 1 to "
                              f"{MAX_SAMPLES}, got {samples:g}")
        confidence = read.number("judge_confidence", DEFAULT_CONFIDENCE)
        if not 0.5 < confidence < 1:
            raise usage_error(f"{read.source('judge_confidence')} must be above 0.5 and below 1 (e.g. 0.95), "
                              f"got {confidence:g}")
        timeout = read.number("judge_timeout", DEFAULT_TIMEOUT_S)
        if timeout <= 0:
            raise usage_error(f"{read.source('judge_timeout')} must be a positive number of seconds, got {timeout:g}")
        total_timeout = read.number("judge_total_timeout", TOTAL_TIMEOUTS * timeout)
        if not 0 < total_timeout < float("inf"):
            raise usage_error(f"{read.source('judge_total_timeout')} must be a positive number of seconds, "
                              f"got {total_timeout:g}")
        retries = read.number("judge_retries", DEFAULT_RETRIES)
        if retries < 0 or not float(retries).is_integer():
            raise usage_error(f"{read.source('judge_retries')} must be a whole number of retries, 0 or more, "
                              f"got {retries:g}")
        concurrency = read.number("judge_concurrency", DEFAULT_CONCURRENCY)
        if concurrency < 1 or not float(concurrency).is_integer():
            raise usage_error(f"{read.source('judge_concurrency')} must be a whole number of calls, 1 or more, "
                              f"got {concurrency:g}")
        max_concurrency = read.number("judge_max_concurrency", max(DEFAULT_MAX_CONCURRENCY, concurrency))
        if max_concurrency < concurrency or not float(max_concurrency).is_integer():
            raise usage_error(f"{read.source('judge_max_concurrency')} must be a whole number of calls, at least "
                              f"{read.source('judge_concurrency')} ({concurrency:g}), got {max_concurrency:g}")
        adapt = config.getoption("judge_adapt")
        if adapt is None:
            try:
                adapt = config.getini("judge_adapt")
            except (ValueError, pytest.UsageError) as exc:
                raise usage_error(f"ini key judge_adapt must be true or false: {exc}") from None
        batch_poll = read.number("judge_batch_poll", DEFAULT_BATCH_POLL_S)
        batch_timeout = read.number("judge_batch_timeout", DEFAULT_BATCH_TIMEOUT_S)
        for name, value in (("judge_batch_poll", batch_poll), ("judge_batch_timeout", batch_timeout)):
            if value <= 0:
                raise usage_error(f"{read.source(name)} must be a positive number of seconds, got {value:g}")
        warnings = []
        # The command line beats the environment, which beats the ini file.
        base_url = (read.cli("judge_base_url") or os.environ.get(BASE_URL_ENV) or config.getini("judge_base_url")
                    or None)
        if os.environ.get(TOKEN_ENV) and not base_url:
            warnings.append(f"${TOKEN_ENV} is set but no judge base URL is (--judge-base-url, ${BASE_URL_ENV} or "
                            "the judge_base_url ini key): this run used the embedded offline lexical engine, "
                            "not PAI")
        identity = EMBEDDED_IDENTITY
        if base_url is not None:
            try:
                identity = judge_identity(base_url)
            except ValueError as exc:
                raise usage_error(f"{exc} (from --judge-base-url, ${BASE_URL_ENV} or the judge_base_url ini key; "
                                  "e.g. https://aiservice.cn-hangzhou.aliyuncs.com/v1)") from None
        run_mode = read.choice("judge_mode", RunMode, RunMode.IMMEDIATE)
        resume = config.getoption("judge_batch_resume") or None
        if resume and run_mode is not RunMode.BATCH:
            raise usage_error("--judge-batch-resume collects a batch job's results: it needs --judge-mode=batch")
        if resume and base_url is None:
            raise usage_error("--judge-batch-resume needs --judge-base-url (or $JUDGE_MODEL_BASE_URL): the embedded "
                              "local server keeps batches only while its run lasts, so there is no earlier job to "
                              "collect")
        cache_mode = read.choice("judge_cache", CacheMode, CacheMode.USE)
        cache_dir = Path(read.text("judge_cache_dir") or DEFAULT_DIRNAME)
        prune = config.getoption("judge_cache_prune")
        if prune is None:
            try:
                prune = config.getini("judge_cache_prune")
            except (ValueError, pytest.UsageError) as exc:  # pytest says "invalid truth value 'maybe'", not which key
                raise usage_error(f"ini key judge_cache_prune must be true or false: {exc}") from None
        return cls(
            model=read.text("judge_model") or DEFAULT_MODEL, min_score=min_score, samples=int(samples),
            confidence=confidence, inconclusive=read.choice("judge_inconclusive", Inconclusive, Inconclusive.FAIL),
            timeout=timeout, total_timeout=total_timeout,
            retries=int(retries), concurrency=int(concurrency), max_concurrency=int(max_concurrency),
            adapt=bool(adapt), batch_poll=batch_poll, batch_timeout=batch_timeout,
            batch_resume=resume, value_fallback=read.choice("judge_batch_fallback", ValueFallback, ValueFallback.ERROR),
            base_url=base_url, cache_identity=identity, run_mode=run_mode, cache_mode=cache_mode,
            cache_dir=cache_dir if cache_dir.is_absolute() else Path(config.rootpath, cache_dir), prune=bool(prune),
            warnings=tuple(warnings))

    def settings_for(self, item: pytest.Item | None) -> Settings:
        """The model and threshold for one test: its closest ``judge`` markers, else the run's options."""
        model, min_score, samples = None, None, None
        if item is not None:
            for marker in item.iter_markers("judge"):  # closest first: function, class, module
                if model is None and marker.kwargs.get("model"):
                    model = marker.kwargs["model"]
                if min_score is None and marker.kwargs.get("min_score") is not None:
                    min_score = float(marker.kwargs["min_score"])
                if samples is None and marker.kwargs.get("samples") is not None:
                    samples = int(marker.kwargs["samples"])
        return Settings(model or self.model, self.min_score if min_score is None else min_score,
                        self.samples if samples is None else samples)


class _Reader:
    """CLI > ini for one config, with errors that name where a bad value came from."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def cli(self, name: str) -> Any:
        return self.config.getoption(name)

    def text(self, name: str) -> str | None:
        return self.cli(name) or self.config.getini(name) or None

    def source(self, name: str) -> str:
        """Where ``name``'s value came from, as the user wrote it: ``--judge-timeout`` or ``ini key judge_timeout``
        (the default's own name when neither set it)."""
        if self.cli(name) not in (None, ""):
            return "--" + name.replace("_", "-")
        return f"ini key {name}" if self.config.getini(name) not in (None, "") else name

    def number(self, name: str, default: float) -> float:
        for source, value in (("--" + name.replace("_", "-"), self.cli(name)),
                              (f"ini key {name}", self.config.getini(name))):
            if value not in (None, ""):
                try:
                    return float(value)
                except (TypeError, ValueError):
                    raise usage_error(f"{source} must be a number, got {value!r}") from None
        return default

    def choice(self, name: str, kind: type[enum.Enum], default: Any) -> Any:
        value = self.text(name)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            names = [str(m.value) for m in kind]
            choices = " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)
            raise usage_error(f"{self.source(name)} must be {choices}, got {value!r}") from None


def check_markers(item: pytest.Item) -> None:
    """A judge marker with a typo would silently leave the default threshold: refuse it at collection."""
    for marker in item.iter_markers("judge"):
        problem = None
        if marker.args:
            problem = f"takes keyword arguments only, got positional {marker.args!r}"
        unknown = sorted(set(marker.kwargs) - set(MARKER_ARGS))
        if unknown:
            problem = f"unknown argument(s) {', '.join(unknown)} (known: {', '.join(MARKER_ARGS)})"
        defer = marker.kwargs.get("defer")
        if defer is not None and not isinstance(defer, bool):
            problem = f"defer must be True or False, got {defer!r}"
        score = marker.kwargs.get("min_score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or score <= 0):
            problem = f"min_score must be a positive number, got {score!r}"
        model = marker.kwargs.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            problem = f"model must be a model name, got {model!r}"
        group = marker.kwargs.get("group")
        if group is not None and (not isinstance(group, str) or not group.strip()):
            problem = f"group must be a name (a non-empty string), got {group!r}"
        samples = marker.kwargs.get("samples")
        if samples is not None and (not isinstance(samples, int) or not check_samples(samples)):
            problem = f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}"
        if problem:
            raise usage_error(f"@pytest.mark.judge on {item.nodeid}: {problem}")


def group_of(item: pytest.Item | None) -> str | None:
    """The closest ``@pytest.mark.judge(group=...)``: names the tests a ``--judge-gate ... for group=`` covers."""
    if item is None:
        return None
    marker = next((m for m in item.iter_markers("judge") if m.kwargs.get("group")), None)
    return None if marker is None else str(marker.kwargs["group"]).strip()


def defer_marker(item: pytest.Item) -> bool | None:
    """The closest ``@pytest.mark.judge(defer=...)``, or None when no marker says."""
    marker = next((m for m in item.iter_markers("judge") if "defer" in m.kwargs), None)
    return None if marker is None else bool(marker.kwargs["defer"])


def check_samples(value: Any) -> bool:
    """A usable number of samples: a whole number from 1 to :data:`MAX_SAMPLES` (not a bool)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer()
            and 1 <= value <= MAX_SAMPLES)


def usage_error(message: str) -> pytest.UsageError:
    return pytest.UsageError(message)
