//! Growing a character vocabulary for chat: the bundled corpus has no `<`, `|` or `>`, so a model
//! pretrained on it cannot encode ChatML's markers. [`extend_char_vocab`] adds the missing characters:
//! the new vocabulary is the sorted union (as a character tokenizer requires), every old character's
//! embedding (and untied output) row moves to its new id unchanged, and each new row is drawn from
//! `N(0, 0.02)` like a fresh model's. Only the character tokenizer needs this; a BPE tokenizer with
//! special tokens carries its markers already.

use crate::data::CharTokenizer;
use crate::error::Result;
use crate::model::Model;
use crate::params::layout;
use crate::rng::Rng;

/// `model` and `tok` with every character of `text` in the vocabulary; `None` when none is missing.
pub fn extend_char_vocab(
    model: &Model<f32>,
    tok: &CharTokenizer,
    text: &str,
    seed: u64,
) -> Result<Option<(Model<f32>, CharTokenizer)>> {
    let mut chars = tok.chars.clone();
    chars.extend(text.chars());
    chars.sort_unstable();
    chars.dedup();
    if chars.len() == tok.chars.len() {
        return Ok(None);
    }
    let new_tok = CharTokenizer { chars };
    let mut cfg = model.config.clone();
    cfg.vocab_size = new_tok.chars.len();
    let mut new = Model::new(cfg, model.n_threads())?;
    let c = model.config.dim;
    let mut rng = Rng::new(seed);
    let (old_specs, new_specs) = (layout(&model.config), layout(&new.config));
    for (os, ns) in old_specs.iter().zip(&new_specs) {
        debug_assert_eq!(os.name, ns.name);
        let (src, dst) = (
            &model.params[os.offset..os.offset + os.len],
            &mut new.params[ns.offset..ns.offset + ns.len],
        );
        if os.len == ns.len {
            dst.copy_from_slice(src);
            continue;
        }
        // (V, C): the embedding or the untied output
        for (id, &ch) in new_tok.chars.iter().enumerate() {
            let row = &mut dst[id * c..(id + 1) * c];
            match tok.chars.binary_search(&ch) {
                Ok(old) => row.copy_from_slice(&src[old * c..(old + 1) * c]),
                Err(_) => row
                    .iter_mut()
                    .for_each(|x| *x = (0.02 * rng.normal()) as f32),
            }
        }
    }
    Ok(Some((new, new_tok)))
}
