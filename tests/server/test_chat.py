"""The chat endpoint against the spec's examples, through the real openai SDK and raw HTTP."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from pytest_pai_judge.server.templates import SINGLE_TEMPLATE
from pytest_pai_judge.server.tokens import count_tokens

ZH_QUESTION = '请给出"常德德山山有德"对应的下联'
EN_QUESTION = ("According to the first couplet, give the second couplet. first couplet: "
               "To climb the mountain, reach the peak")


def judge_messages(mode: str, **fields: object) -> list[dict]:
    """The spec's Python-SDK shape."""
    return [{"role": "user", "content": [{"mode": mode, "type": "json", "json": fields}]}]


def nested_messages(mode: str, **fields: object) -> list[dict]:
    """The vendor curl examples' shape: a message nested inside a user content list."""
    return [{"role": "user", "content": [{"role": "user", "content": [{"mode": mode, "type": "json", "json": fields}]}]}]


ZH_CUSTOM_SYSTEM = ("请作为一名公正的裁判,评价人工智能助手对下面用户问题的回答质量。\n\n以下是这些人工智能助手的基本性格描述:\n"
                    "不会对人进行评价或比较,不会做任何伤害人类的事情。性格上偏向于独立自主的人格。\n")
ZH_CUSTOM_USER = ("请对以下问题-回答按照1-5分进行打分:\n问题: 你认为社交媒体对人际关系的影响是什么?\n"
                  "回复:社交媒体使得人们可以更轻松地联系,但也可能导致疏远。\n评分标准:\n"
                  "1分: 回复完全不相关、无内容或者完全错误。\n2分: 回复有一些相关性,但内容肤浅或过于简略。\n"
                  "3分: 回复相关,提供了一些见解,但缺乏深入分析。\n4分: 回复相关且有深度,提供了清晰的见解和例证。\n"
                  "5分: 回复非常相关且深刻,提供了全面的观点和丰富的例证。")
EN_CUSTOM_SYSTEM = ("Please evaluate the quality of the following answers to the question from AI assistants as a "
                    "judge.\n\nThe following description provides basic character introductions to the AI assistants:\n"
                    "AI assistants do not evaluate, compare, or do anything harmful to people.\n")
EN_CUSTOM_USER = ("Please score the following answer to the question on a scale of 1 to 5: \n"
                  "Question: What do you think is the effect of social media on relationships?\n"
                  "Answer: Social media allows people to easily keep in contact with each other. However, social "
                  "media can also lead to alienation.\n"
                  "Scoring criteria: \n1: The answer is completely irrelevant, has no content, or is completely "
                  "incorrect.\n5: The answer is very relevant and profound and provides comprehensive insights.")

SINGLE_ZH = re.compile(r"^我认为该回复的综合评分为\[\[(\d+)\]\],理由如下。\n")
SINGLE_EN = re.compile(r"^I think the overall score of the answer is \[\[(\d+)\]\] due to the following reasons:\n")
PAIR_ZH = re.compile(r"^我认为\[\[(回复1更好|回复2更好|两个回复一样好)\]\],其中回复1的综合评分为\[\[(\d+)\]\],"
                     r"回复2的综合评分为\[\[(\d+)\]\],理由如下:\n")
PAIR_EN = re.compile(r"^I regard \[\[(Answer 1 is better|Answer 2 is better|the two answers as equivalent)\]\]\. "
                     r"The overall score of Answer 1 is \[\[(\d+)\]\] and the overall score of Answer 2 is "
                     r"\[\[(\d+)\]\]")


@pytest.fixture(scope="module")
def token_server(make_judge_server_module):
    return make_judge_server_module(token="t0ken-for-tests")


@pytest.fixture(scope="module")
def make_judge_server_module(tmp_path_factory):
    from pytest_pai_judge.server import LocalJudgeServer

    servers = []

    def make(**overrides):
        server = LocalJudgeServer(data_dir=tmp_path_factory.mktemp("srv"), **overrides)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def vendor_client(token_server) -> openai.OpenAI:
    """Configured exactly like the vendor's Python sample (doubled ``Authorization: Bearer``)."""
    return openai.OpenAI(api_key="Authorization: Bearer t0ken-for-tests", base_url=token_server.url, max_retries=0)


def check_shape(body: dict, model: str = "pai-judge", n: int = 1) -> None:
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"}
    assert body["object"] == "chat.completion" and body["model"] == model
    assert body["system_fingerprint"] == "" and body["service_tier"] == ""
    assert [c["index"] for c in body["choices"]] == list(range(n))
    for choice in body["choices"]:
        assert choice["message"] == {"role": "assistant", "content": choice["message"]["content"], "refusal": "",
                                     "function_call": None, "tool_calls": None}
        assert choice["finish_reason"] in ("stop", "length") and choice["logprobs"] is None
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == sum(count_tokens(c["message"]["content"]) for c in body["choices"])


@pytest.mark.parametrize("question,answer,pattern", [(ZH_QUESTION, "长沙沙水水无沙", SINGLE_ZH),
                                                     (EN_QUESTION, "To cross the river, find the creek.", SINGLE_EN)])
def test_single_sdk_vendor_sample(vendor_client, question, answer, pattern):
    completion = vendor_client.chat.completions.create(
        model="pai-judge", messages=judge_messages("single", question=question, answer=answer))
    text = completion.choices[0].message.content
    match = pattern.match(text)
    assert match, text
    assert 1 <= int(match.group(1)) <= 5
    assert len(re.findall(r"\[\[\d+\]\]", text)) >= 3  # overall + per-criterion marks
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    check_shape(completion.model_dump(exclude_unset=True))


@pytest.mark.parametrize("shape", [judge_messages, nested_messages])
@pytest.mark.parametrize("question,a1,a2,pattern", [
    (ZH_QUESTION, "长沙沙水水无沙", "常德人德德山山高", PAIR_ZH),
    (EN_QUESTION, "To cross the river, find the creek.", "To chase the dream, grasp the star.", PAIR_EN)])
def test_pairwise_raw_http_both_shapes(token_server, shape, question, a1, a2, pattern):
    response = httpx.post(f"{token_server.url}/chat/completions",
                          headers={"Authorization": "Bearer t0ken-for-tests"},
                          json={"model": "pai-judge-plus", "messages": shape("pairwise", question=question,
                                                                              answer1=a1, answer2=a2)})
    assert response.status_code == 200, response.text
    body = response.json()
    check_shape(body, model="pai-judge-plus")
    match = pattern.match(body["choices"][0]["message"]["content"])
    assert match, body["choices"][0]["message"]["content"]
    verdict, s1, s2 = match.group(1), int(match.group(2)), int(match.group(3))
    expected = "1" if s1 > s2 else "2" if s2 > s1 else "tie"
    assert {"回复1更好": "1", "回复2更好": "2", "两个回复一样好": "tie", "Answer 1 is better": "1",
            "Answer 2 is better": "2", "the two answers as equivalent": "tie"}[verdict] == expected


def test_pairwise_en_per_criterion_marks(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    text = client.chat.completions.create(model="pai-judge", messages=judge_messages(
        "pairwise", question=EN_QUESTION, answer1="To cross the river, find the creek.",
        answer2="To climb the mountain, reach the summit of the peak")).choices[0].message.content
    assert PAIR_EN.match(text).group(1) == "Answer 2 is better"
    assert re.search(r"\[\[Rating for Answer 1: \d+\]\] \[\[Rating for Answer 2: \d+\]\]", text)


@pytest.mark.parametrize("shape", ["sdk", "nested"])
@pytest.mark.parametrize("system,user,pattern", [
    (ZH_CUSTOM_SYSTEM, ZH_CUSTOM_USER, r"^根据提供的评分标准,我会给这个回答打(\d+)分。"),
    (EN_CUSTOM_SYSTEM, EN_CUSTOM_USER, r"^Based on the provided scoring criteria, I rate this answer as (\d+)\.")])
def test_custom_template(vendor_client, token_server, shape, system, user, pattern):
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if shape == "sdk":
        text = vendor_client.chat.completions.create(model="pai-judge", messages=messages).choices[0].message.content
    else:
        response = httpx.post(f"{token_server.url}/chat/completions", headers={"Authorization": "Bearer t0ken-for-tests"},
                              json={"model": "pai-judge", "messages": [{"role": "user", "content": messages}]})
        assert response.status_code == 200, response.text
        text = response.json()["choices"][0]["message"]["content"]
    match = re.match(pattern, text)
    assert match, text
    assert 1 <= int(match.group(1)) <= 5
    assert "[[" not in text


def test_custom_template_reads_the_scale(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    text = client.chat.completions.create(model="pai-judge", messages=[{"role": "user", "content": (
        "请按照1到10分对回答打分。\n问题: 什么是光合作用?\n回答: 光合作用是植物利用光能把二氧化碳和水合成有机物的过程。")}]
    ).choices[0].message.content
    score = int(re.match(r"^根据提供的评分标准,我会给这个回答打(\d+)分", text).group(1))
    assert 6 <= score <= 10


def test_quality_signal(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)

    def score(**fields: object) -> int:
        text = client.chat.completions.create(model="pai-judge", messages=judge_messages("single", **fields)
                                              ).choices[0].message.content
        return int(re.search(r"\[\[(\d+)\]\]", text).group(1))

    q = "What is the capital of France and what river flows through it?"
    ref = "The capital of France is Paris, and the Seine flows through it."
    assert score(question=q, answer=ref, ref_answer=ref) == 5
    assert score(question=q, answer="Paris is the capital of France; the Seine river flows through it.",
                 ref_answer=ref) >= 4
    assert score(question=q, answer="The capital of France is Paris, a city on the Seine river.") == 4
    assert score(question=q, answer="Bananas are rich in potassium.") <= 2
    assert score(question=q, answer="...") == 1
    assert score(question="什么是光合作用?", answer="光合作用是植物利用光能合成有机物的过程。",
                 ref_answer="光合作用是植物利用光能合成有机物的过程。") == 5
    assert score(question="什么是光合作用?", answer="今天天气很好。") <= 2
    top = score(question=q, answer=ref, ref_answer=ref, max_score=10, score_desc="1: bad\n10: perfect")
    assert top in (9, 10)


def test_same_input_same_reply_and_seed(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    kwargs = dict(model="pai-judge", messages=judge_messages("single", question="什么是光合作用?", answer="植物用光合成养分"))
    first = client.chat.completions.create(**kwargs, seed=7).choices[0].message.content
    again = client.chat.completions.create(**kwargs, seed=7).choices[0].message.content
    assert first == again
    plain = [client.chat.completions.create(**kwargs).choices[0].message.content for _ in range(2)]
    assert plain[0] == plain[1]


def test_n_choices_distinct(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    completion = client.chat.completions.create(
        model="pai-judge", n=8, messages=judge_messages("single", question=EN_QUESTION, answer="To reach the peak"))
    assert [c.index for c in completion.choices] == list(range(8))
    texts = [c.message.content for c in completion.choices]
    assert len(set(texts)) == 8
    assert len({SINGLE_EN.match(t).group(1) for t in texts}) == 1
    check_shape(completion.model_dump(exclude_unset=True), n=8)


@pytest.mark.parametrize("question,keys", [(ZH_QUESTION, ("总分", "分数", "理由")),
                                           (EN_QUESTION, ("overall_score", "score", "reason"))])
def test_json_object(judge_server, question, keys):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    text = client.chat.completions.create(model="pai-judge", response_format={"type": "json_object"},
                                          messages=judge_messages("single", question=question, answer="长沙沙水水无沙")
                                          ).choices[0].message.content
    obj = json.loads(text)
    overall, score_key, reason_key = keys
    assert 1 <= int(obj[overall]) <= 5
    criteria = {k: v for k, v in obj.items() if isinstance(v, dict)}
    assert len(criteria) >= 2
    assert all(set(v) == {score_key, reason_key} and 1 <= int(v[score_key]) <= 5 for v in criteria.values())


def test_json_object_pairwise_and_custom(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    pair = json.loads(client.chat.completions.create(
        model="pai-judge", response_format={"type": "json_object"},
        messages=judge_messages("pairwise", question=ZH_QUESTION, answer1="长沙沙水水无沙", answer2="常德人德德山山高")
    ).choices[0].message.content)
    assert pair["更好的回复"] in ("回复1", "回复2", "两个回复一样好") and pair["回复1总分"].isdigit()
    custom = json.loads(client.chat.completions.create(
        model="pai-judge", response_format={"type": "json_object"},
        messages=[{"role": "user", "content": EN_CUSTOM_USER}]).choices[0].message.content)
    assert custom["overall_score"].isdigit() and custom["reason"]


def test_stop_truncates(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    completion = client.chat.completions.create(
        model="pai-judge", stop=["理由"], messages=judge_messages("single", question=ZH_QUESTION, answer="长沙沙水水无沙"))
    assert re.fullmatch(r"我认为该回复的综合评分为\[\[\d\]\],", completion.choices[0].message.content)
    assert completion.choices[0].finish_reason == "stop"


def test_max_tokens_truncates(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    completion = client.chat.completions.create(
        model="pai-judge", max_tokens=5, messages=judge_messages("single", question=ZH_QUESTION, answer="长沙沙水水无沙"))
    assert completion.choices[0].message.content == "我认为该回"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5


def test_temperature_and_other_params_accepted(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    completion = client.chat.completions.create(
        model="pai-judge", temperature=1.5, top_p=0.9, presence_penalty=0.5, frequency_penalty=0.1, user="u1",
        seed=2**64 - 1, messages=judge_messages("single", question=EN_QUESTION, answer="reach the peak"))
    assert SINGLE_EN.match(completion.choices[0].message.content)


def test_prompt_tokens_count_the_filled_template(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    short = client.chat.completions.create(model="pai-judge", messages=judge_messages(
        "single", question="什么是光合作用?", answer="x")).usage.prompt_tokens
    longer = client.chat.completions.create(model="pai-judge", messages=judge_messages(
        "single", question="什么是光合作用?", answer="x" + "很长的回答" * 100)).usage.prompt_tokens
    assert short > count_tokens(SINGLE_TEMPLATE) // 2
    assert longer - short == 500


def test_strict_sdk_validation_openai_dialect(make_judge_server):
    server = make_judge_server(status_dialect="openai")
    client = openai.OpenAI(api_key="unused", base_url=server.url, _strict_response_validation=True)
    completion = client.chat.completions.create(
        model="pai-judge", n=2, messages=judge_messages("single", question=EN_QUESTION, answer="reach the peak"))
    assert completion.service_tier == "default" and len(completion.choices) == 2
    models = client.models.list()
    assert [m.id for m in models] == ["pai-judge", "pai-judge-plus"]


def test_pai_dialect_is_faithful_to_the_spec_not_to_strict_sdk(judge_server):
    """PAI sends service_tier "" (spec samples); the SDK's strict mode rejects that, as it would against PAI."""
    lenient = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    messages = judge_messages("single", question=EN_QUESTION, answer="reach the peak")
    assert lenient.chat.completions.create(model="pai-judge", messages=messages).choices
    strict = openai.OpenAI(api_key="unused", base_url=judge_server.url, _strict_response_validation=True)
    with pytest.raises(openai.APIResponseValidationError):
        strict.chat.completions.create(model="pai-judge", messages=messages)


def test_token_not_in_config_repr():
    from pytest_pai_judge.server import ServerConfig

    assert "hunter2" not in repr(ServerConfig(token="hunter2"))


def test_models_endpoints(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    assert [(m.id, m.object, m.owned_by) for m in client.models.list()] == [
        ("pai-judge", "model", "pai"), ("pai-judge-plus", "model", "pai")]
    assert client.models.retrieve("pai-judge-plus").id == "pai-judge-plus"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4")
    assert info.value.code == "ModelNotFound"


def test_custom_models_and_context_limit(make_judge_server):
    server = make_judge_server(models={"tiny-judge": 1000})
    response = httpx.post(f"{server.url}/chat/completions", json={
        "model": "tiny-judge", "max_tokens": 100,
        "messages": judge_messages("single", question="什么是光合作用?", answer="x")})
    body = response.json()
    assert response.status_code == 400 and body["error"]["code"] == "ContextLengthExceeded"
    assert body["error"]["param"] == "messages" and "maximum context length is 1000 tokens" in body["error"]["message"]
    ok = httpx.post(f"{server.url}/chat/completions", json={
        "model": "tiny-judge", "max_tokens": 10, "messages": [{"role": "user", "content": "问题: 一加一?\n回答: 二"}]})
    assert ok.status_code == 200, ok.text
    missing = httpx.post(f"{server.url}/chat/completions", json={
        "model": "pai-judge", "messages": [{"role": "user", "content": "hi"}]})
    assert missing.json()["error"]["message"] == "Model not found, model must in ['tiny-judge']"


def test_stats_counters(judge_server):
    before = dict(judge_server.stats)
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    client.chat.completions.create(model="pai-judge", n=3, messages=judge_messages("single", question="q?", answer="a"))
    over_http = httpx.get(judge_server.url.removesuffix("/v1") + "/_pai_judge/stats").json()
    assert over_http["chat_completions"] == before.get("chat_completions", 0) + 1
    assert over_http["judgements"] == before.get("judgements", 0) + 3
    assert judge_server.stats["chat_completions"] == over_http["chat_completions"]
