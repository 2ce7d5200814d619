#!/usr/bin/env python3
"""Render chat templates with Hugging Face's own Jinja environment and write the expected strings
that runtime/tests/chat.rs compares ingot's minijinja renderer against.

Usage (from the repository root):
    python3 -m venv /tmp/chatvenv && /tmp/chatvenv/bin/pip install jinja2 gguf
    /tmp/chatvenv/bin/python tools/oracles/make_chat_fixture.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

The environment is the one transformers builds in `_compile_jinja_template`
(src/transformers/utils/chat_template_utils.py): ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True, extensions=[loopcontrols]), a `tojson` filter that is json.dumps(ensure_ascii=False),
and the `raise_exception` / `strftime_now` globals. Templates are rendered with
messages, tools=None, documents=None, add_generation_prompt, bos_token and eos_token as
`apply_chat_template` passes them. Writes testdata/chat/{smollm2,llama3,mistral,features}.json.
"""

import json
import os
import sys
from datetime import datetime

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "testdata", "chat")

# SmolLM2-135M-Instruct's `tokenizer.chat_template`, read from the GGUF file when it is at hand and
# otherwise taken from this copy (which is what that file held when the fixture was made). Note that its
# string literals hold real newlines, not `\n` escapes.
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Llama-3.1-style: `{%-` whitespace control, trim, namespace, a system-message default, a date that
# the template would take from strftime_now (fixed here so the fixture is stable) and raise_exception.
LLAMA3 = """{{- bos_token }}
{%- set date_string = "26 Jul 2024" %}
{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}

{%- set ns = namespace(last_role = "assistant") %}
{%- for message in messages %}
    {%- if message.role not in ["user", "assistant", "ipython"] %}
        {{- raise_exception("Unknown role '" + message.role + "': Llama 3 chat supports user, assistant and ipython") }}
    {%- endif %}
    {%- if message.role == ns.last_role %}
        {{- raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif %}
    {%- set ns.last_role = message.role %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Mistral-Instruct-v0.1-style: strict alternation enforced with raise_exception, eos after replies.
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Exercises what HF templates lean on beyond plain concatenation: Python string methods (minijinja-contrib
# pycompat), tojson with and without indent, block whitespace control, loop variables and `tools is none`.
FEATURES = """{% if tools is not none %}tools!{% endif %}
{% for message in messages %}
  {% if message.content.startswith('!') %}
[cmd {{ message.content[1:].strip().split(' ')|join('|') }}]
  {% else %}
{{ loop.index }}/{{ loop.length }} {{ message.role.upper() }}: {{ message.content.strip() }}
  {% endif %}
{% endfor %}
{{ messages[0]|tojson }}
{{ messages|tojson(indent=2) }}
{{ {"k": [1, 2.5, true, none, "a\\"b<c>&\\u00e9\\n"]}|tojson }}
{%- if add_generation_prompt %}

> {% endif %}"""


def hf_environment():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def render_cases(source, bos, eos, cases):
    template = hf_environment().from_string(source)
    out = []
    for name, messages, add_generation_prompt in cases:
        case = {"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt}
        try:
            case["expected"] = template.render(
                messages=messages,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos,
                eos_token=eos,
            )
        except TemplateError as e:
            case["error"] = str(e)
        out.append(case)
    return {"template": source, "bos_token": bos, "eos_token": eos, "cases": out}


def smollm2_source(argv):
    path = argv[1] if len(argv) > 1 else "/work/shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if os.path.exists(path):
        import gguf

        source = gguf.GGUFReader(path).fields["tokenizer.chat_template"].contents()
        assert source == SMOLLM2, "the GGUF's template differs from the copy in this script"
    return SMOLLM2


def main(argv):
    one = msgs(("user", "Hi there"))
    sys_one = msgs(("system", "Be terse."), ("user", "Hi there"))
    multi = msgs(("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?"))
    sys_multi = msgs(("system", "You are a calculator."), *[(m["role"], m["content"]) for m in multi])
    padded = msgs(("system", "  Padded system.  \n"), ("user", "  spaced out  "), ("assistant", "ok"), ("user", "next"))
    common = [
        ("one_turn", one, False),
        ("one_turn_gen", one, True),
        ("system_one_turn_gen", sys_one, True),
        ("multi_turn", multi, False),
        ("multi_turn_gen", multi, True),
        ("system_multi_turn_gen", sys_multi, True),
        ("empty", [], True),
    ]
    fixtures = {
        "smollm2": render_cases(smollm2_source(argv), "<|im_start|>", "<|im_end|>", common),
        "llama3": render_cases(
            LLAMA3,
            "<|begin_of_text|>",
            "<|eot_id|>",
            common[:-1]
            + [
                ("padded_trimmed", padded, True),
                ("roles_not_alternating", msgs(("user", "a"), ("user", "b")), True),
                ("unknown_role", msgs(("user", "a"), ("robot", "b")), True),
            ],
        ),
        "mistral": render_cases(
            MISTRAL,
            "<s>",
            "</s>",
            [
                ("one_turn", one, False),
                ("multi_turn", multi, False),
                ("roles_not_alternating", msgs(("user", "a"), ("user", "b")), False),
                ("system_not_supported", msgs(("user", "a"), ("system", "b")), False),
            ],
        ),
        "features": render_cases(
            FEATURES,
            "<s>",
            "</s>",
            [
                ("mixed", msgs(("system", "  sys  "), ("user", "!run  a b c "), ("assistant", "done\n")), True),
                ("unicode", msgs(("user", "héllo <b> & 'q'")), False),
            ],
        ),
    }
    os.makedirs(OUT, exist_ok=True)
    for name, fixture in fixtures.items():
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
