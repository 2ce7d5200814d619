//! ingot-convert: reads checkpoints and writes quantized GGUF files (being written).
#![forbid(unsafe_code)]
