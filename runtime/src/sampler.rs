//! Token sampling (stub: being written).
