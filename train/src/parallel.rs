//! Deterministic data parallelism over `std::thread::scope`: the work items (whole output rows, or
//! one batch element's slices) are cut into at most `n_threads` contiguous groups, one scoped thread
//! per group, the last group on the caller's thread. Every item is computed by the same code in the same
//! order whatever the split, so results are bit-identical for any thread count. No pool: a spawn costs
//! microseconds against the milliseconds of a training matmul; a persistent pool is a later speed step.

/// Calls `f` on every item, spread over at most `n_threads` threads.
pub fn par_for_each<I: Send>(
    items: impl IntoIterator<Item = I>,
    n_threads: usize,
    f: impl Fn(I) + Sync,
) {
    let items: Vec<I> = items.into_iter().collect();
    let n = items.len();
    let n_threads = n_threads.clamp(1, n.max(1));
    if n_threads == 1 {
        items.into_iter().for_each(f);
        return;
    }
    let per = n.div_ceil(n_threads);
    let mut it = items.into_iter();
    let f = &f;
    std::thread::scope(|s| {
        loop {
            let group: Vec<I> = it.by_ref().take(per).collect();
            if group.is_empty() {
                break;
            }
            if it.len() == 0 {
                group.into_iter().for_each(f); // the last group runs here
                break;
            }
            s.spawn(move || group.into_iter().for_each(f));
        }
    });
}

/// Calls `f(row, out_row)` on each `row_len`-long row of `out`, spread over at most `n_threads` threads.
pub fn par_rows<T: Send>(
    out: &mut [T],
    row_len: usize,
    n_threads: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    assert!(row_len > 0 && out.len().is_multiple_of(row_len));
    par_for_each(
        out.chunks_mut(row_len).enumerate(),
        n_threads,
        |(r, row)| f(r, row),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_once_for_any_thread_count() {
        for threads in [1, 2, 3, 7, 64] {
            let mut out = vec![0usize; 5 * 3];
            par_rows(&mut out, 3, threads, |r, row| {
                row.iter_mut().for_each(|x| *x += r + 1)
            });
            let want: Vec<usize> = (0..15).map(|i| i / 3 + 1).collect();
            assert_eq!(out, want, "threads {threads}");
        }
        par_rows(&mut [0u8; 0], 1, 4, |_, _| unreachable!());
    }
}
