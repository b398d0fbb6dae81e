"""Scene auto-division: when a judge request leaves ``scene`` empty, pick one of the 12 inner scenes.

PAI runs a model for this (its ``Scenario_division`` stage); the local server classifies the
question by keywords instead, so prompts built offline still carry a plausible scene, scene
description and metric. Only the 回答开放性问题 texts are the spec's own; the others are ours.
"""

from __future__ import annotations

import re
from typing import Any

from ..protocol import (DEFAULT_SCORE_DESC, DEFAULT_STEPS, INNER_SCENES, OPEN_QUESTION_METRIC,
                        OPEN_QUESTION_SCENE_DESC)

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

assert tuple(SCENE_DEFAULTS) == INNER_SCENES

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


def resolve(fields: dict[str, Any]) -> tuple[str, str, str]:
    """The (scene, scene_desc, metric) a judge prompt is built with, after the spec's defaults."""
    scene = fields.get("scene") or classify(str(fields.get("question") or ""))
    default_desc, default_metric = SCENE_DEFAULTS.get(scene, ("", ""))
    return scene, fields.get("scene_desc") or default_desc, fields.get("metric") or default_metric


def template_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Every ``${name}`` of the spec's templates, defaults applied (score_desc, steps, scene)."""
    scene, scene_desc, metric = resolve(fields)
    max_score = int(fields.get("max_score") or 5)
    steps = fields.get("steps") or DEFAULT_STEPS.replace("(1~5之间)", f"(1~{max_score}之间)")
    return {**{k: v for k, v in fields.items() if v is not None},
            "scene": scene, "scene_desc": scene_desc, "metric": metric, "max_score": max_score,
            "score_desc": fields.get("score_desc") or DEFAULT_SCORE_DESC, "steps": steps,
            "ref_answer": fields.get("ref_answer") or ""}
