"""The spec's judge prompt templates, their default texts, and how their placeholders are filled.

Spec text, verbatim from ``pai-judge-api-zh.txt``: the single / pairwise templates (the single one
has a deliberate trailing space after ``[数据开始]``), the default score descriptions and steps,
and the example scene description and metric of 回答开放性问题.
"""

from __future__ import annotations

import re
from typing import Any

# The spec's example scene description and metric (for 回答开放性问题), verbatim.
OPEN_QUESTION_SCENE_DESC = (
    "开放交流类指令,通常为询问一个开放领域问题,回复也是开放式的,如闲聊、咨询建议、寻求推荐等。"
)
OPEN_QUESTION_METRIC = (
    "1. 准确性:确保所提供信息的准确性,遵循常识和事实,避免误导用户。\n"
    "2. 相关性:回答必须针对用户提出的问题,避免无关内容,确保信息的相关性。\n"
    "3. 文化敏感与无害:了解和尊重用户的文化背景和差异,合乎伦理道德,避免文化偏见和不敏感的表达,避免包含任何可能冒犯的内容。\n"
    "4. 信息丰富性:在保证准确性的同时提供详尽的信息,尤其是用户可能未明确要求但对理解问题有帮助的背景信息。\n"
    "5. 清晰性:使用清晰、易懂的语言回答问题,避免可能引起误解的专业术语或复杂构造。\n"
    "6. 用户参与:鼓励用户进一步交流,展现对用户提问的关注和思考,通过提出问题或反馈来促进交流。\n"
    "7. 共情:回答时考虑用户的情感状态,适当表达共情和理解,特别是在回答包含情感色彩的问题时。\n"
    "8. 建设性反馈:即使在面对批评性或负面的问题时,也应保持积极和建设性的态度,提供有价值的回复和建议。"
)

# Default score descriptions for max_score=5 (spec table, verbatim).
DEFAULT_SCORE_DESC = (
    "1:回复有重大缺陷,完全背离标准,在实际中不该出现。\n"
    "2:回复有部分内容符合标准,可以被采纳,但作为一个整体,回复质量并不合格。\n"
    "3:回复优缺点并存,在要求的评价标准内整体优点超过缺点。\n"
    "4:回复质量过关,整体符合标准,存在个别小问题可以提升,在给定参考答案时此档位代表参考答案所呈现的回复质量。\n"
    "5:回复非常完美,各方面均严格符合标准,在给定参考答案时此档位代表优于参考答案的回复质量。"
)

DEFAULT_STEPS = (
    "1. 回忆相关的智能助手回复标准,并仔细阅读、理解待评估回复。\n"
    "2. 从所有标准中识别出针对当前用户指令以及回复的关键标准,包括表现好以及不足的。\n"
    "3. 除了给定的标准外,添加您认为必要的评估当前用户指令回复的其他重要标准。\n"
    "4. 依据您最终筛选的标准,依次给该回复赋分(1~5之间),加权汇总所有小项得分后给出该回复综合评分。 "
    "仔细思考,然后给出您的结论。您返回的模板如下,注意输出需保留模板中的'[['和']]':。"
)

# --------------------------------------------------------------------------- templates

SINGLE_TEMPLATE = """你的任务是对AI智能助手回复进行质量评分。

你非常清晰地认识到当用户提出一个关于【${scene}】场景的指令时(该场景的定义为:${scene_desc}),一个AI智能助手的回复应当符合以下标准(按标准重要性程度从高到低依次给出):
[标准开始]
${metric}
[标准结束]

评分采取${max_score}档制(1-${max_score}),各分数档位含义如下:
[档位含义开始]
${score_desc}
[档位含义结束]

针对用户指令,我们搜集到一个AI智能助手的如下回复。
请根据你所知的当前场景下智能助手的回复标准,综合评估该回复并提供评价。以下是用户指令和助手回复数据:
[数据开始] 
***
[用户指令]: ${question}
***
[回复]: ${answer}
***
[参考答案]: ${ref_answer}
***
[数据结束]

你需要按照以下流程评估以上回复:
${steps}

仔细思考一会,然后给出你的结论。"""

PAIRWISE_TEMPLATE = """你的任务是对AI智能助手回复进行质量评分。

你非常清晰地认识到当用户提出一个关于【${scene}】场景的指令时(该场景的定义为:${scene_desc}),一个AI智能助手的回复应当符合以下标准(按标准重要性程度从高到低依次给出):
[标准开始]
${metric}
[标准结束]

评分采取${max_score}档制(1-${max_score}),各分数档位含义如下:
[档位含义开始]
${score_desc}
[档位含义结束]

针对一个【${scene}】场景的用户指令,我们搜集到两个AI智能助手的回复。
请根据你所知的当前场景下智能助手回复标准,综合评估并判断哪个回复更好或者并列(包括都好和都不好)。以下用户指令和助手回复数据:
[数据开始]
***
[用户指令]: ${question}
***
[回复1]: ${answer1}
***
[回复2]: ${answer2}
***
[参考答案]: ${ref_answer}
***
[数据结束]

你需要按照以下流程评估并比较两个回复:
{steps}

仔细思考一会,然后给出你的结论。"""


def fill_template(template: str, values: dict[str, Any]) -> str:
    """Fill ``${name}`` placeholders (and the spec's bare ``{steps}`` in the pairwise template)."""

    def sub(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return re.sub(r"\$?\{(scene|scene_desc|metric|max_score|score_desc|question|answer1|answer2|answer|ref_answer|steps)\}", sub, template)
