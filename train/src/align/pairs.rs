//! Preference pairs from a policy and the labeler: two sampled answers per prompt, ranked by
//! [`Labeler::score`]; pairs whose scores differ by less than a gap are dropped (no preference). Also
//! the labeler's paired comparison of two policies (win rate). Text in, text out; [`to_ids`] encodes.

use crate::align::reward::Pair;
use crate::align::sample::{generate, GenerateConfig};
use crate::align::task::{Labeler, Prompt};
use crate::align::{encode_exchange, encode_prompt, Codec, IM_END};
use crate::error::Result;
use crate::model::Model;

/// A ranked pair in text (`chosen` scored higher); as JSONL `{"prompt", "chosen", "rejected"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextPair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// One sampled answer per prompt (text up to the end marker).
pub fn answers(
    model: &Model<f32>,
    codec: &dyn Codec,
    prompts: &[Prompt],
    cfg: &GenerateConfig,
) -> Result<Vec<String>> {
    let ids = prompts
        .iter()
        .map(|p| encode_prompt(codec, &p.text))
        .collect::<Result<Vec<_>>>()?;
    Ok(generate(model, &ids, cfg)?
        .into_iter()
        .map(|g| codec.decode(&g.tokens))
        .collect())
}

/// Samples two answers per prompt and keeps those the labeler separates by at least `gap`.
pub fn make_pairs(
    model: &Model<f32>,
    codec: &dyn Codec,
    prompts: &[Prompt],
    labeler: &Labeler,
    cfg: &GenerateConfig,
    gap: f64,
) -> Result<Vec<TextPair>> {
    let twice: Vec<Prompt> = prompts
        .iter()
        .flat_map(|p| [p.clone(), p.clone()])
        .collect();
    let a = answers(model, codec, &twice, cfg)?;
    let mut out = Vec::new();
    for (p, two) in prompts.iter().zip(a.chunks(2)) {
        let (s0, s1) = (
            labeler.score(p, &two[0]).total(),
            labeler.score(p, &two[1]).total(),
        );
        if (s0 - s1).abs() < gap {
            continue;
        }
        let (c, r) = if s0 > s1 { (0, 1) } else { (1, 0) };
        out.push(TextPair {
            prompt: p.text.clone(),
            chosen: two[c].clone(),
            rejected: two[r].clone(),
        });
    }
    Ok(out)
}

/// The token ids of a text pair (answers get the end marker).
pub fn to_ids(codec: &dyn Codec, p: &TextPair) -> Result<Pair> {
    let (prompt, chosen) = encode_exchange(codec, &p.prompt, &p.chosen)?;
    Ok(Pair {
        prompt,
        chosen,
        rejected: codec.encode(&format!("{}{IM_END}\n", p.rejected))?,
    })
}

/// The paired comparison of two policies' answers: `(wins of a, ties, losses of a)` by labeler score.
pub fn win_rate(
    labeler: &Labeler,
    prompts: &[Prompt],
    a: &[String],
    b: &[String],
) -> (usize, usize, usize) {
    let (mut w, mut t, mut l) = (0, 0, 0);
    for ((p, x), y) in prompts.iter().zip(a).zip(b) {
        let (sx, sy) = (labeler.score(p, x).total(), labeler.score(p, y).total());
        if sx > sy {
            w += 1;
        } else if sx < sy {
            l += 1;
        } else {
            t += 1;
        }
    }
    (w, t, l)
}
