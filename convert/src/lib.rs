//! ingot-convert: model files in, quantized GGUF files out.
//!
//! What it owns: choosing each tensor's type ([`policy`], with `--tensor-type` patterns in
//! [`pattern`]), converting rows between types with ggml's reference quantizers ([`quantize`]),
//! reading inputs (GGUF files, for requantization: [`gguf_input`]; Hugging Face llama directories:
//! [`hf_input`]; ingot training checkpoints: [`checkpoint_input`]) and writing the output
//! atomically ([`output`]) through the runtime's streaming GGUF writer. What it does not own: the
//! block formats and quantizers themselves (`ingot-kernels`), GGUF parsing and layout
//! (`ingot-runtime::gguf`), the command line (the `ingot` binary).
//!
//! Not yet here (issue 4): i-quants. See `convert/README.md` for the per-tensor policy (K-quant
//! presets included) and what llama.cpp does differently.
#![forbid(unsafe_code)]

pub mod checkpoint_input;
pub mod error;
pub mod gguf_input;
pub mod hf_input;
pub mod output;
pub mod pattern;
pub mod policy;
pub mod quantize;

pub use error::{Error, Result};
pub use gguf_input::{convert_gguf, Options, Progress, Summary, TensorPlan};
pub use policy::{Override, Policy};

use std::path::Path;

/// Converts `input` to `output`, dispatching on the input's format: a directory holding
/// `checkpoint.json` or `latest` is an ingot training checkpoint or run ([`checkpoint_input`]), any
/// other directory a Hugging Face checkpoint ([`hf_input`]), anything else a GGUF file; a lone `.safetensors` file is refused with a
/// clear error.
pub fn convert(
    input: &Path,
    output: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary> {
    let unsupported = |what: &str| Error::UnsupportedInput {
        path: input.display().to_string(),
        what: what.to_string(),
    };
    if input.is_dir() {
        if checkpoint_input::is_checkpoint_dir(input) {
            return checkpoint_input::convert_checkpoint(input, output, opts, progress);
        }
        return hf_input::convert_hf(input, output, opts, progress);
    }
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(input).map_err(|e| error::io(input, e))?;
        // A file shorter than 4 bytes is left to the GGUF reader, which reports it precisely.
        let _ = f.read(&mut magic).map_err(|e| error::io(input, e))?;
    }
    if &magic != b"GGUF" && input.extension().is_some_and(|e| e == "safetensors") {
        return Err(unsupported(
            "safetensors inputs are not supported yet; only GGUF files can be converted",
        ));
    }
    convert_gguf(input, output, opts, progress)
}
