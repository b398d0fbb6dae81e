"""Batch mode's verdict source: every uncached request of a run as ONE PAI batch job (spec, batch steps 1-5).

This module owns the job's life: upload the JSONL, create the job, poll it, download the
output and error files and map their lines back by ``custom_id``. Its memory across runs is the
ledger (:mod:`.ledger`): a run waits only for the jobs holding requests it needs; other
remembered jobs are checked once (collected into the cache if done, else left for later). Jobs on
the embedded server are never remembered: they die with the run.

Everything here runs on the main thread (the cache's sqlite connection is per thread).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import errors, protocol
from ..breaker import Breaker
from ..client import JudgeClient, JudgeReply, translate_exception
from ..options import Options
from ..request import JudgeRequest
from ..terminal import Console, plural
from .batch_files import InputFile, attribute, custom_id, encode_line, key_of, outcome_of_line, split_lines, write_files
from .ctrl_c import hold_ctrl_c
from .held import RawOutcome
from .ledger import CREATOR, MARKER, BatchLedger, cache_token
from .recovery import find_lost_jobs
from .sources import VerdictSource, Wanted

FIRST_POLL_S = 0.2
"""Polls start fast (a local or small batch is done in a second) and back off to ``--judge-batch-poll``."""
MAX_POLL_FAILURES = 5


@dataclass
class Job:
    """One batch job this run waits for (created now, or remembered from an interrupted run)."""

    id: str
    keys: set[str]
    requests: dict[str, JudgeRequest] = field(default_factory=dict)
    resumed: bool = False
    need: set[str] = field(default_factory=set)
    """The keys this run waits for: all of a new job's, some of a remembered one's (empty: not known yet)."""
    remembered: bool = True
    """False when the ledger could not keep its id (or the embedded server makes keeping it pointless)."""
    need_counts: tuple[int, int] | None = None
    """(completed, failed) among ``need`` once collected, for a job this run needs only part of."""
    status: str = "validating"
    """OpenAI's word (normalized); ``raw_status`` is what the server said."""
    raw_status: str = "Creating"
    counts: dict[str, int] = field(default_factory=dict)
    poll_failures: int = 0
    done: bool = False


Charge = Callable[[list[JudgeRequest], str], "float | None"]
"""``Judging.charge``: reserve calls in the run's budget (raises BudgetReached past a cap)."""
Settle = Callable[["float | None", "dict[str, Any] | None"], None]


class BatchJudge:
    """Judges a run's uncached requests in one batch job (more only past the 10 MB file limit)."""

    def __init__(self, options: Options, client: Callable[[], JudgeClient], console: Console, *, run_id: str,
                 warnings: list[str], breaker: Breaker | None = None) -> None:
        self.client = client
        self.breaker = breaker if breaker is not None else Breaker(options.retries)
        """The run's circuit breaker: polls that cannot reach the judge stop the wait (the job is kept)."""
        self.console = console
        self.run_id = run_id
        self.warnings = warnings
        self.identity = options.cache_identity
        self.poll = options.batch_poll
        self.timeout = options.batch_timeout
        self.resume_id: str | None = options.batch_resume
        self.retries = options.retries
        self.shown_from = 0
        """Progress lines count the jobs from this one on (a follow-up job of retried lines is its own round)."""
        self.ledger = BatchLedger(options.cache_dir)
        self.token = cache_token(options.cache_dir, options.cache_identity)
        self.persistent = not options.embedded
        """The embedded server's batches live in a temp dir that dies with this run: nothing to resume."""
        self.jobs: list[Job] = []
        """The jobs this run waits for (its own, and remembered ones holding requests it needs)."""
        self.resumed_ids: list[str] = []
        """Remembered jobs that gave (or will give) this run verdicts it needs."""
        self.started = time.perf_counter()

    @property
    def sdk(self) -> Any:
        return self.client().sdk

    # ------------------------------------------------------------------ the whole flow

    def judge(self, wanted: dict[str, tuple[JudgeRequest, str]], store_extra: Callable[[str, JudgeRequest, JudgeReply],
              None], charge: Charge | None = None, settle: Settle | None = None) -> dict[str, RawOutcome]:
        """Outcomes for ``wanted`` (key -> (request, node id)): from remembered jobs first, then one new job."""
        results: dict[str, RawOutcome] = {}
        self._store_extra = store_extra
        resumed = self._resume(results, set(wanted))
        covered = set(results)
        for job in resumed:
            covered |= job.need
        new = {k: v for k, v in wanted.items() if k not in covered}
        new, charged = within_budget(charge, self.console, new, results)  # past the run's budget: not uploaded
        files: list[InputFile] = []
        try:
            if new:  # written to disk one line at a time: 20,000 lines are never held in memory
                files, too_big = write_files((k, encode_line(custom_id(nodeid, k), request))
                                             for k, (request, nodeid) in new.items())
                for key, size in too_big:
                    results[key] = errors.BatchError(
                        f"this request is {size:,} bytes: alone it exceeds the "
                        f"{_megabytes(protocol.MAX_BATCH_FILE_BYTES)} batch file limit, so it cannot be judged in "
                        "batch mode; use --judge-mode=immediate")
            self._announce(new, files, len(set(wanted) & covered))
            self._submit_all(files, new, results)
        finally:
            for file in files:
                file.remove()
        self._wait(results)
        settle_job(settle, charged, results)
        self._retry_lines(new, results)
        for job in self.jobs:  # collected: what this run asked of them is in ``results`` now
            if job.done:
                job.requests, job.keys, job.need = {}, set(), set()
        return results

    def _submit_all(self, files: list[InputFile], wanted: Wanted, results: dict[str, RawOutcome]) -> None:
        """Upload each file and create its job; each file is removed once uploaded."""
        for file in files:
            self._submit(file, {k: wanted[k][0] for k in file.keys}, results)
            file.remove()

    def _retry_lines(self, new: Wanted, results: dict[str, RawOutcome]) -> None:
        """Lines that failed with an error an online call would retry (429, 408/409, 5xx) go again, in a
        follow-up job of just those lines, up to ``--judge-retries`` times: every mode meets a fault alike."""
        for attempt in range(1, self.retries + 1):
            again = {k: v for k, v in new.items() if retryable(results.get(k))}
            if not again:
                return
            self.console.line(f"pai-judge: {plural(len(again), 'batch line')} failed with a retryable error; "
                              f"judging {'it' if len(again) == 1 else 'them'} again in a follow-up job "
                              f"(retry {attempt} of {self.retries})…")
            for key in again:
                results.pop(key, None)
            self.shown_from = len(self.jobs)
            files, _too_big = write_files((k, encode_line(custom_id(nodeid, k), request))
                                          for k, (request, nodeid) in again.items())
            try:
                self._submit_all(files, again, results)
            finally:
                for file in files:
                    file.remove()
            self._wait(results)

    def _announce(self, new: dict[str, Any], files: list[Any], from_earlier: int) -> None:
        parts = []
        if files:
            text = f"judging {plural(len(new), 'deferred verdict')} in {plural(len(files), 'batch job')}"
            if len(files) > 1:
                text += f" (the input is over the {_megabytes(protocol.MAX_BATCH_FILE_BYTES)} file limit)"
            parts.append(text)
        if from_earlier:
            ids = ", ".join(dict.fromkeys(self.resumed_ids))
            parts.append(f"collecting {plural(from_earlier, 'verdict')} from {ids} (an earlier run's batch)")
        if parts:
            self.console.line("pai-judge: " + "; ".join(parts) + "…")

    # ------------------------------------------------------------------ remembered jobs

    def _resume(self, results: dict[str, RawOutcome], wanted: set[str]) -> list[Job]:
        """Check every remembered job once; return the running ones holding requests this run needs.

        Finished jobs are collected now (their verdicts go to the cache even if no test wants
        them); running jobs this run does not need are left in the ledger without waiting.
        """
        if not self.persistent:
            self._refuse_resume_on_embedded()
            return []
        remembered = self.ledger.entries(self.identity)
        remembered.update(find_lost_jobs(self.sdk, self.ledger, self.identity, self.token, self.warnings))
        if self.resume_id and self.resume_id not in remembered:
            remembered[self.resume_id] = {"requests": {}}
        running: list[Job] = []
        for batch_id, entry in remembered.items():
            requests = {k: JudgeRequest.from_dict(r) for k, r in (entry.get("requests") or {}).items()}
            job = Job(batch_id, set(requests), requests, resumed=True)
            try:
                info = self.sdk.batches.retrieve(batch_id)
            except Exception as exc:  # noqa: BLE001
                error = translate_exception(exc)
                if error.status == 404 and batch_id == self.resume_id:
                    # An id the user typed: a typo must not quietly pay for a new job.
                    raise errors.BatchError(f"--judge-batch-resume {batch_id}: the judge service does not know this "
                                            "batch (typo, or another account/host?); nothing was submitted",
                                            code="BatchNotFound") from None
                if error.status == 404:
                    self.ledger.forget(batch_id)
                    self.console.line(f"pai-judge: the server no longer knows batch {batch_id}; forgetting it")
                else:
                    self.warnings.append(f"could not check remembered batch {batch_id}: {error}")
                continue
            self._update(job, info)
            job.need = job.keys if batch_id == self.resume_id else job.keys & wanted
            if job.status in protocol.TERMINAL_STATUSES:
                got = self._collect(job, info, results, final=False)
                if got & wanted:
                    self.resumed_ids.append(batch_id)
            elif not job.keys:
                # --judge-batch-resume of a job this cache never saw: its lines are only known when it ends.
                self.resumed_ids.append(batch_id)
                self.jobs.append(job)
                self._wait(results)
                self.jobs.remove(job)
            elif job.need:
                self.resumed_ids.append(batch_id)
                running.append(job)
                self.jobs.append(job)
            else:
                self.console.line(f"pai-judge: not waiting for {batch_id} (an earlier run's batch, "
                                  f"{job.raw_status}: {plural(len(job.keys), 'request')}, none needed by this run); "
                                  "it stays remembered for a later run to collect")
        return running

    def _refuse_resume_on_embedded(self) -> None:
        """The embedded server cannot know an earlier run's batch; stale ledger entries of it are dropped."""
        for batch_id in self.ledger.entries(self.identity):
            self.ledger.forget(batch_id)
        if self.resume_id:
            raise errors.BatchError(f"--judge-batch-resume {self.resume_id}: the embedded local server keeps batches "
                                    "only while its run lasts, so no earlier batch can be collected; resuming needs "
                                    "a judge server that outlives the run (--judge-base-url); nothing was submitted",
                                    code="BatchNotFound")

    # ------------------------------------------------------------------ steps 2-3: upload, create

    def _submit(self, file: InputFile, requests: dict[str, JudgeRequest],
                results: dict[str, RawOutcome]) -> Job | None:
        name = f"pai-judge-{self.run_id[:12]}-{len(self.jobs) + 1}{protocol.BATCH_FILE_SUFFIX}"
        try:
            with open(file.path, "rb") as data:  # streamed from disk by the SDK's multipart upload
                uploaded = self.sdk.files.create(file=(name, data, "application/jsonl"),
                                                 purpose=protocol.BATCH_PURPOSE)
        except Exception as exc:  # noqa: BLE001 - every waiting test gets the error, none passes
            fail_all(requests, results, exc)
            return None
        with hold_ctrl_c():  # a job the server made but the ledger does not know would be paid for twice
            try:
                batch = self.sdk.batches.create(input_file_id=uploaded.id, endpoint=protocol.BATCH_ENDPOINT,
                                                completion_window=protocol.COMPLETION_WINDOW,
                                                metadata={MARKER: CREATOR, "cache": self.token})
            except Exception as exc:  # noqa: BLE001
                fail_all(requests, results, exc)
                return None
            job = Job(batch.id, set(requests), requests, need=set(requests), remembered=self.persistent)
            if self.persistent:
                try:
                    self.ledger.remember(batch.id, self.identity, requests)
                except OSError as exc:
                    job.remembered = False
                    self.warnings.append(f"could not remember batch {batch.id} in {self.ledger.path} "
                                         f"({exc}); if this run is interrupted, resume it with "
                                         f"--judge-batch-resume {batch.id}")
            self._update(job, batch)
            self.jobs.append(job)
        return job

    # ------------------------------------------------------------------ step 4: poll

    def _update(self, job: Job, info: Any) -> None:
        raw = str(attribute(info, "status", "") or "")
        try:
            job.status = protocol.normalize_batch_status(raw)
        except ValueError:
            job.status = "in_progress"  # an unknown word: keep polling until the timeout says otherwise
        job.raw_status = raw or job.raw_status
        counts = attribute(info, "request_counts")
        if counts is not None:
            job.counts = {k: int(attribute(counts, k, 0) or 0) for k in ("completed", "failed", "total")}

    def _wait(self, results: dict[str, RawOutcome]) -> None:
        interval = min(FIRST_POLL_S, self.poll)
        while True:
            open_jobs = [j for j in self.jobs if not j.done]
            if not open_jobs:
                return
            for job in open_jobs:
                try:
                    info = self.sdk.batches.retrieve(job.id)
                except Exception as exc:  # noqa: BLE001
                    error = translate_exception(exc)
                    self.breaker.observe(error)
                    if self.breaker.open:
                        self._unreachable(results, error)
                        break
                    job.poll_failures += 1
                    if job.poll_failures >= MAX_POLL_FAILURES:
                        self._give_up(job, results, f"cannot check batch {job.id} ({error}); " + self._kept(job))
                    continue
                self.breaker.observe(None)
                job.poll_failures = 0
                self._update(job, info)
                if job.status in protocol.TERMINAL_STATUSES:
                    self._collect(job, info, results, final=True)
            finished = all(j.done for j in self.jobs)
            self._progress(final=finished)
            if finished:
                self.console.end()
                return
            elapsed = time.perf_counter() - self.started
            if elapsed >= self.timeout:
                for job in self.jobs:
                    if not job.done:
                        self._give_up(job, results, f"batch {job.id} is still {job.raw_status} after "
                                      f"{self.timeout:g}s (--judge-batch-timeout; {lines_done(job)}, results "
                                      "come only when the whole job ends); " + self._kept(job))
                self.console.end()
                return
            time.sleep(min(interval, max(0.0, self.timeout - elapsed)))
            interval = min(self.poll, interval * 1.6)

    def _progress(self, *, final: bool = False) -> None:
        """One line over the jobs this run waits for (this round's), counting only the requests it needs from them."""
        jobs = self.jobs[self.shown_from:]
        total = completed = failed = 0
        for job in jobs:
            c, f, t = needed_counts(job)
            completed, failed, total = completed + c, failed + f, total + t
        status = ", ".join(sorted({j.raw_status for j in jobs}))
        name = jobs[0].id if len(jobs) == 1 else f"{len(jobs)} batch jobs"
        self.console.progress(f"pai-judge: {name} {status}: {completed:,}/{total:,} completed, {failed:,} failed, "
                              f"{time.perf_counter() - self.started:.1f}s elapsed", force=final)

    def _kept(self, job: Job) -> str:
        return kept_text(job, persistent=self.persistent, ledger=self._ledger_shown)

    @property
    def _ledger_shown(self) -> str:
        """The ledger's path relative to the working directory when it is under it: messages stay short."""
        try:
            return str(self.ledger.path.resolve().relative_to(Path.cwd().resolve()))
        except (OSError, ValueError):
            return str(self.ledger.path)

    def _unreachable(self, results: dict[str, RawOutcome], error: errors.JudgeError) -> None:
        """The judge cannot be reached: stop waiting now rather than poll a dead server until the timeout."""
        for job in self.jobs:
            if not job.done:
                self._give_up(job, results, f"cannot reach the judge to check batch {job.id} "
                              f"({error.message}), {plural(len(self.breaker.failures), 'time')} in a row; "
                              + self._kept(job))

    def _give_up(self, job: Job, results: dict[str, RawOutcome], text: str) -> None:
        job.done = True
        for key in job.need or job.keys:
            results.setdefault(key, errors.verdict_unavailable(text, batch=True))

    def interrupted_text(self) -> str:
        """Why held tests fail when Ctrl-C stops the wait, and what becomes of the unfinished jobs."""
        return interrupted_text([j for j in self.jobs if not j.done], persistent=self.persistent,
                                ledger=self._ledger_shown)

    # ------------------------------------------------------------------ step 5: download, map back

    def _collect(self, job: Job, info: Any, results: dict[str, RawOutcome], *, final: bool) -> set[str]:
        """Download the output and error files, map lines back by custom_id, then forget the job.

        Returns the keys the files answered (empty if a download failed: the job stays remembered).
        """
        got: dict[str, RawOutcome] = {}
        own = {k: k for k in job.keys}  # the held tests' key strings, not 20,000 equal copies from the file
        for file_id in (attribute(info, "output_file_id"), attribute(info, "error_file_id")):
            if not file_id:
                continue
            try:  # streamed line by line: a 20,000-line output file is never held whole
                with self.sdk.files.with_streaming_response.content(file_id) as response:
                    for line in split_lines(response.iter_bytes()):
                        row = _json_object(line)
                        cid = row.get("custom_id") if row is not None else None
                        if row is not None and isinstance(cid, str):
                            key = key_of(cid)
                            got[own.get(key, key)] = outcome_of_line(row)
            except Exception as exc:  # noqa: BLE001
                error = translate_exception(exc)
                self._give_up(job, results, f"cannot download {file_id} of batch {job.id} ({error}); "
                              + self._kept(job))
                return set()
        del own
        job.done = True
        if not job.keys:  # resumed by id alone: take every line it has
            job.keys = set(got)
            job.need = set(got)
        replies = sum(1 for k in job.need if isinstance(got.get(k), JudgeReply))
        job.need_counts = (replies, len(job.need) - replies)
        for key, outcome in got.items():
            if key in results and isinstance(outcome, BaseException):
                continue
            results[key] = outcome
            if isinstance(outcome, JudgeReply) and key in job.requests:
                self._store_extra(key, job.requests[key], outcome)
        if job.status != "completed":
            reason = batch_errors(info) or f"the batch ended {job.raw_status}"
            text = f"batch {job.id} {job.raw_status.lower()}: {reason}"
            for key in job.need or job.keys:
                if key not in got and final:
                    results.setdefault(key, errors.verdict_unavailable(text, batch=True))
        if self.persistent:
            self.ledger.forget(job.id)
        return set(got)


def within_budget(charge: Charge | None, console: Console, new: Wanted,
                  results: dict[str, RawOutcome]) -> tuple[Wanted, tuple[float | None, list[str]] | None]:
    """The lines to submit and what they were charged: all of them, or none when the job would pass the run's
    budget (said before anything is uploaded; every line's test then errors with BudgetReached)."""
    if not new or charge is None:
        return new, None
    try:
        expected = charge([request for request, _ in new.values()], f"the batch job of {plural(len(new), 'line')}")
    except errors.BudgetReached as exc:
        console.line(f"pai-judge: {exc}")
        for key in new:
            results[key] = exc
        return {}, None
    return new, (expected, list(new))


def settle_job(settle: Settle | None,
               charged: tuple[float | None, list[str]] | None, results: dict[str, RawOutcome]) -> None:
    """The job's real tokens replace its expected ones in the run's budget."""
    if charged is None or settle is None:
        return
    expected, keys = charged
    spent = sum(float((o.usage or {}).get("total_tokens") or 0) for k in keys
                if isinstance(o := results.get(k), JudgeReply))
    settle(expected, {"total_tokens": spent})


def fail_all(requests: dict[str, JudgeRequest], results: dict[str, RawOutcome], exc: Exception) -> None:
    """Every request of a job that could not be uploaded or created gets the error (none passes)."""
    error = translate_exception(exc)
    for key in requests:
        results[key] = error


def kept_text(job: Job, *, persistent: bool, ledger: str) -> str:
    """What happens to an unfinished job after this run, said exactly."""
    if not persistent:
        return ("the embedded local server stops with this run, so the job and its results are lost and the "
                "next run judges these requests again; to collect a batch in a later run, judge against a "
                "server that outlives the run (--judge-base-url)")
    if not job.remembered:
        return (f"the job keeps running on the server, but its id could not be written to {ledger}: "
                f"pass --judge-batch-resume {job.id} in the next run to collect the results")
    return (f"the job keeps running on the server and its id stays in {ledger}: the next batch-mode "
            f"run against this server collects the results instead of paying again "
            f"(or pass --judge-batch-resume {job.id})")


def interrupted_text(open_jobs: list[Job], *, persistent: bool, ledger: str) -> str:
    """Why held tests fail when Ctrl-C stops the wait, and what becomes of the unfinished jobs."""
    if not open_jobs:
        return ("the run was interrupted (Ctrl-C) before a batch job was created; nothing is left running and "
                "the next run judges these requests")
    ids = ", ".join(f"{j.id} ({j.raw_status})" for j in open_jobs)
    head = f"the run was interrupted (Ctrl-C) while waiting for batch {ids}; "
    if not persistent:
        return head + kept_text(open_jobs[0], persistent=persistent, ledger=ledger)
    lost = [j.id for j in open_jobs if not j.remembered]
    if lost:
        return head + (f"the server keeps running it, but {', '.join(lost)} could not be written to "
                       f"{ledger}: pass --judge-batch-resume ID in the next run to collect the results")
    return head + (f"the server keeps running {'it' if len(open_jobs) == 1 else 'them'} and "
                   f"{'its id stays' if len(open_jobs) == 1 else 'their ids stay'} in {ledger}: the "
                   "next batch-mode run against this server collects the results instead of paying again")


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def retryable(outcome: RawOutcome | None) -> bool:
    """An error an online call would have retried (the SDK retries 408, 409, 429 and 5xx)."""
    if not isinstance(outcome, errors.JudgeError) or outcome.code == errors.VERDICT_UNAVAILABLE:
        return False
    status = outcome.status or 0
    return status in (408, 409, 429) or status >= 500


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


def needed_counts(job: Job) -> tuple[int, int, int]:
    """(completed, failed, total) of the requests this run needs from ``job``.

    The server counts a whole job; for a remembered job this run needs only part of, which
    of its lines are done is known only once the job ends.
    """
    if not job.keys or job.need == job.keys:
        total = job.counts.get("total", len(job.keys))
        return job.counts.get("completed", 0), job.counts.get("failed", 0), total
    completed, failed = job.need_counts or (0, 0)
    return completed, failed, len(job.need)


def lines_done(job: Job) -> str:
    done = job.counts.get("completed", 0) + job.counts.get("failed", 0)
    return f"{done:,} of its {job.counts.get('total', len(job.keys)):,} lines done"


def batch_errors(info: Any) -> str:
    errs = attribute(info, "errors")
    data = attribute(errs, "data") if errs is not None and not isinstance(errs, list) else errs
    messages = []
    for err in (data or [])[:3]:
        message = attribute(err, "message")
        line = attribute(err, "line")
        if message:
            messages.append(f"{message}" + (f" (line {line})" if line else ""))
    return "; ".join(messages)


class BatchSource(VerdictSource):
    """:class:`BatchJudge` behind the verdict-source interface: nothing is sent until the run ends."""

    batch = True

    def __init__(self, options: Options, client: Callable[[], JudgeClient], *, run_id: str,
                 warnings: list[str], breaker: Breaker | None = None,
                 charge: Charge | None = None, settle: Settle | None = None) -> None:
        self.options = options
        self.client = client
        self.breaker = breaker
        self.charge, self.settle = charge, settle
        self.run_id = run_id
        self.warnings = warnings
        self.job: BatchJudge | None = None

    def resolve(self, wanted: Wanted, console: Console, *, needed: int, on_progress: Callable[[], None],
                store: Callable[[str, JudgeRequest, JudgeReply], None]) -> dict[str, RawOutcome]:
        self.job = BatchJudge(self.options, self.client, console, run_id=self.run_id, warnings=self.warnings,
                              breaker=self.breaker)
        return self.job.judge(wanted, store_extra=store, charge=self.charge, settle=self.settle)

    def interrupted_text(self) -> str:
        if self.job is not None:
            return self.job.interrupted_text()
        return "interrupted (Ctrl-C) while waiting for the deferred verdicts"
