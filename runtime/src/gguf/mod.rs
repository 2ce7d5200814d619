//! GGUF (stub: being written).
