"""Peak memory (max RSS) of pytest for N judged tests held for batch mode, beside the same suite without the plugin.

    python benchmarks/memory.py                    # N=20000: batch vs plain, plus a 2,000-test breakdown
    python benchmarks/memory.py --n 2000 --modes immediate,deferred
    python benchmarks/memory.py --breakdown-n 0    # no breakdown

Why: deferred and batch mode hold every judged test until the end of the run, so what one held
test costs is multiplied by N. The goal (from the issue): 20,000 held tests in batch mode within
+60 MB of the same suite without the plugin (the issue measured 433 MB vs 207 MB before).

How: the script writes two temporary suites of N tests, one ``@pytest.mark.parametrize`` over
``range(N)`` each:

* judged: ``assert_judge_score(f"What is 2+{i}?", f"{2+i}", 1, ref_answer=f"{2+i}")``,
* plain:  ``assert f"{2+i}" == f"{2+i}"``,

starts a LocalJudgeServer (engine ``lexical``, no latency) in this process, and runs pytest on each
suite in a subprocess: the judged one with ``--judge-mode=batch --judge-cache=off
--judge-base-url=<the server>``, the plain one with ``-p no:pai_judge`` (the plugin not even
loaded). The server is a thread of this script, so it is not counted in pytest's memory.

Memory is measured with GNU ``/usr/bin/time -v`` ("Maximum resident set size") around each pytest
process: it is the peak RSS of that one process (the interpreter, pytest, the plugin and whatever
they import), in MB = 1024 * 1024 bytes. Install it with ``apt-get install -y time`` (Debian/Ubuntu)
if it is missing. Wall times are the process's elapsed time (including interpreter start-up) and
pytest's own session time (the ``in 12.34s`` of its summary line).

Breakdown (``--breakdown-n``, default 2,000; cheap): the same two suites at the smaller size, plus
the plain suite with the plugin loaded but not judging, and the judged suite in immediate mode (a
verdict per test, nothing held), deferred and batch mode. Immediate minus plain is what the plugin
costs without holding tests (imports, the SDK, per-test records); batch or deferred minus immediate
is what holding the tests costs; divided by N it is a per-held-test figure.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_pai_judge.server import LocalJudgeServer

TIME = "/usr/bin/time"
GOAL_N = 20_000
GOAL_MB = 60.0
ISSUE_BEFORE = "433 MB vs 207 MB"

JUDGED = '''\
import pytest
from pytest_pai_judge import assert_judge_score


@pytest.mark.parametrize("i", range({n}))
def test_judged(i):
    assert_judge_score(f"What is 2+{{i}}?", f"{{2+i}}", 1, ref_answer=f"{{2+i}}")
'''

PLAIN = '''\
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_plain(i):
    assert f"{{2+i}}" == f"{{2+i}}"
'''


@dataclass
class Run:
    label: str
    n: int
    max_rss_mb: float
    process_s: float
    session_s: float
    passed: int
    summary: str


def write_suites(root: Path, n: int) -> tuple[Path, Path]:
    directory = root / f"suite-{n}"
    directory.mkdir()
    (directory / "conftest.py").write_text("", encoding="utf-8")
    judged, plain = directory / "test_judged.py", directory / "test_plain.py"
    judged.write_text(JUDGED.format(n=n), encoding="utf-8")
    plain.write_text(PLAIN.format(n=n), encoding="utf-8")
    return judged, plain


def measure(label: str, n: int, suite: Path, pytest_args: list[str], tmp: Path) -> Run:
    """One pytest process under ``/usr/bin/time -v``; its report goes to a file, not pytest's stderr."""
    report = tmp / "time.txt"
    cmd = [TIME, "-v", "-o", str(report), sys.executable, "-m", "pytest", str(suite), "-q",
           "-p", "no:cacheprovider", "-p", "no:randomly", *pytest_args]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for var in ("JUDGE_MODEL_BASE_URL", "JUDGE_MODEL_TOKEN", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        env.pop(var, None)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=suite.parent, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - started
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\bin [0-9.]+s\b", ln)]
    summary = lines[-1].strip("= ") if lines else ""
    session = re.search(r"in ([0-9.]+)s", summary)
    passed = re.search(r"(\d+) passed", summary)
    if proc.returncode != 0 or not rss or not session:
        print(proc.stdout[-3000:], proc.stderr[-2000:], text[-1000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{label} (N={n}): pytest exited {proc.returncode}")
    run = Run(label, n, int(rss.group(1)) / 1024, process_s, float(session.group(1)),
              int(passed.group(1)) if passed else 0, summary)
    if run.passed != n:
        print(f"warning: {label} passed {run.passed} of {n}", file=sys.stderr)
    print(f"  {label:<34} N={n:<6} max RSS {run.max_rss_mb:7.1f} MB   wall {run.process_s:6.2f}s "
          f"(session {run.session_s:6.2f}s)   [{summary}]", flush=True)
    return run


def judged_args(url: str, mode: str) -> list[str]:
    args = ["--judge-mode", mode, "--judge-cache", "off", "--judge-base-url", url]
    if mode == "batch":
        args += ["--judge-batch-poll", "0.5"]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=GOAL_N, help=f"N, the number of tests (default {GOAL_N})")
    parser.add_argument("--modes", default="",
                        help="comma-separated extra judge modes to measure at N besides batch: immediate, deferred "
                             "(default: immediate only when N <= 5000)")
    parser.add_argument("--breakdown-n", type=int, default=2000,
                        help="size of the breakdown runs (default 2000; 0 skips them)")
    parser.add_argument("--batch-concurrency", type=int, default=256,
                        help="batch lines the server judges at once (default 256)")
    args = parser.parse_args(argv)
    if not (os.path.exists(TIME) and os.access(TIME, os.X_OK)):
        raise SystemExit(f"{TIME} not found: install GNU time, e.g. `apt-get install -y time` (Debian/Ubuntu)")
    extra = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else \
        (["immediate"] if args.n <= 5000 else [])
    for mode in extra:
        if mode not in ("immediate", "deferred"):
            parser.error(f"--modes: unknown mode {mode!r} (immediate, deferred)")
    n = args.n

    with tempfile.TemporaryDirectory(prefix="pai-judge-mem-") as tmp_name, \
            LocalJudgeServer(batch_concurrency=args.batch_concurrency, data_dir=Path(tmp_name, "server")) as server:
        tmp = Path(tmp_name)
        url = server.url or ""
        print(f"pytest peak memory (max RSS of the pytest process, GNU {TIME} -v); judge server {url}; "
              f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        judged, plain = write_suites(tmp, n)
        print(f"\nN={n}:")
        base = measure("plain, -p no:pai_judge", n, plain, ["-p", "no:pai_judge"], tmp)
        batch = measure("judged, batch", n, judged, judged_args(url, "batch"), tmp)
        others = [measure(f"judged, {mode}", n, judged, judged_args(url, mode), tmp) for mode in extra]

        diff = batch.max_rss_mb - base.max_rss_mb
        print(f"\nbatch {batch.max_rss_mb:.1f} MB - plain {base.max_rss_mb:.1f} MB = {diff:+.1f} MB "
              f"({diff * 1024 / n:.2f} KB per test, fixed cost included); "
              f"wall {batch.process_s:.2f}s vs {base.process_s:.2f}s")
        for run in others:
            print(f"{run.label.split(', ')[1]} {run.max_rss_mb:.1f} MB - plain {base.max_rss_mb:.1f} MB = "
                  f"{run.max_rss_mb - base.max_rss_mb:+.1f} MB; wall {run.process_s:.2f}s")
        if n == GOAL_N:
            verdict = "MET" if diff <= GOAL_MB else "NOT MET"
            print(f"goal: {GOAL_N} held tests in batch mode within +{GOAL_MB:.0f} MB of the plain suite: "
                  f"{diff:+.1f} MB -> {verdict}   (the issue measured {ISSUE_BEFORE} before)")
        else:
            print(f"goal is stated for N={GOAL_N} (+{GOAL_MB:.0f} MB; the issue measured {ISSUE_BEFORE}): "
                  f"run with --n {GOAL_N} to check it")

        m = args.breakdown_n
        if m > 0 and m != n:
            print(f"\nbreakdown at N={m}:")
            judged_m, plain_m = write_suites(tmp, m)
            rows = [measure("plain, -p no:pai_judge", m, plain_m, ["-p", "no:pai_judge"], tmp),
                    measure("plain, plugin loaded (not judging)", m, plain_m, [], tmp)]
            rows += [measure(f"judged, {mode}", m, judged_m, judged_args(url, mode), tmp)
                     for mode in ("immediate", "deferred", "batch")]
            p0, p1, imm, dfr, bat = (r.max_rss_mb for r in rows)
            print(f"  plugin loaded, not judging:   {p1 - p0:+6.1f} MB over plain")
            print(f"  plugin judging, nothing held: {imm - p0:+6.1f} MB over plain (immediate)")
            for label, value in (("deferred", dfr), ("batch", bat)):
                held = value - imm
                print(f"  holding the tests ({label + '):':<10} {held:+6.1f} MB over immediate "
                      f"= {held * 1024 / m:.2f} KB per held test")
            # The growth of batch over plain between the two sizes is the per-test figure (the fixed costs,
            # imports above all, cancel out).
            small = bat - p0
            per_test = (diff - small) * 1024 / (n - m)
            fixed = small - per_test * m / 1024
            print(f"  batch over plain: {small:+.1f} MB at N={m}, {diff:+.1f} MB at N={n} -> "
                  f"~{per_test:.2f} KB per held test, ~{fixed:.0f} MB fixed (imports, the server client)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
