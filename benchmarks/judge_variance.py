"""How noisy the local judge is: the ``lexical`` engine's sampled scores against its temperature-0 scores.

    python benchmarks/judge_variance.py               # 40 requests x 50 seeds x T in 0, 0.2, 0.7, 1.0
    python benchmarks/judge_variance.py --seeds 200 --temperatures 0 0.5 1.5

Why: PAI's judge samples (temperature 0.2 by default), so the same request can score differently
from run to run; the lexical engine imitates that (``score_sigma`` in
``pytest_pai_judge/server/engines/lexical.py``). This script sends ~40 varied requests (single and
pairwise, zh and en, with and without ``ref_answer``, text and ``json_object``, 1-5 and 1-10
scales, scores at the scale's ends and in the middle) with ``seed`` 0..S-1 at each temperature to a
real LocalJudgeServer over HTTP, reads every reply with the plugin's verdict parser, and prints, per
temperature, the share of overall scores (one per single reply, two per pairwise reply) that differ
from the same request's temperature-0 score and the mean absolute difference; separately for
mid-scale scores (temperature-0 score not 1 and not max_score, where the clamp does not help) next
to the normal model's ``2 * (1 - Phi(0.5 / sigma))``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_pai_judge.server import LocalJudgeServer
from pytest_pai_judge.server.engines.lexical import score_sigma
from pytest_pai_judge.verdict import parse_reply

ZH = [("什么是光合作用?", "光合作用是绿色植物利用光能把二氧化碳和水转化为有机物并释放氧气的过程。",
       "光合作用是绿色植物利用光能把二氧化碳和水转化为有机物并释放氧气的过程。"),
      ("什么是光合作用?", "光合作用是植物制造养分的过程。",
       "光合作用是绿色植物利用光能把二氧化碳和水转化为有机物的过程。"),
      ("什么是光合作用?", "今天天气很好,适合出去散步。", None),
      ('请给出"常德德山山有德"对应的下联', "长沙沙水水无沙", None),
      ("中国的首都是哪里?", "中国的首都是北京。", "北京"),
      ("中国的首都是哪里?", "我喜欢吃苹果。", "北京"),
      ("如何学习编程?", "学习编程需要多练习,多读代码,从一个小项目开始。", None),
      ("水的沸点是多少?", "在标准大气压下,水的沸点是100摄氏度。", "标准大气压下水的沸点是100摄氏度")]
EN = [("What is the capital of France?", "Paris is the capital of France.", "Paris is the capital of France."),
      ("What is the capital of France?", "The capital of France is Lyon, a large city.",
       "Paris is the capital of France."),
      ("What is the capital of France?", "I like turtles.", None),
      ("Explain gravity.", "Gravity is a force that attracts objects with mass toward each other.",
       "Gravity is the force by which masses attract each other."),
      ("How do I boil an egg?", "Put the egg in boiling water for about nine minutes, then cool it.", None),
      ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare around 1600.", "William Shakespeare"),
      ("Who wrote Hamlet?", "Bananas are yellow.", "William Shakespeare"),
      ("What is 2+2?", "4", None)]
DESC10 = "1: completely wrong\n5: partly right\n10: perfect"


@dataclass
class Case:
    name: str
    mode: str
    fields: dict[str, Any]
    json_object: bool = False

    @property
    def max_score(self) -> int:
        return int(self.fields.get("max_score") or 5)


def cases() -> list[Case]:
    """40 requests: 16 single text, 8 single json/1-10, 16 pairwise (zh and en, with/without reference)."""
    out: list[Case] = []
    for lang, rows in (("zh", ZH), ("en", EN)):
        for i, (q, a, ref) in enumerate(rows):
            fields: dict[str, Any] = {"question": q, "answer": a}
            if ref:
                fields["ref_answer"] = ref
            out.append(Case(f"single-{lang}-{i}", "single", fields))
        for i, (q, a, ref) in enumerate(rows[:4]):
            fields = {"question": q, "answer": a, **({"ref_answer": ref} if ref else {})}
            if i % 2:
                fields.update(max_score=10, score_desc=DESC10)
            out.append(Case(f"single-{lang}-{i}-{'10' if i % 2 else 'json'}", "single", fields, json_object=not i % 2))
        for i in range(8):
            q, a1, ref = rows[i]
            a2 = rows[(i + 1) % len(rows)][1]  # the next row's answer: the same question's other answer, or off topic
            fields = {"question": q, "answer1": a1, "answer2": a2, **({"ref_answer": ref} if ref and i % 2 else {})}
            out.append(Case(f"pairwise-{lang}-{i}", "pairwise", fields, json_object=i == 3))
    return out


def body(case: Case, temperature: float, seed: int) -> dict[str, Any]:
    b: dict[str, Any] = {"model": "pai-judge", "temperature": temperature, "seed": seed, "messages": [
        {"role": "user", "content": [{"mode": case.mode, "type": "json", "json": case.fields}]}]}
    if case.json_object:
        b["response_format"] = {"type": "json_object"}
    return b


def scores(case: Case, text: str) -> list[float]:
    v = parse_reply(text, case.mode, max_score=case.max_score, json_mode=case.json_object)
    got = [v.score1, v.score2] if case.mode == "pairwise" else [v.score]
    assert all(s is not None for s in got), text
    return [float(s) for s in got if s is not None]


async def judge_all(url: str, jobs: list[tuple[Case, float, int]], concurrency: int) -> list[list[float]]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(case: Case, temperature: float, seed: int) -> list[float]:
            async with gate:
                r = await client.post(f"{url}/chat/completions", json=body(case, temperature, seed))
            r.raise_for_status()
            return scores(case, r.json()["choices"][0]["message"]["content"])
        return list(await asyncio.gather(*(one(*job) for job in jobs)))


def normal_share(temperature: float) -> float:
    """P(|sigma(T) * z| >= 0.5) for a standard-normal z: the share a mid-scale score moves."""
    sigma = score_sigma(temperature)
    return 0.0 if sigma == 0 else math.erfc(0.5 / sigma / math.sqrt(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 0.2, 0.7, 1.0])
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    all_cases = cases()
    with LocalJudgeServer() as server:
        url = server.url
        assert url is not None
        base = asyncio.run(judge_all(url, [(c, 0.0, 0) for c in all_cases], args.concurrency))
        n_mid = sum(1 < s < c.max_score for c, ss in zip(all_cases, base) for s in ss)
        print(f"{len(all_cases)} requests ({sum(c.mode == 'pairwise' for c in all_cases)} pairwise), "
              f"{sum(map(len, base))} overall scores per seed ({n_mid} mid-scale), {args.seeds} seeds, "
              f"server {url}")
        print("| T | sigma | differs | mean abs diff | differs, mid-scale | normal model, mid-scale |")
        print("|---|---|---|---|---|---|")
        for t in args.temperatures:
            jobs = [(c, t, seed) for seed in range(args.seeds) for c in all_cases]
            got = asyncio.run(judge_all(url, jobs, args.concurrency))
            diffs, mid = [], []
            for (case, _, _), ss in zip(jobs, got):
                for s, s0 in zip(ss, base[all_cases.index(case)]):
                    diffs.append(abs(s - s0))
                    if 1 < s0 < case.max_score:
                        mid.append(abs(s - s0))
            share = sum(d > 0 for d in diffs) / len(diffs)
            mid_share = sum(d > 0 for d in mid) / len(mid) if mid else float("nan")
            print(f"| {t:g} | {score_sigma(t):g} | {share:.1%} | {sum(diffs) / len(diffs):.2f} | {mid_share:.1%} "
                  f"| {normal_share(t):.1%} |")


if __name__ == "__main__":
    main()
