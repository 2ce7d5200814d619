//! Model (stub: being written).
