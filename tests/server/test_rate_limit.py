"""The server's --rate-limit: 429 with retry-after beyond requests per second or concurrent requests."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pytest_pai_judge.server.cli import build_parser
from pytest_pai_judge.server.rate_limit import RateLimit, RateLimiter

BODY = {"model": "pai-judge", "messages": [{"role": "user", "content": [
    {"mode": "single", "type": "json", "json": {"question": "What is 1+1?", "answer": "2"}}]}]}


def test_parse() -> None:
    assert RateLimit.parse("20/s") == RateLimit(20.0, None)
    assert RateLimit.parse("1200/min") == RateLimit(20.0, None)
    assert RateLimit.parse("20/s, 8") == RateLimit(20.0, 8)
    assert RateLimit.parse("8") == RateLimit(None, 8)
    for bad in ("fast", "0/s", "0", "20/h", "", "10/s,8,3", "10/s,20/s"):
        with pytest.raises(ValueError):
            RateLimit.parse(bad)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--rate-limit", "lots"])


def test_the_bucket_admits_a_second_of_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(10.0, None), clock=lambda: now[0])
    assert all(limiter.admit() is None for _ in range(10))
    wait = limiter.admit()
    assert wait == pytest.approx(0.1)
    now[0] += 0.1
    assert limiter.admit() is None


def test_beyond_the_rate_a_429_with_retry_after(make_judge_server) -> None:
    server = make_judge_server(rate_limit="5/s")
    with httpx.Client(base_url=server.url) as client:
        answers = [client.post("/chat/completions", json=BODY) for _ in range(8)]
    statuses = [a.status_code for a in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "RateLimited"
    assert 1 <= int(refused.headers["retry-after-ms"]) <= 200 and refused.headers["retry-after"] == "1"
    assert server.stats["rate_limited"] == statuses.count(429)
    with httpx.Client(base_url=server.url) as client:  # other endpoints are not limited
        assert all(client.get("/models").status_code == 200 for _ in range(10))


def test_beyond_the_concurrent_requests_a_429(make_judge_server) -> None:
    server = make_judge_server(rate_limit="2", latency_ms=300)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            answers = await asyncio.gather(*(client.post("/chat/completions", json=BODY) for _ in range(5)))
        return sorted(a.status_code for a in answers)

    assert asyncio.run(burst()) == [200, 200, 429, 429, 429]
