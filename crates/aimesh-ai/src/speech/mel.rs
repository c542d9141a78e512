//! Whisper's log-mel spectrogram and the mel filter bank it is computed with.
//!
//! Whisper ships the filter bank as a table made by `librosa.filters.mel` (Slaney's mel scale
//! with Slaney's area normalisation); candle does not carry it, so it is computed here with
//! the same formulas.
//!
//! The spectrogram follows Whisper's own: a centred short-time Fourier transform (reflection
//! padding, periodic Hann window of 400 samples, hop 160) by a real FFT, power spectra
//! projected on the filter bank (only the non-zero span of each filter), `log10` clamped at
//! `1e-10`, floored 8 below the maximum and mapped by `(x + 4) / 4`. (candle's
//! `pcm_to_mel` computes a non-centred variant with a slow recursive FFT; this one is about
//! a hundred times faster on long audio.)

use realfft::RealFftPlanner;

/// Sample rate Whisper works at.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size of Whisper's short-time Fourier transform.
pub const N_FFT: usize = 400;
/// Number of mel bands of tiny/base/small/medium models.
pub const N_MELS: usize = 80;
/// Samples between successive frames.
pub const HOP_LENGTH: usize = 160;

/// Below this frequency Slaney's scale is linear, above it logarithmic.
const MIN_LOG_HZ: f64 = 1000.0;
/// Hz per mel in the linear part.
const F_SP: f64 = 200.0 / 3.0;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Converts a frequency to Slaney's mel scale.
pub fn hz_to_mel(hz: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Converts a Slaney mel value back to a frequency.
pub fn mel_to_hz(mel: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (log_step() * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// The filter bank as `n_mels` rows of `n_fft / 2 + 1` weights, row-major: triangular filters
/// whose corners are evenly spaced on the mel scale from 0 Hz to the Nyquist frequency, each
/// scaled by `2 / (upper corner - lower corner)` so that every filter has the same area.
pub fn filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_hz: Vec<f64> = (0..bins)
        .map(|k| k as f64 * nyquist / (bins - 1) as f64)
        .collect();
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let corners: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = Vec::with_capacity(n_mels * bins);
    for i in 0..n_mels {
        let (left, centre, right) = (corners[i], corners[i + 1], corners[i + 2]);
        let norm = 2.0 / (right - left);
        for &hz in &fft_hz {
            let rising = (hz - left) / (centre - left);
            let falling = (right - hz) / (right - centre);
            weights.push((rising.min(falling).max(0.0) * norm) as f32);
        }
    }
    weights
}

/// Whisper's filter bank: 80 bands over a 400-point FFT at 16 kHz.
pub fn whisper_filters() -> Vec<f32> {
    filters(SAMPLE_RATE, N_FFT, N_MELS)
}

/// The log-mel spectrogram of `samples` (16 kHz mono) as `n_mels` rows of `samples.len() /
/// HOP_LENGTH` frames, row-major, with `filters` as made by [`filters`] for [`N_FFT`].
pub fn log_mel_spectrogram(samples: &[f32], filters: &[f32], n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let frames = samples.len() / HOP_LENGTH;
    if frames == 0 || filters.len() != n_mels * bins {
        return vec![0.0; n_mels * frames];
    }
    let half = N_FFT / 2;
    // Reflection padding on both sides (a sample that is not there reads as silence).
    let at = |i: isize| -> f32 {
        let n = samples.len() as isize;
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        usize::try_from(j)
            .ok()
            .and_then(|j| samples.get(j))
            .copied()
            .unwrap_or(0.0)
    };
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| 0.5 * (1.0 - (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    // The non-zero span of each filter.
    let spans: Vec<(usize, usize)> = (0..n_mels)
        .map(|m| {
            let row = &filters[m * bins..(m + 1) * bins];
            let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let end = row.iter().rposition(|&w| w != 0.0).map_or(0, |e| e + 1);
            (start, end.max(start))
        })
        .collect();

    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0f32; bins];
    let mut mel = vec![0f32; n_mels * frames];
    let mut max = f32::NEG_INFINITY;
    for t in 0..frames {
        let start = (t * HOP_LENGTH) as isize - half as isize;
        if start >= 0 && start as usize + N_FFT <= samples.len() {
            let frame = &samples[start as usize..start as usize + N_FFT];
            for ((x, &s), &w) in input.iter_mut().zip(frame).zip(&window) {
                *x = s * w;
            }
        } else {
            for (i, (x, &w)) in input.iter_mut().zip(&window).enumerate() {
                *x = at(start + i as isize) * w;
            }
        }
        if fft
            .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .is_err()
        {
            // Only fails on buffer sizes, which are the planner's own.
            continue;
        }
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.norm_sqr();
        }
        for (m, &(lo, hi)) in spans.iter().enumerate() {
            let weights = &filters[m * bins + lo..m * bins + hi];
            let energy: f32 = weights.iter().zip(&power[lo..hi]).map(|(w, p)| w * p).sum();
            let value = energy.max(1e-10).log10();
            max = max.max(value);
            mel[m * frames + t] = value;
        }
    }
    let floor = max - 8.0;
    for value in &mut mel {
        *value = (value.max(floor) + 4.0) / 4.0;
    }
    mel
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed with librosa's formulas in double precision (then rounded to f32, as
    /// librosa returns them).
    #[test]
    fn filters_match_librosa_slaney() {
        let weights = whisper_filters();
        let bins = N_FFT / 2 + 1;
        assert_eq!(weights.len(), N_MELS * bins);
        let known: [(usize, usize, f32); 10] = [
            (0, 1, 0.024_862_595),
            (0, 2, 0.0),
            (1, 2, 0.022_871_772),
            (1, 3, 0.0),
            (10, 10, 0.019_908_22),
            (40, 42, 0.005_411_105),
            (40, 43, 0.014_735_566),
            (79, 188, 0.001_299_398_4),
            (79, 199, 0.000_448_759_03),
            (79, 200, 0.0),
        ];
        for (band, bin, expected) in known {
            let actual = weights[band * bins + bin];
            assert!(
                (actual - expected).abs() <= 1e-6 * expected.abs().max(1e-3),
                "band {band} bin {bin}: {actual} != {expected}"
            );
        }
        let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        assert!((sum - 1.999_024_1).abs() < 1e-5, "{sum}");
        // Band 40 covers exactly bins 42..=44.
        let band40: Vec<usize> = (0..bins)
            .filter(|&k| weights[40 * bins + k] > 0.0)
            .collect();
        assert_eq!(band40, vec![42, 43, 44]);
    }

    #[test]
    fn a_tone_lights_up_its_band_and_silence_sits_at_the_floor() {
        let filters = whisper_filters();
        // 1 s of a 1 kHz tone, then 1 s of silence.
        let mut samples: Vec<f32> = (0..16_000)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin())
            .collect();
        samples.resize(32_000, 0.0);
        let mel = log_mel_spectrogram(&samples, &filters, N_MELS);
        let frames = 200;
        assert_eq!(mel.len(), N_MELS * frames);
        let at = |m: usize, t: usize| mel[m * frames + t];
        // The band whose centre is nearest 1 kHz holds the tone's energy.
        let loudest = (0..N_MELS)
            .max_by(|&a, &b| at(a, 50).total_cmp(&at(b, 50)))
            .expect("bands");
        let centre = mel_to_hz(hz_to_mel(0.0) + (hz_to_mel(8000.0) * (loudest + 1) as f64) / 81.0);
        assert!(
            (900.0..1100.0).contains(&centre),
            "band {loudest} at {centre} Hz"
        );
        // Silence sits at the floor: 8 below the maximum in log10, 2 after scaling.
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = mel.iter().copied().fold(f32::INFINITY, f32::min);
        assert!((max - floor - 2.0).abs() < 1e-5, "{max} {floor}");
        assert!((at(loudest, 150) - floor).abs() < 1e-6);
        assert!(at(loudest, 50) > floor + 1.5);
    }

    #[test]
    fn the_mel_scale_round_trips() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }
}
