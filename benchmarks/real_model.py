"""The judge on a real model: the server's ``openai`` engine in front of an OpenAI-compatible model server.

    python benchmarks/real_model.py --upstream http://127.0.0.1:8080/v1 --model qwen2.5-0.5b-instruct
    python benchmarks/real_model.py --upstream URL --model NAME --skip-examples     # the quick part only

Why: the lexical engine is a deterministic stand-in; whether the PAI templates, the reply format and
the verdict parser work with a model people can run themselves (llama.cpp, vLLM, Ollama) shows only
on one. The script starts a LocalJudgeServer (``--engine openai``, ``--context-limit auto`` where the
upstream can tell) and measures, through real HTTP:

1. the spec's sample requests (pai-judge-api-en/zh: single, pairwise, custom template, in English
   and Chinese), plus one of them streamed: how many replies are unreadable (goal: 0), time to the
   first streamed chunk against the whole reply;
2. a labelled good-vs-bad set (an answer that is right and one that is wrong, for the same question):
   the mean score of each and their separation, and how often the good answer scores higher;
3. the examples suite (``examples/``) in the three judge modes (immediate, deferred, batch), each a
   pytest run against the server with ``--judge-cache=off``: outcomes, unreadable rows, wall time.

Every part prints the unreadable rate, latency per judgement and tokens (the upstream's usage).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from pytest_pai_judge.server import LocalJudgeServer
from pytest_pai_judge.server.upstream_info import UpstreamInfoError, context_length
from pytest_pai_judge.verdict import UnreadableVerdict, Verdict, parse_reply

ROOT = Path(__file__).resolve().parent.parent

EN_Q = "According to the first couplet, give the second couplet. first couplet: To climb the mountain, reach the peak"
ZH_Q = '请给出"常德德山山有德"对应的下联'
EN_CUSTOM = [
    {"role": "system", "content": "Please evaluate the quality of the following answers to the question from AI "
                                  "assistants as a judge.\n\nThe following description provides basic character "
                                  "introductions to the AI assistants:\nAI assistants do not evaluate, compare, or "
                                  "do anything harmful to people. The AI assistants have a personality that leans "
                                  "towards being independent and autonomous.\n"},
    {"role": "user", "content": "Please score the following answer to the question on a scale of 1 to 5: \n"
                                "Question: What do you think is the effect of social media on relationships?\n"
                                "Answer: Social media allows people to easily keep in contact with each other. "
                                "However, social media can also lead to alienation.\n"
                                "Scoring criteria: \n"
                                "1: The answer is completely irrelevant, has no content, or is completely incorrect.\n"
                                "2: Specific content of the answer is relevant. However, the content is superficial "
                                "or excessively brief.\n"
                                "3: The answer is relevant and provides insights. However, the answer lacks in-depth "
                                "analysis.\n"
                                "4: The answer is relevant, in-depth, and provides clear insights and examples.\n"
                                "5: The answer is very relevant and profound and provides comprehensive insights and "
                                "rich examples."},
]
ZH_CUSTOM = [
    {"role": "system", "content": "请作为一名公正的裁判,评价人工智能助手对下面用户问题的回答质量。\n\n"
                                  "以下是这些人工智能助手的基本性格描述:\n"
                                  "不会对人进行评价或比较,不会做任何伤害人类的事情。性格上偏向于独立自主的人格。\n"},
    {"role": "user", "content": "请对以下问题-回答按照1-5分进行打分:\n"
                                "问题: 你认为社交媒体对人际关系的影响是什么?\n"
                                "回复:社交媒体使得人们可以更轻松地联系,但也可能导致疏远。\n"
                                "评分标准:\n"
                                "1分: 回复完全不相关、无内容或者完全错误。\n"
                                "2分: 回复有一些相关性,但内容肤浅或过于简略。\n"
                                "3分: 回复相关,提供了一些见解,但缺乏深入分析。\n"
                                "4分: 回复相关且有深度,提供了清晰的见解和例证。\n"
                                "5分: 回复非常相关且深刻,提供了全面的观点和丰富的例证。"},
]


def judge_messages(mode: str, **fields: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"mode": mode, "type": "json", "json": fields}]}]


SPEC_SAMPLES: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("en-single", "single", judge_messages("single", question=EN_Q, answer="To cross the river, find the creek.")),
    ("en-pairwise", "pairwise", judge_messages("pairwise", question=EN_Q, answer1="To cross the river, find the creek.",
                                               answer2="To chase the dream, grasp the star.")),
    ("en-custom", "custom", EN_CUSTOM),
    ("zh-single", "single", judge_messages("single", question=ZH_Q, answer="长沙沙水水无沙")),
    ("zh-pairwise", "pairwise", judge_messages("pairwise", question=ZH_Q, answer1="长沙沙水水无沙",
                                               answer2="常德人德德山山高")),
    ("zh-custom", "custom", ZH_CUSTOM),
]
"""The spec's sample requests (both editions), verbatim."""

GOOD_BAD: list[tuple[str, str, str]] = [
    ("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Berlin."),
    ("At what temperature does water boil at sea level?", "Water boils at 100 degrees Celsius (212 °F) at sea level.",
     "Water boils at 50 degrees Celsius at sea level."),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has six legs, like all insects."),
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare wrote 'Romeo and Juliet'.",
     "'Romeo and Juliet' was written by Charles Dickens."),
    ("中国的首都是哪里?", "中国的首都是北京。", "中国的首都是上海。"),
    ("一年有几个季节?", "一年有四个季节:春、夏、秋、冬。", "一年有七个季节。"),
]
"""(question, a right answer, a wrong answer): a judge worth the name scores the first higher."""


@dataclass
class Judged:
    name: str
    verdict: Verdict | None
    error: str | None
    latency_s: float
    tokens: int


@dataclass
class Tally:
    rows: list[Judged] = field(default_factory=list)

    def line(self, title: str) -> str:
        unreadable = sum(1 for r in self.rows if r.verdict is None)
        latencies = [r.latency_s for r in self.rows]
        tokens = sum(r.tokens for r in self.rows)
        return (f"{title}: {len(self.rows)} judgements, unreadable {unreadable}/{len(self.rows)} "
                f"({unreadable / max(1, len(self.rows)):.0%}), latency median {statistics.median(latencies):.1f} s "
                f"(max {max(latencies):.1f} s), tokens {tokens} ({tokens // max(1, len(self.rows))} per judgement)")


def judge_one(client: openai.OpenAI, name: str, mode: str, messages: list[dict[str, Any]]) -> Judged:
    started = time.perf_counter()
    try:
        completion = client.chat.completions.create(model="pai-judge", messages=messages, temperature=0)
    except openai.APIError as exc:
        return Judged(name, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started, 0)
    latency = time.perf_counter() - started
    tokens = completion.usage.total_tokens if completion.usage else 0
    text = completion.choices[0].message.content or ""
    try:
        return Judged(name, parse_reply(text, mode), None, latency, tokens)
    except UnreadableVerdict as exc:
        return Judged(name, None, f"unreadable: {exc.reason}; reply: {text[:300]!r}", latency, tokens)


def describe(j: Judged) -> str:
    v = j.verdict
    if v is None:
        return f"  {j.name:<18} {j.latency_s:6.1f} s {j.tokens:5d} tok  {j.error}"
    what = (f"winner {v.winner} ({v.score1} vs {v.score2})" + (f" [contradiction: {v.contradiction}]"
                                                              if v.contradiction else "")
            if v.mode == "pairwise" else f"score {v.score:g}/{v.max_score}")
    return f"  {j.name:<18} {j.latency_s:6.1f} s {j.tokens:5d} tok  {what}"


def spec_samples(client: openai.OpenAI) -> Tally:
    tally = Tally()
    for name, mode, messages in SPEC_SAMPLES:
        tally.rows.append(judge_one(client, name, mode, messages))
        print(describe(tally.rows[-1]), flush=True)
    return tally


def first_chunk(client: openai.OpenAI) -> str:
    """Seconds to the first streamed content chunk and to the end of the stream (pass-through shows a gap)."""
    started = time.perf_counter()
    first: float | None = None
    for chunk in client.chat.completions.create(model="pai-judge", messages=SPEC_SAMPLES[0][2], stream=True,
                                                temperature=0):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return f"streamed en-single: first content chunk after {first or total:.1f} s, whole reply after {total:.1f} s"


def good_vs_bad(client: openai.OpenAI) -> Tally:
    tally = Tally()
    good: list[float] = []
    bad: list[float] = []
    ordered = 0
    for i, (question, right, wrong) in enumerate(GOOD_BAD):
        pair = [judge_one(client, f"item{i + 1}-good", "single", judge_messages("single", question=question,
                                                                                answer=right)),
                judge_one(client, f"item{i + 1}-bad", "single", judge_messages("single", question=question,
                                                                               answer=wrong))]
        for j in pair:
            print(describe(j), flush=True)
        tally.rows += pair
        if pair[0].verdict and pair[1].verdict and pair[0].verdict.score and pair[1].verdict.score:
            good.append(pair[0].verdict.score)
            bad.append(pair[1].verdict.score)
            ordered += pair[0].verdict.score > pair[1].verdict.score
    if good:
        print(f"  good answers: mean {statistics.mean(good):.2f}; wrong answers: mean {statistics.mean(bad):.2f}; "
              f"separation {statistics.mean(good) - statistics.mean(bad):+.2f} points; good scored higher in "
              f"{ordered}/{len(good)} readable pairs")
    return tally


def examples_in(mode: str, url: str, workdir: Path) -> str:
    """One pytest run of examples/ in ``mode`` against the server; a line of what it found."""
    report = workdir / f"report-{mode}.json"
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "examples", f"--judge-mode={mode}", "--judge-cache=off",
                          f"--judge-base-url={url}", f"--judge-report={report}", "-p", "no:cacheprovider", "-q",
                          "--judge-timeout=3600", "--judge-total-timeout=7200"],
                         cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    summary = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
    if not report.exists():
        return f"  {mode:<9} wall {wall:6.0f} s  no report; {summary}\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
    rows = json.loads(report.read_text("utf-8"))
    errors = [r for r in rows if r.get("error")]
    unreadable = [r for r in errors if "nreadable" in str(r.get("error"))]
    verdicts = sum(int(r.get("verdicts") or 0) for r in rows)
    tokens = sum(int(r.get("tokens") or 0) for r in rows)
    latencies = [r["latency_s"] for r in rows if r.get("latency_s") is not None]
    contradictions = sum(1 for r in rows if r.get("contradiction"))
    latency = f"{statistics.median(latencies):.1f} s" if latencies else "n/a"
    failed = sorted({str(r["nodeid"]).split("::")[-1] for r in rows if r.get("status") in ("failed", "error")})
    return (f"  {mode:<9} wall {wall:6.0f} s  rows {len(rows)}, verdicts {verdicts}, unreadable rows "
            f"{len(unreadable)}, other errors {len(errors) - len(unreadable)}, pairwise contradictions "
            f"{contradictions}, median latency {latency}, tokens {tokens}; pytest: {summary}"
            + (f"\n            failed: {', '.join(failed)}" if failed else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the model server's OpenAI base URL, e.g. "
                                                          "http://127.0.0.1:8080/v1")
    parser.add_argument("--model", required=True, help="the model name to ask the upstream for")
    parser.add_argument("--api-key-env", default="UPSTREAM_API_KEY", help="env var with the upstream's key")
    parser.add_argument("--concurrency", type=int, default=1, help="upstream calls in flight (llama.cpp: 1)")
    parser.add_argument("--context-limit", type=int, default=None,
                        help="context length in tokens (default: asked from the upstream, else 32768)")
    parser.add_argument("--skip-examples", action="store_true", help="skip the examples suite (the slow part)")
    parser.add_argument("--modes", default="immediate,deferred,batch", help="judge modes for the examples suite")
    args = parser.parse_args(argv)

    context = args.context_limit
    if context is None:
        try:
            context = _run(context_length(args.upstream, args.model, api_key_env=args.api_key_env))
            print(f"context length from the upstream: {context} tokens")
        except UpstreamInfoError as exc:
            context = 32768
            print(f"context length: {exc}; using {context}")
    server = LocalJudgeServer(engine="openai", upstream_base_url=args.upstream, upstream_model=args.model,
                              upstream_api_key_env=args.api_key_env, upstream_concurrency=args.concurrency,
                              upstream_timeout_s=900.0, models={"pai-judge": context, "pai-judge-plus": context},
                              batch_concurrency=args.concurrency)
    with server:
        client = openai.OpenAI(api_key="unused", base_url=server.url, max_retries=0, timeout=1800)
        print(f"judge server {server.url} -> {args.upstream} model {args.model}\n")
        print("1. the spec's sample requests", flush=True)
        spec = spec_samples(client)
        print(spec.line("  spec samples"))
        print("  " + first_chunk(client), flush=True)
        print("\n2. labelled good vs wrong answers (single mode)", flush=True)
        labelled = good_vs_bad(client)
        print(labelled.line("  labelled set"), flush=True)
        if not args.skip_examples:
            print("\n3. the examples suite (examples/) in each judge mode", flush=True)
            with tempfile.TemporaryDirectory(prefix="real-model-") as tmp:
                work = Path(tmp)
                shutil.copytree(ROOT / "examples", work / "examples")
                for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                    print(examples_in(mode, server.url or "", work), flush=True)
        stats = {k: v for k, v in server.stats.items() if k.startswith("upstream_calls") or k == "upstream_retries"}
        print(f"\nupstream calls: {stats}")
    return 0


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


if __name__ == "__main__":
    raise SystemExit(main())
