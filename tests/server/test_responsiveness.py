"""The event loop stays free while engines work: ``GET /v1/models`` answers while heavy requests are judged.

Before: the lexical engine's CPU work ran on the event loop, and with 16 concurrent ``n=128``
requests ``GET /v1/models`` waited 12.6 s. Now engine work runs on a worker thread; the goal is
< 100 ms (``benchmarks/server_responsiveness.py`` prints the figure), the assertion is < 1 s so a
loaded CI machine does not make it flaky.
"""

from __future__ import annotations

import threading
import time

import httpx


def heavy_body(i: int, n: int) -> dict[str, object]:
    answer = "Rayleigh scattering of sunlight by air molecules favours short wavelengths. " * 250
    return {"model": "pai-judge", "n": n, "temperature": 0.7, "seed": i,
            "messages": [{"role": "user", "content": [{"mode": "single", "type": "json", "json": {
                "question": f"Why is the sky blue at noon and red at sunset? ({i})", "answer": answer,
                "ref_answer": answer[:2000]}}]}]}


def test_models_answers_quickly_while_heavy_requests_run(make_judge_server):
    server = make_judge_server()
    statuses: list[int] = []

    def fire(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            statuses.append(c.post(f"{server.url}/chat/completions", json=heavy_body(i, 128)).status_code)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(16)]
    with httpx.Client(base_url=server.url, timeout=60) as probe:
        probe.get("/models")  # connect first: time the answer, not the connection
        for t in threads:
            t.start()
        while server.stats["judgements"] < 16:  # the heavy requests are being judged
            time.sleep(0.005)
        latencies = []
        while any(t.is_alive() for t in threads):  # probe until the last heavy request is answered
            started = time.perf_counter()
            assert probe.get("/models").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    for t in threads:
        t.join()
    assert statuses == [200] * 16
    assert latencies, "the heavy requests finished before the first probe: make them heavier"
    print(f"GET /v1/models under load: slowest {max(latencies) * 1000:.1f} ms of {len(latencies)}")
    assert max(latencies) < 1.0


def test_a_subclass_with_its_own_reply_is_awaited_not_bypassed():
    from pytest_pai_judge.server.engines.lexical import LexicalEngine

    class Loud(LexicalEngine):
        async def reply(self, call, *, choice):
            return (await super().reply(call, choice=choice)).upper()

    class Faster(LexicalEngine):
        def reply_blocking(self, call, *, choice):
            return super().reply_blocking(call, choice=choice)

    assert LexicalEngine.blocking and Faster.blocking
    assert not Loud.blocking  # the server awaits Loud.reply on the event loop
