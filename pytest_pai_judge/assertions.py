"""The public judge assertions (``assert_judge_*``) and the ``judge`` fixture's object.

Each assertion builds an :class:`~pytest_pai_judge.expectation.Expectation` and hands it to the
active session, which decides it now or holds it until the run's verdicts arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .calibration import Agreement, labelled_set
from .counts import cost_columns
from .errors import REFUSED_BEFORE_SENDING, JudgeAssertionError, JudgeError
from .expectation import (
    Comparison,
    consensus,
    custom_expectation,
    failure_columns,
    pairwise_expectation,
    samples_of,
    score_expectation,
)
from .probes import DEFAULT_LIMITS, PROBES, BiasProbes, probe_expectation
from .request import JudgeRequest
from .session import JudgeSession, active_session

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .verdict import Verdict


# --------------------------------------------------------------------------- public API


def _active() -> tuple[JudgeSession, pytest.Item | None]:
    session = active_session()
    return session, session.current_item


def assert_judge_score(question: str, answer: str, min: float | None = None, *,  # noqa: A002 - the documented name
                       ref_answer: str | None = None, scene: str | None = None, scene_desc: str | None = None,
                       metric: str | None = None, max_score: int | None = None, score_desc: str | None = None,
                       steps: str | None = None, model: str | None = None, samples: int | None = None,
                       **params: Any) -> Verdict | None:
    """Fail the test unless the judge scores ``answer`` at least ``min``.

    ``min`` defaults to the marker / ``--judge-min-score`` / ini / 4; ``samples`` (default: the
    marker / ``--judge-samples`` / ini / 1) asks a sampling judge several times and decides by
    the rule in :mod:`pytest_pai_judge.decision`. Extra keyword arguments are generation
    parameters (temperature, seed, response_format, ...). Returns the verdict in immediate mode;
    in deferred / batch mode the outcome is decided at the end of the run.
    """
    __tracebackhide__ = True
    session, item = _active()
    fields = dict(ref_answer=ref_answer, scene=scene, scene_desc=scene_desc, metric=metric, max_score=max_score,
                  score_desc=score_desc, steps=steps, **params)
    expectation = score_expectation(session.settings_for(item), item, question, answer, min, model, fields,
                                    samples=samples)
    outcomes = session.submit(expectation, item)
    return expectation.result(outcomes) if outcomes else None


def assert_judge_custom(messages: list[dict[str, Any]] | str, min: float | None = None, *,  # noqa: A002
                        max_score: int | None = None, model: str | None = None, samples: int | None = None,
                        **params: Any) -> Verdict | None:
    """Fail unless the judge, prompted with your own template, scores at least ``min`` (read from its prose).

    ``messages`` are ordinary chat messages (or one user message as a string); ``max_score`` is
    the scale your template asks for (default 5). Thresholds, samples and modes as for
    :func:`assert_judge_score`.
    """
    __tracebackhide__ = True
    session, item = _active()
    expectation = custom_expectation(session.settings_for(item), item, messages, min, model, max_score, params,
                                     samples=samples)
    outcomes = session.submit(expectation, item)
    return expectation.result(outcomes) if outcomes else None


def assert_judge_prefers(question: str, better: str, worse: str, *, model: str | None = None,
                         samples: int | None = None, **fields: Any) -> Comparison | None:
    """Fail unless the judge prefers ``better`` over ``worse`` in BOTH orders (disagreement is a tie).

    With ``samples`` > 1 each sample judges both orders and ``better`` must win a strict majority.
    """
    __tracebackhide__ = True
    return _assert_pairwise("prefers", question, better, worse, model, fields, ("better", "worse"), samples)


def assert_judge_not_worse(question: str, candidate: str, baseline: str, *, model: str | None = None,
                           samples: int | None = None, **fields: Any) -> Comparison | None:
    """Fail if the judge prefers ``baseline`` over ``candidate`` in both orders; a tie passes.

    With ``samples`` > 1 it fails when ``baseline`` wins a strict majority of the samples.
    """
    __tracebackhide__ = True
    return _assert_pairwise("not_worse", question, candidate, baseline, model, fields, ("candidate", "baseline"),
                            samples)


def _assert_pairwise(assertion: str, question: str, first: str, second: str, model: str | None,
                     fields: dict[str, Any], labels: tuple[str, str], samples: int | None) -> Comparison | None:
    """Both pairwise assertions: judge both orders now, or hold them in deferred / batch mode."""
    __tracebackhide__ = True
    session, item = _active()
    expectation = pairwise_expectation(session.settings_for(item), item, assertion, question, first, second, model,
                                       fields, {"first": labels[0], "second": labels[1]}, samples=samples)
    outcomes = session.submit(expectation, item)
    return expectation.result(outcomes) if outcomes else None


def assert_judge_agrees(data: Any, *, min_kappa: float | None = None, min_spearman: float | None = None,
                        min_exact: float | None = None, min_within_one: float | None = None,
                        min_tpr: float | None = None, min_tnr: float | None = None,
                        min_agreement: float | None = None, min_position_consistency: float | None = None,
                        **columns_and_fields: Any) -> Agreement | None:
    """Fail unless the judge agrees with the human labels of ``data`` at least this well.

    ``data`` and the column keywords are those of :func:`~pytest_pai_judge.dataset_cases.cases`
    (defaults ``question``, ``answer``, ``ref_answer``, ``human_score``; pairwise: name ``answer1`` /
    ``answer2`` and ``human_winner``); ``threshold=`` adds the judge's true-positive / -negative rates
    as a pass/fail classifier; ``samples=`` judges each row several times. Every bound is on the
    figure itself (not its interval). Returns the :class:`~pytest_pai_judge.calibration.Agreement`
    in immediate mode; in deferred / batch mode the rows are judged with the run's other verdicts
    (batch: in its one job) and the assertion is decided at the end of the run.
    """
    __tracebackhide__ = True
    session, item = _active()
    minima = {"min_kappa": min_kappa, "min_spearman": min_spearman, "min_exact": min_exact,
              "min_within_one": min_within_one, "min_tpr": min_tpr, "min_tnr": min_tnr, "min_agreement": min_agreement,
              "min_position_consistency": min_position_consistency}
    expectation = labelled_set(session.settings_for(item), item, data, minima=minima, **columns_and_fields)
    return expectation.measured if session.submit(expectation, item) else None


def assert_judge_unbiased(question: str, answer: str, *, probes: Sequence[str] = PROBES, other: str | None = None,
                          samples: int | None = None, max_flip_rate: float = DEFAULT_LIMITS["position"],
                          max_verbosity_gain: float = DEFAULT_LIMITS["verbosity"],
                          max_spread: float = DEFAULT_LIMITS["consistency"], padding: str | None = None,
                          model: str | None = None, **fields: Any) -> BiasProbes | None:
    """Fail if the judge shows a bias on this case: each probe's effect size must stay within its limit.

    ``position``: ``answer`` against ``other`` (default: against itself) in both orders, ``samples`` times:
    the share whose verdict follows the position, not the answer (limit ``max_flip_rate``).
    ``verbosity``: ``answer`` and ``answer`` + fluent but empty ``padding``: how many points the padding
    gains (mean of the samples; limit ``max_verbosity_gain``). ``consistency``: the spread (standard
    deviation) of ``samples`` verdicts of one request (limit ``max_spread``). ``samples`` defaults to
    the test's setting, at least 5. Returns the :class:`~pytest_pai_judge.probes.BiasProbes` in
    immediate mode; deferred / batch mode decide it at the end of the run.
    """
    __tracebackhide__ = True
    session, item = _active()
    expectation = probe_expectation(session.settings_for(item), item, question, answer, probes=probes, other=other,
                                    samples=samples, padding=padding, model=model, fields=fields,
                                    limits={"position": max_flip_rate, "verbosity": max_verbosity_gain,
                                            "consistency": max_spread})
    return expectation.measured if session.submit(expectation, item) else None


class Judge:
    """The ``judge`` fixture: verdicts as values, bound to the test's model and thresholds."""

    def __init__(self, session: JudgeSession, item: pytest.Item | None) -> None:
        self._session = session
        self._item = item

    @property
    def model(self) -> str:
        return self._session.settings_for(self._item).model

    @property
    def min_score(self) -> float:
        return self._session.settings_for(self._item).min_score

    def score(self, question: str, answer: str, *, model: str | None = None, **fields: Any) -> Verdict:
        """Judge one answer (single mode) and return the verdict, whatever its score."""
        __tracebackhide__ = True
        samples = fields.pop("samples", None)
        request = JudgeRequest.single(question, answer, model=model or self.model, **fields)
        return self._session.value(request, self._item, samples=self._samples(samples, request))

    def _samples(self, samples: int | None, request: JudgeRequest) -> int:
        return samples_of(samples, self._session.settings_for(self._item), request)

    def compare(self, question: str, answer1: str, answer2: str, *, model: str | None = None,
                both_orders: bool = True, **fields: Any) -> Comparison:
        """Judge two answers; with ``both_orders`` (default) an order-dependent verdict is a tie."""
        __tracebackhide__ = True
        model = model or self.model
        samples = fields.pop("samples", None)
        request = JudgeRequest.pairwise(question, answer1, answer2, model=model, **fields)
        count = self._samples(samples, request) if both_orders or samples is not None else 1
        if count > 1:
            if not both_orders:
                raise ValueError("samples= judges both orders in every sample; it cannot go with both_orders=False")
            backward = JudgeRequest.pairwise(question, answer2, answer1, model=model, **fields)
            return self._session.sampled_comparison(request, backward, self._item, count)
        if self._session.judging.estimate is not None:
            orders = [request] + ([JudgeRequest.pairwise(question, answer2, answer1, model=model, **fields)]
                                  if both_orders else [])
            self._session.estimate_values(orders, self._item)
        try:
            return self._compare(request, question, answer1, answer2, model, both_orders, fields)
        except Exception as exc:  # an unreadable order: one row that says so, as for a failed score()
            if not getattr(exc, "judge_recorded", False):
                self._session.record_value_failure(request, exc, self._item)
            raise

    def _compare(self, request: JudgeRequest, question: str, answer1: str, answer2: str, model: str,
                 both_orders: bool, fields: dict[str, Any]) -> Comparison:
        __tracebackhide__ = True
        forward = self._session.value(request, self._item, record=False)
        if not both_orders:
            result = Comparison(forward.winner or "tie", True, forward, forward)
            self._session.record_value(request, forward, self._item, winner=result.winner)
            return result
        try:
            backward = self._session.value(JudgeRequest.pairwise(question, answer2, answer1, model=model, **fields),
                                           self._item, record=False)
        except Exception as exc:  # the first order was paid for: its row says so, with the second's error
            if not isinstance(exc, REFUSED_BEFORE_SENDING):
                self._session.record_value(request, None, self._item, **failure_columns([forward, exc]))
                exc.judge_recorded = True  # type: ignore[attr-defined]
            raise
        result = consensus(forward, backward)
        self._session.record_value(request, forward, self._item, winner=result.winner, score=result.score1,
                                   score2=result.score2, **cost_columns([[forward], [backward]]))
        return result

    def custom(self, messages: list[dict[str, Any]] | str, *, model: str | None = None, max_score: int = 5,
               samples: int | None = None, **params: Any) -> Verdict:
        """Judge with your own template (system / user messages); the reply's score is read from prose."""
        __tracebackhide__ = True
        request = JudgeRequest.custom(messages, model=model or self.model, **params)
        request.fields["max_score"] = max_score if max_score != 5 else None
        request.fields = {k: v for k, v in request.fields.items() if v is not None}
        return self._session.value(request, self._item, samples=self._samples(samples, request))

    def agreement(self, data: Any, **columns_and_fields: Any) -> Agreement:
        """Judge every row of a labelled set now and measure agreement (see :func:`assert_judge_agrees`).

        A value: in deferred / batch mode its rows are judged synchronously, when it is called.
        """
        __tracebackhide__ = True
        expectation = labelled_set(self._session.settings_for(self._item), self._item, data, **columns_and_fields)
        self._session.submit(expectation, self._item, now=True)
        assert expectation.measured is not None
        return expectation.measured

    def probes(self, question: str, answer: str, **kwargs: Any) -> BiasProbes:
        """The bias probes' effect sizes now, without asserting (see :func:`assert_judge_unbiased`)."""
        __tracebackhide__ = True
        limits = {"position": kwargs.pop("max_flip_rate", None), "verbosity": kwargs.pop("max_verbosity_gain", None),
                  "consistency": kwargs.pop("max_spread", None)}
        probes, other, samples = kwargs.pop("probes", PROBES), kwargs.pop("other", None), kwargs.pop("samples", None)
        padding, model = kwargs.pop("padding", None), kwargs.pop("model", None)
        expectation = probe_expectation(self._session.settings_for(self._item), self._item, question, answer,
                                        probes=probes, other=other, samples=samples, padding=padding, model=model,
                                        fields=kwargs, limits=limits, asserting=False)
        self._session.submit(expectation, self._item, now=True)
        assert expectation.measured is not None
        return expectation.measured

    def assert_custom(self, messages: list[dict[str, Any]] | str, min: float | None = None,  # noqa: A002
                      **kwargs: Any) -> Verdict | None:
        return assert_judge_custom(messages, min, **kwargs)

    def assert_score(self, question: str, answer: str, min: float | None = None, **kwargs: Any  # noqa: A002
                     ) -> Verdict | None:
        return assert_judge_score(question, answer, min, **kwargs)

    def assert_prefers(self, question: str, better: str, worse: str, **kwargs: Any) -> Comparison | None:
        return assert_judge_prefers(question, better, worse, **kwargs)

    def assert_not_worse(self, question: str, candidate: str, baseline: str, **kwargs: Any) -> Comparison | None:
        return assert_judge_not_worse(question, candidate, baseline, **kwargs)


__all__ = ["assert_judge_score", "assert_judge_prefers", "assert_judge_not_worse", "assert_judge_custom",
           "assert_judge_agrees", "assert_judge_unbiased", "Judge",
           "Comparison", "JudgeAssertionError", "JudgeError"]
