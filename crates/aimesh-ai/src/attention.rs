//! Scaled dot-product attention over cached keys and values, for the engines' own decoders
//! (the chat engine's llama, Whisper's text decoder): one query row at a time against every
//! position it sees, each (row, head) pair on one of candle's worker threads.
//!
//! A decoding step reads every cached key and value once per layer, so past a few hundred
//! positions (or over Whisper's 1,500 audio frames) it is bound by reading them. A cache may
//! hold them in f16, widened to f32 eight at a time as they are read (F16C, part of the
//! x86-64-v3 baseline): half the bytes, read in about half the time. The sums are f32 either
//! way, in lanes by index, so the result does not depend on where the buffers lie.

use half::{f16, slice::HalfFloatSliceExt};

use crate::ops::Kernels;

/// A value type of a key/value cache: f32, or f16 widened to f32 as it is read.
pub(crate) trait CacheValue: Copy + Send + Sync {
    /// Appends `values`, converted (f16 rounds to nearest).
    fn extend(cache: &mut Vec<Self>, values: &[f32]);
    /// `values` as f32: themselves, or converted into `buffer` (as long as `values`).
    fn widen<'a>(values: &'a [Self], buffer: &'a mut [f32]) -> &'a [f32];
}

impl CacheValue for f32 {
    fn extend(cache: &mut Vec<Self>, values: &[f32]) {
        cache.extend_from_slice(values);
    }

    #[inline(always)]
    fn widen<'a>(values: &'a [Self], _: &'a mut [f32]) -> &'a [f32] {
        values
    }
}

impl CacheValue for f16 {
    fn extend(cache: &mut Vec<Self>, values: &[f32]) {
        let at = cache.len();
        cache.resize(at + values.len(), f16::ZERO);
        cache[at..].convert_from_f32_slice(values);
    }

    #[inline(always)]
    fn widen<'a>(values: &'a [Self], buffer: &'a mut [f32]) -> &'a [f32] {
        values.convert_to_f32_slice(buffer);
        buffer
    }
}

/// The heads of an attention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads {
    /// Query heads.
    pub(crate) heads: usize,
    /// Key/value heads, each serving `heads / kv_heads` query heads (as many as `heads`
    /// without grouping).
    pub(crate) kv_heads: usize,
    /// Width of one head.
    pub(crate) head_dim: usize,
}

/// Attention of `queries` (rows of `heads × head_dim`) over `keys` and `values` (laid out
/// `[position][kv head][head dim]`): the query of row `r` sees the first `seen(r)` positions
/// (at least one), its scores scaled by `1/√head_dim`. Returns the attended values, laid out
/// as `queries`.
pub(crate) fn attend<T: CacheValue>(
    kernels: &Kernels,
    shape: Heads,
    queries: &[f32],
    keys: &[T],
    values: &[T],
    seen: impl Fn(usize) -> usize + Sync,
) -> Vec<f32> {
    let Heads {
        heads,
        kv_heads,
        head_dim,
    } = shape;
    let kv_dim = kv_heads * head_dim;
    let group = heads / kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; queries.len()];
    let attend = |index: usize, out: &mut [f32]| {
        let (row, head) = (index / heads, index % heads);
        let query = &queries[index * head_dim..(index + 1) * head_dim];
        let offset = (head / group) * head_dim;
        let mut scores = vec![0f32; seen(row)];
        for (block, scores) in scores.chunks_mut(KEYS).enumerate() {
            // A last block shorter than `KEYS` repeats its last key: every score is
            // computed the same way, whichever block it falls in.
            let key = |i: usize| {
                let t = block * KEYS + i.min(scores.len() - 1);
                &keys[t * kv_dim + offset..t * kv_dim + offset + head_dim]
            };
            let dots = dots(query, std::array::from_fn(key));
            for (score, dot) in scores.iter_mut().zip(dots) {
                *score = dot * scale;
            }
        }
        kernels.softmax(&mut scores);
        weighted_sum(&scores, &values[offset..], kv_dim, out);
    };
    aimesh_kernels::for_each_chunk(&mut out, head_dim, attend);
    out
}

/// Keys scored at once by [`dots`].
const KEYS: usize = 8;

/// `query · key` for each of `KEYS` keys as long as `query`, each summed with fused
/// multiply-adds in eight lanes by index: eight independent sums in flight and the query read
/// once, where one key at a time would wait on each addition's latency. f16 keys are widened
/// eight values at a time as they are read.
fn dots<T: CacheValue>(query: &[f32], keys: [&[T]; KEYS]) -> [f32; KEYS] {
    let mut lanes = [[0f32; 8]; KEYS];
    let mut buffer = [0f32; 8];
    let whole = query.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        let query = &query[i..i + 8];
        for (lanes, key) in lanes.iter_mut().zip(&keys) {
            let key = T::widen(&key[i..i + 8], &mut buffer);
            for ((lane, &q), &k) in lanes.iter_mut().zip(query).zip(key) {
                *lane = q.mul_add(k, *lane);
            }
        }
    }
    let tail = query.len() - whole;
    std::array::from_fn(|k| {
        let key = T::widen(&keys[k][whole..], &mut buffer[..tail]);
        let tail = query[whole..].iter().zip(key);
        lanes[k].iter().sum::<f32>() + tail.map(|(q, k)| q * k).sum::<f32>()
    })
}

/// `Σ weights[t] · values[t · stride..]` into `out`, `out.len()` values per position. Each
/// block of 64 outputs is summed over every position in a local array (independent vectors
/// of fused multiply-adds) and written once, instead of `out` being read and written back
/// for each position; f16 values are widened a block at a time.
fn weighted_sum<T: CacheValue>(weights: &[f32], values: &[T], stride: usize, out: &mut [f32]) {
    const BLOCK: usize = 64;
    let mut buffer = [0f32; BLOCK];
    for (block, out) in out.chunks_mut(BLOCK).enumerate() {
        let mut sums = [0f32; BLOCK];
        let sums = &mut sums[..out.len()];
        let buffer = &mut buffer[..out.len()];
        for (t, &w) in weights.iter().enumerate() {
            let value = T::widen(&values[t * stride + block * BLOCK..][..sums.len()], buffer);
            for (sum, &v) in sums.iter_mut().zip(value) {
                *sum = w.mul_add(v, *sum);
            }
        }
        out.copy_from_slice(sums);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention's products against the plain formulas: whole lanes and tails, whole
    /// blocks of outputs and shorter ones, f32 and f16 caches.
    #[test]
    fn dots_and_weighted_sums() {
        for len in [3, 19, 64, 128] {
            let query: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let keys: Vec<Vec<f32>> = (0..KEYS)
                .map(|k| (0..len).map(|i| (i + k) as f32 * 0.5).collect())
                .collect();
            let sums = dots(&query, std::array::from_fn(|k| &keys[k][..]));
            for (dot, key) in sums.iter().zip(&keys) {
                let exact: f32 = query.iter().zip(key).map(|(q, k)| q * k).sum();
                assert!(
                    (dot - exact).abs() <= 1e-5 * exact.abs(),
                    "{dot} vs {exact}"
                );
            }
            // f16 keys (these values are exact in f16) give the same sums.
            let halves: Vec<Vec<f16>> = keys
                .iter()
                .map(|key| key.iter().map(|&k| f16::from_f32(k)).collect())
                .collect();
            let from_halves = dots(&query, std::array::from_fn(|k| &halves[k][..]));
            assert_eq!(from_halves, sums, "{len} wide");
        }
        for (width, stride) in [(64, 192), (128, 128), (40, 48)] {
            let weights: Vec<f32> = (0..37).map(|t| (t as f32 * 0.3).cos()).collect();
            let values: Vec<f32> = (0..37 * stride).map(|i| (i as f32 * 0.07).sin()).collect();
            let mut out = vec![f32::NAN; width];
            weighted_sum(&weights, &values, stride, &mut out);
            for (i, &got) in out.iter().enumerate() {
                let exact: f32 = weights
                    .iter()
                    .enumerate()
                    .map(|(t, w)| w * values[t * stride + i])
                    .sum();
                assert!(
                    (got - exact).abs() <= 1e-5,
                    "{width} wide, output {i}: {got} vs {exact}"
                );
            }
            // The same values rounded to f16 give the sums of the rounded values.
            let mut halves = Vec::new();
            f16::extend(&mut halves, &values);
            let rounded: Vec<f32> = halves.iter().map(|v| v.to_f32()).collect();
            let (mut from_halves, mut exact) = (vec![f32::NAN; width], vec![f32::NAN; width]);
            weighted_sum(&weights, &halves, stride, &mut from_halves);
            weighted_sum(&weights, &rounded, stride, &mut exact);
            assert_eq!(from_halves, exact, "{width} wide");
        }
    }

    /// Whole attentions against the plain formulas: grouped heads, a causal bound per row,
    /// and a cache of f16 values giving what f32 copies of the same rounded values give.
    #[test]
    fn attention_of_grouped_heads_with_a_causal_bound() {
        let kernels = Kernels::new().expect("kernels");
        let shape = Heads {
            heads: 4,
            kv_heads: 2,
            head_dim: 12,
        };
        let (positions, rows, kv_dim) = (21, 3, 24);
        let keys: Vec<f32> = (0..positions * kv_dim)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let values: Vec<f32> = (0..positions * kv_dim)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let queries: Vec<f32> = (0..rows * 48).map(|i| (i as f32 * 0.23).cos()).collect();
        let seen = |row: usize| positions - rows + row + 1;
        let got = attend(&kernels, shape, &queries, &keys, &values, seen);
        for row in 0..rows {
            for head in 0..4 {
                let query = &queries[(row * 4 + head) * 12..][..12];
                let offset = (head / 2) * 12;
                let scores: Vec<f64> = (0..seen(row))
                    .map(|t| {
                        let key = &keys[t * kv_dim + offset..][..12];
                        let dot: f64 = query.iter().zip(key).map(|(q, k)| f64::from(q * k)).sum();
                        dot / 12f64.sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for i in 0..12 {
                    let exact: f64 = scores
                        .iter()
                        .enumerate()
                        .map(|(t, s)| {
                            (s - max).exp() / total * f64::from(values[t * kv_dim + offset + i])
                        })
                        .sum();
                    let ours = got[(row * 4 + head) * 12 + i];
                    assert!(
                        (f64::from(ours) - exact).abs() < 1e-5,
                        "row {row}, head {head}, value {i}: {ours} vs {exact}"
                    );
                }
            }
        }
        let (mut half_keys, mut half_values) = (Vec::new(), Vec::new());
        f16::extend(&mut half_keys, &keys);
        f16::extend(&mut half_values, &values);
        let widen = |halves: &[f16]| halves.iter().map(|v| v.to_f32()).collect::<Vec<_>>();
        let (rounded_keys, rounded_values) = (widen(&half_keys), widen(&half_values));
        assert_eq!(
            attend(&kernels, shape, &queries, &half_keys, &half_values, seen),
            attend(
                &kernels,
                shape,
                &queries,
                &rounded_keys,
                &rounded_values,
                seen
            )
        );
    }
}
