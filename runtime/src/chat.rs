//! Chat templates (stub: being written).
