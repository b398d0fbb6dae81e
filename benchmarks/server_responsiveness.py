"""Is the local judge server still responsive while heavy requests run?

Starts ``pai-judge-server`` (lexical engine) in its own process, fires ``--requests`` concurrent chat
requests with ``n=--n`` choices each (16 x 128 by default: 2,048 lexical judgements) from a second
process, and meanwhile times ``GET /v1/models`` from this one, every ``--interval`` seconds until the
last heavy request is answered. Three processes, so neither the load's client work nor the probe's
shares a GIL with the server. Prints the idle latency, the median and slowest latency under load
(goal: slowest < 100 ms) and how long the heavy requests took.
Run: ``python benchmarks/server_responsiveness.py`` (``--quick``: 8 x 64).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx


def heavy_body(i: int, n: int) -> dict[str, object]:
    question = f"Explain in detail why the sky looks blue at noon and red at sunset ({i})."
    answer = "Rayleigh scattering of sunlight by air molecules favours short wavelengths. " * 400
    return {"model": "pai-judge", "n": n, "temperature": 0.7, "seed": i,
            "messages": [{"role": "user", "content": [{"mode": "single", "type": "json",
                                                         "json": {"question": question, "answer": answer,
                                                                  "ref_answer": answer[:4000]}}]}]}


def time_models(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(f"{url}/models")
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def fire_all(url: str, requests: int, n: int, failures: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The heavy load (in its own process): ``requests`` concurrent requests of ``n`` choices."""
    def fire(i: int) -> None:
        with httpx.Client(timeout=600) as c:
            r = c.post(f"{url}/chat/completions", json=heavy_body(i, n))
            if r.status_code != 200:
                failures.put(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def start_server(data_dir: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "pytest_pai_judge.server", "--port", "0", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def measure(requests: int, n: int, interval: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        server, url = start_server(data_dir)
        try:
            with httpx.Client(timeout=600) as probe:
                idle = [time_models(probe, url) for _ in range(20)]
                failures: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
                load = multiprocessing.Process(target=fire_all, args=(url, requests, n, failures))
                started = time.perf_counter()
                load.start()
                time.sleep(0.2)  # let the requests reach the server
                loaded: list[float] = []
                while load.is_alive():
                    loaded.append(time_models(probe, url))
                    time.sleep(interval)
                heavy = time.perf_counter() - started
                load.join()
                if not failures.empty():
                    raise SystemExit(f"heavy requests failed: {failures.get()}")
        finally:
            server.terminate()
            server.wait(10)
    return {"idle_median_ms": statistics.median(idle) * 1000, "loaded_max_ms": max(loaded or [0.0]) * 1000,
            "loaded_median_ms": statistics.median(loaded or [0.0]) * 1000, "probes": float(len(loaded)),
            "heavy_s": heavy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between /v1/models probes")
    parser.add_argument("--quick", action="store_true", help="8 requests of n=64")
    args = parser.parse_args()
    requests, n = (8, 64) if args.quick else (args.requests, args.n)
    r = measure(requests, n, args.interval)
    print(f"{requests} concurrent requests of n={n} ({requests * n} judgements) took {r['heavy_s']:.2f} s")
    print(f"GET /v1/models idle:       median {r['idle_median_ms']:.1f} ms")
    print(f"GET /v1/models under load: median {r['loaded_median_ms']:.1f} ms, slowest {r['loaded_max_ms']:.1f} ms "
          f"over {int(r['probes'])} probes (goal: slowest < 100 ms)")


if __name__ == "__main__":
    main()
