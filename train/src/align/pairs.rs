//! Preference pairs from a policy and the labeler: K sampled answers per prompt, every pair of them
//! ranked by [`Labeler::score`]; ties and pairs whose scores differ by less than a gap are dropped (no
//! preference). Also the labeler's paired comparison of two policies (win rate). Text in, text out;
//! [`to_ids`] encodes.

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

/// Samples `k` answers per prompt (InstructGPT ranked K per prompt) and keeps every one of the
/// `k (k - 1) / 2` pairs of a prompt whose labeler scores differ by at least `gap`: the higher score
/// is `chosen`. A tie carries no preference and is always dropped (also with `gap` 0). Answers
/// identical in text make no pair.
pub fn make_pairs(
    model: &Model<f32>,
    codec: &dyn Codec,
    prompts: &[Prompt],
    labeler: &Labeler,
    cfg: &GenerateConfig,
    k: usize,
    gap: f64,
) -> Result<Vec<TextPair>> {
    let k = k.max(2);
    let repeated: Vec<Prompt> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), k))
        .collect();
    let a = answers(model, codec, &repeated, cfg)?;
    let mut out = Vec::new();
    for (p, group) in prompts.iter().zip(a.chunks(k)) {
        let scores: Vec<f64> = group.iter().map(|x| labeler.score(p, x).total()).collect();
        for i in 0..k {
            for j in i + 1..k {
                let d = scores[i] - scores[j];
                if d == 0.0 || d.abs() < gap || group[i] == group[j] {
                    continue;
                }
                let (c, r) = if d > 0.0 { (i, j) } else { (j, i) };
                out.push(TextPair {
                    prompt: p.text.clone(),
                    chosen: group[c].clone(),
                    rejected: group[r].clone(),
                });
            }
        }
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
