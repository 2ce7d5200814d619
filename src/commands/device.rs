//! `--device cpu|cuda` of `generate`, `chat` and `bench`: one evaluator over the CPU [`Session`]
//! and, in a build with `--features cuda`, the runtime's CUDA backend (`ingot_runtime::cuda`).

#[cfg(not(feature = "cuda"))]
use anyhow::bail;
use anyhow::Result;
use ingot_runtime::model::{Model, Session, SessionParams};
use ingot_runtime::sampler::argmax;

/// Where the forward pass runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU kernels (the best SIMD path of this machine).
    #[default]
    Cpu,
    /// The first NVIDIA GPU (a build with `--features cuda` and an NVIDIA driver).
    Cuda,
}

/// A session on the chosen device (one per command: the size difference of the variants is moot).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Evaluator<'m, 'a> {
    Cpu(Session<'m, 'a>),
    #[cfg(feature = "cuda")]
    Cuda(Box<ingot_runtime::cuda::CudaModel>),
}

impl<'m, 'a> Evaluator<'m, 'a> {
    /// A session for `model` on `device` (CUDA: device 0; `params.n_threads` is ignored there).
    pub fn new(model: &'m Model<'a>, params: SessionParams, device: Device) -> Result<Self> {
        match device {
            Device::Cpu => {
                if let Some(w) = super::oversubscribed(params.n_threads) {
                    eprintln!("{w}");
                }
                Ok(Evaluator::Cpu(Session::new(model, params)?))
            }
            #[cfg(feature = "cuda")]
            Device::Cuda => {
                anyhow::ensure!(
                    params.kv_type == ingot_runtime::model::KvType::F16,
                    "the CUDA backend keeps an f16 KV cache: --kv-type {} runs on --device cpu",
                    params.kv_type
                );
                Ok(Evaluator::Cuda(Box::new(
                    ingot_runtime::cuda::CudaModel::new(model, params, 0)?,
                )))
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => bail!(
                "this ingot was built without CUDA support: rebuild with `cargo build --release \
                 --features cuda` (nvcc from `scripts/setup-cuda.sh`), or use --device cpu"
            ),
        }
    }

    /// Evaluates `tokens` after the cached ones; the logits of the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        Ok(match self {
            Evaluator::Cpu(s) => s.prefill(tokens)?,
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(m) => m.prefill(tokens)?,
        })
    }

    /// Evaluates one token; its logits.
    pub fn decode(&mut self, token: u32) -> Result<&[f32]> {
        Ok(match self {
            Evaluator::Cpu(s) => s.decode(token)?,
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(m) => m.decode(token)?,
        })
    }

    /// Evaluates one token and returns the argmax of its logits (on the GPU, computed there).
    pub fn decode_greedy(&mut self, token: u32) -> Result<u32> {
        match self {
            Evaluator::Cpu(s) => Ok(argmax(s.decode(token)?)),
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(m) => Ok(m.decode_greedy(token)?),
        }
    }

    /// Forgets all tokens.
    pub fn reset(&mut self) {
        match self {
            Evaluator::Cpu(s) => s.reset(),
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(m) => m.reset(),
        }
    }

    /// Keeps the first `n` cached tokens.
    pub fn truncate(&mut self, n: usize) {
        match self {
            Evaluator::Cpu(s) => s.truncate(n),
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(m) => m.truncate(n),
        }
    }

    /// How far apart the OS has put the CPU session's threads
    /// ([`Session::thread_round_trip_ns`]); `None` with one thread or on a GPU.
    pub fn thread_round_trip_ns(&self) -> Option<f64> {
        match self {
            Evaluator::Cpu(s) => s.thread_round_trip_ns(),
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(_) => None,
        }
    }

    /// What computes: `kernels = <isa>` or `device = <GPU name>`.
    pub fn describe(&self) -> String {
        match self {
            Evaluator::Cpu(s) => format!("kernels = {}", s.kernels().isa()),
            #[cfg(feature = "cuda")]
            Evaluator::Cuda(m) => format!("device = {} (CUDA)", m.device_name()),
        }
    }
}
