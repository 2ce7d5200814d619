#!/usr/bin/env python3
"""Render the chat templates of well-known models with Hugging Face's own Jinja environment and write
testdata/chat/families.json, which runtime/tests/chat_families.rs compares ingot's built-in renderer
(the template families rendered without a Jinja engine, runtime feature `jinja` off) and its minijinja
renderer against.

Usage (from the repository root; the venv as in make_chat_fixture.py):
    /tmp/chatvenv/bin/python tools/oracles/make_chat_families_fixture.py

The template strings are the `chat_template` values of the models' tokenizer_config.json on the
Hugging Face Hub (as also copied into llama.cpp's tests/test-chat-template.cpp), after JSON decoding:
a `\\n` below is a backslash-n escape inside a Jinja string literal, a `\n` a real newline.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_chat_fixture import OUT, SMOLLM2, msgs, render_cases  # noqa: E402

TEMPLATES = [
    ("chatml", "teknium/OpenHermes-2.5-Mistral-7B", "<s>", "<|im_end|>",
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
     "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    ("chatml", "HuggingFaceTB/SmolLM2-135M-Instruct", "<|im_start|>", "<|im_end|>", SMOLLM2),
    ("llama2", "meta-llama/Llama-2-7b-chat-hf", "<s>", "</s>",
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
     "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
     "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
     "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
     "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
     "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    ("llama3", "meta-llama/Meta-Llama-3-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + "
     "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
     "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    ("zephyr", "HuggingFaceH4/zephyr-7b-beta", "<s>", "</s>",
     "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
     "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"),
    ("gemma", "google/gemma-7b-it", "<bos>", "<eos>",
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
     "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
     "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}"
     "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
     "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"),
    ("phi3", "microsoft/Phi-3-small-8k-instruct", "<|endoftext|>", "<|endoftext|>",
     "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
     "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"),
    ("phi3", "microsoft/Phi-3.5-mini-instruct", "<s>", "<|endoftext|>",
     "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + "
     "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == "
     "'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"),
    ("mistral", "mistralai/Mistral-7B-Instruct-v0.1", "<s>", "</s>",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception("
     "'Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
     "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
     "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"),
    ("mistral", "mistralai/Mixtral-8x7B-Instruct-v0.1", "<s>", "</s>",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception("
     "'Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
     "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
     "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"),
]


def main():
    one = msgs(("user", "Hi there"))
    sys_one = msgs(("system", "Be terse."), ("user", "Hi there"))
    multi = msgs(("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?"))
    sys_multi = msgs(("system", "You are a calculator."), *[(m["role"], m["content"]) for m in multi])
    padded = msgs(("user", "  spaced\tout \n"), ("assistant", "   I am an assistant   "), ("user", "\nnext\n"))
    sys_padded = msgs(("system", "  Padded system.  \n"), *[(m["role"], m["content"]) for m in padded])
    cases = [
        ("empty", [], True),
        ("one_turn", one, False),
        ("one_turn_gen", one, True),
        ("system_one_turn_gen", sys_one, True),
        ("multi_turn", multi, False),
        ("multi_turn_gen", multi, True),
        ("system_multi_turn_gen", sys_multi, True),
        ("ends_with_assistant", multi + msgs(("assistant", "6.")), False),
        ("padded_gen", padded, True),
        ("system_padded_gen", sys_padded, True),
        ("empty_system", msgs(("system", ""), ("user", "Hi")), True),
        ("unicode", msgs(("user", "héllo 世界 <b> & 'q' \"d\" \\n")), True),
        ("roles_not_alternating", msgs(("user", "a"), ("user", "b")), True),
        ("system_after_user", msgs(("user", "a"), ("system", "b")), True),
        ("other_role", msgs(("user", "a"), ("assistant", "b"), ("tool", "c"), ("user", "d")), True),
    ]
    fixtures = []
    for family, model, bos, eos, source in TEMPLATES:
        fixture = render_cases(source, bos, eos, cases)
        fixtures.append({"family": family, "model": model, **fixture})
    with open(os.path.join(OUT, "families.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
