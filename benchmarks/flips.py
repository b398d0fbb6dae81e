"""How often a noisy judge flips test outcomes between runs, with 1 sample per case and with 5.

Runs one suite of clear and borderline cases 10 times (cache off) against a local server whose
lexical engine samples at temperature 0.7, once with ``--judge-samples=1`` and once with 5, and
prints how many cases changed their decision (met / not met / inconclusive) and their pass/fail
outcome across the runs, and the mean samples drawn per case.

Each run stands for a fresh run against a real sampling judge: a conftest hook gives every request
a seed of that run (``FLIPS_RUN``), so the same request draws other samples in the next run (within
a run, everything stays reproducible as the plugin makes it).

    python benchmarks/flips.py [--runs 10] [--temperature 0.7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pytest_pai_judge.server import LocalJudgeServer

QUESTION = "What is the capital of France?"
REFERENCE = "Paris is the capital of France."
ANSWERS = ["The capital of France is Paris.", "Paris.", "It is Paris, a city in France.",
           "France's capital city is Paris.", "Paris is the capital of France.", "Bananas are yellow fruit.",
           "Lyon is a big city.", "The capital is Paris, on the Seine.", "I think it might be Paris.",
           "Capital of France: Paris", "France has many cities.", "The answer is Marseille."]

CONFTEST = textwrap.dedent("""
    import os

    def pytest_judge_request(request, item):
        request.params.setdefault("seed", int(os.environ["FLIPS_RUN"]))
""")


def suite(temperature: float) -> str:
    return textwrap.dedent(f"""
        import pytest
        from pytest_pai_judge import assert_judge_score

        ANSWERS = {ANSWERS!r}

        @pytest.mark.parametrize("minimum", [3, 4])
        @pytest.mark.parametrize("ref", [{REFERENCE!r}, None], ids=["ref", "noref"])
        @pytest.mark.parametrize("answer", ANSWERS, ids=[f"a{{i}}" for i in range(len(ANSWERS))])
        def test_case(answer, ref, minimum):
            assert_judge_score({QUESTION!r}, answer, minimum, ref_answer=ref, temperature={temperature})
    """)


def run_suite(project: Path, url: str, samples: int, run: int, confidence: float) -> list[dict]:
    report = project / f"report-{samples}-{run}.json"
    env = {**os.environ, "FLIPS_RUN": str(run)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--judge-cache=off",
                    f"--judge-base-url={url}", f"--judge-samples={samples}", f"--judge-report={report}",
                    f"--judge-confidence={confidence}"],
                   cwd=project, env=env, capture_output=True, check=False)
    return json.loads(report.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--show", action="store_true", help="list each case that flipped, with its decisions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalJudgeServer() as server:
        project = Path(tmp)
        (project / "conftest.py").write_text(CONFTEST, encoding="utf-8")
        (project / "test_flips.py").write_text(suite(args.temperature), encoding="utf-8")
        print(f"{len(ANSWERS) * 4} cases, {args.runs} runs each, cache off, lexical engine at temperature "
              f"{args.temperature}")
        for samples in (1, 5):
            started = time.perf_counter()
            decisions: dict[str, list[str]] = {}
            passes: dict[str, list[bool]] = {}
            drawn: list[int] = []
            for run in range(1, args.runs + 1):
                for row in run_suite(project, server.url, samples, run, args.confidence):
                    decisions.setdefault(row["nodeid"], []).append(str(row["decision"]))
                    passes.setdefault(row["nodeid"], []).append(bool(row["passed"]))
                    drawn.append(int(row["samples"]))
            changed = sum(1 for d in decisions.values() if len(set(d)) > 1)
            flipped = sum(1 for p in passes.values() if len(set(p)) > 1)
            stable_inconclusive = sum(1 for d in decisions.values() if set(d) == {"inconclusive"})
            contradicted = sum(1 for d in decisions.values() if {"met", "not met"} <= set(d))
            print(f"samples={samples}: {flipped} of {len(passes)} cases flipped pass/fail between runs, "
                  f"{changed} changed their decision, {contradicted} were decided both ways (met in one run, "
                  f"not met in another; the rest moved between a decision and inconclusive); "
                  f"{stable_inconclusive} were inconclusive in every run; "
                  f"mean samples drawn per case {statistics.fmean(drawn):.2f}; "
                  f"{time.perf_counter() - started:.1f}s")
            if args.show:
                for nodeid, seen in decisions.items():
                    if len(set(passes[nodeid])) > 1:
                        print(f"    {nodeid.rpartition('[')[2].rstrip(']')}: {', '.join(seen)}")


if __name__ == "__main__":
    main()
