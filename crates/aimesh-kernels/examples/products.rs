//! Times the tiled products on the shapes of SmolLM2-135M's matrices, for one row of
//! activations (a generated token) and for 193 (a prompt), and prints them with the kernel
//! this CPU takes (the fastest of many runs). Then Whisper's encoder matrices (tiny and base)
//! for a window's 1,500 audio frames in Q8_0, beside candle's f32 product of the same shape,
//! and their attention fused per block of queries beside whole-tensor operations.
//! `RAYON_NUM_THREADS=1` times one core;
//! `AIMESH_AMX=off` compares AMX's CPUs with their AVX-512 VNNI kernels:
//!
//! ```sh
//! cargo run --release -p aimesh-kernels --example products
//! AIMESH_AMX=off cargo run --release -p aimesh-kernels --example products
//! ```

use std::time::{Duration, Instant};

use aimesh_kernels::Tiles;
use candle_core::{Device, Result, Tensor, quantized::GgmlDType, quantized::QTensor};

fn main() -> Result<()> {
    // (outputs, inputs): attention's query, the feed-forward's up and down projections.
    let shapes = [(576, 576), (1536, 576), (576, 1536)];
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q4_0, GgmlDType::Q8_0] {
        for (outputs, inputs) in shapes {
            let weights: Vec<f32> = (0..outputs * inputs)
                .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let tensor = Tensor::from_slice(&weights, (outputs, inputs), &Device::Cpu)?;
            let Some(tiles) = Tiles::pack(&QTensor::quantize(&tensor, dtype)?)? else {
                println!("{dtype:?}: no kernel on this CPU");
                break;
            };
            let mut line = format!("{dtype:?} {outputs}x{inputs} ({tiles:?})");
            for rows in [1, 193] {
                let x: Vec<f32> = (0..rows * inputs)
                    .map(|i| (i * 104_729 % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let fastest = time(|| tiles.multiply(&x, rows).map(drop))?;
                let macs = (rows * outputs * inputs) as f64;
                line += &format!(
                    "; {rows} rows {:.1} µs, {:.1} GMAC/s",
                    fastest.as_secs_f64() * 1e6,
                    macs / fastest.as_secs_f64() / 1e9
                );
            }
            println!("{line}");
        }
    }
    // Whisper tiny's and base's encoder: attention's projections, the feed-forward's up and
    // down projections, over one 30-second window.
    const FRAMES: usize = 1500;
    for d in [384, 512] {
        for (outputs, inputs) in [(d, d), (4 * d, d), (d, 4 * d)] {
            let weights: Vec<f32> = (0..outputs * inputs)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05)
                .collect();
            let x: Vec<f32> = (0..FRAMES * inputs)
                .map(|i| (i * 104_729 % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let weight = Tensor::from_slice(&weights, (outputs, inputs), &Device::Cpu)?;
            let frames = Tensor::from_slice(&x, (1, FRAMES, inputs), &Device::Cpu)?;
            let transposed = weight.t()?;
            let f32_time = time(|| frames.broadcast_matmul(&transposed).map(drop))?;
            let mut line = format!(
                "encoder {outputs}x{inputs}, {FRAMES} rows: f32 {:.0} µs",
                f32_time.as_secs_f64() * 1e6
            );
            if let Some(tiles) = Tiles::pack(&QTensor::quantize(&weight, GgmlDType::Q8_0)?)? {
                let q8 = time(|| tiles.multiply(&x, FRAMES).map(drop))?;
                line += &format!(
                    ", Q8_0 {:.0} µs ({:.2}x)",
                    q8.as_secs_f64() * 1e6,
                    f32_time.as_secs_f64() / q8.as_secs_f64()
                );
            }
            println!("{line}");
        }
        attention(d, FRAMES)?;
    }
    Ok(())
}

/// A window's attention (heads of 64) fused per block of queries, beside the same done as
/// whole-tensor operations (scores, a pass over a copy of them, weighted values, the heads
/// laid out and back). Both sides normalise each row of scores by its largest magnitude, a
/// cheap pass standing in for the softmax (whose exponentials the engines run on tract's
/// SIMD kernels, and a scalar loop here would dwarf the rest): what is timed is the products
/// and the memory the scores go through.
fn attention(d: usize, frames: usize) -> Result<()> {
    let (heads, head_dim) = (d / 64, 64);
    let softmax = |row: &mut [f32]| {
        let scale = 1.0 / row.iter().fold(f32::MIN_POSITIVE, |m, s| m.max(s.abs()));
        row.iter_mut().for_each(|s| *s *= scale);
    };
    let qkv: Vec<f32> = (0..frames * 3 * d)
        .map(|i| ((i * 104_729 % 1000) as f32 / 500.0 - 1.0) * 0.3)
        .collect();
    let fused =
        time(|| aimesh_kernels::attention(&qkv, frames, heads, head_dim, &softmax).map(drop))?;
    let stacked = Tensor::from_slice(&qkv, (frames, 3, heads, head_dim), &Device::Cpu)?;
    let part = |i: usize| {
        stacked
            .narrow(1, i, 1)?
            .squeeze(1)?
            .transpose(0, 1)?
            .contiguous()
    };
    let tensors = time(|| {
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let mut scores = q.matmul(&k.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        aimesh_kernels::for_each_chunk(&mut scores, 16 * frames, |_, rows| {
            rows.chunks_exact_mut(frames).for_each(softmax)
        });
        let weights = Tensor::from_vec(scores, (heads, frames, frames), &Device::Cpu)?;
        let out = weights.matmul(&v)?.transpose(0, 1)?.contiguous()?;
        drop(out);
        Ok(())
    })?;
    println!(
        "encoder attention, {heads} heads, {frames} rows: tensor operations {:.0} µs, fused {:.0} µs ({:.2}x)",
        tensors.as_secs_f64() * 1e6,
        fused.as_secs_f64() * 1e6,
        tensors.as_secs_f64() / fused.as_secs_f64()
    );
    Ok(())
}

/// The fastest of runs of `f` over about half a second, after a warm-up: the kernel's own
/// speed, whatever else the machine is doing.
fn time(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    let once = start.elapsed().max(Duration::from_micros(1));
    let runs = (Duration::from_millis(500).as_secs_f64() / once.as_secs_f64()).clamp(5.0, 5000.0);
    let mut times = Vec::new();
    for _ in 0..runs as usize {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(times.into_iter().min().unwrap_or(once))
}
