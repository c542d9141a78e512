//! Element-wise functions on tract-linalg's SIMD kernels (SiLU, GELU, the exponential), the
//! best this CPU has, and the softmax built on them, for the engines' own model code; GELU as
//! a candle operation over whole tensors, spread over candle's worker threads; and an
//! encoder's attention fused per block of queries, with this softmax.
//!
//! Each kernel is element-wise: a value's result depends on that value alone, not on its
//! neighbours or its address, and the softmax's maximum and total are folded in lanes by
//! index. So a request gives the same numbers wherever its buffers lie, and a seeded
//! sampling or a greedy transcript does not change from one run to the next.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use tract_linalg::{Func, element_wise::ElementWise};

/// tract's SIMD kernels (see the module docs).
#[derive(Debug)]
pub(crate) struct Kernels {
    /// `x · sigmoid(x)`, in place.
    silu: Box<dyn ElementWise<f32>>,
    /// `e^x`, in place.
    exp: Box<dyn ElementWise<f32>>,
    /// GELU in its tanh form, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`, in place: the
    /// form candle's `gelu` computes.
    gelu: Box<dyn ElementWise<f32>>,
}

/// Values per chunk handed to a worker thread: large enough that handing it over costs
/// little beside the work.
const CHUNK: usize = 16 * 1024;

impl Kernels {
    pub(crate) fn new() -> Result<Self> {
        let kernel = |func: Func| {
            func.ew_f32()
                .map_err(|e| candle_core::Error::Msg(format!("no {} kernel: {e}", func.name())))
        };
        Ok(Self {
            silu: kernel(Func::Silu)?,
            exp: kernel(Func::Exp)?,
            gelu: kernel(Func::Gelu)?,
        })
    }

    /// `gate · sigmoid(gate) · up` into `out`.
    pub(crate) fn swiglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        out.copy_from_slice(gate);
        if self.silu.run(out).is_err() {
            // tract's kernels fail only on allocating their scratch space: the scalar
            // formula then.
            for (out, &g) in out.iter_mut().zip(gate) {
                *out = g / (1.0 + (-g).exp());
            }
        }
        out.iter_mut().zip(up).for_each(|(out, &u)| *out *= u);
    }

    /// GELU (tanh form) of `values`, in place.
    fn gelu_in_place(&self, values: &mut [f32]) {
        if self.gelu.run(values).is_err() {
            // As for SiLU: the kernel fails only on allocating its scratch space.
            const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
            for v in values {
                let x = *v;
                *v = 0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh());
            }
        }
    }

    /// The softmax of `scores`, in place. The exponentials run on tract's kernel; the
    /// maximum and the total are taken in eight lanes by index, so the result never depends
    /// on where `scores` lies in memory. (tract's own softmax sums in lanes that follow the
    /// address.)
    pub(crate) fn softmax(&self, scores: &mut [f32]) {
        let max = fold_lanes(scores, f32::NEG_INFINITY, f32::max);
        scores.iter_mut().for_each(|s| *s -= max);
        if self.exp.run(scores).is_err() {
            // As for SiLU: the kernel fails only on allocating its scratch space.
            scores.iter_mut().for_each(|s| *s = s.exp());
        }
        let scale = 1.0 / fold_lanes(scores, 0.0, |total, s| total + s);
        scores.iter_mut().for_each(|s| *s *= scale);
    }

    /// GELU (tanh form) of every value of the f32 tensor `x`, across candle's worker threads.
    pub(crate) fn gelu(&self, x: &Tensor) -> Result<Tensor> {
        x.apply_op1_no_bwd(&Gelu(self))
    }

    /// An encoder's attention of every row over every row, fused per block of queries
    /// ([`aimesh_kernels::attention`], with this softmax), from the stacked projections
    /// `[1, rows, 3 d]` (queries already scaled, then keys, then values, each `heads` side by
    /// side): `[1, rows, d]`.
    pub(crate) fn attention(&self, qkv: &Tensor, heads: usize) -> Result<Tensor> {
        qkv.apply_op1_no_bwd(&Attention {
            kernels: self,
            heads,
        })
    }
}

/// The contiguous f32 data of a tensor's storage, or an error naming the operation `op`.
pub(crate) fn contiguous<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous tensors only");
    };
    Ok(&data[start..end])
}

/// A copy of the contiguous f32 `storage`, with `f` applied to each chunk of `chunk` values on
/// candle's worker threads.
fn map_chunks(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
    chunk: usize,
    f: impl Fn(&mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let mut out = contiguous(op, storage, layout)?.to_vec();
    aimesh_kernels::for_each_chunk(&mut out, chunk, |_, chunk| f(chunk));
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

/// [`Kernels::gelu`] as a candle operation.
struct Gelu<'a>(&'a Kernels);

impl CustomOp1 for Gelu<'_> {
    fn name(&self) -> &'static str {
        "gelu-simd"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_chunks(self.name(), storage, layout, CHUNK, |values| {
            self.0.gelu_in_place(values)
        })
    }
}

/// [`Kernels::attention`] as a candle operation.
struct Attention<'a> {
    kernels: &'a Kernels,
    heads: usize,
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "attention-fused"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let values = contiguous(self.name(), storage, layout)?;
        let &[1, rows, width] = layout.shape().dims() else {
            candle_core::bail!("{}: one [1, rows, 3 d] tensor only", self.name());
        };
        if self.heads == 0 || !width.is_multiple_of(3 * self.heads) {
            candle_core::bail!("{width} stacked values are not 3 × {} heads", self.heads);
        }
        let head_dim = width / 3 / self.heads;
        let out = aimesh_kernels::attention(values, rows, self.heads, head_dim, &|row| {
            self.kernels.softmax(row)
        })?;
        Ok((CpuStorage::F32(out), Shape::from((1, rows, width / 3))))
    }
}

/// Folds `values` with `f` in eight lanes, value `i` into lane `i % 8`, then the lanes in
/// order: the same result for the same values wherever they lie, and a loop the compiler
/// turns into SIMD (a fold in one chain of additions it cannot).
pub(crate) fn fold_lanes(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = f(*lane, v);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(tail) {
        *lane = f(*lane, v);
    }
    lanes.into_iter().fold(init, f)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    /// tract's SIMD SiLU gives the exact formula's values, on every length (a SIMD body and
    /// a tail) and on large magnitudes; the softmax sums to one.
    #[test]
    fn swiglu_and_softmax_match_the_formulas() {
        let kernels = Kernels::new().expect("kernels");
        for len in [1, 7, 64, 193, 1536] {
            let gate: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 12.0).collect();
            let up: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos() * 3.0).collect();
            let mut out = vec![0f32; len];
            kernels.swiglu(&gate, &up, &mut out);
            for ((&o, &g), &u) in out.iter().zip(&gate).zip(&up) {
                let exact = g / (1.0 + (-g).exp()) * u;
                assert!(
                    (o - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                    "{g} {u}: {o} vs {exact}"
                );
            }

            let mut scores: Vec<f32> = gate.iter().map(|g| g * 4.0).collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = scores.iter().map(|s| (s - max).exp()).sum();
            let exact: Vec<f32> = scores.iter().map(|s| (s - max).exp() / total).collect();
            kernels.softmax(&mut scores);
            for (got, want) in scores.iter().zip(&exact) {
                assert!((got - want).abs() <= 1e-6 + 1e-5 * want, "{got} vs {want}");
            }
        }
    }

    /// The softmax gives the same values wherever its scores lie in memory (a seeded
    /// sampling depends on it), and `fold_lanes` on a tail shorter than the lanes.
    #[test]
    fn softmax_does_not_depend_on_the_address() {
        let kernels = Kernels::new().expect("kernels");
        for len in [1, 5, 17, 64, 193, 321] {
            let scores: Vec<f32> = (0..len).map(|i| (i as f32 * 0.73).sin() * 9.0).collect();
            let mut first = scores.clone();
            kernels.softmax(&mut first);
            let mut buffer = vec![0f32; len + 16];
            for offset in 1..16 {
                let shifted = &mut buffer[offset..offset + len];
                shifted.copy_from_slice(&scores);
                kernels.softmax(shifted);
                assert_eq!(shifted, &first[..], "{len} scores at offset {offset}");
            }
        }
        assert_eq!(fold_lanes(&[1.0, 2.0, 3.0], 0.0, |a, b| a + b), 6.0);
        assert_eq!(
            fold_lanes(&[], f32::NEG_INFINITY, f32::max),
            f32::NEG_INFINITY
        );
    }

    /// GELU over a tensor gives candle's own operation's values, on tensors of several chunks
    /// (spread over the worker threads) and on a short one.
    #[test]
    fn tensor_gelu_matches_candles() {
        let kernels = Kernels::new().expect("kernels");
        for (rows, width) in [(3, 5), (1500, 64), (40, 1500)] {
            let values: Vec<f32> = (0..rows * width)
                .map(|i| (i as f32 * 0.37).sin() * 6.0)
                .collect();
            let x = Tensor::from_vec(values, (1, rows, width), &Device::Cpu).expect("tensor");
            close(
                &kernels.gelu(&x).expect("gelu"),
                &x.gelu().expect("gelu"),
                1e-5,
                "gelu",
            );
        }
    }

    /// The fused attention gives what candle's operations give: scores, candle's softmax,
    /// weighted values, the heads laid out and back; on a window's 1,500 rows (several
    /// blocks) and on a few.
    #[test]
    fn attention_matches_candles_operations() {
        let kernels = Kernels::new().expect("kernels");
        for (rows, heads, head_dim) in [(1500, 2, 64), (5, 3, 8)] {
            let d = heads * head_dim;
            let values: Vec<f32> = (0..rows * 3 * d)
                .map(|i| (i as f32 * 0.37).sin() * 0.5)
                .collect();
            let qkv = Tensor::from_vec(values, (1, rows, 3 * d), &Device::Cpu).expect("qkv");
            let got = kernels.attention(&qkv, heads).expect("attention");
            let want = (|| {
                let qkv = qkv.reshape((rows, 3, heads, head_dim))?;
                let part = |i: usize| {
                    qkv.narrow(1, i, 1)?
                        .squeeze(1)?
                        .transpose(0, 1)?
                        .contiguous()
                };
                let (q, k, v) = (part(0)?, part(1)?, part(2)?);
                let weights = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
                weights.matmul(&v)?.transpose(0, 1)?.reshape((1, rows, d))
            })()
            .expect("candle's attention");
            close(&got, &want, 1e-4, "attention");
        }
        let qkv = Tensor::zeros((1, 4, 10), DType::F32, &Device::Cpu).expect("qkv");
        assert!(
            kernels.attention(&qkv, 3).is_err(),
            "10 is not 3 × 3 heads × n"
        );
    }

    /// Asserts that two tensors hold the same values, each within `tolerance` relative to
    /// one plus its magnitude.
    fn close(got: &Tensor, want: &Tensor, tolerance: f32, what: &str) {
        assert_eq!(got.dims(), want.dims(), "{what}");
        let got: Vec<f32> = got.flatten_all().and_then(|t| t.to_vec1()).expect("got");
        let want: Vec<f32> = want.flatten_all().and_then(|t| t.to_vec1()).expect("want");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= tolerance * (1.0 + w.abs()),
                "{what}: {g} vs {w}"
            );
        }
    }
}
