//! Audio decoding for speech-to-text: a WAV, FLAC, MP3, Ogg (Vorbis or Opus), WebM/Matroska
//! (Opus or Vorbis) or MP4 (AAC) file held in memory is decoded with symphonia, downmixed to
//! mono and resampled to 16 kHz with rubato. Opus, what browsers record and symphonia 0.5 has
//! no codec for, is decoded by libopus (statically linked, through
//! `symphonia-adapter-libopus`) registered beside symphonia's own codecs in [`codecs`].

use std::{io::Cursor, sync::LazyLock, time::Duration};

use rubato::{FftFixedInOut, Resampler};
use symphonia::core::{
    audio::SampleBuffer,
    codecs::{CODEC_TYPE_NULL, CodecRegistry, DecoderOptions},
    errors::Error as SymphoniaError,
    formats::FormatOptions,
    io::MediaSourceStream,
    meta::MetadataOptions,
    probe::Hint,
};

use crate::engine::EngineError;

/// The audio codecs recordings are decoded with: symphonia's, and Opus through libopus.
pub fn codecs() -> &'static CodecRegistry {
    static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_all::<symphonia_adapter_libopus::OpusDecoder>();
        registry
    });
    &CODECS
}

/// The request field audio arrives in.
const FIELD: &str = "audio";

/// Input frames per resampler chunk.
const RESAMPLE_CHUNK: usize = 4096;

/// Decodes an audio file into 16 kHz mono samples in `[-1, 1]`. Refuses (field `audio`)
/// bytes that are not a supported audio file, audio with no samples, and audio longer than
/// `max_duration`.
pub fn decode_mono(
    bytes: Vec<u8>,
    target_rate: u32,
    max_duration: Duration,
) -> Result<Vec<f32>, EngineError> {
    if bytes.is_empty() {
        return Err(EngineError::invalid(FIELD, "empty"));
    }
    let (samples, rate) = decode_to_mono(bytes, max_duration)?;
    if samples.is_empty() {
        return Err(EngineError::invalid(FIELD, "contains no samples"));
    }
    resample(samples, rate, target_rate)
}

/// Decodes the first audio track and averages its channels.
fn decode_to_mono(bytes: Vec<u8>, max_duration: Duration) -> Result<(Vec<f32>, u32), EngineError> {
    let undecodable = |error: SymphoniaError| {
        EngineError::invalid(FIELD, format!("not a supported audio file: {error}"))
    };
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(undecodable)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| EngineError::invalid(FIELD, "has no audio track"))?;
    let track_id = track.id;
    let mut decoder = codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(undecodable)?;

    let mut mono = Vec::new();
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(error))
                if error.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(error) if !mono.is_empty() => {
                // A damaged tail: keep what decoded.
                tracing::debug!(%error, "audio stream ends early");
                break;
            }
            Err(error) => return Err(undecodable(error)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(error)) => {
                bad_packets += 1;
                tracing::debug!(error, "skipping an undecodable audio packet");
                continue;
            }
            Err(error) => return Err(undecodable(error)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        rate = spec.rate;
        let frames = decoded.capacity();
        let samples = match &mut buffer {
            Some(buffer) if buffer.capacity() >= frames * channels => buffer,
            slot => slot.insert(SampleBuffer::new(frames as u64, spec)),
        };
        samples.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        mono.extend(
            samples
                .samples()
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        if rate > 0 && mono.len() as f64 > max_duration.as_secs_f64() * f64::from(rate) {
            return Err(EngineError::invalid(
                FIELD,
                format!("longer than {} s", max_duration.as_secs()),
            ));
        }
    }
    if mono.is_empty() && bad_packets > 0 {
        return Err(EngineError::invalid(FIELD, "no packet could be decoded"));
    }
    if rate == 0 {
        return Err(EngineError::invalid(FIELD, "has no sample rate"));
    }
    Ok((mono, rate))
}

/// Resamples mono audio from `from` Hz to `to` Hz with an FFT resampler.
pub fn resample(samples: Vec<f32>, from: u32, to: u32) -> Result<Vec<f32>, EngineError> {
    if from == to {
        return Ok(samples);
    }
    let failed = |error: &dyn std::fmt::Display| EngineError::failed("resampler", error);
    let mut resampler = FftFixedInOut::<f32>::new(from as usize, to as usize, RESAMPLE_CHUNK, 1)
        .map_err(|e| failed(&e))?;
    let expected = (samples.len() as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay + 2 * resampler.output_frames_max());
    let mut position = 0;
    while out.len() < expected + delay {
        let need = resampler.input_frames_next();
        let chunk = if position + need <= samples.len() {
            let chunk = resampler
                .process(&[&samples[position..position + need]], None)
                .map_err(|e| failed(&e))?;
            position += need;
            chunk
        } else if position < samples.len() {
            let chunk = resampler
                .process_partial(Some(&[&samples[position..]]), None)
                .map_err(|e| failed(&e))?;
            position = samples.len();
            chunk
        } else {
            resampler
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| failed(&e))?
        };
        match chunk.into_iter().next() {
            Some(channel) if !channel.is_empty() => out.extend(channel),
            _ => break,
        }
    }
    let end = (delay + expected).min(out.len());
    Ok(out.get(delay..end).map(<[f32]>::to_vec).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, frames: &[Vec<f32>]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("writer");
        for frame in frames {
            for &sample in frame {
                writer
                    .write_sample((sample * 32767.0) as i16)
                    .expect("sample");
            }
        }
        writer.finalize().expect("finalize");
        bytes.into_inner()
    }

    fn tone(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * hz * n as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn stereo_44k_is_downmixed_and_resampled_keeping_pitch() {
        let left = tone(44_100, 440.0, 1.0);
        let frames: Vec<Vec<f32>> = left.iter().map(|&s| vec![s, s]).collect();
        let mono =
            decode_mono(wav(44_100, 2, &frames), 16_000, Duration::from_secs(5)).expect("decodes");
        assert!((mono.len() as i64 - 16_000).abs() <= 1, "{}", mono.len());
        // 440 Hz at 16 kHz: count rising zero crossings over the middle half second.
        let middle = &mono[4_000..12_000];
        let crossings = middle
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((218..=222).contains(&crossings), "{crossings}");
        let peak = middle.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.45..0.55).contains(&peak), "{peak}");
    }

    #[test]
    fn opposite_channels_cancel_in_the_downmix() {
        let left = tone(16_000, 300.0, 0.5);
        let frames: Vec<Vec<f32>> = left.iter().map(|&s| vec![s, -s]).collect();
        let mono =
            decode_mono(wav(16_000, 2, &frames), 16_000, Duration::from_secs(5)).expect("decodes");
        assert_eq!(mono.len(), 8_000);
        assert!(mono.iter().all(|s| s.abs() < 1e-3));
    }

    #[test]
    fn too_long_empty_and_garbage_audio_are_refused() {
        let long = wav(16_000, 1, &vec![vec![0.1]; 32_000]);
        let error = decode_mono(long, 16_000, Duration::from_secs(1)).expect_err("too long");
        assert!(
            matches!(error, EngineError::InvalidInput { field: "audio", .. }),
            "{error}"
        );
        for bytes in [
            Vec::new(),
            b"definitely not audio, just some text".repeat(50),
            wav(16_000, 1, &[]),
        ] {
            let error = decode_mono(bytes, 16_000, Duration::from_secs(5)).expect_err("refused");
            assert!(
                matches!(error, EngineError::InvalidInput { field: "audio", .. }),
                "{error}"
            );
        }
    }
}
