//! Element-wise functions on tract-linalg's SIMD kernels (SiLU, GELU, the exponential), the
//! best this CPU has, and the softmax built on them, for the engines' own model code; and
//! two of them as candle operations over whole tensors, spread over candle's worker threads.
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

    /// The softmax of every row of the f32 tensor `x` (over its last dimension), the rows
    /// spread over candle's worker threads.
    pub(crate) fn softmax_last_dim(&self, x: &Tensor) -> Result<Tensor> {
        x.apply_op1_no_bwd(&SoftmaxRows(self))
    }
}

/// A copy of the contiguous f32 `storage`, with `f` applied to each chunk of `chunk` values on
/// candle's worker threads.
fn map_chunks(
    storage: &CpuStorage,
    layout: &Layout,
    chunk: usize,
    f: impl Fn(&mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("only f32 values");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the values must be contiguous");
    };
    let mut out = values[start..end].to_vec();
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
        map_chunks(storage, layout, CHUNK, |values| {
            self.0.gelu_in_place(values)
        })
    }
}

/// [`Kernels::softmax_last_dim`] as a candle operation.
struct SoftmaxRows<'a>(&'a Kernels);

impl CustomOp1 for SoftmaxRows<'_> {
    fn name(&self) -> &'static str {
        "softmax-rows-simd"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let width = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let rows = CHUNK.div_ceil(width);
        map_chunks(storage, layout, rows * width, |chunk| {
            chunk
                .chunks_exact_mut(width)
                .for_each(|row| self.0.softmax(row));
        })
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
    use candle_core::Device;

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

    /// GELU and the softmax over a tensor's rows give candle's own operations' values, on
    /// tensors of several chunks (spread over the worker threads) and on a short one.
    #[test]
    fn tensor_gelu_and_softmax_match_candles() {
        let kernels = Kernels::new().expect("kernels");
        for (rows, width) in [(3, 5), (1500, 64), (40, 1500)] {
            let values: Vec<f32> = (0..rows * width)
                .map(|i| (i as f32 * 0.37).sin() * 6.0)
                .collect();
            let x = Tensor::from_vec(values, (1, rows, width), &Device::Cpu).expect("tensor");
            let close = |got: &Tensor, want: &Tensor, what: &str| {
                let got: Vec<f32> = got.flatten_all().and_then(|t| t.to_vec1()).expect("got");
                let want: Vec<f32> = want.flatten_all().and_then(|t| t.to_vec1()).expect("want");
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{what}: {g} vs {w}"
                    );
                }
            };
            close(
                &kernels.gelu(&x).expect("gelu"),
                &x.gelu().expect("gelu"),
                "gelu",
            );
            close(
                &kernels.softmax_last_dim(&x).expect("softmax"),
                &candle_nn::ops::softmax_last_dim(&x).expect("softmax"),
                "softmax",
            );
        }
    }
}
