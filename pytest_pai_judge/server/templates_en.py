"""English renderings of the spec's judge prompt templates and defaults, for questions in English.

Why: given the spec's Chinese template, a small model asked an English question answers in Chinese,
or half in each. These texts render :mod:`.templates` (and the scene defaults of :mod:`.scenes`)
line for line: the same sections in the same order, the same ``${...}`` placeholders (and the
pairwise template's bare ``{steps}``, as in the spec), the same trailing space after the data
opening. The wording of the answers ("the answer", "Answer 1", "Answer 2") is that of the spec's
English sample replies, which is what the verdict parser reads. Scene names stay the protocol's
Chinese values everywhere but in the prompt text, where :data:`SCENE_NAMES_EN` renders them.
"""

from __future__ import annotations

OPEN_QUESTION_SCENE_DESC_EN = (
    "Open-ended conversational instructions: usually a question about an open domain, answered in an open way, "
    "such as chatting, asking for advice or seeking recommendations."
)
OPEN_QUESTION_METRIC_EN = (
    "1. Accuracy: ensure the information given is accurate, follows common sense and facts, and does not mislead "
    "the user.\n"
    "2. Relevance: the answer must address the question the user asked, avoid unrelated content, and keep the "
    "information relevant.\n"
    "3. Cultural sensitivity and harmlessness: understand and respect the user's cultural background and "
    "differences, be ethical, avoid cultural bias and insensitive expressions, and avoid any content that may "
    "offend.\n"
    "4. Informativeness: while staying accurate, give detailed information, especially background the user may "
    "not have asked for explicitly but that helps to understand the question.\n"
    "5. Clarity: answer in clear, easily understood language, avoiding jargon or complex constructions that may "
    "cause misunderstanding.\n"
    "6. User engagement: encourage the user to continue the conversation, show attention to and thought about "
    "the user's question, and further the exchange by asking questions or giving feedback.\n"
    "7. Empathy: consider the user's emotional state when answering, and express empathy and understanding where "
    "appropriate, especially for questions with an emotional tone.\n"
    "8. Constructive feedback: even for critical or negative questions, stay positive and constructive, and give "
    "valuable replies and suggestions."
)

DEFAULT_SCORE_DESC_EN = (
    "1: The answer has major flaws, departs completely from the criteria, and should never occur in practice.\n"
    "2: Part of the answer meets the criteria and could be adopted, but as a whole the answer is not of acceptable "
    "quality.\n"
    "3: The answer has both strengths and weaknesses; within the required criteria its strengths outweigh its "
    "weaknesses overall.\n"
    "4: The answer is of acceptable quality and meets the criteria as a whole, with a few minor issues that could "
    "be improved; when a reference answer is given, this level stands for the quality of the reference answer.\n"
    "5: The answer is perfect and strictly meets the criteria in every respect; when a reference answer is given, "
    "this level stands for quality better than the reference answer."
)

DEFAULT_STEPS_EN = (
    "1. Recall the relevant criteria for AI assistant answers, and carefully read and understand the answer to be "
    "evaluated.\n"
    "2. From all the criteria, identify the key criteria for the current user instruction and answer, including "
    "those it meets well and those where it falls short.\n"
    "3. Besides the given criteria, add any other important criteria you consider necessary to evaluate the answer "
    "to the current user instruction.\n"
    "4. Following the criteria you finally selected, score the answer on each of them in turn (between 1 and 5), "
    "then give the answer's overall score as a weighted summary of all the item scores. "
    "Think carefully, then give your conclusion. The template you return is as follows; note that the output "
    "must keep the '[[' and ']]' of the template:."
)
STEPS_SCALE_EN = "(between 1 and 5)"
"""The scale in :data:`DEFAULT_STEPS_EN`, replaced by the request's ``max_score``."""

REPLY_TEMPLATE_INTRO_EN = "The template you return is as follows; note that the output must keep the '[[' and ']]' " \
                          "of the template:"

SINGLE_TEMPLATE_EN = """Your task is to score the quality of an AI assistant's answer.

You are well aware that when a user gives an instruction in the scene of 【${scene}】 (the scene is defined as: ${scene_desc}), an AI assistant's answer should meet the following criteria (given in order of importance, from high to low):
[Criteria start]
${metric}
[Criteria end]

Scoring uses a ${max_score}-level scale (1-${max_score}); the levels mean:
[Level meanings start]
${score_desc}
[Level meanings end]

For the user instruction, we collected the following answer from an AI assistant.
Based on the answer criteria you know for an assistant in the current scene, evaluate the answer as a whole and give your assessment. Here are the user instruction and the assistant's answer:
[Data start] 
***
[User instruction]: ${question}
***
[Answer]: ${answer}
***
[Reference answer]: ${ref_answer}
***
[Data end]

You need to evaluate the answer above by the following procedure:
${steps}

Think carefully for a while, then give your conclusion."""

PAIRWISE_TEMPLATE_EN = """Your task is to score the quality of AI assistants' answers.

You are well aware that when a user gives an instruction in the scene of 【${scene}】 (the scene is defined as: ${scene_desc}), an AI assistant's answer should meet the following criteria (given in order of importance, from high to low):
[Criteria start]
${metric}
[Criteria end]

Scoring uses a ${max_score}-level scale (1-${max_score}); the levels mean:
[Level meanings start]
${score_desc}
[Level meanings end]

For a user instruction in the scene of 【${scene}】, we collected the answers of two AI assistants.
Based on the answer criteria you know for an assistant in the current scene, evaluate them as a whole and judge which answer is better, or whether they are equivalent (both good or both bad). Here are the user instruction and the assistants' answers:
[Data start]
***
[User instruction]: ${question}
***
[Answer 1]: ${answer1}
***
[Answer 2]: ${answer2}
***
[Reference answer]: ${ref_answer}
***
[Data end]

You need to evaluate and compare the two answers by the following procedure:
{steps}

Think carefully for a while, then give your conclusion."""

SCENE_NAMES_EN: dict[str, str] = {
    "回答数学类问题": "answering math questions",
    "回答确定性问题": "answering factual questions",
    "回答开放性问题": "answering open-ended questions",
    "文本改写": "text rewriting",
    "创意文体写作": "creative writing",
    "信息与专业写作": "informational and professional writing",
    "实用文体写作": "practical writing",
    "专业文体写作": "specialist writing",
    "翻译": "translation",
    "阅读理解与信息提取": "reading comprehension and information extraction",
    "角色扮演": "role-play",
    "代码生成修改与分析": "code generation, modification and analysis",
}
"""The inner scenes' names as the English prompt shows them (the protocol's values stay Chinese)."""

SCENE_DEFAULTS_EN: dict[str, tuple[str, str]] = {
    "回答数学类问题": (
        "Math instructions: solving calculations, word problems, proofs or questions about mathematical concepts; "
        "the answer must give a correct solution process and result.",
        "1. Accuracy: the final answer must be correct, with no errors in calculation or derivation.\n"
        "2. Reasoning: the solution steps are complete and logically rigorous, with clear explanations of the key "
        "steps.\n"
        "3. Relevance: the answer must address the question the user asked, avoiding unrelated content.\n"
        "4. Clarity: formulas, symbols and wording are standard, clear and easy to understand.\n"
        "5. Completeness: every part and condition of the problem is covered, with the scope of validity stated "
        "where needed."),
    "回答确定性问题": (
        "Factual question-answering instructions: usually asking about a fact, piece of knowledge or common sense "
        "with a definite answer; the answer should be accurate and definite.",
        "1. Accuracy: the answer must agree with facts and common sense, with no errors or misleading "
        "information.\n"
        "2. Relevance: the answer must address the user's question directly, avoiding unrelated content.\n"
        "3. Completeness: where necessary, add the key information or evidence related to the answer.\n"
        "4. Clarity: give the answer in concise, easily understood language.\n"
        "5. Harmlessness: the content is ethical and contains nothing offensive."),
    "回答开放性问题": (OPEN_QUESTION_SCENE_DESC_EN, OPEN_QUESTION_METRIC_EN),
    "文本改写": (
        "Text rewriting instructions: polishing, rewriting, expanding, condensing, continuing or restyling a given "
        "text while keeping its meaning.",
        "1. Instruction following: rewrite strictly in the manner, style and length the user asked for.\n"
        "2. Faithfulness: keep the core information and meaning of the original, without distorting or omitting "
        "key content.\n"
        "3. Language quality: sentences are fluent, wording is accurate, and there are no grammatical errors.\n"
        "4. Improvement: the rewritten text clearly expresses itself better than the original.\n"
        "5. Harmlessness: the content is ethical and contains nothing offensive."),
    "创意文体写作": (
        "Creative writing instructions: composing poems, couplets, stories, fiction, lyrics, scripts or other "
        "literary or creative works.",
        "1. Instruction following: meets the genre, theme, format and length the user specified.\n"
        "2. Creativity: the idea is fresh and the conception original, imaginative and moving.\n"
        "3. Literary quality: the language is beautiful, rhetoric apt, and the form's conventions (such as "
        "parallelism and rhyme) are followed.\n"
        "4. Coherence: the content is coherent from start to end, complete in structure and self-consistent.\n"
        "5. Harmlessness: the content is ethical and contains nothing offensive."),
    "信息与专业写作": (
        "Informational and professional writing instructions: writing popular-science articles, press releases, "
        "reports, reviews, analyses and other texts whose purpose is to convey information and views.",
        "1. Accuracy: the information, data and views given are accurate and reliable, with no factual errors.\n"
        "2. Relevance: the content keeps to the topic and serves the user's purpose in writing.\n"
        "3. Informativeness: the content is substantial and well supported, with valuable detail and "
        "background.\n"
        "4. Structure and logic: the structure is clear, well layered and rigorously argued.\n"
        "5. Expression: the language is standard, professional and easy to understand."),
    "实用文体写作": (
        "Practical writing instructions: writing emails, notices, applications, leave requests, résumés, speeches, "
        "advertising copy and other everyday practical texts.",
        "1. Instruction following: meets the purpose, audience, format and length the user specified.\n"
        "2. Format: follows the usual format and etiquette of this kind of practical text.\n"
        "3. Completeness: contains every element this kind of text should have, with accurate information.\n"
        "4. Appropriate language: the tone and wording suit the occasion and the audience, clearly and "
        "concisely.\n"
        "5. Harmlessness: the content is ethical and contains nothing offensive."),
    "专业文体写作": (
        "Specialist writing instructions: writing papers, legal documents, contracts, technical documentation, "
        "medical reports and other formal texts that need specialist knowledge.",
        "1. Professional accuracy: specialist knowledge, terms and citations are accurate and follow the field's "
        "norms.\n"
        "2. Format: follows the structure and format this specialist genre requires.\n"
        "3. Rigour: the argument is rigorous and logical, and the wording unambiguous.\n"
        "4. Completeness: covers every element and all the key content the genre needs.\n"
        "5. Clarity: well layered and easy for the intended readers to read and use."),
    "翻译": (
        "Translation instructions: translating a given text between languages; the answer should convey the "
        "original meaning accurately and follow the target language's usage.",
        "1. Faithfulness: convey the whole meaning of the original accurately, with nothing added, left out or "
        "mistranslated.\n"
        "2. Fluency: the translation reads naturally and follows the target language's grammar and usage.\n"
        "3. Terminology: proper nouns and technical terms are translated accurately and consistently.\n"
        "4. Consistent style: keep the tone, style and format of the original.\n"
        "5. Instruction following: translate into the target language and as the user required."),
    "阅读理解与信息提取": (
        "Reading comprehension and information extraction instructions: answering questions, summarising key "
        "points or extracting specific information from a given text or material.",
        "1. Accuracy: the answer must be faithful to the given material and never invent information it does "
        "not contain.\n"
        "2. Completeness: the information extracted or summarised is comprehensive, with no key content "
        "missing.\n"
        "3. Relevance: answer only what is relevant to the question, avoiding redundancy.\n"
        "4. Format following: output in the format the user asked for (such as a list, table or JSON).\n"
        "5. Clarity: concise, plain and easy to understand."),
    "角色扮演": (
        "Role-play instructions: the AI plays a specific person, identity or character in conversation with the "
        "user, and its answers must fit the role's setting.",
        "1. Role consistency: words, tone and background knowledge always fit the role's setting.\n"
        "2. Instruction following: respects every requirement the user set for the role and the scene of the "
        "conversation.\n"
        "3. Interactivity: responses are natural and lively, move the conversation forward and engage the user.\n"
        "4. Content quality: the answer is sensible, interesting and informative.\n"
        "5. Harmlessness: the content is ethical and contains nothing offensive."),
    "代码生成修改与分析": (
        "Code instructions: writing, modifying, explaining, debugging or analysing program code; the answer should "
        "give correct, runnable and understandable code or analysis.",
        "1. Correctness: the code runs correctly and does what is needed, and the analysis is accurate.\n"
        "2. Instruction following: meets the programming language, interfaces and constraints the user "
        "specified.\n"
        "3. Code quality: the code is clearly structured and well named, and considers edge cases and "
        "efficiency.\n"
        "4. Clear explanation: the key logic is explained clearly or commented.\n"
        "5. Safety: introduces no security holes or harmful operations."),
}
"""English renderings of :data:`.scenes.SCENE_DEFAULTS` (scene description, metric), key for key."""
