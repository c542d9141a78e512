//! Encoding synthesised speech into the stored formats: WAV (hound), MP3 (LAME, through
//! `mp3lame-encoder`) and Opus in Ogg (libopus, through `opus`, in pages written by `ogg`),
//! at the sample rate the caller asks for (the engine's output resampled).
//!
//! The Ogg Opus stream follows RFC 7845: an `OpusHead` page (channel count, the encoder's
//! pre-skip, the input rate), an `OpusTags` page, then 20 ms packets whose granule positions
//! count 48 kHz samples, the last page's position marking where the speech ends (so a player
//! drops the padding of the final frame).

use std::io::Cursor;

use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, Mode, MonoPcm, Quality};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use crate::domain::AudioFormat;

/// MP3 bit rate: speech, mono.
const MP3_BITRATE: Bitrate = Bitrate::Kbps64;
/// Opus bit rate: speech, mono (transparent for a voice well below this).
const OPUS_BITRATE: i32 = 32_000;
/// Opus frame length in milliseconds.
const OPUS_FRAME_MS: u32 = 20;
/// Opus packets per Ogg page (a page a second: seeking granularity without much overhead).
const PACKETS_PER_PAGE: usize = 50;
/// The rate Ogg Opus granule positions count in.
const GRANULE_RATE: u64 = 48_000;
/// Sample rates libopus encodes at.
const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Encoded audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The file.
    pub bytes: Vec<u8>,
    /// Samples per second the caller asked for (the stored file's rate; for Ogg Opus the
    /// input rate its header records).
    pub sample_rate: u32,
    /// Length, in seconds.
    pub duration: f64,
}

/// Why audio could not be encoded (an internal failure: the input is the engine's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoding audio: {0}")]
pub struct EncodeError(String);

fn failed(error: impl std::fmt::Display) -> EncodeError {
    EncodeError(error.to_string())
}

/// Encodes the engine's WAV (16-bit PCM, mono or more channels, mixed down) as `format` at
/// `sample_rate` (0: the WAV's own rate).
pub fn encode(wav: &[u8], format: AudioFormat, sample_rate: u32) -> Result<Encoded, EncodeError> {
    let (samples, from) = read_wav(wav)?;
    let rate = if sample_rate == 0 { from } else { sample_rate };
    let duration = samples.len() as f64 / f64::from(from);
    let bytes = match format {
        AudioFormat::Wav => wav_bytes(&resample(&samples, from, rate)?, rate)?,
        AudioFormat::Mp3 => mp3_bytes(&resample(&samples, from, rate)?, rate)?,
        AudioFormat::OggOpus => {
            // Opus codes at 8, 12, 16, 24 or 48 kHz: the nearest one at or above the rate
            // asked, which the header records as the input rate.
            let coded = OPUS_RATES
                .into_iter()
                .find(|&r| r >= rate)
                .unwrap_or(48_000);
            ogg_opus_bytes(&resample(&samples, from, coded)?, coded, rate)?
        }
    };
    Ok(Encoded {
        bytes,
        sample_rate: rate,
        duration,
    })
}

/// Reads a WAV into mono samples in `[-1, 1]` and its rate.
fn read_wav(wav: &[u8]) -> Result<(Vec<f32>, u32), EncodeError> {
    let reader = hound::WavReader::new(Cursor::new(wav)).map_err(failed)?;
    let spec = reader.spec();
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(EncodeError("the WAV has no sample rate or channels".into()));
    }
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(EncodeError(format!(
            "the WAV is {:?} {}-bit, not 16-bit PCM",
            spec.sample_format, spec.bits_per_sample
        )));
    }
    let channels = usize::from(spec.channels);
    let interleaved = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    let scale = 1.0 / (f32::from(i16::MAX) * channels as f32);
    let mono = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().map(|&s| f32::from(s)).sum::<f32>() * scale)
        .collect();
    Ok((mono, spec.sample_rate))
}

/// Resamples mono samples from `from` to `to` Hz (the transcriber's band-limited resampler).
fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, EncodeError> {
    aimesh_ai::speech::audio::resample(samples.to_vec(), from, to).map_err(failed)
}

fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16
}

/// Mono samples in `[-1, 1]` as a 16-bit PCM WAV file.
pub(crate) fn wav_bytes(samples: &[f32], rate: u32) -> Result<Vec<u8>, EncodeError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut writer = hound::WavWriter::new(&mut bytes, spec).map_err(failed)?;
    for &sample in samples {
        writer.write_sample(to_i16(sample)).map_err(failed)?;
    }
    writer.finalize().map_err(failed)?;
    Ok(bytes.into_inner())
}

fn mp3_bytes(samples: &[f32], rate: u32) -> Result<Vec<u8>, EncodeError> {
    let mut builder = Builder::new().ok_or_else(|| EncodeError("LAME failed to start".into()))?;
    builder.set_num_channels(1).map_err(failed)?;
    builder.set_sample_rate(rate).map_err(failed)?;
    // The output at the rate asked, not one LAME would pick for the bit rate.
    builder
        .set_output_sample_rate(std::num::NonZeroU32::new(rate))
        .map_err(failed)?;
    builder.set_mode(Mode::Mono).map_err(failed)?;
    builder.set_brate(MP3_BITRATE).map_err(failed)?;
    builder.set_quality(Quality::Good).map_err(failed)?;
    let mut encoder = builder.build().map_err(failed)?;
    let pcm: Vec<i16> = samples.iter().copied().map(to_i16).collect();
    let mut out = Vec::with_capacity(samples.len() / 4 + 7200);
    for chunk in pcm.chunks(8192) {
        out.reserve(mp3lame_encoder::max_required_buffer_size(chunk.len()));
        encoder
            .encode_to_vec(MonoPcm(chunk), &mut out)
            .map_err(failed)?;
    }
    // The final frames need at most 7200 bytes.
    out.reserve(7200);
    encoder
        .flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(failed)?;
    Ok(out)
}

/// Opus in Ogg: `samples` at `coded` Hz (a rate libopus encodes), `input_rate` recorded in the
/// header.
fn ogg_opus_bytes(samples: &[f32], coded: u32, input_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let mut encoder =
        opus::Encoder::new(coded, opus::Channels::Mono, opus::Application::Voip).map_err(failed)?;
    encoder
        .set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))
        .map_err(failed)?;
    let to_granules = |n: u64| n * GRANULE_RATE / u64::from(coded);
    let lookahead = u64::try_from(encoder.get_lookahead().map_err(failed)?).map_err(failed)?;
    let pre_skip = to_granules(lookahead);
    let frame = (coded * OPUS_FRAME_MS / 1000) as usize;

    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&u16::try_from(pre_skip).map_err(failed)?.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono/stereo
    let vendor = concat!("aimesh ", env!("CARGO_PKG_VERSION"), " (libopus)");
    let mut tags = Vec::with_capacity(16 + vendor.len());
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments

    // The stream's serial number: any value, unique within the file (there is one stream).
    const SERIAL: u32 = 0x6169_6d65;
    let mut writer = PacketWriter::new(Cursor::new(Vec::new()));
    writer
        .write_packet(head, SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(failed)?;
    writer
        .write_packet(tags, SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(failed)?;

    // The encoder's lookahead delays the output: feed that many samples of silence past the
    // end so the last real sample is coded, then mark the true end in the final granule.
    let mut input = samples.to_vec();
    input.resize(samples.len() + lookahead as usize, 0.0);
    let frames = input.len().div_ceil(frame).max(1);
    input.resize(frames * frame, 0.0);
    let end = pre_skip + to_granules(samples.len() as u64);
    let mut packet = vec![0u8; 4000];
    for (index, pcm) in input.chunks_exact(frame).enumerate() {
        let length = encoder.encode_float(pcm, &mut packet).map_err(failed)?;
        let last = index + 1 == frames;
        let granule = (to_granules(((index + 1) * frame) as u64)).min(end);
        let info = if last {
            PacketWriteEndInfo::EndStream
        } else if (index + 1) % PACKETS_PER_PAGE == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        writer
            .write_packet(packet[..length].to_vec(), SERIAL, info, granule)
            .map_err(failed)?;
    }
    Ok(writer.into_inner().into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second of a 440 Hz tone as the engine's WAV would carry it.
    fn tone_wav(rate: u32, seconds: f32) -> Vec<u8> {
        let samples: Vec<f32> = (0..(rate as f32 * seconds) as usize)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / rate as f32).sin())
            .collect();
        wav_bytes(&samples, rate).unwrap()
    }

    /// Decodes a file with the server's own decoder (Opus included) into 16 kHz mono.
    fn decode(bytes: Vec<u8>) -> Vec<f32> {
        aimesh_ai::speech::audio::decode_mono(bytes, 16_000, std::time::Duration::from_secs(60))
            .unwrap()
    }

    /// The dominant frequency's strength: correlation with a 440 Hz tone in `[0, 1]`.
    fn tone_strength(samples: &[f32], rate: f32) -> f32 {
        let (mut re, mut im, mut energy) = (0.0f32, 0.0f32, 0.0f32);
        for (n, &s) in samples.iter().enumerate() {
            let phase = 2.0 * std::f32::consts::PI * 440.0 * n as f32 / rate;
            re += s * phase.cos();
            im += s * phase.sin();
            energy += s * s;
        }
        let n = samples.len() as f32;
        ((re * re + im * im).sqrt() * 2.0 / n) / (energy * 2.0 / n).sqrt()
    }

    #[test]
    fn every_format_decodes_back_to_the_same_tone_and_length() {
        let wav = tone_wav(22_050, 1.0);
        for format in [AudioFormat::Wav, AudioFormat::Mp3, AudioFormat::OggOpus] {
            for rate in [0, 8_000, 16_000, 44_100, 48_000] {
                let encoded = encode(&wav, format, rate).unwrap();
                let expected = if rate == 0 { 22_050 } else { rate };
                assert_eq!(encoded.sample_rate, expected, "{format:?} at {rate}");
                assert!(
                    (encoded.duration - 1.0).abs() < 0.001,
                    "{}",
                    encoded.duration
                );
                let decoded = decode(encoded.bytes.clone());
                // MP3 adds the encoder's and decoder's delay (1,105 samples) and pads the last
                // frame; Opus pads its last 20 ms frame.
                let slack = if format == AudioFormat::Mp3 {
                    2_400.0 / f64::from(expected)
                } else {
                    0.05
                };
                let seconds = decoded.len() as f64 / 16_000.0;
                assert!(
                    (seconds - 1.0).abs() < slack,
                    "{format:?} at {rate}: {seconds} s"
                );
                let middle = &decoded[4_000..12_000];
                let strength = tone_strength(middle, 16_000.0);
                assert!(strength > 0.9, "{format:?} at {rate}: {strength}");
            }
        }
    }

    #[test]
    fn the_containers_are_what_they_say() {
        let wav = tone_wav(22_050, 0.5);
        let ogg = encode(&wav, AudioFormat::OggOpus, 0).unwrap().bytes;
        assert_eq!(&ogg[..4], b"OggS");
        assert_eq!(&ogg[28..36], b"OpusHead");
        // The input rate the header records is the one asked.
        assert_eq!(u32::from_le_bytes(ogg[40..44].try_into().unwrap()), 22_050);
        let mp3 = encode(&wav, AudioFormat::Mp3, 0).unwrap().bytes;
        assert!(
            mp3[0] == 0xff && mp3[1] & 0xe0 == 0xe0,
            "an MPEG frame sync"
        );
        let wav8k = encode(&wav, AudioFormat::Wav, 8_000).unwrap().bytes;
        let reader = hound::WavReader::new(Cursor::new(wav8k)).unwrap();
        assert_eq!(reader.spec().sample_rate, 8_000);
        assert_eq!(reader.duration(), 4_000);
    }

    #[test]
    fn compressed_formats_are_smaller() {
        let wav = tone_wav(22_050, 2.0);
        let mp3 = encode(&wav, AudioFormat::Mp3, 0).unwrap().bytes.len();
        let ogg = encode(&wav, AudioFormat::OggOpus, 0).unwrap().bytes.len();
        assert!(mp3 * 4 < wav.len(), "{mp3} vs {}", wav.len());
        assert!(ogg * 8 < wav.len(), "{ogg} vs {}", wav.len());
    }

    #[test]
    fn a_wav_that_is_not_16_bit_pcm_is_refused() {
        assert!(encode(b"not a wav", AudioFormat::Mp3, 0).is_err());
    }
}
