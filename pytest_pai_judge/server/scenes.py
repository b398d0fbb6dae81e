"""The judge prompt: scene auto-division, the spec's defaults, and the reply format the model must use.

Scenes: when a judge request leaves ``scene`` empty, pick one of the 12 inner scenes. PAI runs a
model for this (its ``Scenario_division`` stage); the local server classifies the question by
keywords instead, so prompts built offline still carry a plausible scene, scene description and
metric. Only the 回答开放性问题 texts are the spec's own; the others are ours.

Language: a question with Chinese text gets the spec's Chinese template and defaults verbatim; any
other question gets their English renderings (:mod:`.templates_en`), since a small model given a
Chinese prompt answers in Chinese. Caller-given texts (scene, scene_desc, metric, score_desc,
steps) are never translated.

Reply format: the spec's step 4 ends "您返回的模板如下,注意输出需保留模板中的'[['和']]':" but
the template it announces is missing from the spec, and ``json_object`` requests get no JSON
instruction at all. A real model behind the ``openai`` engine would then answer in a free form the
verdict parser cannot read (and OpenAI refuses ``json_object`` without the word "json" in the
prompt). So the spec's text stays verbatim and is followed by a template in the style of the
spec's sample replies (text), or by a JSON layout after the whole prompt (``json_object``), in
the language of the question, using only the wording ``pytest_pai_judge.verdict`` reads. Neither
carries an example score: a model echoes it (and the parser would read the echo as a verdict) or
anchors on it (small models gave the example's score to most answers).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from ..protocol import INNER_SCENES
from .templates import (
    DEFAULT_SCORE_DESC,
    DEFAULT_STEPS,
    OPEN_QUESTION_METRIC,
    OPEN_QUESTION_SCENE_DESC,
    PAIRWISE_TEMPLATE,
    SINGLE_TEMPLATE,
    fill_template,
)
from .templates_en import (
    DEFAULT_SCORE_DESC_EN,
    DEFAULT_STEPS_EN,
    PAIRWISE_TEMPLATE_EN,
    REPLY_TEMPLATE_INTRO_EN,
    SCENE_DEFAULTS_EN,
    SCENE_NAMES_EN,
    SINGLE_TEMPLATE_EN,
    STEPS_SCALE_EN,
)

DEFAULT_SCENE = "回答开放性问题"

SCENE_DEFAULTS: dict[str, tuple[str, str]] = {
    "回答数学类问题": (
        "数学类指令,要求求解计算题、应用题、证明题或数学概念问题,回复需要给出正确的解题过程与结果。",
        "1. 准确性:最终答案必须正确,计算与推导过程无误。\n"
        "2. 推理过程:解题步骤完整、逻辑严密,关键步骤有清晰的说明。\n"
        "3. 相关性:回答必须针对用户提出的问题,避免无关内容。\n"
        "4. 清晰性:公式、符号与表述规范清晰,易于理解。\n"
        "5. 完整性:覆盖题目的所有小问与条件,必要时说明适用范围。"),
    "回答确定性问题": (
        "确定性问答类指令,通常为询问一个有明确答案的事实、知识或常识问题,回复应当给出准确、确定的答案。",
        "1. 准确性:答案必须符合事实与常识,不得出现错误或误导信息。\n"
        "2. 相关性:回答必须直接针对用户的问题,避免无关内容。\n"
        "3. 完整性:在必要时补充与答案相关的关键信息或依据。\n"
        "4. 清晰性:使用简洁、易懂的语言给出答案。\n"
        "5. 无害性:内容合乎伦理道德,不包含任何冒犯性内容。"),
    "回答开放性问题": (OPEN_QUESTION_SCENE_DESC, OPEN_QUESTION_METRIC),
    "文本改写": (
        "文本改写类指令,要求对给定文本进行润色、改写、扩写、缩写、续写或风格转换,同时保持原意。",
        "1. 指令遵循:严格按照用户要求的改写方式、风格与长度进行改写。\n"
        "2. 忠实性:保留原文的核心信息与含义,不歪曲、不遗漏关键内容。\n"
        "3. 语言质量:语句通顺流畅,用词准确,无语法错误。\n"
        "4. 改进程度:改写后的文本在表达效果上较原文有明显提升。\n"
        "5. 无害性:内容合乎伦理道德,不包含任何冒犯性内容。"),
    "创意文体写作": (
        "创意写作类指令,要求创作诗歌、对联、故事、小说、歌词、剧本等文学性或创意性作品。",
        "1. 指令遵循:符合用户指定的体裁、主题、格式与篇幅要求。\n"
        "2. 创意性:立意新颖,构思独特,具有想象力与感染力。\n"
        "3. 文学性:语言优美,修辞得当,符合所选文体的规范(如对仗、押韵)。\n"
        "4. 连贯性:内容前后连贯,结构完整,逻辑自洽。\n"
        "5. 无害性:内容合乎伦理道德,不包含任何冒犯性内容。"),
    "信息与专业写作": (
        "信息与专业写作类指令,要求撰写科普文章、新闻稿、报告、综述、分析等以传递信息与观点为主的文本。",
        "1. 准确性:所提供的信息、数据与观点准确可靠,不含事实错误。\n"
        "2. 相关性:内容紧扣主题,满足用户的写作目的。\n"
        "3. 信息丰富性:内容充实,论据充分,提供有价值的细节与背景。\n"
        "4. 结构与逻辑:结构清晰,层次分明,论证严密。\n"
        "5. 语言表达:用语规范、专业且易于理解。"),
    "实用文体写作": (
        "实用文体写作类指令,要求撰写邮件、通知、申请书、请假条、简历、演讲稿、广告文案等日常实用文本。",
        "1. 指令遵循:符合用户指定的用途、对象、格式与篇幅要求。\n"
        "2. 格式规范:符合该类实用文体的通用格式与礼仪规范。\n"
        "3. 内容完整:包含该类文本应有的全部要素,信息准确。\n"
        "4. 语言得体:语气与措辞符合场合与对象,表达清晰简洁。\n"
        "5. 无害性:内容合乎伦理道德,不包含任何冒犯性内容。"),
    "专业文体写作": (
        "专业文体写作类指令,要求撰写论文、法律文书、合同、技术文档、医学报告等需要专业知识的规范文本。",
        "1. 专业准确性:专业知识、术语与引用准确无误,符合行业规范。\n"
        "2. 格式规范:符合该专业文体的结构与格式要求。\n"
        "3. 严谨性:论述严谨,逻辑严密,表述无歧义。\n"
        "4. 完整性:覆盖该文体所需的全部要素与关键内容。\n"
        "5. 清晰性:层次分明,便于目标读者阅读与使用。"),
    "翻译": (
        "翻译类指令,要求将给定文本在不同语言之间进行翻译,回复应当准确传达原文含义并符合目标语言的表达习惯。",
        "1. 忠实性:准确传达原文的全部含义,不增译、不漏译、不误译。\n"
        "2. 流畅性:译文通顺自然,符合目标语言的语法与表达习惯。\n"
        "3. 术语准确:专有名词与专业术语翻译准确、前后一致。\n"
        "4. 风格一致:保持原文的语气、风格与格式。\n"
        "5. 指令遵循:按照用户指定的目标语言与要求进行翻译。"),
    "阅读理解与信息提取": (
        "阅读理解与信息提取类指令,要求基于给定的文本或材料回答问题、总结要点或抽取特定信息。",
        "1. 准确性:答案必须忠实于给定材料,不捏造材料中不存在的信息。\n"
        "2. 完整性:提取或总结的信息全面,不遗漏关键内容。\n"
        "3. 相关性:只回答与问题相关的内容,避免冗余。\n"
        "4. 格式遵循:按照用户要求的格式(如列表、表格、JSON)输出。\n"
        "5. 清晰性:表述简洁明了,易于理解。"),
    "角色扮演": (
        "角色扮演类指令,要求AI扮演特定的人物、身份或角色与用户对话,回复需要符合角色设定。",
        "1. 角色一致性:言行、语气与知识背景始终符合角色设定。\n"
        "2. 指令遵循:遵守用户对角色与对话场景的各项要求。\n"
        "3. 互动性:回应自然生动,能推动对话进行,吸引用户参与。\n"
        "4. 内容质量:回复内容合理、有趣且有信息量。\n"
        "5. 无害性:内容合乎伦理道德,不包含任何冒犯性内容。"),
    "代码生成修改与分析": (
        "代码类指令,要求编写、修改、解释、调试或分析程序代码,回复应当给出正确、可运行且易于理解的代码或分析。",
        "1. 正确性:代码能够正确运行并实现所需功能,分析结论准确。\n"
        "2. 指令遵循:满足用户指定的编程语言、接口与约束条件。\n"
        "3. 代码质量:代码结构清晰,命名规范,考虑边界情况与效率。\n"
        "4. 解释清晰:对关键逻辑给出清晰的说明或注释。\n"
        "5. 安全性:不引入安全漏洞或有害操作。"),
}

assert tuple(SCENE_DEFAULTS) == INNER_SCENES == tuple(SCENE_DEFAULTS_EN) == tuple(SCENE_NAMES_EN)

# Checked in order; the first scene with a matching keyword wins.
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("代码生成修改与分析", ("代码", "编程", "函数", "程序", "python", "java", "javascript", "c++", "sql", "bug",
                           "debug", "code", "function", "script", "regex", "正则", "算法实现", "报错")),
    ("翻译", ("翻译", "译成", "译为", "英译", "中译", "translate", "translation", "into english", "into chinese")),
    ("角色扮演", ("扮演", "角色", "假设你是", "假如你是", "你现在是", "role-play", "roleplay", "pretend you are",
                 "act as ")),
    ("文本改写", ("改写", "润色", "重写", "扩写", "缩写", "续写", "改成", "换一种说法", "rewrite", "paraphrase",
                 "rephrase", "polish", "proofread", "summarize in", "shorten")),
    ("阅读理解与信息提取", ("阅读", "根据以下", "根据下文", "根据材料", "根据上文", "提取", "摘要", "总结", "归纳",
                             "passage", "according to the text", "extract", "summarize", "summary")),
    ("回答数学类问题", ("计算", "求解", "方程", "数学", "等于多少", "几何", "概率", "积分", "导数", "证明",
                       "calculate", "compute", "solve", "equation", "math", "integral", "derivative", "probability")),
    ("专业文体写作", ("论文", "合同", "法律文书", "起诉状", "技术文档", "病历", "专利", "paper", "contract",
                     "legal", "thesis")),
    ("实用文体写作", ("邮件", "通知", "申请书", "请假", "简历", "演讲稿", "广告", "文案", "感谢信", "email", "letter",
                     "resume", "notice", "speech", "cover letter")),
    ("信息与专业写作", ("科普", "新闻稿", "报告", "综述", "介绍一下", "article", "report", "essay", "blog post")),
    ("创意文体写作", ("诗", "对联", "下联", "上联", "故事", "小说", "歌词", "剧本", "作文", "poem", "poetry", "story",
                     "couplet", "lyrics", "haiku", "novel")),
    ("回答确定性问题", ("是什么", "是谁", "哪一年", "哪个", "多少", "首都", "什么时候", "在哪里", "what is", "who is",
                       "who was", "when did", "when was", "where is", "which", "how many", "capital of")),
)

_ARITHMETIC = re.compile(r"\d+(\.\d+)?\s*[-+*/×÷^=]\s*\d+")


def classify(question: str) -> str:
    """Pick the inner scene for ``question`` by keywords; 回答开放性问题 when nothing matches."""
    text = question.lower()
    for scene, words in _KEYWORDS:
        if scene == "回答数学类问题" and _ARITHMETIC.search(text):
            return scene
        if any(word in text for word in words):
            return scene
    if _ARITHMETIC.search(text):
        return "回答数学类问题"
    return DEFAULT_SCENE


def resolve(fields: dict[str, Any], zh: bool = True) -> tuple[str, str, str]:
    """The (scene, scene_desc, metric) a judge prompt is built with, after the spec's defaults (or their
    English renderings when ``zh`` is False; the scene is the protocol's name either way)."""
    scene = fields.get("scene") or classify(str(fields.get("question") or ""))
    default_desc, default_metric = (SCENE_DEFAULTS if zh else SCENE_DEFAULTS_EN).get(scene, ("", ""))
    return scene, fields.get("scene_desc") or default_desc, fields.get("metric") or default_metric


def template_values(fields: dict[str, Any], zh: bool = True) -> dict[str, Any]:
    """Every ``${name}`` of the spec's templates, defaults applied (score_desc, steps, scene), in the
    template's language: English shows an inner scene by its English name."""
    scene, scene_desc, metric = resolve(fields, zh)
    max_score = int(fields.get("max_score") or 5)
    if zh:
        steps = fields.get("steps") or DEFAULT_STEPS.replace("(1~5之间)", f"(1~{max_score}之间)")
    else:
        steps = fields.get("steps") or DEFAULT_STEPS_EN.replace(STEPS_SCALE_EN, f"(between 1 and {max_score})")
        scene = SCENE_NAMES_EN.get(scene, scene)
    return {**{k: v for k, v in fields.items() if v is not None},
            "scene": scene, "scene_desc": scene_desc, "metric": metric, "max_score": max_score,
            "score_desc": fields.get("score_desc") or (DEFAULT_SCORE_DESC if zh else DEFAULT_SCORE_DESC_EN),
            "steps": steps, "ref_answer": fields.get("ref_answer") or ""}


# --------------------------------------------------------------------------- reply format

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def is_chinese(text: str) -> bool:
    """Whether the judge should reply in Chinese (the question has CJK text), as PAI's samples do."""
    return bool(_CJK.search(text))


REPLY_TEMPLATE_INTRO = "您返回的模板如下,注意输出需保留模板中的'[['和']]':"
"""The spec's own words (step 4) announcing the reply template; used when custom ``steps`` lack them."""


def reply_template(kind: Literal["single", "pairwise"], zh: bool) -> str:
    """The reply template the spec's step 4 announces, in the style of the spec's sample replies.

    Placeholders are ``<...>``: copied literally they never read as a score or a winner, so a
    model that only echoes the template gets an unreadable verdict, never a wrong one.
    """
    if kind == "single":
        if zh:
            return ("我认为该回复的综合评分为[[<综合评分>]],理由如下。\n"
                    "当前回复的优点:\n"
                    "1. <标准名称>:<评价理由>[[<该标准得分>]]\n"
                    "2. ……\n\n"
                    "当前回复的不足:\n"
                    "1. <标准名称>:<评价理由>[[<该标准得分>]]\n"
                    "2. ……\n\n"
                    "综上所述,<总结>。因此,综合评分为<综合评分>。")
        return ("I think the overall score of the answer is [[<overall score>]] due to the following reasons:\n"
                "Advantages of the answer: \n"
                "1. <criterion>: <reason> [[<criterion score>]]\n"
                "2. ...\n\n"
                "Shortcomings of the answer:\n"
                "1. <criterion>: <reason> [[<criterion score>]]\n"
                "2. ...\n\n"
                "In summary, <summary>, which results in an overall rating of <overall score>.")
    if zh:
        return ("我认为[[<结论>]],其中回复1的综合评分为[[<回复1综合评分>]],回复2的综合评分为[[<回复2综合评分>]],理由如下:\n"
                "1. <标准名称>:回复1:<评价理由>,因此得分为[[<回复1该标准得分>]]。"
                "回复2:<评价理由>,因此得分为[[<回复2该标准得分>]]。\n"
                "2. ……\n\n"
                "综上所述,<总结>。")
    return ("I regard [[<verdict>]]. The overall score of Answer 1 is [[<overall score of Answer 1>]] and the overall "
            "score of Answer 2 is [[<overall score of Answer 2>]] for the following reasons: \n"
            "1. <criterion>: Answer 1: <reason> Answer 2: <reason> "
            "[[Rating for Answer 1: <score>]] [[Rating for Answer 2: <score>]]\n"
            "2. ...\n\n"
            "In summary, <summary>.")


def reply_template_notes(kind: Literal["single", "pairwise"], max_score: int, zh: bool) -> str:
    """What goes in the template's ``[[ ]]``: the verdict words and the score range the parser accepts.

    No example score and no bracketed verdict: echoed back alone, the notes must read as no verdict,
    and a model must not be shown a score to copy.
    """
    if kind == "single":
        if zh:
            return (f"(说明:<综合评分>和<该标准得分>均为1~{max_score}之间的整数,写在双方括号内;"
                    "优点和不足按实际情况逐条列出,每条一个标准。)")
        return (f"(Notes: <overall score> and <criterion score> are whole numbers from 1 to {max_score}, written "
                "inside the double brackets; list the advantages and shortcomings one criterion per line.)")
    if zh:
        return ("(说明:<结论>只能是“回复1更好”“回复2更好”“两个回复一样好”三者之一,写在双方括号内;"
                f"各项得分均为1~{max_score}之间的整数;某项标准不适用时,得分写作N/A。)")
    return ('(Notes: <verdict> is exactly one of "Answer 1 is better", "Answer 2 is better" or "the two answers as '
            f'equivalent", written inside the double brackets; every score is a whole number from 1 to {max_score}; '
            "a criterion that does not apply is rated N/A.)")


_OWN_TEMPLATE = re.compile(r"\[\[[^'\]\s]")
"""A ``[[...]]`` slot in caller-given steps (the spec's quoted ``'[['`` does not count)."""


def with_reply_template(steps: str, kind: Literal["single", "pairwise"], max_score: int, zh: bool) -> str:
    """``steps`` followed by the reply template, where the spec's step 4 says it belongs.

    Steps that bring their own ``[[...]]`` template are left alone; custom steps without the
    spec's announcing sentence get it (verbatim) before the template.
    """
    if _OWN_TEMPLATE.search(steps):
        return steps
    body = reply_template(kind, zh) + "\n" + reply_template_notes(kind, max_score, zh)
    if steps.rstrip().rstrip("。.").rstrip().endswith((":", ":")):
        return steps + "\n" + body
    return steps + "\n" + (REPLY_TEMPLATE_INTRO if zh else REPLY_TEMPLATE_INTRO_EN) + "\n" + body


def json_layout(kind: Literal["single", "pairwise", "custom"], zh: bool) -> dict[str, Any]:
    """The ``json_object`` reply layout: the spec's example shape (``总分`` + per-criterion ``分数``/``理由``)
    and, for pairwise, the keys of the lexical engine's replies, all of which the verdict parser reads."""
    if kind == "custom":
        return {"总分": "<分数>", "理由": "<评分理由>"} if zh else {"overall_score": "<score>", "reason": "<reason>"}
    if kind == "single":
        if zh:
            return {"总分": "<综合评分>", "准确性": {"分数": "<该标准得分>", "理由": "<评价理由>"},
                    "相关性": {"分数": "<该标准得分>", "理由": "<评价理由>"}}
        return {"overall_score": "<overall score>", "Accuracy": {"score": "<criterion score>", "reason": "<reason>"},
                "Relevance": {"score": "<criterion score>", "reason": "<reason>"}}
    if zh:
        crit = {"回复1分数": "<回复1该标准得分>", "回复2分数": "<回复2该标准得分>", "理由": "<评价理由>"}
        return {"更好的回复": "<结论>", "回复1总分": "<回复1综合评分>", "回复2总分": "<回复2综合评分>",
                "准确性": dict(crit), "相关性": dict(crit)}
    crit = {"answer1_score": "<criterion score of Answer 1>", "answer2_score": "<criterion score of Answer 2>",
            "reason": "<reason>"}
    return {"better_answer": "<verdict>", "answer1_overall_score": "<overall score of Answer 1>",
            "answer2_overall_score": "<overall score of Answer 2>", "Accuracy": dict(crit), "Relevance": dict(crit)}


def json_instruction(kind: Literal["single", "pairwise", "custom"], max_score: int | None, zh: bool) -> str:
    """The instruction appended to a ``json_object`` prompt (it names "json", as OpenAI requires).

    ``max_score`` is None for custom templates, whose scale is whatever their own text asks for.
    """
    layout = json.dumps(json_layout(kind, zh), ensure_ascii=False, indent=2)
    if zh:
        head = "请以JSON格式返回评测结果:只输出一个json对象,不要输出json以外的任何内容"
        if kind == "custom":
            what = "。\"总分\"为按上文评分标准给出的分数,\"理由\"为评分理由。格式如下:\n"
        elif kind == "single":
            what = (f"(此格式代替上文的返回模板)。\"总分\"为该回复的综合评分;其余每个键为一项评估标准的名称,"
                    f"其值给出该标准的\"分数\"和\"理由\";所有分数均为1~{max_score}之间的整数。"
                    "准确性、相关性仅为示例,请按你最终筛选的标准逐项给出。格式如下:\n")
        else:
            what = ("(此格式代替上文的返回模板)。\"更好的回复\"只能是\"回复1\"、\"回复2\"或\"两个回复一样好\"之一;"
                    "\"回复1总分\"和\"回复2总分\"为两个回复的综合评分;其余每个键为一项评估标准的名称,其值给出两个回复"
                    f"在该标准的分数和理由;所有分数均为1~{max_score}之间的整数。准确性、相关性仅为示例,"
                    "请按你最终筛选的标准逐项给出。格式如下:\n")
        return head + what + layout
    head = "Return your evaluation in JSON format: output a single json object and nothing else"
    if kind == "custom":
        what = '. "overall_score" is the score on the scale asked for above, "reason" explains it. Layout:\n'
    elif kind == "single":
        what = (' (this layout replaces the reply template above). "overall_score" is the overall score of the '
                "answer; every other key is the name of one evaluation criterion, whose value gives that "
                f'criterion\'s "score" and "reason"; every score is an integer from 1 to {max_score}. Accuracy and '
                "Relevance are only examples: give one entry per criterion you chose. Layout:\n")
    else:
        what = (' (this layout replaces the reply template above). "better_answer" is exactly one of "Answer 1", '
                '"Answer 2" or "tie"; "answer1_overall_score" and "answer2_overall_score" are the overall scores of '
                "the two answers; every other key is the name of one evaluation criterion, whose value gives both "
                f"answers' scores for it and the reason; every score is an integer from 1 to {max_score}. Accuracy "
                "and Relevance are only examples: give one entry per criterion you chose. Layout:\n")
    return head + what + layout


def judge_prompt(kind: Literal["single", "pairwise"], fields: dict[str, Any],
                 response_format: Literal["text", "json_object"] = "text") -> str:
    """The spec's single / pairwise template (Chinese question) or its English rendering, filled in and followed
    by the reply format (see the module doc)."""
    zh = is_chinese(str(fields.get("question") or ""))
    values = template_values(fields, zh)
    if response_format == "text":
        values["steps"] = with_reply_template(values["steps"], kind, values["max_score"], zh)
    templates = (SINGLE_TEMPLATE, PAIRWISE_TEMPLATE) if zh else (SINGLE_TEMPLATE_EN, PAIRWISE_TEMPLATE_EN)
    prompt = fill_template(templates[0] if kind == "single" else templates[1], values)
    if response_format == "json_object":
        prompt += "\n\n" + json_instruction(kind, values["max_score"], zh)
    return prompt
