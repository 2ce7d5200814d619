//! Row conversion between any two types of the kernel table: `to_f32` of the source type, then the
//! reference quantizer `from_f32` of the destination type (ggml's `quantize_row_*_ref`, which is what
//! `llama-quantize` writes), split by rows across threads. The result does not depend on the thread
//! count: every row is converted independently.
//!
//! What it does not do: choose types (see [`crate::policy`]) or touch files.

use crate::{Error, Result};
use ingot_kernels::QuantType;

/// f32 elements converted per thread and batch: bounds the scratch memory at 16 MiB per thread.
pub const SCRATCH_ELEMS: usize = 1 << 22;

/// Converts `rows` rows of `n` elements from `src` (exactly `rows * from.row_bytes(n)` bytes) into
/// `dst` (exactly `rows * to.row_bytes(n)` bytes), on up to `threads` threads. `first_row` is the index
/// of the first row in its tensor, for error messages about `name`. Rows holding NaN or infinity are an
/// error: ggml's `ggml_validate_row_data` would reject the result, and llama.cpp refuses to write it.
#[allow(clippy::too_many_arguments)]
pub fn convert_rows(
    name: &str,
    from: QuantType,
    to: QuantType,
    n: usize,
    first_row: usize,
    src: &[u8],
    dst: &mut [u8],
    threads: usize,
) -> Result<()> {
    let (sb, db) = (row_bytes(name, from, n)?, row_bytes(name, to, n)?);
    assert!(sb > 0 && src.len().is_multiple_of(sb), "whole source rows");
    let rows = src.len() / sb;
    assert_eq!(dst.len(), rows * db, "destination holds the same rows");
    let threads = threads.clamp(1, rows.max(1));
    let per_thread = rows.div_ceil(threads);
    if threads == 1 {
        return convert_chunk(name, from, to, n, first_row, src, dst);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = src
            .chunks(per_thread * sb)
            .zip(dst.chunks_mut(per_thread * db))
            .enumerate()
            .map(|(i, (s_chunk, d_chunk))| {
                let first = first_row + i * per_thread;
                s.spawn(move || convert_chunk(name, from, to, n, first, s_chunk, d_chunk))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("conversion thread panicked"))
    })
}

fn row_bytes(name: &str, ty: QuantType, n: usize) -> Result<usize> {
    ty.row_bytes(n).ok_or_else(|| Error::Tensor {
        name: name.to_string(),
        what: format!("row length {n} is not a whole number of {ty} blocks"),
    })
}

/// One thread's rows, in batches of whole rows of at most [`SCRATCH_ELEMS`] elements.
fn convert_chunk(
    name: &str,
    from: QuantType,
    to: QuantType,
    n: usize,
    first_row: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<()> {
    let (sb, db) = (row_bytes(name, from, n)?, row_bytes(name, to, n)?);
    let batch = (SCRATCH_ELEMS / n.max(1)).max(1);
    let mut x = vec![0f32; batch.min(src.len() / sb) * n]; // (rows, n)
    let to_f32 = from.info().to_f32;
    for (b, (s, d)) in src
        .chunks(batch * sb)
        .zip(dst.chunks_mut(batch * db))
        .enumerate()
    {
        let rows = s.len() / sb;
        let x = &mut x[..rows * n];
        for (xs, ss) in x.chunks_exact_mut(n).zip(s.chunks_exact(sb)) {
            to_f32(ss, xs);
        }
        quantize_chunk(name, to, n, first_row + b * batch, x, d)?;
    }
    Ok(())
}

/// Quantizes whole f32 rows `x` (`rows * n` elements) to `to` into `dst` (`rows * to.row_bytes(n)`
/// bytes), on up to `threads` threads: the f32 half of [`convert_rows`], for inputs that are already
/// f32 (a Hugging Face tensor widened and permuted batch by batch). Same errors.
pub fn quantize_rows(
    name: &str,
    to: QuantType,
    n: usize,
    first_row: usize,
    x: &[f32],
    dst: &mut [u8],
    threads: usize,
) -> Result<()> {
    let db = row_bytes(name, to, n)?;
    assert!(n > 0 && x.len().is_multiple_of(n), "whole rows");
    let rows = x.len() / n;
    assert_eq!(dst.len(), rows * db, "destination holds the same rows");
    let threads = threads.clamp(1, rows.max(1));
    if threads == 1 {
        return quantize_chunk(name, to, n, first_row, x, dst);
    }
    let per_thread = rows.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = x
            .chunks(per_thread * n)
            .zip(dst.chunks_mut(per_thread * db))
            .enumerate()
            .map(|(i, (xc, dc))| {
                let first = first_row + i * per_thread;
                s.spawn(move || quantize_chunk(name, to, n, first, xc, dc))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("conversion thread panicked"))
    })
}

/// Checks that every value of the rows `x` is finite, then quantizes them row by row into `dst`.
fn quantize_chunk(
    name: &str,
    to: QuantType,
    n: usize,
    first_row: usize,
    x: &[f32],
    dst: &mut [u8],
) -> Result<()> {
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Tensor {
            name: name.to_string(),
            what: format!(
                "row {} element {} is {} (non-finite values cannot be quantized)",
                first_row + i / n,
                i % n,
                x[i]
            ),
        });
    }
    let (from_f32, db) = (to.info().from_f32, row_bytes(name, to, n)?);
    for (xs, ds) in x.chunks_exact(n).zip(dst.chunks_exact_mut(db)) {
        from_f32(xs, ds);
    }
    Ok(())
}

/// Converts `src` (whole rows of `n` elements in `from`) to `plan.to` and appends the result to `w`,
/// in batches of [`SCRATCH_ELEMS`] elements per thread so that every thread gets a full scratch buffer
/// and the output is never held whole. `buf` is reused across calls; `tmp` names the file in errors.
/// `release` is called with each batch's source bytes once they are converted, so that a caller
/// reading from a memory map can drop their pages (`GgufFile::release`) and keep the resident set
/// at one batch instead of the whole input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_converted<W: std::io::Write>(
    w: &mut ingot_runtime::gguf::GgufStreamWriter<W>,
    plan: &crate::gguf_input::TensorPlan,
    from: QuantType,
    n: usize,
    src: &[u8],
    threads: usize,
    buf: &mut Vec<u8>,
    tmp: &std::path::Path,
    release: &dyn Fn(&[u8]),
) -> Result<()> {
    let sb = from.row_bytes(n).expect("validated by the reader");
    let db = plan.to.row_bytes(n).expect("validated by the plan");
    let rows_per_batch = (SCRATCH_ELEMS * threads.max(1) / n).max(1);
    for (b, chunk) in src.chunks(rows_per_batch * sb).enumerate() {
        buf.resize(chunk.len() / sb * db, 0);
        convert_rows(
            &plan.name,
            from,
            plan.to,
            n,
            b * rows_per_batch,
            chunk,
            buf,
            threads,
        )?;
        w.write(buf).map_err(|e| crate::error::io(tmp, e))?;
        release(chunk);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_does_not_change_bytes() {
        let n = 256; // one K-quant super-block, eight 32-element blocks
        let rows = 37;
        let x: Vec<f32> = (0..n * rows)
            .map(|i| ((i * 7919) % 1000) as f32 / 300.0 - 1.5)
            .collect();
        let src: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        for to in crate::policy::SUPPORTED {
            let mut one = vec![0u8; to.row_bytes(n).unwrap() * rows];
            let mut four = one.clone();
            convert_rows("t", QuantType::F32, to, n, 0, &src, &mut one, 1).unwrap();
            convert_rows("t", QuantType::F32, to, n, 0, &src, &mut four, 4).unwrap();
            assert_eq!(one, four, "{to}");
            let mut want = vec![0u8; one.len()];
            (to.info().from_f32)(&x, &mut want);
            assert_eq!(one, want, "{to}");
        }
    }

    #[test]
    fn non_finite_rows_are_refused() {
        let mut x = vec![0.5f32; 64];
        x[40] = f32::NAN;
        let src: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut dst = vec![0u8; 2 * 34];
        let e = convert_rows(
            "w",
            QuantType::F32,
            QuantType::Q8_0,
            32,
            5,
            &src,
            &mut dst,
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("row 6 element 8"), "{e}");
    }
}
