"""Wall time of one judged suite in the three judge modes, against a local server with a fixed latency.

    python benchmarks/modes.py                   # N=200 tests, 200 ms per judgement, C=16
    python benchmarks/modes.py --tests 50 --latency-ms 100 --skip-immediate

Why: deferred and batch mode exist to turn an N x L wait into about one L-sized wait. This script
measures that on a real HTTP server (the package's LocalJudgeServer, engine ``lexical``, batch
lines judged ``--batch-concurrency`` at a time): it writes a temporary suite of N tests with one
``assert_judge_score`` each (distinct questions, so nothing is shared), runs pytest on it in a
subprocess per mode with ``--judge-cache=off``, and prints

* immediate wall,
* deferred wall with a fixed ``--judge-concurrency C`` (``--no-judge-adapt``) and its ratio to the
  ideal ceil(N/C)*L (goal <= 1.10 at N=2000), then with the adaptive limit starting at C (against a
  judge with no rate limit it grows past C, so it can beat that ideal),
* batch wall and the number of batch jobs the server saw (goal: 1).

"wall" is pytest's own session time (the ``in 2.71s`` of its summary line: collection, tests and
settling); the process time, which adds interpreter start-up and plugin imports, is printed next
to it, and the deferred ratio is given for both, and for the judging span the plugin reports
(first call started to last answer in). The script also times the ``openai`` SDK import in a fresh
interpreter: a cold deferred run pays it inside the session, before its first call, so
``ceil(N/C)*L + import`` is the floor of the session wall, printed beside the goal.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_pai_judge.server import LocalJudgeServer

SUITE = '''\
import pytest
from pytest_pai_judge import assert_judge_score

ANSWER = "Paris is the capital of France; it lies on the Seine and is the largest city of the country."


@pytest.mark.parametrize("i", range({n}))
def test_judged(i):
    assert_judge_score(f"What is the capital of France? (case {{i}})", ANSWER, min=1)
'''


@dataclass
class Run:
    mode: str
    session_s: float
    process_s: float
    passed: int
    summary: str
    span_s: float | None = None
    """Deferred mode: the plugin's own "judged in X s from the first call to the last answer"."""


def run_mode(suite: Path, url: str, mode: str, extra: list[str]) -> Run:
    cmd = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--judge-base-url", url, "--judge-cache", "off", "--judge-mode", mode, *extra]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=suite.parent, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - started
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\bin [0-9.]+s\b", ln)]
    summary = lines[-1].strip("= ") if lines else proc.stdout[-500:]
    found = re.search(r"in ([0-9.]+)s", summary)
    passed = re.search(r"(\d+) passed", summary)
    if proc.returncode != 0 or not found:
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{mode}: pytest exited {proc.returncode}")
    span = re.search(r"verdicts? judged in ([0-9.]+)s from the first call", proc.stdout)
    return Run(mode, float(found.group(1)), process_s, int(passed.group(1)) if passed else 0, summary,
               float(span.group(1)) if span else None)


def openai_import_seconds() -> float:
    """The SDK import a cold deferred run pays before its first call, timed in a fresh interpreter (best of 3)."""
    code = "import time; t = time.perf_counter(); import openai; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(3)]
    return min(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=200, help="N, the number of judged tests (default 200)")
    parser.add_argument("--latency-ms", type=int, default=200, help="L, the engine latency (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="C for deferred mode (default 16)")
    parser.add_argument("--batch-concurrency", type=int, default=256,
                        help="batch lines the server judges at once (default 256)")
    parser.add_argument("--batch-poll", type=float, default=0.5, help="--judge-batch-poll for batch mode")
    parser.add_argument("--skip-immediate", action="store_true", help="skip the slow N x L immediate run")
    args = parser.parse_args(argv)
    n, latency, c = args.tests, args.latency_ms / 1000, args.concurrency

    with tempfile.TemporaryDirectory(prefix="pai-judge-bench-") as tmp, \
            LocalJudgeServer(latency_ms=args.latency_ms, batch_concurrency=args.batch_concurrency,
                             data_dir=Path(tmp, "server")) as server:
        suite = Path(tmp, "suite", "test_bench.py")
        suite.parent.mkdir()
        suite.write_text(SUITE.format(n=n), encoding="utf-8")
        Path(suite.parent, "conftest.py").write_text("", encoding="utf-8")
        url = server.url or ""
        print(f"N={n} tests, engine latency L={args.latency_ms} ms, server {url}")
        print(textwrap.dedent(f"""\
            ideal: immediate N*L = {n * latency:.2f}s, deferred N*L/C = {n * latency / c:.2f}s (C={c}),
                   batch ~ L x ceil(N / batch concurrency) = {latency * -(-n // args.batch_concurrency):.2f}s"""))

        if not args.skip_immediate:
            imm = run_mode(suite, url, "immediate", [])
            print(f"immediate: wall {imm.session_s:6.2f}s (process {imm.process_s:6.2f}s)  "
                  f"ratio to N*L {imm.session_s / (n * latency):.2f}   [{imm.summary}]")

        ideal = n * latency / c
        sdk_import = openai_import_seconds()
        waves = -(-n // c) * latency
        dfr = run_mode(suite, url, "deferred", ["--judge-concurrency", str(c), "--no-judge-adapt"])
        print(f"deferred:  wall {dfr.session_s:6.2f}s (process {dfr.process_s:6.2f}s)  "
              f"ratio to N*L/C {dfr.session_s / ideal:.3f}, to ceil(N/C)*L {dfr.session_s / waves:.3f} "
              f"(process {dfr.process_s / ideal:.3f}; goal <= 1.10 of ceil(N/C)*L)  fixed C={c}  [{dfr.summary}]")
        if dfr.span_s is not None:
            print(f"           judging span (first call to last answer, as the plugin reports it) {dfr.span_s:.2f}s, "
                  f"ratio {dfr.span_s / ideal:.3f}")
        print(f"           floor inside the session: ceil(N/C)*L {waves:.2f}s + openai SDK import {sdk_import:.2f}s "
              f"(needed before the first call) = {waves + sdk_import:.2f}s, ratio {(waves + sdk_import) / ideal:.3f}; "
              f"wall without the import: ratio {(dfr.session_s - sdk_import) / ideal:.3f}")

        adaptive = run_mode(suite, url, "deferred", ["--judge-concurrency", str(c)])
        print(f"deferred, adaptive limit starting at C={c} (no rate limit: it grows to --judge-max-concurrency): "
              f"wall {adaptive.session_s:6.2f}s, ratio to N*L/C {adaptive.session_s / ideal:.3f}")

        before = server.stats.get("batches_created", 0)
        bat = run_mode(suite, url, "batch", ["--judge-batch-poll", str(args.batch_poll)])
        jobs = server.stats.get("batches_created", 0) - before
        print(f"batch:     wall {bat.session_s:6.2f}s (process {bat.process_s:6.2f}s)  "
              f"batch jobs {jobs} (goal 1)   [{bat.summary}]")
        for run in [dfr, bat]:
            if run.passed != n:
                print(f"warning: {run.mode} passed {run.passed} of {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
