//! ingot's trainer: a llama-style decoder in `f32` with an explicit forward and backward for every layer
//! (the clarity of llm.c's `train_gpt2.c`), AdamW with global-norm clipping and a warmup + cosine
//! schedule, and a minimal character-level pretraining loop. It trains the architecture the runtime
//! serves (RMSNorm, RoPE on adjacent pairs, GQA attention, SwiGLU, no biases), under GGUF's tensor
//! names, so a trained model converts to GGUF without reordering anything.
//!
//! It also owns the corpus on disk and its token cache (`corpus.rs`) and checkpoints (`checkpoint.rs`,
//! format in `train/README.md`). It does not own tokenizers beyond the character level (later work)
//! or the command line (`ingot train`, in the root package).
//!
//! Dimension letters, used in every shape comment:
//! ```text
//! B batch   T sequence   N = B*T rows   C width   V vocabulary   L blocks
//! H query heads   Hkv key/value heads   D = C/H head size   F SwiGLU hidden width
//! ```
//! Matrices are row-major `(out, in)` like `nn.Linear` and GGUF (`ne0 = in`).

#![forbid(unsafe_code)]

pub mod align;
pub mod bench;
pub mod bpe;
pub mod checkpoint;
pub mod config;
pub mod corpus;
pub mod data;
pub mod error;
pub mod files;
mod float;
pub mod layers;
pub mod model;
pub mod optim;
pub mod parallel;
pub mod params;
pub mod pretrain;
pub mod rng;

pub use config::Config;
pub use error::{Error, Result};
pub use float::Float;
pub use model::Model;
pub use optim::{clip_grad_norm, clip_grad_norm_par, lr_schedule, AdamW, AdamWConfig, Schedule};
