"""What the plugin costs: warm-cache overhead, xdist cache sharing, startup cost, immediate-mode overhead.

Prints four figures (run: ``python benchmarks/warm_cache.py``; ``--quick`` for a smaller run):
  (a) wall time of N judged tests with a warm cache / the same tests with plain asserts   (goal <= 1.10)
  (b) judge calls made by a warm run under ``-n 4``                                        (goal 0)
  (c) seconds the installed plugin adds to a plain 200-test suite that does not use it     (goal <= 0.2)
  (d) immediate mode, 200 cold tests at server latency 200 ms, wall / (200 x 200 ms)       (goal <= 1.05)
Every figure is a ratio or difference measured within this one run, so machine noise cancels.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_pai_judge.server import LocalJudgeServer


def write_suite(directory: Path, n: int, judged: bool, stub: bool = False) -> None:
    """``judged``: real judge assertions; ``stub``: the same calls to a no-op (the pure cost of pytest)."""
    header = "def assert_judge_score(*args, **kwargs):\n    pass\n" if stub else \
        "from pytest_pai_judge import assert_judge_score\n"
    lines = [header, ""]
    for i in range(n):
        question = f"What is {i} plus {i}?"
        answer = f"{i} plus {i} is {2 * i}."
        if judged:
            lines += [f"def test_{i}():",
                      f"    assert_judge_score({question!r}, {answer!r}, 1, ref_answer={str(2 * i)!r})", ""]
        else:
            lines += [f"def test_{i}():", f"    assert {str(2 * i)!r} in {answer!r}", ""]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_suite.py").write_text("\n".join(lines), encoding="utf-8")
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")


SESSION_TIME = re.compile(r" in ([0-9.]+)s")
LAST_SESSION: list[float] = []


def run_pytest(directory: Path, *args: str) -> float:
    """Process wall time of one pytest run (interpreter and pytest start-up included)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=directory, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"pytest failed in {directory} with exit code {proc.returncode}")
    match = SESSION_TIME.search(proc.stdout.strip().splitlines()[-1])
    LAST_SESSION[:] = [float(match.group(1))] if match else []
    return elapsed


def best_of(k: int, directory: Path, *args: str) -> float:
    return min(run_pytest(directory, *args) for _ in range(k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer tests and repeats (for a smoke run)")
    args = parser.parse_args()
    n_warm = 500 if args.quick else 2000
    n_cold = 50 if args.quick else 200
    repeats = 2 if args.quick else 3
    os.environ.pop("JUDGE_MODEL_BASE_URL", None)

    with tempfile.TemporaryDirectory(prefix="pai-judge-bench-") as tmp, \
            LocalJudgeServer(data_dir=Path(tmp, "server")) as server:
        root = Path(tmp)
        judged, plain = root / "judged", root / "plain"
        write_suite(judged, n_warm, judged=True)
        write_suite(plain, n_warm, judged=False)
        stub = root / "stub"
        write_suite(stub, n_warm, judged=True, stub=True)
        url = ["--judge-base-url", server.url]

        # (a) warm cache vs plain asserts
        run_pytest(judged, *url)  # fills the cache
        calls_after_fill = server.stats["chat_completions"]
        warm = best_of(repeats, judged, *url)
        plain_time = best_of(repeats, plain, *url)
        stub_time = best_of(repeats, stub, *url)
        assert server.stats["chat_completions"] == calls_after_fill, "a warm run called the judge"
        ratio_a = warm / plain_time

        # (b) warm run under -n 4: judge calls made
        before = server.stats["chat_completions"]
        run_pytest(judged, *url, "-n", "4")
        calls_b = server.stats["chat_completions"] - before

        # (c) startup cost on a plain 200-test suite that does not use the plugin
        small = root / "small"
        write_suite(small, 200, judged=False)
        with_plugin = [run_pytest(small) for _ in range(repeats + 2)]
        without_plugin = [run_pytest(small, "-p", "no:pai_judge") for _ in range(repeats + 2)]
        added = statistics.median(with_plugin) - statistics.median(without_plugin)

    # (d) immediate mode, cold, latency 200 ms
    with tempfile.TemporaryDirectory(prefix="pai-judge-bench-") as tmp, \
            LocalJudgeServer(data_dir=Path(tmp, "server"), latency_ms=200) as slow:
        cold = Path(tmp) / "cold"
        write_suite(cold, n_cold, judged=True)
        wall = run_pytest(cold, "--judge-base-url", slow.url, "--judge-cache=off")
        session_wall = LAST_SESSION[0] if LAST_SESSION else float("nan")
        ideal = n_cold * 0.2
        ratio_d = wall / ideal

    print(f"(a) {n_warm} judged tests, warm cache: {warm:.2f}s; plain asserts: {plain_time:.2f}s; "
          f"ratio {ratio_a:.3f} (goal <= 1.10)")
    print(f"    stricter: vs the same calls to a no-op stub ({stub_time:.2f}s): ratio {warm / stub_time:.3f}, "
          f"{(warm - stub_time) / n_warm * 1e6:.0f} us per judged test")
    print(f"(b) judge calls made by a warm run under -n 4: {calls_b} (goal 0)")
    print(f"(c) plugin installed, plain 200-test suite: +{added:.3f}s "
          f"(median {statistics.median(with_plugin):.2f}s vs {statistics.median(without_plugin):.2f}s "
          f"with -p no:pai_judge; goal <= 0.2s)")
    print(f"(d) immediate mode, {n_cold} cold tests at 200 ms: process {wall:.2f}s vs ideal {ideal:.1f}s, "
          f"ratio {ratio_d:.3f}; pytest session {session_wall:.2f}s, ratio {session_wall / ideal:.3f} "
          "(goal <= 1.05)")


if __name__ == "__main__":
    main()
