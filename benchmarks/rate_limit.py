"""Deferred mode against a rate-limited judge: the adaptive limit beside fixed concurrency.

    python benchmarks/rate_limit.py                         # 600 tests, 20 requests/s, 200 ms per judgement
    python benchmarks/rate_limit.py --tests 200 --rate 10 --fixed 4,16

Why: a shared judge service limits requests per second and answers 429 with ``retry-after``
beyond it. Too few calls in flight leave the quota unused; too many earn 429s that the SDK's
retries turn into waits or, after ``--judge-retries``, failed tests. Deferred mode's adaptive
limit (``pytest_pai_judge.concurrency``) should finish with 0 failed tests at close to the limit.

How: a LocalJudgeServer in this process (engine ``lexical``, ``latency_ms``, ``rate_limit`` =
``<rate>/s``: a token bucket of one second's worth) and, per configuration, pytest in a
subprocess on a suite of N tests with one ``assert_judge_score`` each (distinct questions),
``--judge-mode=deferred --judge-cache=off``. Printed per configuration: failed tests, 429 answers
the server gave during the run, the judging span (the plugin's "judged in X s from the first call
to the last answer") and throughput = tests that got their verdict / span, as a share of the
limit (goal: adaptive >= 90% with 0 failed). The configurations: adaptive (starting at
``--judge-concurrency``, default 8), and fixed (``--no-judge-adapt``) at each of ``--fixed`` (default 4, 16, 64).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
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


def run(suite: Path, url: str, extra: list[str]) -> dict[str, object]:
    cmd = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--judge-base-url", url, "--judge-cache", "off", "--judge-mode", "deferred", *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=suite.parent, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    wall = time.perf_counter() - started
    span = re.search(r"verdicts? judged in ([0-9.]+)s from the first call", proc.stdout)
    limit = re.search(r"concurrent calls: ([^)]*\)?)\)", proc.stdout)
    failed = re.search(r"(\d+) failed", proc.stdout.splitlines()[-1] if proc.stdout else "")
    if span is None:
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"pytest {' '.join(extra)}: no judging span in its output (exit {proc.returncode})")
    return {"span": float(span.group(1)), "wall": wall, "failed": int(failed.group(1)) if failed else 0,
            "limit": limit.group(1) if limit else "?"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20.0, help="the server's limit, requests per second")
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--start", type=int, default=8, help="--judge-concurrency of the adaptive run")
    parser.add_argument("--fixed", default="4,16,64", help="fixed concurrencies to compare (comma-separated)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pai-judge-rate-") as tmp:
        suite = Path(tmp, "test_rate.py")
        suite.write_text(SUITE.format(n=args.tests), encoding="utf-8")
        configs = [("adaptive", ["--judge-concurrency", str(args.start)])] + [
            (f"fixed {c}", ["--judge-concurrency", c, "--no-judge-adapt"]) for c in args.fixed.split(",") if c]
        ideal = args.tests / args.rate
        print(f"{args.tests} tests, server limit {args.rate:g} requests/s, {args.latency_ms} ms per judgement: "
              f"ideal span {ideal:.1f}s (the server's first second of burst aside: a share above 100% is that burst)")
        print(f"{'configuration':<14} {'failed':>6} {'429s':>6} {'span':>8} {'verdicts/s':>11} {'of limit':>9}  "
              "concurrent calls")
        for name, extra in configs:
            with LocalJudgeServer(data_dir=Path(tmp, name.replace(" ", "-")), latency_ms=args.latency_ms,
                                  rate_limit=f"{args.rate:g}/s") as server:
                result = run(suite, server.url, extra)
                throttled = server.stats.get("rate_limited", 0)
            judged = args.tests - int(result["failed"])  # type: ignore[call-overload]
            rate = judged / float(result["span"])  # type: ignore[arg-type]
            print(f"{name:<14} {result['failed']:>6} {throttled:>6} {result['span']:>7.1f}s {rate:>11.1f} "
                  f"{rate / args.rate:>8.0%}  {result['limit']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
