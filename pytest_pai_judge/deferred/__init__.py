"""Deferred and batch judging: tests hold their judge assertions, verdicts settle at the end of the run.

Why: judging N tests one call at a time costs N x the judge's latency. In ``--judge-mode=deferred``
and ``--judge-mode=batch`` a judge assertion that misses the cache is held (:mod:`.run`) and the
test body runs on; the test's reports are held back (:mod:`.hooks`) and logged once its verdicts
are in, with the same failure text immediate mode gives, pointing at the test's own lines
(:mod:`.callsite`). The verdicts come from one source (:mod:`.sources`): concurrent online calls
started while later tests still run (:mod:`.online`), or one PAI batch job for the whole run
(:mod:`.batch`, remembered across runs by :mod:`.ledger`). Under pytest-xdist the workers hold
and ship their held tests to the controller (:mod:`.xdist`), which settles them all.

Limits, by construction: ``-x`` / ``--maxfail`` / ``--sw`` cannot stop on a deferred failure and
``--pdb`` cannot open a debugger on it, because the failure is only known when the run's verdicts
arrive at the end; held tests are printed after the others. A verdict read as a *value* in the
test body (the ``judge`` fixture) cannot wait for the end: it is an error, or with
``--judge-batch-fallback=immediate`` a synchronous call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..concurrency import AdaptiveLimit
from ..options import RunMode
from ..pytest_compat import is_xdist_worker, xdist_workers
from .batch import BatchSource
from .hooks import HoldingHooks
from .online import OnlineSource
from .run import DeferredRun
from .sources import VerdictSource
from .xdist import RUN_ID_KEY, ControllerSide, WorkerSpool, XdistHooks

if TYPE_CHECKING:  # pragma: no cover
    from ..session import JudgeSession


def install(session: JudgeSession) -> DeferredRun:
    """Build the run's deferred side for its mode and register its hooks with pytest."""
    config = session.config
    options = session.options
    workerinput = getattr(config, "workerinput", None)
    run_id = str((workerinput or {}).get(RUN_ID_KEY) or session.run_id)
    source: VerdictSource
    if options.run_mode is RunMode.BATCH:
        source = BatchSource(options, lambda: session.judging.client, run_id=run_id, warnings=session.warnings,
                             breaker=session.judging.breaker, charge=session.judging.charge,
                             settle=session.judging.settle)
    else:
        source = OnlineSource(lambda: session.judging.client, _limit(session))
        session.judging.in_flight = source.in_flight
    run = DeferredRun(session, source, is_worker=is_xdist_worker(config))
    if isinstance(source, OnlineSource):
        source.calls.keep = run.keep_reply  # every answered call in the cache at once
        source.calls.breaker = session.judging.breaker
        source.calls.charge, source.calls.settle = session.judging.charge, session.judging.settle
        if session.judging.budget is not None:
            session.judging.history  # noqa: B018 - read the cache here, on the main thread, not on the loop's
    if run.is_worker:
        run.spool = WorkerSpool(config, options.cache_dir, run_id, session.warnings)
    elif config.pluginmanager.hasplugin("xdist"):
        controller = ControllerSide(run, options.cache_dir, run_id)
        if xdist_workers(config):
            run.adopt_leftovers = controller.adopt_leftover_spools
        config.pluginmanager.register(XdistHooks(controller), "pai_judge_deferred_xdist")
    config.pluginmanager.register(HoldingHooks(run), "pai_judge_deferred")
    return run


def _limit(session: JudgeSession) -> AdaptiveLimit:
    """Deferred mode's calls in flight in this process: the run's limits, split across xdist workers."""
    options = session.options
    total, ceiling = options.concurrency, options.max_concurrency
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is not None:
        workers = max(1, int(workerinput.get("workercount") or 1))
        return AdaptiveLimit(max(1, total // workers), max(1, ceiling // workers), adaptive=options.adapt)
    workers = xdist_workers(session.config)
    if workers > total:
        session.warnings.append(
            f"--judge-concurrency={total} is below the {workers} xdist workers: each worker makes one call "
            f"at a time, so up to {workers} calls are in flight")
    return AdaptiveLimit(total, ceiling, adaptive=options.adapt)
