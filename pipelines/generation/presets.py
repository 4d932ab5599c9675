"""Prompt presets (story, translation, summary, code, customer-service reply, question answering).

Each preset wraps the user's text in an instruction written in the language of that text (English or
Chinese, detected from its script); translation goes English -> Chinese or Chinese -> English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pipelines.errors import InputError

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_chinese(text: str) -> bool:
    """True when at least a fifth of the letters are CJK ideographs."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(bool(CJK.match(c)) for c in letters) >= max(1, len(letters) // 5)


@dataclass(frozen=True)
class Preset:
    """An instruction template per language plus suggested settings."""

    name: str
    system: dict[str, str]
    template: dict[str, str]  # with a {text} placeholder
    example: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)


PRESETS: MappingProxyType[str, Preset] = MappingProxyType({
    p.name: p
    for p in (
        Preset(
            "story",
            {"en": "You are a creative storyteller.", "zh": "你是一位富有创意的故事作家。"},
            {"en": "Write a short story about: {text}", "zh": "请以此为主题写一个短篇故事：{text}"},
            {"en": "a robot who learns to paint", "zh": "一个学画画的机器人"},
            {"do_sample": True, "temperature": 0.8, "top_p": 0.95, "repetition_penalty": 1.1, "max_new_tokens": 200},
        ),
        Preset(
            "translation",
            {"en": "You are a precise translator.", "zh": "你是一名严谨的翻译。"},
            {"en": "Translate the following English text into Chinese:\n\n{text}",
             "zh": "请把下面的中文翻译成英文：\n\n{text}"},
            {"en": "The weather is nice today.", "zh": "今天天气很好。"},
            {"do_sample": False, "repetition_penalty": 1.0, "max_new_tokens": 128},
        ),
        Preset(
            "summary",
            {"en": "You summarise texts faithfully and briefly.", "zh": "你忠实而简洁地总结文本。"},
            {"en": "Summarise the following text in two sentences:\n\n{text}",
             "zh": "请用两句话总结下面的文字：\n\n{text}"},
            {"en": "The city council met on Monday to discuss the new park. After a long debate, members agreed "
                   "to fund it next year, but asked for a smaller budget.",
             "zh": "市议会周一开会讨论新公园。经过长时间辩论，议员们同意明年拨款，但要求缩减预算。"},
            {"do_sample": False, "repetition_penalty": 1.1, "max_new_tokens": 96},
        ),
        Preset(
            "code",
            {"en": "You are an expert Python programmer. Answer with code.",
             "zh": "你是一名资深 Python 程序员，请用代码回答。"},
            {"en": "Write a Python function that {text}", "zh": "请写一个 Python 函数：{text}"},
            {"en": "returns the n-th Fibonacci number", "zh": "返回第 n 个斐波那契数"},
            {"do_sample": False, "repetition_penalty": 1.0, "max_new_tokens": 160},
        ),
        Preset(
            "customer_service",
            {"en": "You are a polite, helpful customer-service agent.", "zh": "你是一名礼貌、乐于助人的客服。"},
            {"en": "Reply to this customer message:\n\n{text}", "zh": "请回复这位顾客的留言：\n\n{text}"},
            {"en": "My order arrived broken. What can I do?", "zh": "我的订单到货时已经坏了，我该怎么办？"},
            {"do_sample": True, "temperature": 0.5, "top_p": 0.9, "repetition_penalty": 1.1, "max_new_tokens": 128},
        ),
        Preset(
            "qa",
            {"en": "You answer questions accurately and concisely.", "zh": "你准确而简洁地回答问题。"},
            {"en": "Answer the question: {text}", "zh": "请回答这个问题：{text}"},
            {"en": "What is the capital of France?", "zh": "法国的首都是哪里？"},
            {"do_sample": False, "repetition_penalty": 1.1, "max_new_tokens": 64},
        ),
    )
})


@dataclass(frozen=True)
class AppliedPreset:
    system: str
    prompt: str
    settings: dict[str, Any]
    language: str


def apply_preset(name: str, text: str = "", ui_language: str = "en") -> AppliedPreset:
    """Wrap ``text`` (or the preset's example when empty) in the preset's instruction."""
    preset = PRESETS.get(name)
    if preset is None:
        raise InputError("generate.error.unknown_preset", name=str(name)[:60], choices=", ".join(PRESETS))
    text = (text or "").strip()
    if text:
        lang = "zh" if is_chinese(text) else "en"
    else:
        lang = "zh" if ui_language.lower().startswith("zh") else "en"
        text = preset.example[lang]
    return AppliedPreset(preset.system[lang], preset.template[lang].format(text=text), dict(preset.settings), lang)

