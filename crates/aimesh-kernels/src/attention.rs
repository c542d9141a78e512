//! Attention of every row over every row (an encoder's: no mask, no cache), fused per block
//! of queries.
//!
//! Done as whole-tensor operations, a head's scores for a 30-second Whisper window are a
//! 1,500 × 1,500 matrix: 54 MB per layer for tiny's six heads, allocated, zeroed by the
//! kernel, written, copied by the softmax into as much again, then read once. Here each task
//! takes [`QUERIES`] rows of queries and goes through the heads one at a time: the block's
//! scores (`QUERIES × rows`, 384 KB for 1,500 keys) are computed into a buffer the thread
//! keeps, soft-maxed in place while they are in its cache, and multiplied by the head's
//! values straight into the block's rows of the output. The queries, keys and values are
//! read where they lie in the stacked projection (no transposed copies), and the tasks run on
//! candle's persistent worker threads, each product single-threaded, so attention does not
//! wake rayon's pool beside them.

use std::cell::RefCell;

use candle_core::{Result, bail};
use gemm::Parallelism;

/// Rows of queries per task: their scores over 1,500 keys fit in a core's L2 cache, and a
/// window's 1,500 rows make 24 tasks to share among the threads.
const QUERIES: usize = 64;

thread_local! {
    /// Each thread's scores for the block it is working on.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Attention of each of `rows` rows over all of them, from the stacked projections `qkv`
/// (`[rows, 3 d]`: each row its queries, already scaled by the scores' scale, then its keys,
/// then its values, `d = heads × head_dim`, heads side by side): `[rows, d]`, the heads side
/// by side. `softmax` turns one row of scores into weights, in place.
pub fn attention(
    qkv: &[f32],
    rows: usize,
    heads: usize,
    head_dim: usize,
    softmax: &(dyn Fn(&mut [f32]) + Sync),
) -> Result<Vec<f32>> {
    let d = heads * head_dim;
    if rows == 0 || d == 0 {
        bail!("attention over {rows} rows of {heads} heads of {head_dim}");
    }
    if qkv.len() != rows * 3 * d {
        bail!("{} stacked values for {rows} rows of 3 × {d}", qkv.len());
    }
    let mut out = vec![0f32; rows * d];
    crate::for_each_chunk(&mut out, QUERIES * d, |index, block| {
        let first = index * QUERIES;
        let queries = block.len() / d;
        SCORES.with_borrow_mut(|buffer| {
            // Grown once to a full block's size and kept: a shorter last block uses its start.
            if buffer.len() < queries * rows {
                buffer.resize(queries * rows, 0.0);
            }
            let scores = &mut buffer[..queries * rows];
            for head in 0..heads {
                let column = head * head_dim;
                // The block's scores: its queries times the head's keys, transposed.
                // SAFETY: here and in the next product, every pointer and stride stays
                // inside its slice. The queries are rows `first..first + queries <= rows` of
                // `qkv` (row stride 3d), columns `column..column + head_dim <= d`; the keys
                // and values are all `rows` rows of `qkv` from column `d + column`, resp.
                // `2d + column`, `head_dim` wide (`2d + column + head_dim <= 3d`);
                // `qkv.len() == rows × 3d` was checked above. The scores are
                // `queries × rows`, the buffer's size; the output is the block's `queries`
                // rows of `d`, columns `column..column + head_dim`. No destination overlaps
                // a source, and `block` is this call's own chunk.
                unsafe {
                    product(
                        (queries, rows, head_dim),
                        (scores.as_mut_ptr(), rows),
                        (qkv.as_ptr().add(first * 3 * d + column), 3 * d),
                        (qkv.as_ptr().add(d + column), 3 * d, 1),
                    );
                }
                scores.chunks_exact_mut(rows).for_each(softmax);
                // SAFETY: as above. The weights times the head's values, into the block's
                // rows.
                unsafe {
                    product(
                        (queries, head_dim, rows),
                        (block.as_mut_ptr().add(column), d),
                        (scores.as_ptr(), rows),
                        (qkv.as_ptr().add(2 * d + column), 1, 3 * d),
                    );
                }
            }
        });
    });
    Ok(out)
}

/// `out = lhs · rhs` for `(m, n, k)`, single-threaded on gemm's f32 kernels: `out` is `m × n`
/// with rows `out_stride` apart, `lhs` is `m × k` with rows `lhs_stride` apart, and `rhs` is
/// `k × n` with columns and rows the given strides apart.
///
/// # Safety
///
/// Every element so addressed must lie inside its allocation, and `out` must overlap neither
/// input.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (out, out_stride): (*mut f32, usize),
    (lhs, lhs_stride): (*const f32, usize),
    (rhs, rhs_column_stride, rhs_row_stride): (*const f32, usize, usize),
) {
    // SAFETY: the caller's contract; `read_dst` false and `beta` 1 make `out = lhs · rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            out_stride as isize,
            false,
            lhs,
            1,
            lhs_stride as isize,
            rhs,
            rhs_column_stride as isize,
            rhs_row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused attention gives the plain formula's values, per head: on a row count that
    /// is not a multiple of the block (a shorter last block) and on one below it.
    #[test]
    fn matches_the_formula() {
        let softmax = |row: &mut [f32]| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|s| *s = (*s - max).exp());
            let total: f32 = row.iter().sum();
            row.iter_mut().for_each(|s| *s /= total);
        };
        for (rows, heads, head_dim) in [(150, 3, 8), (7, 2, 4)] {
            let d = heads * head_dim;
            let qkv: Vec<f32> = (0..rows * 3 * d)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let got = attention(&qkv, rows, heads, head_dim, &softmax).expect("attention");
            for head in 0..heads {
                let at = |row: usize, part: usize, i: usize| {
                    qkv[row * 3 * d + part * d + head * head_dim + i]
                };
                for query in 0..rows {
                    let mut weights: Vec<f32> = (0..rows)
                        .map(|key| (0..head_dim).map(|i| at(query, 0, i) * at(key, 1, i)).sum())
                        .collect();
                    softmax(&mut weights);
                    for i in 0..head_dim {
                        let want: f32 = (0..rows).map(|key| weights[key] * at(key, 2, i)).sum();
                        let got = got[query * d + head * head_dim + i];
                        assert!(
                            (got - want).abs() <= 1e-5,
                            "{rows} rows, head {head}, query {query}, value {i}: {got} vs {want}"
                        );
                    }
                }
            }
        }
        assert!(attention(&[0.0; 5], 1, 1, 2, &softmax).is_err());
    }
}
