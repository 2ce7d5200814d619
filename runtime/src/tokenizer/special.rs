//! Load-time fix-ups of token attributes that llama.cpp makes by token text, and the
//! end-of-generation set.
//!
//! Owns: the text lists from llama.cpp `llama_vocab::impl::load` (EOT, EOM, FIM and EOG names) and
//! the rules applied with them. Does not own: the attributes' effects (partitioning, decoding:
//! `mod.rs`).

use super::{ATTR_CONTROL, ATTR_NORMAL, ATTR_USER_DEFINED};
use crate::prelude::*;

/// Token texts that llama.cpp takes as EOT when `tokenizer.ggml.eot_token_id` is absent.
#[rustfmt::skip]
const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
/// Fill-in-the-middle tokens found by text; each list's first match becomes a control token, and
/// the pad, repo and file-separator ones end generation.
#[rustfmt::skip]
const FIM_NAMES: [(&[&str], bool); 6] = [
    (
        &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
        false,
    ),
    (
        &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
        false,
    ),
    (
        &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
        false,
    ),
    (
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        true,
    ),
    (
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
        true,
    ),
    (&["<|file_sep|>"], true),
];
/// Token texts that end generation (llama.cpp's `special_eog_ids` text list).
#[rustfmt::skip]
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// llama.cpp's load-time fix-ups in `llama_vocab::impl::load`: tokens recognised by their text as
/// EOT, EOM, FIM or end-of-generation become control tokens, a few gpt-oss tokens become
/// user-defined, and the end-of-generation set is built. Returns that set, sorted.
///
/// Where llama.cpp takes "the first" of several matching texts it walks a hash map, in no defined
/// order; here the lowest id wins. FIM token ids are not read from metadata (they always are found by
/// text here).
pub(super) fn fixups(
    tokens: &[String],
    attrs: &mut [u16],
    eos: Option<u32>,
    eot: Option<u32>,
) -> Vec<u32> {
    let first = |names: &[&str]| tokens.iter().position(|t| names.contains(&t.as_str()));
    let mut eog = Vec::new();

    let eot = eot.or_else(|| {
        let i = first(EOT_NAMES)?;
        attrs[i] |= ATTR_CONTROL;
        Some(i as u32)
    });
    let eom = first(&["<|eom_id|>"]).map(|i| {
        attrs[i] |= ATTR_CONTROL;
        i as u32
    });
    for (names, ends) in FIM_NAMES {
        if let Some(i) = first(names) {
            attrs[i] |= ATTR_CONTROL;
            if ends {
                eog.push(i as u32);
            }
        }
    }
    for (i, t) in tokens.iter().enumerate() {
        if EOG_NAMES.contains(&t.as_str()) {
            eog.push(i as u32);
            attrs[i] |= ATTR_CONTROL;
        }
        if matches!(
            t.as_str(),
            "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
        ) {
            attrs[i] = ATTR_USER_DEFINED; // llama.cpp: "quick hack for gpt-oss, always render these"
        }
    }
    eog.extend(eos);
    eog.extend(eot);
    eog.extend(eom);
    eog.sort_unstable();
    eog.dedup();

    let has = |eog: &[u32], name: &str| eog.iter().any(|&i| tokens[i as usize] == name);
    // o200k_harmony and solar-open: `<|end|>` does not end generation there.
    if (has(&eog, "<|return|>") && has(&eog, "<|call|>")
        || has(&eog, "<|calls|>") && has(&eog, "<|flush|>"))
        && has(&eog, "<|end|>")
    {
        if let Some(p) = eog.iter().position(|&i| tokens[i as usize] == "<|end|>") {
            attrs[eog.remove(p) as usize] = ATTR_USER_DEFINED;
        }
    }
    // Gemma 4 and PaddleOCR: `</s>` is an ordinary token there.
    if has(&eog, "<|tool_response>") {
        if let Some(p) = eog.iter().position(|&i| tokens[i as usize] == "</s>") {
            attrs[eog.remove(p) as usize] = ATTR_NORMAL;
        }
    }
    eog
}
