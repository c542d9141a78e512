//! Streamed decoding of a recording into 30-second windows of 16 kHz mono samples, so that
//! an hour of audio is transcribed holding the compressed file and one window, never the
//! whole decoded signal (an hour at 16 kHz in f32 is 230 MB).
//!
//! Containers are symphonia's: WAV, FLAC, MP3, Ogg, MP4/M4A and Matroska/WebM; codecs are
//! the transcriber's ([`aimesh_ai::speech::audio::codecs`]): symphonia's PCM, FLAC, MP3,
//! Vorbis and AAC, and Opus (what browsers record into WebM and Ogg, and phones' voice
//! notes) through libopus. Resampling is rubato's FFT resampler, fed packet by packet.

use std::io::Cursor;

use bytes::Bytes;
use rubato::{FftFixedInOut, Resampler};
use symphonia::core::{
    audio::SampleBuffer,
    codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions},
    errors::Error as SymphoniaError,
    formats::{FormatOptions, FormatReader},
    io::MediaSourceStream,
    meta::MetadataOptions,
    probe::Hint,
};

/// Samples per second Whisper takes.
pub const SAMPLE_RATE: u32 = 16_000;
/// Seconds per window.
pub const WINDOW_SECONDS: u32 = 30;
/// Samples per window.
pub const WINDOW_SAMPLES: usize = (SAMPLE_RATE * WINDOW_SECONDS) as usize;

/// Input frames per resampler chunk.
const RESAMPLE_CHUNK: usize = 4096;

/// Why a recording cannot be decoded; the message is meant for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AudioError(pub String);

/// A recording being decoded window by window.
pub struct Windows {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// Frames and rate the container declares, when it does.
    declared: Option<(u64, u32)>,
    buffer: Option<SampleBuffer<f32>>,
    resampler: Option<Stream>,
    /// Decoded 16 kHz samples not yet handed out.
    pending: Vec<f32>,
    /// Seconds decoded so far.
    decoded_seconds: f64,
    max_seconds: f64,
    ended: bool,
    bad_packets: usize,
    good_packets: usize,
}

impl std::fmt::Debug for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windows")
            .field("track_id", &self.track_id)
            .field("decoded_seconds", &self.decoded_seconds)
            .finish_non_exhaustive()
    }
}

/// A resampler to 16 kHz fed in fixed chunks.
struct Stream {
    resampler: FftFixedInOut<f32>,
    input: Vec<f32>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
    /// Input rate.
    from: u32,
    /// Input frames received.
    frames_in: u64,
    /// Output samples emitted.
    emitted: u64,
}

impl Windows {
    /// Opens a recording: probes its container and finds a decodable audio track. Refuses
    /// bytes that are no supported audio and recordings whose declared length exceeds
    /// `max_seconds`.
    pub fn open(bytes: Bytes, max_seconds: f64) -> Result<Self, AudioError> {
        if bytes.is_empty() {
            return Err(AudioError("is empty".into()));
        }
        let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
        let probed = symphonia::default::get_probe()
            .format(
                &Hint::new(),
                source,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
            .map_err(|error| {
                AudioError(format!(
                    "is not a supported audio file (WAV, FLAC, MP3, Ogg Vorbis or Opus, \
                     WebM, MP4/AAC): {error}"
                ))
            })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| AudioError("has no audio track".into()))?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        let decoder = aimesh_ai::speech::audio::codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|error| AudioError(format!("uses an unsupported codec: {error}")))?;
        let declared = params.n_frames.zip(params.sample_rate);
        if let Some((frames, rate)) = declared
            && rate > 0
            && frames as f64 / f64::from(rate) > max_seconds
        {
            return Err(AudioError(format!(
                "lasts {:.0} s, longer than the limit of {max_seconds:.0} s",
                frames as f64 / f64::from(rate)
            )));
        }
        Ok(Self {
            format,
            decoder,
            track_id,
            declared,
            buffer: None,
            resampler: None,
            pending: Vec::new(),
            decoded_seconds: 0.0,
            max_seconds,
            ended: false,
            bad_packets: 0,
            good_packets: 0,
        })
    }

    /// The length the container declares, in seconds, when it does.
    pub fn declared_seconds(&self) -> Option<f64> {
        self.declared
            .filter(|&(_, rate)| rate > 0)
            .map(|(frames, rate)| frames as f64 / f64::from(rate))
    }

    /// Decodes up to the next full window and returns it (the last one may be shorter);
    /// `None` once the recording is exhausted.
    pub fn next_window(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
        while self.pending.len() < WINDOW_SAMPLES && !self.ended {
            self.decode_packet()?;
        }
        if self.pending.is_empty() {
            if self.good_packets == 0 {
                return Err(AudioError(if self.bad_packets > 0 {
                    "has no decodable packet".into()
                } else {
                    "contains no samples".into()
                }));
            }
            return Ok(None);
        }
        let take = self.pending.len().min(WINDOW_SAMPLES);
        let rest = self.pending.split_off(take);
        Ok(Some(std::mem::replace(&mut self.pending, rest)))
    }

    /// Decodes one packet into `pending` (or flushes the resampler at the end).
    fn decode_packet(&mut self) -> Result<(), AudioError> {
        let packet = match self.format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(error))
                if error.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return self.finish();
            }
            Err(SymphoniaError::ResetRequired) => return self.finish(),
            Err(error) if self.good_packets > 0 => {
                tracing::debug!(%error, "audio stream ends early");
                return self.finish();
            }
            Err(error) => return Err(AudioError(format!("cannot be read: {error}"))),
        };
        if packet.track_id() != self.track_id {
            return Ok(());
        }
        let decoded = match self.decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(error)) => {
                self.bad_packets += 1;
                tracing::debug!(error, "skipping an undecodable audio packet");
                return Ok(());
            }
            Err(error) => return Err(AudioError(format!("cannot be decoded: {error}"))),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        if spec.rate == 0 {
            return Err(AudioError("has no sample rate".into()));
        }
        let frames = decoded.capacity();
        let buffer = match &mut self.buffer {
            Some(buffer) if buffer.capacity() >= frames * channels => buffer,
            slot => slot.insert(SampleBuffer::new(frames as u64, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        self.good_packets += 1;
        let scale = 1.0 / channels as f32;
        let mono = buffer
            .samples()
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale);
        let added = buffer.samples().len() / channels;
        self.decoded_seconds += added as f64 / f64::from(spec.rate);
        if self.decoded_seconds > self.max_seconds {
            return Err(AudioError(format!(
                "is longer than the limit of {:.0} s",
                self.max_seconds
            )));
        }
        if spec.rate == SAMPLE_RATE {
            self.pending.extend(mono);
            return Ok(());
        }
        let stream = match &mut self.resampler {
            Some(stream) => stream,
            slot => {
                let resampler = FftFixedInOut::<f32>::new(
                    spec.rate as usize,
                    SAMPLE_RATE as usize,
                    RESAMPLE_CHUNK,
                    1,
                )
                .map_err(|error| AudioError(format!("cannot be resampled: {error}")))?;
                let skip = resampler.output_delay();
                slot.insert(Stream {
                    resampler,
                    input: Vec::new(),
                    skip,
                    from: spec.rate,
                    frames_in: 0,
                    emitted: 0,
                })
            }
        };
        stream.input.extend(mono);
        stream.frames_in += added as u64;
        stream.drain(&mut self.pending, false)
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.ended = true;
        match &mut self.resampler {
            Some(stream) => stream.drain(&mut self.pending, true),
            None => Ok(()),
        }
    }
}

impl Stream {
    /// Resamples whole chunks of the input (and, at the end, the rest and the delay).
    fn drain(&mut self, out: &mut Vec<f32>, end: bool) -> Result<(), AudioError> {
        let failed = |error: &dyn std::fmt::Display| AudioError(format!("resampling: {error}"));
        let mut consumed = 0;
        loop {
            let need = self.resampler.input_frames_next();
            if self.input.len() - consumed < need {
                break;
            }
            let chunk = self
                .resampler
                .process(&[&self.input[consumed..consumed + need]], None)
                .map_err(|e| failed(&e))?;
            consumed += need;
            self.emit(chunk, out);
        }
        self.input.drain(..consumed);
        if end {
            let rest = std::mem::take(&mut self.input);
            if !rest.is_empty() {
                let chunk = self
                    .resampler
                    .process_partial(Some(&[&rest[..]]), None)
                    .map_err(|e| failed(&e))?;
                self.emit(chunk, out);
            }
            let tail = self
                .resampler
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| failed(&e))?;
            self.emit(tail, out);
        }
        Ok(())
    }

    /// Appends a resampled chunk, past the delay and never beyond the length the input
    /// stands for (the final flush pads).
    fn emit(&mut self, chunk: Vec<Vec<f32>>, out: &mut Vec<f32>) {
        if let Some(channel) = chunk.into_iter().next() {
            let skip = self.skip.min(channel.len());
            self.skip -= skip;
            let expected =
                (self.frames_in * u64::from(SAMPLE_RATE)).div_ceil(u64::from(self.from.max(1)));
            let room = usize::try_from(expected.saturating_sub(self.emitted)).unwrap_or(usize::MAX);
            let samples = &channel[skip..];
            let samples = &samples[..samples.len().min(room)];
            self.emitted += samples.len() as u64;
            out.extend_from_slice(samples);
        }
    }
}

/// Encodes 16 kHz mono samples as a 16-bit PCM WAV file (what the transcriber takes).
pub fn wav_16k(samples: &[f32]) -> Result<Vec<u8>, AudioError> {
    crate::encode::wav_bytes(samples, SAMPLE_RATE)
        .map_err(|error| AudioError(format!("re-encoding a window: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_wav(rate: u32, channels: u16, seconds: f32) -> Bytes {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for n in 0..(rate as f32 * seconds) as usize {
            let s = 0.5 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / rate as f32).sin();
            for _ in 0..channels {
                writer.write_sample((s * 32767.0) as i16).unwrap();
            }
        }
        writer.finalize().unwrap();
        Bytes::from(bytes.into_inner())
    }

    #[test]
    fn a_long_recording_comes_out_in_thirty_second_windows() {
        let mut windows = Windows::open(tone_wav(44_100, 2, 65.0), 3600.0).unwrap();
        assert_eq!(windows.declared_seconds().map(f64::round), Some(65.0));
        let mut lengths = Vec::new();
        while let Some(window) = windows.next_window().unwrap() {
            lengths.push(window.len());
        }
        assert_eq!(lengths.len(), 3, "{lengths:?}");
        assert_eq!(lengths[0], WINDOW_SAMPLES);
        assert_eq!(lengths[1], WINDOW_SAMPLES);
        let total: usize = lengths.iter().sum();
        assert!((total as i64 - 65 * 16_000).abs() < 200, "{total}");
    }

    #[test]
    fn garbage_empty_and_too_long_recordings_are_refused() {
        assert!(Windows::open(Bytes::new(), 10.0).is_err());
        assert!(Windows::open(Bytes::from_static(&[7u8; 4000]), 10.0).is_err());
        let error = Windows::open(tone_wav(16_000, 1, 3.0), 2.0).unwrap_err();
        assert!(error.0.contains("longer than the limit"), "{error}");
        let mut empty = Windows::open(tone_wav(16_000, 1, 0.0), 2.0).unwrap();
        assert!(empty.next_window().is_err());
    }

    /// Decodes a recording of `tests/fixtures` whole; returns its length in seconds.
    fn fixture_seconds(name: &str) -> f64 {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let mut windows = Windows::open(bytes, 60.0).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut samples = 0;
        let mut energy = 0.0f64;
        while let Some(window) = windows.next_window().unwrap() {
            samples += window.len();
            energy += window.iter().map(|&s| f64::from(s * s)).sum::<f64>();
        }
        let rms = (energy / samples.max(1) as f64).sqrt();
        assert!(rms > 0.01, "{name} decodes to silence (rms {rms})");
        samples as f64 / f64::from(SAMPLE_RATE)
    }

    #[test]
    fn browser_and_phone_recordings_decode() {
        // WebM/Opus (MediaRecorder), Ogg Opus and MP4/AAC: 7.26 s each.
        for name in ["voice-note.webm", "voice-note.opus", "voice-note.m4a"] {
            let seconds = fixture_seconds(name);
            assert!((seconds - 7.26).abs() < 0.1, "{name}: {seconds} s");
        }
    }

    #[test]
    fn windows_round_trip_through_wav() {
        let wav = wav_16k(&[0.0, 0.5, -0.5]).unwrap();
        let reader = hound::WavReader::new(Cursor::new(wav)).unwrap();
        assert_eq!(reader.spec().sample_rate, 16_000);
        assert_eq!(reader.duration(), 3);
    }
}
