//! Tokenizer (stub: being written).
