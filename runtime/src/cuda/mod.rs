//! The CUDA backend (feature `cuda`): a [`CudaModel`] runs a loaded [`Model`] on an NVIDIA GPU with
//! the kernels of `ingot_kernels::cuda`, computing what [`Session`](crate::model::Session)
//! computes on the CPU (same activation quantization before every product, same integer dots, f16
//! KV cache, same RoPE angles), up to f32 rounding order and f16-rounded probabilities.
//!
//! Everything is on the device and allocated once in [`CudaModel::new`]: the weights (uploaded
//! once, in their file layout), the f16 KV cache (per layer, `(S, Hkv*D)`), the RoPE cos/sin table
//! `(S, n_rot)` built by the CPU path's own `rope_cache`, and every activation buffer for a batch of
//! `n_batch` tokens. The position and token ids live in small device buffers, so one decode step
//! is captured once as a CUDA graph and replayed for every token; a step then costs two 4-byte
//! copies to the device, the graph launch and the copy of the logits (or of one token id for
//! [`CudaModel::decode_greedy`]) into a host buffer made at creation. Nothing is allocated per
//! token, on the host or the device. `INGOT_CUDA_GRAPH=0` launches the kernels one by one instead
//! (for debugging).
//!
//! It does not own the model file, the tokenizer or sampling; the CPU [`Model`] it was made from
//! stays the source of those.

use crate::model::ops::rope_cache;
use crate::model::{Matrix, Model, SessionParams};
use crate::{Error, Result};
use half::f16;
use ingot_kernels::cuda::cudarc::driver::{sys, CudaGraph, CudaSlice, CudaView, CudaViewMut};
use ingot_kernels::cuda::{AttnShape, Gpu, EMBED_TYPES, MATMUL_TYPES};
use ingot_kernels::QuantType;

/// Largest batch one forward pass takes (longer prompts are split): keeps every grid dimension
/// far below its limit.
const MAX_BATCH: usize = 4096;

fn cuda_err(e: ingot_kernels::cuda::Error) -> Error {
    Error::Request {
        what: format!("CUDA: {e}"),
    }
}

/// A weight matrix on the device, in the file's row layout.
#[derive(Debug)]
struct DevMatrix {
    ty: QuantType,
    rows: usize,
    cols: usize,
    data: CudaSlice<u8>,
}

/// One transformer block's weights and its part of the KV cache.
#[derive(Debug)]
struct DevLayer {
    attn_norm: CudaSlice<f32>, // (C,)
    wq: DevMatrix,             // (H*D, C)
    wk: DevMatrix,             // (Hkv*D, C)
    wv: DevMatrix,             // (Hkv*D, C)
    wo: DevMatrix,             // (C, H*D)
    ffn_norm: CudaSlice<f32>,  // (C,)
    w_gate: DevMatrix,         // (F, C)
    w_up: DevMatrix,           // (F, C)
    w_down: DevMatrix,         // (C, F)
    k_cache: CudaSlice<f16>,   // (S, Hkv*D)
    v_cache: CudaSlice<f16>,   // (S, Hkv*D)
}

/// Activation buffers for a batch of up to T = n_batch tokens.
#[derive(Debug)]
struct Bufs {
    tokens: CudaSlice<u32>, // (T,) token ids of the batch
    pos: CudaSlice<i32>,    // (1,) position of the batch's first token
    x: CudaSlice<f32>,      // (T, C) residual stream
    xb: CudaSlice<f32>,     // (T, C) normalized input of a sub-layer
    q: CudaSlice<f32>,      // (T, H*D)
    k: CudaSlice<f32>,      // (T, Hkv*D)
    v: CudaSlice<f32>,      // (T, Hkv*D)
    att: CudaSlice<f32>,    // (T, H*D) attention output
    proj: CudaSlice<f32>,   // (T, C) output of wo / w_down
    hb: CudaSlice<f32>,     // (T, F) gate, then silu(gate) * up
    hb2: CudaSlice<f32>,    // (T, F) up
    act: CudaSlice<u8>,     // (T, act_stride) quantized activations
    part: CudaSlice<f32>,   // (H * splits * (D + 2)) flash-decoding partial results
    logits: CudaSlice<f32>, // (V,) of the batch's last token
    next: CudaSlice<u32>,   // (1,) argmax of logits
}

/// Which buffer the activations in `Bufs::act` were quantized from, and to what.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActOf {
    Xb(QuantType),
    Att(QuantType),
    Hb(QuantType),
}

/// The captured decode step (cudarc's graph has no `Debug`).
struct Graph(CudaGraph);

impl core::fmt::Debug for Graph {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CudaGraph")
    }
}

/// A model resident on one CUDA device, with its KV cache: the GPU counterpart of a
/// [`Session`](crate::model::Session) (prefill, decode, reset, truncate).
#[derive(Debug)]
pub struct CudaModel {
    // Declared first so that it is dropped before the buffers it refers to.
    graph: Option<Graph>,
    use_graph: bool,
    gpu: Gpu,
    layers: Vec<DevLayer>,
    token_embd: DevMatrix,     // (V, C)
    output: Option<DevMatrix>, // (V, C); None when tied to token_embd
    output_norm: CudaSlice<f32>,
    rope: CudaSlice<f32>, // (S, n_rot)
    b: Bufs,
    shape: AttnShape,
    n_embd: usize,
    n_ff: usize,
    n_vocab: usize,
    n_rot: usize,
    rms_eps: f32,
    act_stride: usize,
    params: SessionParams,
    pos: usize,
    logits: Vec<f32>, // (V,) host copy
}

fn upload_matrix(gpu: &Gpu, m: &Matrix<'_>) -> Result<DevMatrix> {
    Ok(DevMatrix {
        ty: m.ty,
        rows: m.rows,
        cols: m.cols,
        data: gpu.upload(m.data).map_err(cuda_err)?,
    })
}

fn upload_vector(gpu: &Gpu, v: &crate::model::weights::Vector<'_>) -> Result<CudaSlice<f32>> {
    let host: Vec<f32> = (0..v.len()).map(|i| v.get(i)).collect();
    gpu.upload(&host).map_err(cuda_err)
}

/// Why `model` cannot run on the CUDA backend, if it cannot.
fn check_supported(model: &Model<'_>, shape: AttnShape) -> Result<()> {
    let unsupported = |what: String| Error::Model {
        what: format!("{what}: not supported by the CUDA backend (use --device cpu)"),
    };
    for m in model.weights.matrices() {
        if !MATMUL_TYPES.contains(&m.ty) {
            return Err(unsupported(format!("tensor `{}` of type {}", m.name, m.ty)));
        }
    }
    let e = &model.weights.token_embd;
    if !EMBED_TYPES.contains(&e.ty) {
        return Err(unsupported(format!("token embedding of type {}", e.ty)));
    }
    if !shape.supported() {
        return Err(unsupported(format!(
            "head dimension {} (needs a multiple of 32 up to 256) with {} / {} heads",
            shape.head_dim, shape.n_head, shape.n_head_kv
        )));
    }
    if !model.config.n_rot.is_multiple_of(2) || model.config.n_rot > shape.head_dim {
        return Err(unsupported(format!("n_rot {}", model.config.n_rot)));
    }
    Ok(())
}

impl CudaModel {
    /// Uploads `model` to CUDA device `ordinal` and allocates its KV cache and buffers for
    /// `params.n_ctx` positions (at most 2^22) and batches of `params.n_batch` tokens (clamped to
    /// `n_ctx` and 4096; `n_threads` is ignored).
    /// Errors without a driver or device (a message saying so), or for a model with a weight type
    /// or head shape the kernels do not cover.
    pub fn new(model: &Model<'_>, params: SessionParams, ordinal: usize) -> Result<CudaModel> {
        let cfg = &model.config;
        if params.kv_type != crate::model::KvType::F16 {
            return Err(Error::Request {
                what: format!(
                    "the CUDA backend keeps an f16 KV cache; a {} cache runs on the CPU",
                    params.kv_type
                ),
            });
        }
        // Grid limits: decode attention has n_ctx / 128 blocks in y (at most 65535), a batch's
        // kernels n_batch (batches are split on the host, so a smaller n_batch costs nothing).
        if params.n_ctx == 0 || params.n_batch == 0 || params.n_ctx > 1 << 22 {
            return Err(Error::Request {
                what: format!(
                    "context {} and batch {} must be at least 1, the context at most 2^22 on CUDA",
                    params.n_ctx, params.n_batch
                ),
            });
        }
        let params = SessionParams {
            n_batch: params.n_batch.min(params.n_ctx).min(MAX_BATCH),
            ..params
        };
        let shape = AttnShape {
            n_head: cfg.n_head,
            n_head_kv: cfg.n_head_kv,
            head_dim: cfg.head_dim,
        };
        check_supported(model, shape)?;
        let gpu = Gpu::new(ordinal).map_err(cuda_err)?;
        let w = &model.weights;
        let (t, s) = (params.n_batch, params.n_ctx);
        let kv_len = s * cfg.kv_dim();
        let mut layers = Vec::with_capacity(w.layers.len());
        for l in &w.layers {
            layers.push(DevLayer {
                attn_norm: upload_vector(&gpu, &l.attn_norm)?,
                wq: upload_matrix(&gpu, &l.wq)?,
                wk: upload_matrix(&gpu, &l.wk)?,
                wv: upload_matrix(&gpu, &l.wv)?,
                wo: upload_matrix(&gpu, &l.wo)?,
                ffn_norm: upload_vector(&gpu, &l.ffn_norm)?,
                w_gate: upload_matrix(&gpu, &l.w_gate)?,
                w_up: upload_matrix(&gpu, &l.w_up)?,
                w_down: upload_matrix(&gpu, &l.w_down)?,
                k_cache: gpu.zeros(kv_len).map_err(cuda_err)?,
                v_cache: gpu.zeros(kv_len).map_err(cuda_err)?,
            });
        }
        let token_embd = upload_matrix(&gpu, &w.token_embd)?;
        let output = if w.tied_output {
            None
        } else {
            Some(upload_matrix(&gpu, &w.output)?)
        };
        // The CPU path's RoPE angles for every position, so both paths rotate by the same values.
        let mut table = vec![0.0f32; s * cfg.n_rot];
        for (pos, row) in table.chunks_exact_mut(cfg.n_rot.max(1)).enumerate() {
            rope_cache(row, pos, cfg.rope_base, cfg.rope_freq_scale, cfg.n_rot);
        }
        let act_stride = w
            .matrices()
            .map(|m| m.ty.info().vec_dot_type.row_bytes(m.cols).unwrap_or(0))
            .max()
            .unwrap_or(0)
            .next_multiple_of(16);
        let z = |n: usize| gpu.zeros::<f32>(n).map_err(cuda_err);
        let b = Bufs {
            tokens: gpu.zeros(t).map_err(cuda_err)?,
            pos: gpu.zeros(1).map_err(cuda_err)?,
            x: z(t * cfg.n_embd)?,
            xb: z(t * cfg.n_embd)?,
            q: z(t * cfg.q_dim())?,
            k: z(t * cfg.kv_dim())?,
            v: z(t * cfg.kv_dim())?,
            att: z(t * cfg.q_dim())?,
            proj: z(t * cfg.n_embd)?,
            hb: z(t * cfg.n_ff)?,
            hb2: z(t * cfg.n_ff)?,
            act: gpu.zeros(t * act_stride).map_err(cuda_err)?,
            part: z(shape.part_len(s))?,
            logits: z(cfg.n_vocab)?,
            next: gpu.zeros(1).map_err(cuda_err)?,
        };
        let rope = gpu.upload(&table).map_err(cuda_err)?;
        let output_norm = upload_vector(&gpu, &w.output_norm)?;
        gpu.sync().map_err(cuda_err)?;
        let use_graph = std::env::var("INGOT_CUDA_GRAPH").map_or(true, |v| v != "0");
        Ok(CudaModel {
            graph: None,
            use_graph,
            gpu,
            layers,
            token_embd,
            output,
            output_norm,
            rope,
            b,
            shape,
            n_embd: cfg.n_embd,
            n_ff: cfg.n_ff,
            n_vocab: cfg.n_vocab,
            n_rot: cfg.n_rot,
            rms_eps: cfg.rms_eps,
            act_stride,
            params,
            pos: 0,
            logits: vec![0.0; cfg.n_vocab],
        })
    }

    /// The device's name.
    pub fn device_name(&self) -> String {
        self.gpu.name().unwrap_or_else(|_| "CUDA device".into())
    }

    /// Tokens in the KV cache.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The sizes this model's cache and buffers were made for (`n_batch` clamped to `n_ctx`).
    pub fn params(&self) -> SessionParams {
        self.params
    }

    /// Forgets all tokens.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Drops cached tokens after the first `n`.
    pub fn truncate(&mut self, n: usize) {
        self.pos = self.pos.min(n);
    }

    /// The logits (V,) of the last token evaluated (zeros before the first evaluation and after
    /// [`CudaModel::decode_greedy`], which does not copy them).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    fn check(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::Request {
                what: "cannot evaluate an empty prompt".into(),
            });
        }
        if self.pos + tokens.len() > self.params.n_ctx {
            return Err(Error::Request {
                what: format!(
                    "{} cached + {} new tokens exceed the context of {} (use a larger --ctx)",
                    self.pos,
                    tokens.len(),
                    self.params.n_ctx
                ),
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(Error::Request {
                what: format!(
                    "token id {bad} is outside the vocabulary of {}",
                    self.n_vocab
                ),
            });
        }
        Ok(())
    }

    /// Evaluates `tokens` after the cached ones (in batches of `n_batch`) and returns the logits
    /// of the last one (V,).
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.check(tokens)?;
        for chunk in tokens.chunks(self.params.n_batch) {
            self.step(chunk)?;
        }
        self.read_logits()?;
        Ok(&self.logits)
    }

    /// Evaluates one token and returns its logits (V,).
    pub fn decode(&mut self, token: u32) -> Result<&[f32]> {
        self.prefill(core::slice::from_ref(&token))
    }

    /// Evaluates one token and returns the most likely next one (argmax of the logits, computed on
    /// the device: only 4 bytes come back).
    pub fn decode_greedy(&mut self, token: u32) -> Result<u32> {
        self.check(core::slice::from_ref(&token))?;
        self.step(core::slice::from_ref(&token))?;
        let mut next = [0u32];
        self.gpu
            .read(&self.b.next.slice(..), &mut next)
            .map_err(cuda_err)?;
        Ok(next[0])
    }

    fn read_logits(&mut self) -> Result<()> {
        self.gpu
            .read(&self.b.logits.slice(..), &mut self.logits)
            .map_err(cuda_err)
    }

    /// Runs one batch at positions `pos..pos + tokens.len()`: uploads the ids and the position,
    /// then replays the decode graph (one token) or launches the batch's kernels.
    fn step(&mut self, tokens: &[u32]) -> Result<()> {
        let pos = [i32::try_from(self.pos).expect("n_ctx <= 2^24")];
        self.gpu
            .write(tokens, &mut self.b.tokens.slice_mut(..tokens.len()))
            .map_err(cuda_err)?;
        self.gpu
            .write(&pos, &mut self.b.pos.slice_mut(..))
            .map_err(cuda_err)?;
        if tokens.len() == 1 && self.use_graph {
            if self.graph.is_none() {
                let stream = self.gpu.stream().clone();
                let begin = stream
                    .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
                begin.map_err(|e| cuda_err(driver("cuStreamBeginCapture", e)))?;
                let enqueued = self.enqueue(1);
                // End the capture even when enqueuing failed, so the stream stays usable.
                let graph = stream.end_capture(sys::CUgraphInstantiate_flags(0));
                enqueued?;
                let graph = graph.map_err(|e| cuda_err(driver("cuStreamEndCapture", e)))?;
                self.graph = Some(Graph(graph.ok_or_else(|| Error::Request {
                    what: "CUDA: graph capture produced no graph".into(),
                })?));
            }
            let g = self.graph.as_ref().expect("captured above");
            g.0.launch()
                .map_err(|e| cuda_err(driver("cuGraphLaunch", e)))?;
        } else {
            self.enqueue(tokens.len())?;
        }
        self.pos += tokens.len();
        Ok(())
    }

    /// Enqueues the forward pass of `nt` tokens (ids in `b.tokens`, first position in `b.pos`) on
    /// the stream, ending with the logits of the last token in `b.logits` and their argmax in
    /// `b.next`. Launches only: no allocation, copy or synchronization, so it can be captured.
    fn enqueue(&mut self, nt: usize) -> Result<()> {
        let g = &self.gpu;
        let b = &mut self.b;
        let (c, f, sh) = (self.n_embd, self.n_ff, self.shape);
        let (kvd, eps) = (sh.kv_dim(), self.rms_eps);
        let e = &self.token_embd;
        g.embed(
            &e.data.slice(..),
            e.ty,
            &b.tokens.slice(..),
            &mut b.x.slice_mut(..),
            e.cols,
            e.rows,
            nt,
        )
        .map_err(cuda_err)?;
        let mm = MatMul {
            g,
            stride: self.act_stride,
            nt,
        };
        for l in &mut self.layers {
            g.rms_norm(
                &b.x.slice(..),
                &l.attn_norm.slice(..),
                &mut b.xb.slice_mut(..),
                c,
                nt,
                eps,
            )
            .map_err(cuda_err)?;
            let mut last = None;
            mm.run(&l.wq, &b.xb, ActOf::Xb, &mut b.act, &mut last, &mut b.q)?;
            mm.run(&l.wk, &b.xb, ActOf::Xb, &mut b.act, &mut last, &mut b.k)?;
            mm.run(&l.wv, &b.xb, ActOf::Xb, &mut b.act, &mut last, &mut b.v)?;
            g.rope(
                &mut b.q.slice_mut(..),
                &mut b.k.slice_mut(..),
                &self.rope.slice(..),
                &b.pos.slice(..),
                sh,
                self.n_rot,
                nt,
            )
            .map_err(cuda_err)?;
            g.kv_store(
                &b.k.slice(..),
                &b.v.slice(..),
                &mut l.k_cache.slice_mut(..),
                &mut l.v_cache.slice_mut(..),
                &b.pos.slice(..),
                kvd,
                nt,
            )
            .map_err(cuda_err)?;
            if nt == 1 {
                g.attention_decode(
                    &b.q.slice(..),
                    &l.k_cache.slice(..),
                    &l.v_cache.slice(..),
                    &mut b.part.slice_mut(..),
                    &mut b.att.slice_mut(..),
                    &b.pos.slice(..),
                    sh,
                    self.params.n_ctx,
                )
            } else {
                g.attention_prefill(
                    &b.q.slice(..),
                    &l.k_cache.slice(..),
                    &l.v_cache.slice(..),
                    &mut b.att.slice_mut(..),
                    &b.pos.slice(..),
                    sh,
                    nt,
                )
            }
            .map_err(cuda_err)?;
            mm.run(
                &l.wo,
                &b.att,
                ActOf::Att,
                &mut b.act,
                &mut last,
                &mut b.proj,
            )?;
            g.add(&mut b.x.slice_mut(..), &b.proj.slice(..), nt * c)
                .map_err(cuda_err)?;

            g.rms_norm(
                &b.x.slice(..),
                &l.ffn_norm.slice(..),
                &mut b.xb.slice_mut(..),
                c,
                nt,
                eps,
            )
            .map_err(cuda_err)?;
            mm.run(
                &l.w_gate,
                &b.xb,
                ActOf::Xb,
                &mut b.act,
                &mut last,
                &mut b.hb,
            )?;
            mm.run(&l.w_up, &b.xb, ActOf::Xb, &mut b.act, &mut last, &mut b.hb2)?;
            g.swiglu(&mut b.hb.slice_mut(..), &b.hb2.slice(..), nt * f)
                .map_err(cuda_err)?;
            mm.run(
                &l.w_down,
                &b.hb,
                ActOf::Hb,
                &mut b.act,
                &mut last,
                &mut b.proj,
            )?;
            g.add(&mut b.x.slice_mut(..), &b.proj.slice(..), nt * c)
                .map_err(cuda_err)?;
        }
        // Final norm and output projection of the last token only.
        let last_row = b.x.slice((nt - 1) * c..nt * c);
        g.rms_norm(
            &last_row,
            &self.output_norm.slice(..),
            &mut b.xb.slice_mut(..c),
            c,
            1,
            eps,
        )
        .map_err(cuda_err)?;
        let out = self.output.as_ref().unwrap_or(&self.token_embd);
        let one = MatMul { nt: 1, ..mm };
        one.run(out, &b.xb, ActOf::Xb, &mut b.act, &mut None, &mut b.logits)?;
        g.argmax(&b.logits.slice(..), self.n_vocab, &mut b.next.slice_mut(..))
            .map_err(cuda_err)
    }
}

fn driver(
    op: &'static str,
    err: ingot_kernels::cuda::cudarc::driver::DriverError,
) -> ingot_kernels::cuda::Error {
    ingot_kernels::cuda::Error::Driver { op, err }
}

/// Quantize-then-multiply for one batch, skipping the quantization when `act` already holds the
/// same input in the same activation format (q/k/v and gate/up share theirs, as on the CPU).
#[derive(Clone, Copy)]
struct MatMul<'g> {
    g: &'g Gpu,
    stride: usize,
    nt: usize,
}

impl MatMul<'_> {
    fn run(
        &self,
        w: &DevMatrix,
        x: &CudaSlice<f32>,
        of: fn(QuantType) -> ActOf,
        act: &mut CudaSlice<u8>,
        last: &mut Option<ActOf>,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let act_ty = w.ty.info().vec_dot_type;
        let key = of(act_ty);
        if *last != Some(key) {
            let x: CudaView<'_, f32> = x.slice(..self.nt * w.cols);
            let mut a: CudaViewMut<'_, u8> = act.slice_mut(..);
            self.g
                .quantize(act_ty, &x, &mut a, w.cols, self.nt, w.cols, self.stride)
                .map_err(cuda_err)?;
            *last = Some(key);
        }
        self.g
            .matmul(
                w.ty,
                &w.data.slice(..),
                &act.slice(..),
                &mut out.slice_mut(..self.nt * w.rows),
                w.cols,
                w.rows,
                self.nt,
                self.stride,
            )
            .map_err(cuda_err)
    }
}
