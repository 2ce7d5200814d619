//! Chat templates: renders a conversation into the prompt text a model was fine-tuned on, from the
//! model's own `tokenizer.chat_template` (a Jinja template in the GGUF metadata).
//!
//! Two engines behind one type, [`ChatTemplate`]:
//! - with the cargo feature `jinja` (on by default), any template, through minijinja set up as Hugging
//!   Face renders templates ([`jinja`] module);
//! - without it (the embedded and small C library builds), the known template families rendered by plain
//!   code ([`builtin`]: ChatML, Llama 2, Llama 3, Zephyr, Gemma, Phi-3, Mistral), detected from the
//!   template text as llama.cpp's `llama_chat_apply_template` does; any other template is an
//!   [`Error::Template`] that says so. `testdata/chat/families.json` proves both engines equal to
//!   Hugging Face's jinja2 on real templates of each family.
//!
//! Also here: the ChatML fallback for models without a template, and trimming a history to a token
//! budget ([`fit_history`]). Not here: tokenizing the rendered text, tool calling.

use core::fmt;

use crate::prelude::*;
use crate::{Error, Result};

pub mod builtin;
#[cfg(feature = "jinja")]
mod jinja;

pub use builtin::Family;

/// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), the fallback when a model carries no template.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] \
                      + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}\
                      {% endif %}";

/// One turn of a conversation. `role` is usually `system`, `user` or `assistant`; templates decide
/// which roles they accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

#[derive(Clone)]
enum Engine {
    #[cfg(feature = "jinja")]
    Jinja(Box<jinja::Jinja>),
    Builtin(Family),
}

/// A compiled chat template with the special tokens it may reference.
#[derive(Clone)]
pub struct ChatTemplate {
    engine: Engine,
    bos_token: String,
    eos_token: String,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = match &self.engine {
            #[cfg(feature = "jinja")]
            Engine::Jinja(_) => "jinja",
            Engine::Builtin(_) => "builtin",
        };
        f.debug_struct("ChatTemplate")
            .field("engine", &engine)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` once: with the `jinja` feature as a Jinja template (a syntax error becomes
    /// [`Error::Template`] naming the line, `... (in chat_template:LINE)`); without it, as one of the
    /// known families ([`ChatTemplate::builtin`]).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        #[cfg(feature = "jinja")]
        let engine = Engine::Jinja(Box::new(jinja::Jinja::new(source)?));
        #[cfg(not(feature = "jinja"))]
        let engine = Engine::Builtin(Family::detect_or_err(source)?);
        Ok(ChatTemplate {
            engine,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// The built-in renderer of `source`'s family, whatever the features: [`Error::Template`] when the
    /// template is not one of the known families.
    pub fn builtin(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        Ok(ChatTemplate {
            engine: Engine::Builtin(Family::detect_or_err(source)?),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// The ChatML template, for models whose GGUF has no `tokenizer.chat_template`.
    pub fn chatml() -> ChatTemplate {
        ChatTemplate::new(CHATML, "", "<|im_end|>").expect("the built-in ChatML template compiles")
    }

    /// Renders `messages` with the variables `apply_chat_template` passes: `messages`,
    /// `add_generation_prompt`, `bos_token`, `eos_token`, and `tools` / `documents` as none.
    /// A `raise_exception(msg)` in the template becomes [`Error::Template`] containing `msg`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_parts(&[], messages, add_generation_prompt)
    }

    /// Renders the concatenation `head ++ tail` without copying the messages into one slice.
    fn render_parts(
        &self,
        head: &[ChatMessage],
        tail: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        match &self.engine {
            #[cfg(feature = "jinja")]
            Engine::Jinja(j) => j.render(
                head,
                tail,
                add_generation_prompt,
                &self.bos_token,
                &self.eos_token,
            ),
            Engine::Builtin(family) => {
                let messages: Vec<&ChatMessage> = head.iter().chain(tail).collect();
                family.render(
                    &messages,
                    add_generation_prompt,
                    &self.bos_token,
                    &self.eos_token,
                )
            }
        }
    }
}

/// Keeps the system prompt (if the first message is a system message) and drops the oldest other turns
/// until `count_tokens(render(messages, true)) <= budget`; returns how many messages were dropped.
///
/// A turn is a user message with everything that follows it up to the next user message (the assistant
/// reply, tool results), so what remains always starts on a user message. The last user message and
/// everything after it are never dropped: if even they and the system prompt do not fit, the result is
/// [`Error::Request`] and `messages` is left unchanged. The render includes the generation prompt because
/// the budget is for the prompt the model continues from.
pub fn fit_history(
    tpl: &ChatTemplate,
    messages: &mut Vec<ChatMessage>,
    budget: usize,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Result<usize> {
    let system = usize::from(messages.first().is_some_and(|m| m.role == "system"));
    // First index that must be kept: the last user message, or the last message if none is a user's.
    let last = match messages[system..].iter().rposition(|m| m.role == "user") {
        Some(i) => system + i,
        None => messages.len().saturating_sub(1).max(system),
    };
    let mut start = system;
    loop {
        let rendered = tpl.render_parts(&messages[..system], &messages[start..], true)?;
        let n = count_tokens(&rendered);
        if n <= budget {
            messages.drain(system..start);
            return Ok(start - system);
        }
        if start >= last {
            return Err(Error::Request {
                what: format!(
                    "the conversation does not fit in {budget} tokens: the system prompt and the last user \
                     message alone take {n}"
                ),
            });
        }
        start += 1;
        while start < last && messages[start].role != "user" {
            start += 1;
        }
    }
}
