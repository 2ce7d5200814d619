//! Sampling from the trainer's model with a KV cache: an incremental forward that runs one token per
//! sequence per step for a batch of sequences in lockstep (each sequence's keys and values are cached,
//! so no prefix is ever recomputed), and the runtime's sampler chain (`ingot_runtime::sampler`) to
//! draw each token. Used to make the reward model's pairs and to evaluate policies.
//!
//! The math is [`Model::forward`]'s, one position at a time: the same layer functions where they
//! apply (RMSNorm, the linear layers, SwiGLU, RoPE at the row's position), with causal attention over
//! the cache written out here. `tests/align.rs` checks the logits against the full forward.
//!
//! Lockstep: every sequence of a batch is at the same position at each step. A sequence still reading
//! its prompt feeds its next prompt token and ignores the logits; afterwards it feeds what it sampled.
//! Buffers are sized once per call; the per-step loop allocates nothing.

use ingot_runtime::sampler::{Sampler, SamplerParams};

use crate::error::{Error, Result};
use crate::layers::{
    dot, embedding_forward, linear_forward, rmsnorm_forward, rope_forward, rope_table,
    swiglu_forward,
};
use crate::model::Model;
use crate::parallel::Engine;
use crate::params::views;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// At most this many new tokens per sequence (fewer when the context ends first).
    pub max_new_tokens: usize,
    /// Generation stops once the new tokens end with this sequence (it is not returned).
    pub stop: Vec<u32>,
    /// The sampler chain's parameters; sequence `i` of a call is seeded with `sampler.seed + i`.
    pub sampler: SamplerParams,
    /// Sequences run in lockstep per batch.
    pub batch: usize,
    pub n_threads: usize,
}

/// One sequence's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The new tokens, without the stop sequence.
    pub tokens: Vec<u32>,
    /// Whether the stop sequence ended it (false: the token or context budget did).
    pub finished: bool,
}

/// The KV-cached incremental forward for up to `bmax` sequences of up to `tmax` positions.
struct Decoder {
    bmax: usize,
    tmax: usize,
    engine: Engine<f32>,
    rope: Vec<f32>,    // (T, D/2, 2)
    k_cache: Vec<f32>, // (L, B, T, Hkv*D)
    v_cache: Vec<f32>, // (L, B, T, Hkv*D)
    x: Vec<f32>,       // (B, C)
    ln: Vec<f32>,      // (B, C)
    rstd: Vec<f32>,    // (B,)
    q: Vec<f32>,       // (B, H*D)
    k: Vec<f32>,       // (B, Hkv*D)
    v: Vec<f32>,       // (B, Hkv*D)
    att: Vec<f32>,     // (T,) one head's scores
    atty: Vec<f32>,    // (B, H*D)
    proj: Vec<f32>,    // (B, C)
    gate: Vec<f32>,    // (B, F)
    up: Vec<f32>,      // (B, F)
    hidden: Vec<f32>,  // (B, F)
    logits: Vec<f32>,  // (B, V)
}

impl Decoder {
    fn new(model: &Model<f32>, bmax: usize, n_threads: usize) -> Self {
        let cfg = &model.config;
        let (c, f, v, l, t) = (
            cfg.dim,
            cfg.ffn_dim,
            cfg.vocab_size,
            cfg.n_layers,
            cfg.max_seq_len,
        );
        let (qd, kvd) = (cfg.n_heads * cfg.head_dim(), cfg.kv_dim());
        Decoder {
            bmax,
            tmax: t,
            engine: Engine::new(n_threads),
            rope: rope_table(t, cfg.head_dim(), cfg.rope_base as f64),
            k_cache: vec![0.0; l * bmax * t * kvd],
            v_cache: vec![0.0; l * bmax * t * kvd],
            x: vec![0.0; bmax * c],
            ln: vec![0.0; bmax * c],
            rstd: vec![0.0; bmax],
            q: vec![0.0; bmax * qd],
            k: vec![0.0; bmax * kvd],
            v: vec![0.0; bmax * kvd],
            att: vec![0.0; t],
            atty: vec![0.0; bmax * qd],
            proj: vec![0.0; bmax * c],
            gate: vec![0.0; bmax * f],
            up: vec![0.0; bmax * f],
            hidden: vec![0.0; bmax * f],
            logits: vec![0.0; bmax * v],
        }
    }

    /// Runs `tokens (B,)` at position `pos` for sequences `0..B`, caching their keys and values, and
    /// returns the logits `(B, V)`.
    fn step(
        &mut self,
        model: &Model<f32>,
        w: &crate::params::Tensors<&[f32]>,
        tokens: &[u32],
        pos: usize,
    ) -> &[f32] {
        let cfg = &model.config;
        let b = tokens.len();
        assert!(b <= self.bmax && pos < self.tmax);
        let (c, f, v) = (cfg.dim, cfg.ffn_dim, cfg.vocab_size);
        let (nh, nkv, d) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim());
        let (qd, kvd, tmax) = (nh * d, nkv * d, self.tmax);
        let eps = cfg.norm_eps;
        let scale = 1.0 / (d as f32).sqrt();
        let e = &mut self.engine;
        let rope = &self.rope[pos * d..];
        let x = &mut self.x[..b * c];
        let ln = &mut self.ln[..b * c];
        let rstd = &mut self.rstd[..b];
        let (q, k, vv) = (
            &mut self.q[..b * qd],
            &mut self.k[..b * kvd],
            &mut self.v[..b * kvd],
        );
        let atty = &mut self.atty[..b * qd];
        let proj = &mut self.proj[..b * c];
        let (gate, up, hidden) = (
            &mut self.gate[..b * f],
            &mut self.up[..b * f],
            &mut self.hidden[..b * f],
        );

        embedding_forward(x, tokens, w.token_embd, c);
        for (l, lw) in w.layers.iter().enumerate() {
            rmsnorm_forward(ln, rstd, x, lw.attn_norm, c, eps);
            linear_forward(q, ln, lw.attn_q, b, c, qd, e);
            linear_forward(k, ln, lw.attn_k, b, c, kvd, e);
            linear_forward(vv, ln, lw.attn_v, b, c, kvd, e);
            // one position: the table sliced at `pos` is position 0 of a length-1 sequence
            rope_forward(q, rope, b, 1, nh, d);
            rope_forward(k, rope, b, 1, nkv, d);
            let kc = &mut self.k_cache[l * self.bmax * tmax * kvd..][..self.bmax * tmax * kvd];
            let vc = &mut self.v_cache[l * self.bmax * tmax * kvd..][..self.bmax * tmax * kvd];
            for s in 0..b {
                kc[(s * tmax + pos) * kvd..][..kvd].copy_from_slice(&k[s * kvd..][..kvd]);
                vc[(s * tmax + pos) * kvd..][..kvd].copy_from_slice(&vv[s * kvd..][..kvd]);
            }
            for s in 0..b {
                for h in 0..nh {
                    let hk = h / (nh / nkv);
                    let qh = &q[s * qd + h * d..][..d];
                    let att = &mut self.att[..=pos];
                    let mut max = f32::NEG_INFINITY;
                    for (p, a) in att.iter_mut().enumerate() {
                        *a = dot(qh, &kc[(s * tmax + p) * kvd + hk * d..][..d]) * scale;
                        max = max.max(*a);
                    }
                    let mut sum = 0.0;
                    for a in att.iter_mut() {
                        *a = (*a - max).exp();
                        sum += *a;
                    }
                    let out = &mut atty[s * qd + h * d..][..d];
                    out.iter_mut().for_each(|o| *o = 0.0);
                    for (p, &a) in att.iter().enumerate() {
                        let vh = &vc[(s * tmax + p) * kvd + hk * d..][..d];
                        for (o, &vi) in out.iter_mut().zip(vh) {
                            *o += a / sum * vi;
                        }
                    }
                }
            }
            linear_forward(proj, atty, lw.attn_output, b, qd, c, e);
            x.iter_mut().zip(proj.iter()).for_each(|(xi, &p)| *xi += p);
            rmsnorm_forward(ln, rstd, x, lw.ffn_norm, c, eps);
            linear_forward(gate, ln, lw.ffn_gate, b, c, f, e);
            linear_forward(up, ln, lw.ffn_up, b, c, f, e);
            swiglu_forward(hidden, gate, up);
            linear_forward(proj, hidden, lw.ffn_down, b, f, c, e);
            x.iter_mut().zip(proj.iter()).for_each(|(xi, &p)| *xi += p);
        }
        rmsnorm_forward(ln, rstd, x, w.output_norm, c, eps);
        let logits = &mut self.logits[..b * v];
        linear_forward(logits, ln, w.output.unwrap_or(w.token_embd), b, c, v, e);
        logits
    }
}

/// The logits `(T, V)` of every position of `tokens` run through the cached forward one position at a
/// time (one sequence): for checking the decoder against [`Model::forward`].
pub fn incremental_logits(model: &Model<f32>, tokens: &[u32]) -> Result<Vec<f32>> {
    check_prompts(model, std::slice::from_ref(&tokens.to_vec()))?;
    let w = views(&model.config, &model.params);
    let mut dec = Decoder::new(model, 1, 1);
    let mut out = Vec::with_capacity(tokens.len() * model.config.vocab_size);
    for (pos, &tok) in tokens.iter().enumerate() {
        out.extend_from_slice(dec.step(model, &w, &[tok], pos));
    }
    Ok(out)
}

fn check_prompts(model: &Model<f32>, prompts: &[Vec<u32>]) -> Result<()> {
    let cfg = &model.config;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() || p.len() >= cfg.max_seq_len {
            return Err(Error::Batch {
                what: format!(
                    "prompt {i} has {} tokens; it needs 1 to {} to leave room for an answer in the \
                     model's context of {}",
                    p.len(),
                    cfg.max_seq_len - 1,
                    cfg.max_seq_len
                ),
            });
        }
        if let Some(&bad) = p.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(Error::Batch {
                what: format!(
                    "prompt {i} has token {bad}, outside the vocabulary of {}",
                    cfg.vocab_size
                ),
            });
        }
    }
    Ok(())
}

/// Continues each of `prompts` (token ids) with sampled tokens until the stop sequence, the token
/// budget or the context ends it. Deterministic in the model, the prompts and `cfg`, for any thread
/// count and batch size.
pub fn generate(
    model: &Model<f32>,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
) -> Result<Vec<Generation>> {
    check_prompts(model, prompts)?;
    cfg.sampler.validate().map_err(|e| Error::Config {
        what: e.to_string(),
    })?;
    let bmax = cfg.batch.max(1).min(prompts.len().max(1));
    let v = model.config.vocab_size;
    let w = views(&model.config, &model.params);
    let mut dec = Decoder::new(model, bmax, cfg.n_threads);
    let mut out = Vec::with_capacity(prompts.len());
    let mut feed = vec![0u32; bmax];
    for (chunk_index, chunk) in prompts.chunks(bmax).enumerate() {
        let b = chunk.len();
        let mut samplers = (0..b)
            .map(|s| {
                let mut p = cfg.sampler.clone();
                p.seed = p.seed.wrapping_add((chunk_index * bmax + s) as u64);
                Sampler::new(p, v).map_err(|e| Error::Config {
                    what: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut gens: Vec<Generation> = (0..b)
            .map(|_| Generation {
                tokens: Vec::with_capacity(cfg.max_new_tokens + cfg.stop.len()),
                finished: false,
            })
            .collect();
        let mut done = vec![false; b];
        let longest = chunk.iter().map(Vec::len).max().unwrap_or(0);
        let end = (longest + cfg.max_new_tokens).min(dec.tmax);
        for pos in 0..end {
            for s in 0..b {
                let (p, g) = (&chunk[s], &gens[s]);
                feed[s] = if pos < p.len() {
                    p[pos]
                } else {
                    g.tokens.last().copied().unwrap_or(0)
                };
            }
            let logits = dec.step(model, &w, &feed[..b], pos);
            for s in 0..b {
                let plen = chunk[s].len();
                if done[s] || pos + 1 < plen {
                    continue;
                }
                let g = &mut gens[s];
                if g.tokens.len() >= cfg.max_new_tokens {
                    done[s] = true;
                    continue;
                }
                let tok = samplers[s].sample(&logits[s * v..][..v]);
                samplers[s].accept(tok);
                g.tokens.push(tok);
                if !cfg.stop.is_empty() && g.tokens.ends_with(&cfg.stop) {
                    g.tokens.truncate(g.tokens.len() - cfg.stop.len());
                    g.finished = true;
                    done[s] = true;
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        out.extend(gens);
    }
    Ok(out)
}
