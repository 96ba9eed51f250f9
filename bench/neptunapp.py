"""What the Neptun app sends to the model server behind its route: the prompt and the parameters.

``bench run --backend URL --backend-protocol tgi|hf`` sends each turn straight to the Hugging Face
text-generation server behind the route, and the difference is only "what the app adds" if the
backend gets what the app would have sent it. So this module does what the app's handler does
(``server/api/ai/huggingface/[model_publisher]/[model_name]/chat.ts`` at neptun.web 0b2c91b):

1. the fixed Markdown instruction is put in front as a ``user`` message unless the history already
   holds it (the app's ``SYSTEM_MESSAGE``; a persisted chat's project context replaces it there,
   which a load test cannot know: the playground's instruction is used);
2. every message's content passes ``getSanitizedMessageContent`` (``utils/chat.ts``): reasoning
   blocks rewritten, model tags removed, odd whitespace normalised;
3. the prompt is built with the model's template (``server/utils/chat.ts``: Gemma 2, Phi-3, Qwen 2.5
   for the Qwen models and DeepSeek R1, Mistral Nemo, Mistral 7B v0.3), and sent with the model's
   parameters from ``lib/data/ai.models.ts`` (max new tokens, typical_p, repetition penalty,
   truncate, temperature).

The templates are the app's, including its quirks (Gemma's turns say ``assistant``, not ``model``;
Mistral Nemo gets ChatML). ``tests/test_neptunapp.py`` holds them against prompts transcribed from
the app's source. The reference target's route (``bench target --upstream URL --upstream-protocol
tgi``) builds its prompts here too, so a paired run against it sends the backend the same bytes from
both paths (checked by CRC in ``tests/test_overhead.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

SYSTEM_MESSAGE = (
    "You have to answer all my questions and provide all information using Markdown syntax. This includes "
    "formatting text, adding lists, inserting links, using code blocks, and any other Markdown features that are "
    "appropriate for your responses."
)

Message = dict[str, str]


def _gemma2(messages: Sequence[Message]) -> str:
    return (
        "<bos>"
        + "".join(f"<start_of_turn>{m['role']}\n{m['content']}<end_of_turn>\n" for m in messages)
        + ("<start_of_turn>model\n")
    )


_PHI3 = {"system": "<|system|>\n{}<|end|>\n", "user": "<|user|>\n{}<|end|>\n", "assistant": "<|assistant|>\n{}<|end|>\n"}
_CHATML = {
    "system": "<|im_start|>system\n{}<|im_end|>\n",
    "user": "<|im_start|>user\n{}<|im_end|>\n",
    "assistant": "<|im_start|>assistant\n{}<|im_end|>\n",
}
_MISTRAL7B = {"system": "<|system|>{}</s>", "user": "[INST]{}[/INST]", "assistant": "{}</s>"}


def _by_role(forms: dict[str, str], tail: str) -> Callable[[Sequence[Message]], str]:
    def build(messages: Sequence[Message]) -> str:  # roles the template does not know are left out, as the app does
        return "".join(forms[m["role"]].format(m["content"]) for m in messages if m["role"] in forms) + tail

    return build


TEMPLATES: dict[str, Callable[[Sequence[Message]], str]] = {
    "gemma2": _gemma2,
    "phi3": _by_role(_PHI3, "<|assistant|>\n"),
    "qwen25": _by_role(_CHATML, "<|im_start|>assistant\n"),
    "mistral-nemo": _by_role(_CHATML, "<|im_start|>assistant\n"),
    "mistral7b-v3": _by_role(_MISTRAL7B, ""),
}


@dataclass(frozen=True)
class AppModel:
    """One model of the route as ``lib/data/ai.models.ts`` configures it."""

    hf_id: str  # the id the app sends to Hugging Face (its case, not the route's)
    template: str
    max_new_tokens: int
    truncate: int
    temperature: float | None = None

    def parameters(self, max_new_tokens: int = 0) -> dict[str, Any]:
        p: dict[str, Any] = {
            "max_new_tokens": max_new_tokens or self.max_new_tokens,
            "typical_p": 0.2,
            "repetition_penalty": 1.1,
        }
        if self.temperature is not None:
            p["temperature"] = self.temperature
        p.update({"truncate": self.truncate, "return_full_text": False})
        return p


# keyed by the route's model name (the path's second part), as the handler picks its template
MODELS: dict[str, AppModel] = {
    "Qwen2.5-72B-Instruct": AppModel("Qwen/Qwen2.5-72B-Instruct", "qwen25", 512, 32_767 - 500),
    "Qwen2.5-Coder-32B-Instruct": AppModel("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen25", 512, 15_999 - 500),
    "DeepSeek-R1-Distill-Qwen-32B": AppModel("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "qwen25", 512, 12_999 - 500, 0.6),
    "Mistral-Nemo-Instruct-2407": AppModel("mistralai/Mistral-Nemo-Instruct-2407", "mistral-nemo", 500, 128_000 - 500, 0.35),
    "Mistral-7B-Instruct-v0.3": AppModel("mistralai/Mistral-7B-Instruct-v0.3", "mistral7b-v3", 500, 32_768 - 500),
    "gemma-2-27b-it": AppModel("google/gemma-2-27b-it", "gemma2", 500, 8_192 - 500),
    "Phi-3-mini-4k-instruct": AppModel("microsoft/Phi-3-mini-4k-instruct", "phi3", 500, 4_096 - 500),
}
FALLBACK = "qwen25"  # a model the app does not list (a test deployment's): ChatML, the most common template


def app_model(model: str) -> AppModel | None:
    """The app's configuration for a route model id (``publisher/name``, or ``name``)."""
    return MODELS.get(model.rsplit("/", 1)[-1])


_DETAILS = re.compile(r"</?(?:details|summary)[^>]*>")
_THINK_BLOCK = re.compile(r"<think>([\s\S]*?)</think>")
_MODEL_TAGS = [
    re.compile(p)
    for p in (
        r"<\|im_end\|>",
        r"\|im_end\|?",
        r"<\|end\|>",
        r"<\|assistant\|>",
        r"<\|user\|>",
        r"<\|system\|>",
        r"<\|start_header_id\|>.*?<\|end_header_id\|>",
        r"<\|begin_of_text\|>",
        r"<\|eot_id\|>",
        r"<\|.*?\|>",
        r"<｜end▁of▁sentence｜>",
        r"<bos>",
        r"<eos>",
        r"<start_of_turn>",
        r"<end_of_turn>",
        r"\[INST\]",
        r"\[/INST\]",
        r"</s>",
    )
]


def _js_trim(s: str) -> str:
    return s.strip(
        " \t\n\r\v\f\u00a0\ufeff\u2028\u2029\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
    )


def sanitize(content: str) -> str:
    """``getSanitizedMessageContent`` of the app's ``utils/chat.ts``, step for step."""
    if not content or not _js_trim(content):
        return ""
    s = _DETAILS.sub("", content)
    if "</think>" in s or "<think>" in s:
        if "<think>" not in s and "</think>" in s:
            s = "<think>" + s
        if "<think>" in s and "</think>" not in s:
            s += "</think>"
        m = _THINK_BLOCK.search(s)
        if m and _js_trim(m[1]):
            think = _js_trim(m[1])
            s = _THINK_BLOCK.sub("", s, count=1)
            if not think.startswith("<details>"):
                s = f"<details>\n<summary>AI Thinking Process</summary>\n{think}\n</details>\n\n{_js_trim(s)}"
            else:
                s = f"{think}\n\n{_js_trim(s)}"
        else:
            s = re.sub(r"</?think>", "", s)
    for pattern in _MODEL_TAGS:
        s = pattern.sub("", s)
    s = s.replace("\u200b", " ")
    s = re.sub("[\u2028\u2029\v\f\u0085]", "\n", s)
    return re.sub(r"\n{3,}", "\n\n", s)


def app_messages(messages: Sequence[Message]) -> list[Message]:
    """The history as the app hands it to its template: its instruction in front (unless present),
    every content sanitised."""
    out = [dict(m) for m in messages]
    if not any(m.get("content") == SYSTEM_MESSAGE for m in out):
        out.insert(0, {"role": "user", "content": SYSTEM_MESSAGE})
    return [{**m, "content": sanitize(m.get("content", ""))} for m in out]


def build_prompt(model: str, messages: Sequence[Message]) -> str:
    """The ``inputs`` string the app sends to Hugging Face for this model and history."""
    cfg = app_model(model)
    return TEMPLATES[cfg.template if cfg else FALLBACK](app_messages(messages))


def tgi_body(model: str, messages: Sequence[Message], max_new_tokens: int = 0, stream: bool = False) -> dict[str, Any]:
    """The JSON the app's Hugging Face client posts: ``inputs`` and the model's ``parameters``
    (``stream: true`` added for the Inference API's ``/models/{id}``; TGI's ``/generate_stream``
    streams without it). ``max_new_tokens`` (a run's ``--max-tokens``) replaces the app's own."""
    cfg = app_model(model)
    params = (
        cfg.parameters(max_new_tokens)
        if cfg
        else {"max_new_tokens": requested_new_tokens(model, max_new_tokens), "return_full_text": False}
    )
    body: dict[str, Any] = {"inputs": build_prompt(model, messages), "parameters": params}
    if stream:
        body["stream"] = True
    return body


def hf_model_id(model: str) -> str:
    """The id the app sends to Hugging Face for a route model (``qwen/Qwen2.5-72B-Instruct`` ->
    ``Qwen/Qwen2.5-72B-Instruct``); an unknown model keeps its own id."""
    cfg = app_model(model)
    return cfg.hf_id if cfg else model


def requested_new_tokens(model: str, max_new_tokens: int = 0) -> int:
    """The ``max_new_tokens`` :func:`tgi_body` sends (a run's own bound, else the app's for the model)."""
    cfg = app_model(model.rsplit("=", 1)[-1])
    return max_new_tokens or (cfg.max_new_tokens if cfg else 500)
