"""The prompt the Neptun app sends Hugging Face, held against its source (neptun.web 0b2c91b).

The expected strings are written out by hand from ``server/utils/chat.ts`` (the templates),
``utils/chat.ts`` (``getSanitizedMessageContent``), the chat handler (the instruction put in front as
a ``user`` message) and ``lib/data/ai.models.ts`` (the parameters), not produced by the code under test.
"""

from __future__ import annotations

import json

import pytest

from bench.load.route import RouteConfig
from bench.neptunapp import SYSTEM_MESSAGE, build_prompt, hf_model_id, sanitize, tgi_body

HISTORY = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]
S = SYSTEM_MESSAGE


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "google/gemma-2-27b-it",  # the app's turns say "user"/"assistant", and end on "model"
            f"<bos><start_of_turn>user\n{S}<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n"
            "<start_of_turn>assistant\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            "microsoft/Phi-3-mini-4k-instruct",
            f"<|user|>\n{S}<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n",
        ),
        (
            "qwen/Qwen2.5-72B-Instruct",
            f"<|im_start|>user\n{S}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",  # "DeepSeek uses Qwen chat template"
            f"<|im_start|>user\n{S}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "mistralai/Mistral-7B-Instruct-v0.3",  # no closing assistant marker
            f"[INST]{S}[/INST][INST]Hi[/INST]Hello!</s>[INST]Bye[/INST]",
        ),
    ],
)
def test_the_prompt_is_the_apps_template(model, expected):
    assert build_prompt(model, HISTORY) == expected


def test_the_instruction_is_not_put_in_twice():
    history = [{"role": "user", "content": S}, *HISTORY]
    assert build_prompt("qwen/Qwen2.5-72B-Instruct", history).count(S) == 1


def test_message_content_is_sanitised_as_the_app_does():
    # an earlier R1 reply sent back as history (the app's <details> block): its tags go, their text stays
    think = "<details>\n<summary>AI Thinking Process</summary>\nweigh it\n</details>\n\nThe answer."
    assert sanitize(think) == "\nAI Thinking Process\nweigh it\n\nThe answer."  # the tags go, their text stays
    assert (
        sanitize("<think>plan</think>  Answer") == "<details>\n<summary>AI Thinking Process</summary>\nplan\n</details>\n\nAnswer"
    )
    assert sanitize("half</think>rest") == "<details>\n<summary>AI Thinking Process</summary>\nhalf\n</details>\n\nrest"
    assert sanitize("<think> </think>x") == " x"  # empty thinking: only the tags go
    assert sanitize("a<|im_end|>b[INST]c</s><end_of_turn>") == "abc"
    assert sanitize("a\u200bb\n\n\n\nc\u2028d") == "a b\n\nc\nd"
    assert sanitize("   ") == ""


def test_parameters_and_ids_are_the_apps():
    body = tgi_body("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", HISTORY, stream=True)
    assert body["parameters"] == {
        "max_new_tokens": 512,
        "typical_p": 0.2,
        "repetition_penalty": 1.1,
        "temperature": 0.6,
        "truncate": 12_499,
        "return_full_text": False,
    }
    assert body["stream"] is True
    assert tgi_body("google/gemma-2-27b-it", HISTORY, 64)["parameters"]["max_new_tokens"] == 64  # --max-tokens wins
    assert "stream" not in tgi_body("google/gemma-2-27b-it", HISTORY)  # TGI's /generate_stream streams anyway
    assert hf_model_id("qwen/Qwen2.5-72B-Instruct") == "Qwen/Qwen2.5-72B-Instruct"  # the app's case
    assert hf_model_id("acme/house-model") == "acme/house-model"


def test_backend_routes_send_the_apps_body_to_the_model_servers_path():
    hf, tgi = RouteConfig(kind="hf"), RouteConfig(kind="tgi", max_tokens=32)
    assert hf.path("Qwen/Qwen2.5-72B-Instruct") == "/models/Qwen/Qwen2.5-72B-Instruct"
    assert tgi.path("anything") == "/generate_stream"
    got = json.loads(tgi.body("qwen/Qwen2.5-72B-Instruct", HISTORY))
    assert got["inputs"] == build_prompt("qwen/Qwen2.5-72B-Instruct", HISTORY)
    assert got["parameters"]["max_new_tokens"] == 32 and "messages" not in got
