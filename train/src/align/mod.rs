//! Alignment: the InstructGPT steps after pretraining. Supervised fine-tuning on chat demonstrations
//! (`sft.rs`), a reward model trained on ranked pairs (`reward.rs`), direct preference optimisation
//! (`dpo.rs`), PPO (`ppo.rs`), the bundled task and its programmatic labeler (`task.rs`), KV-cached
//! sampling from the trainer's model (`sample.rs`), and the state a stage keeps beside a checkpoint for
//! `--resume` (`state.rs`). This module owns the chat rendering (ChatML, as the runtime's fallback
//! template renders it) and the tokenizer seam; the command line is `src/commands/align.rs`.
//!
//! Tokenizer-agnostic: everything here goes through [`Codec`] (encode text, decode ids), so a
//! checkpoint's character tokenizer and a BPE tokenizer serve alike. A conversation is encoded segment
//! by segment (role headers, contents, end markers) so the loss mask falls on token boundaries.

pub mod dpo;
pub mod pairs;
pub mod ppo;
pub mod reward;
pub mod sample;
pub mod sft;
pub mod state;
pub mod task;
pub mod vocab;

use crate::data::{CharTokenizer, TextTokenizer};
use crate::error::{Error, Result};

/// ChatML's markers (`<|im_start|>role\ncontent<|im_end|>\n`).
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";

/// Text to token ids and back: the one seam between alignment and a tokenizer.
pub trait Codec {
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    fn decode(&self, ids: &[u32]) -> String;
}

impl Codec for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        CharTokenizer::encode(self, text)
    }
    fn decode(&self, ids: &[u32]) -> String {
        CharTokenizer::decode(self, ids)
    }
}

/// A checkpoint's tokenizer, character-level or BPE. A BPE vocabulary's ChatML markers are control
/// tokens (ids 257 and 258), and here their text encodes to them, as the runtime encodes a rendered
/// chat template (`ingot chat`, llama.cpp), so a converted model sees the ids it was aligned on.
impl Codec for TextTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::Bpe(t) => Ok(t.tokenizer().encode(text, false, true)),
            TextTokenizer::Char(_) => TextTokenizer::encode(self, text),
        }
    }
    fn decode(&self, ids: &[u32]) -> String {
        TextTokenizer::decode(self, ids)
    }
}

/// One chat turn (`{"role": .., "content": ..}` in chat JSONL).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// The ChatML segments of `messages`, each with whether it is trained on: an assistant turn's content
/// and its `<|im_end|>\n` are; role headers and every other turn are not. With `generation_prompt`,
/// `<|im_start|>assistant\n` follows (as `add_generation_prompt`).
pub fn chatml_segments(messages: &[Message], generation_prompt: bool) -> Vec<(String, bool)> {
    let mut out = Vec::with_capacity(messages.len() * 2 + 1);
    for m in messages {
        let trained = m.role == "assistant";
        out.push((format!("{IM_START}{}\n", m.role), false));
        out.push((format!("{}{IM_END}\n", m.content), trained));
    }
    if generation_prompt {
        out.push((format!("{IM_START}assistant\n"), false));
    }
    out
}

/// The ChatML text of `messages` (the runtime's fallback template renders the same).
pub fn chatml(messages: &[Message], generation_prompt: bool) -> String {
    chatml_segments(messages, generation_prompt)
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

/// A conversation's token ids and, per id, whether it is a training target.
pub fn encode_chat(codec: &dyn Codec, messages: &[Message]) -> Result<(Vec<u32>, Vec<bool>)> {
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for (text, trained) in chatml_segments(messages, false) {
        let seg = codec.encode(&text)?;
        mask.extend(std::iter::repeat_n(trained, seg.len()));
        ids.extend(seg);
    }
    if !mask.iter().any(|&m| m) {
        return Err(Error::Data {
            what: "a conversation has no assistant turn to train on".into(),
        });
    }
    Ok((ids, mask))
}

/// The prompt ids of a single user message, ending in the assistant header.
pub fn encode_prompt(codec: &dyn Codec, user: &str) -> Result<Vec<u32>> {
    codec.encode(&chatml(&[Message::new("user", user)], true))
}

/// `(prompt ids, answer ids with the end marker)` of a single-turn exchange.
pub fn encode_exchange(
    codec: &dyn Codec,
    user: &str,
    answer: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    Ok((
        encode_prompt(codec, user)?,
        codec.encode(&format!("{answer}{IM_END}\n"))?,
    ))
}
