//! Chat templates without a Jinja engine: the families of templates that most instruction-tuned models
//! ship, recognized from the template text and rendered by plain code, byte for byte as Hugging Face's
//! jinja2 renders the real templates (`testdata/chat/families.json`, made by
//! `tools/oracles/make_chat_families_fixture.py`, checked by `runtime/tests/chat_families.rs`).
//!
//! Detection follows llama.cpp's `llm_chat_detect_template` (markers such as `<|im_start|>`, `[INST]`,
//! `<|start_header_id|>`), but is stricter: a family is accepted only when the text also shows the
//! details its renderer reproduces (where the BOS goes, whether content is trimmed, how unexpected
//! roles are treated), and templates of later versions that need more than that (Llama 3.1 dates and
//! tools, ChatML with tool calls or `<think>`, Gemma 3) are refused rather than rendered approximately.
//! What it does not own: arbitrary Jinja (feature `jinja`, module `chat::jinja`).

use crate::prelude::*;
use crate::{Error, Result};

use super::ChatMessage;

const ALTERNATE: &str = "Conversation roles must alternate user/assistant/user/assistant/...";

/// A template family with the variant details that change its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Family {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, `<|im_start|>assistant\n` to generate
    /// (OpenHermes, SmolLM2, ...). `default_system` is inserted first when the conversation does not start
    /// with a system message (SmolLM2's "You are a helpful AI assistant named SmolLM, ...").
    ChatMl { default_system: Option<String> },
    /// Llama-2-chat: the system message wrapped in `<<SYS>>` inside the first user turn, every turn
    /// stripped, `{bos}[INST] {user} [/INST]` and ` {assistant} {eos}`; roles must alternate.
    Llama2,
    /// Llama 3 (3.0): `<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>`, BOS before
    /// the first message.
    Llama3,
    /// Zephyr / TinyLlama: `<|{role}|>\n{content}{eos}\n` for system, user and assistant (others skipped),
    /// `<|assistant|>\n` after the last message to generate.
    Zephyr,
    /// Gemma (1 and 2): `<start_of_turn>{user|model}\n{content|trim}<end_of_turn>\n`; a system message is an
    /// error and roles must alternate.
    Gemma { bos: bool },
    /// Phi-3: `<|{role}|>\n{content}<|end|>\n`, `<|assistant|>\n` to generate and EOS otherwise.
    /// `any_role`: every role is written (Phi-3-small); otherwise only system, user and assistant
    /// (Phi-3.5-mini), an empty system message skipped when `skip_empty_system`.
    Phi3 {
        bos: bool,
        any_role: bool,
        skip_empty_system: bool,
    },
    /// Mistral Instruct v0.1 / v0.2, Mixtral: `{bos}[INST] {user} [/INST]{assistant}{eos}`, a space after
    /// the EOS when `space_after_eos` (v0.1); only user and assistant, alternating.
    Mistral { space_after_eos: bool },
}

impl Family {
    /// The family of `source`, or `None` when it is not one this module renders.
    pub fn detect(source: &str) -> Option<Family> {
        // Templates write newlines in string literals either as real newlines or as `\n` escapes
        // (tokenizer_config.json `\\n`); compare on one form.
        let t = source.replace("\\n", "\n");
        let has = |s: &str| t.contains(s);
        let starts_with_bos = t.trim_start().starts_with("{{ bos_token }}")
            || t.trim_start().starts_with("{{- bos_token }}")
            || t.trim_start().starts_with("{{bos_token}}");
        if has("<|im_start|>") {
            if has("<|im_sep|>") || has("tool") || has("<think>") || has("<end_of_utterance>") {
                return None;
            }
            // Every message must be written the ChatML way, and the generation prompt too.
            if !(has("'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'")
                && has("<|im_start|>assistant\n"))
                || has("bos_token")
            {
                return None;
            }
            let default_system = if has("messages[0]['role'] != 'system'") {
                Some(default_chatml_system(&t)?)
            } else {
                None
            };
            return Some(Family::ChatMl { default_system });
        }
        if has("[INST]") {
            if has("<<SYS>>")
                && has("content.strip()")
                && has("bos_token + '[INST] '")
                && has("loop_messages = messages[1:]")
                && !has("[SYSTEM_PROMPT]")
            {
                return Some(Family::Llama2);
            }
            if has("Only user and assistant roles are supported!")
                && has("'[INST] ' + message['content'] + ' [/INST]'")
                && starts_with_bos
            {
                return Some(Family::Mistral {
                    space_after_eos: has("eos_token + ' '"),
                });
            }
            return None;
        }
        if has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>") {
            if has("Cutting Knowledge") || has("tools") || has("date_string") || has("ipython") {
                return None;
            }
            if has("message['content'] | trim + '<|eot_id|>'")
                && has("loop.index0 == 0")
                && has("bos_token + content")
            {
                return Some(Family::Llama3);
            }
            return None;
        }
        if has("<start_of_turn>") {
            if has("first_user_prefix") || has("image") || !has("System role not supported") {
                return None;
            }
            if has("set role = 'model'") && has("message['content'] | trim + '<end_of_turn>\n'") {
                return Some(Family::Gemma {
                    bos: starts_with_bos,
                });
            }
            return None;
        }
        if has("<|assistant|>") && has("<|end|>") {
            let gen_else_eos = has("{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}");
            if !gen_else_eos {
                return None;
            }
            if has("'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n'") {
                return Some(Family::Phi3 {
                    bos: starts_with_bos,
                    any_role: true,
                    skip_empty_system: false,
                });
            }
            if has("{{'<|user|>\n' + message['content'] + '<|end|>\n'}}")
                && has("{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}")
                && has("{{'<|system|>\n' + message['content'] + '<|end|>\n'}}")
            {
                return Some(Family::Phi3 {
                    bos: starts_with_bos,
                    any_role: false,
                    skip_empty_system: has("message['role'] == 'system' and message['content']"),
                });
            }
            return None;
        }
        if has("<|user|>")
            && has("<|assistant|>")
            && has("<|system|>")
            && has("loop.last and add_generation_prompt")
            && has("'<|user|>\n' + message['content'] + eos_token")
        {
            return Some(Family::Zephyr);
        }
        None
    }

    /// [`Family::detect`], or an [`Error::Template`] that names the families understood.
    pub fn detect_or_err(source: &str) -> Result<Family> {
        Family::detect(source).ok_or_else(|| Error::Template {
            what: "not one of the template families the built-in renderer knows (ChatML, Llama 2, Llama 3, \
                   Zephyr, Gemma, Phi-3, Mistral v0.1/v0.2); build with the cargo feature `jinja` to render \
                   any Jinja template"
                .to_owned(),
        })
    }

    /// Renders `messages` as the family's template does.
    pub fn render(
        &self,
        messages: &[&ChatMessage],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String> {
        let size: usize = messages.iter().map(|m| m.content.len() + 32).sum();
        let mut out = String::with_capacity(size + 64);
        match self {
            Family::ChatMl { default_system } => {
                if let (Some(system), Some(first)) = (default_system, messages.first()) {
                    if first.role != "system" {
                        push_all(&mut out, &["<|im_start|>system\n", system, "<|im_end|>\n"]);
                    }
                }
                for m in messages {
                    push_all(
                        &mut out,
                        &["<|im_start|>", &m.role, "\n", &m.content, "<|im_end|>\n"],
                    );
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            Family::Llama2 => {
                let first = messages.first().ok_or_else(no_first_message)?;
                let (system, rest) = if first.role == "system" {
                    (Some(first.content.as_str()), &messages[1..])
                } else {
                    (None, messages)
                };
                for (i, m) in rest.iter().enumerate() {
                    check_alternation(i, m)?;
                    let content = match system {
                        Some(s) if i == 0 => {
                            format!("<<SYS>>\n{s}\n<</SYS>>\n\n{}", m.content)
                        }
                        _ => m.content.clone(),
                    };
                    match m.role.as_str() {
                        "user" => push_all(&mut out, &[bos, "[INST] ", content.trim(), " [/INST]"]),
                        "assistant" => push_all(&mut out, &[" ", content.trim(), " ", eos]),
                        _ => {}
                    }
                }
            }
            Family::Llama3 => {
                for (i, m) in messages.iter().enumerate() {
                    if i == 0 {
                        out.push_str(bos);
                    }
                    push_all(
                        &mut out,
                        &[
                            "<|start_header_id|>",
                            &m.role,
                            "<|end_header_id|>\n\n",
                            m.content.trim(),
                            "<|eot_id|>",
                        ],
                    );
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            Family::Zephyr => {
                for m in messages {
                    if matches!(m.role.as_str(), "user" | "system" | "assistant") {
                        push_all(&mut out, &["<|", &m.role, "|>\n", &m.content, eos, "\n"]);
                    }
                }
                if add_generation_prompt && !messages.is_empty() {
                    out.push_str("<|assistant|>\n");
                }
            }
            Family::Gemma { bos: with_bos } => {
                if *with_bos {
                    out.push_str(bos);
                }
                let first = messages.first().ok_or_else(no_first_message)?;
                if first.role == "system" {
                    return Err(template_error("System role not supported"));
                }
                for (i, m) in messages.iter().enumerate() {
                    check_alternation(i, m)?;
                    let role = if m.role == "assistant" {
                        "model"
                    } else {
                        &m.role
                    };
                    push_all(
                        &mut out,
                        &[
                            "<start_of_turn>",
                            role,
                            "\n",
                            m.content.trim(),
                            "<end_of_turn>\n",
                        ],
                    );
                }
                if add_generation_prompt {
                    out.push_str("<start_of_turn>model\n");
                }
            }
            Family::Phi3 {
                bos: with_bos,
                any_role,
                skip_empty_system,
            } => {
                if *with_bos {
                    out.push_str(bos);
                }
                for m in messages {
                    let write = match m.role.as_str() {
                        "system" => !(*skip_empty_system && m.content.is_empty()),
                        "user" | "assistant" => true,
                        _ => *any_role,
                    };
                    if write {
                        push_all(&mut out, &["<|", &m.role, "|>\n", &m.content, "<|end|>\n"]);
                    }
                }
                out.push_str(if add_generation_prompt {
                    "<|assistant|>\n"
                } else {
                    eos
                });
            }
            Family::Mistral { space_after_eos } => {
                out.push_str(bos);
                for (i, m) in messages.iter().enumerate() {
                    check_alternation(i, m)?;
                    match m.role.as_str() {
                        "user" => push_all(&mut out, &["[INST] ", &m.content, " [/INST]"]),
                        "assistant" => {
                            push_all(&mut out, &[&m.content, eos]);
                            if *space_after_eos {
                                out.push(' ');
                            }
                        }
                        _ => {
                            return Err(template_error(
                                "Only user and assistant roles are supported!",
                            ))
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn push_all(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
}

fn template_error(what: &str) -> Error {
    Error::Template {
        what: what.to_owned(),
    }
}

/// The `(message['role'] == 'user') != (loop.index0 % 2 == 0)` check of the alternating families.
fn check_alternation(i: usize, m: &ChatMessage) -> Result<()> {
    if (m.role == "user") != i.is_multiple_of(2) {
        return Err(template_error(ALTERNATE));
    }
    Ok(())
}

/// What jinja2 reports for `messages[0]['role']` on an empty conversation.
fn no_first_message() -> Error {
    template_error(
        "the template reads messages[0] and there are no messages (list object has no element 0)",
    )
}

/// The default system prompt of a ChatML template that inserts one (`... != 'system' %}{{
/// '<|im_start|>system\nTEXT<|im_end|>\n' }}`): TEXT with the Jinja string escapes undone, or `None`
/// when the template does not have that shape.
fn default_chatml_system(t: &str) -> Option<String> {
    const OPEN: &str = "'<|im_start|>system\n";
    let start = t.find(OPEN)? + OPEN.len();
    let end = start + t[start..].find("<|im_end|>")?;
    let raw = &t[start..end];
    // Only a plain literal: a quote, an expression or a second literal inside would be something else.
    if raw.contains('\'') || raw.contains("{{") || raw.contains("}}") {
        return None;
    }
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next()? {
            'n' => text.push('\n'),
            't' => text.push('\t'),
            '\\' => text.push('\\'),
            '"' => text.push('"'),
            _ => return None,
        }
    }
    Some(text)
}
