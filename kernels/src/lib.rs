//! Kernels (stub: being written).
