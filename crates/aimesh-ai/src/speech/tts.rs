//! eSpeak NG, a formant speech synthesiser, run as a subprocess: the text goes in on stdin,
//! a WAV file comes out on stdout. The installed voices (`espeak-ng --voices`) are read once,
//! at start.
//!
//! Bounded like the other engines: at most one process per CPU runs at once, a few requests
//! per running slot wait for one, and a request beyond those is refused at once with
//! [`EngineError::Busy`].

use std::{io::Cursor, process::Stdio, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::{io::AsyncWriteExt, process::Command, sync::Semaphore};

use super::{Speech, Synthesizer, Voice};
use crate::engine::EngineError;

const ENGINE: &str = "espeak-ng";

/// How long one synthesis may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Longest text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Speaking rates accepted, in words per minute (eSpeak NG's own range).
pub const WORDS_PER_MINUTE: std::ops::RangeInclusive<u32> = 80..=450;

/// Requests that may wait per running slot before more are refused.
const WAITING_PER_SLOT: usize = 4;

/// The eSpeak NG engine.
#[derive(Debug, Clone)]
pub struct EspeakNg {
    program: Arc<str>,
    voices: Arc<[Voice]>,
    /// Requests running or waiting; a request that finds none left is refused.
    admitted: Arc<Semaphore>,
    admitted_capacity: usize,
    /// Processes running at once.
    running: Arc<Semaphore>,
}

impl EspeakNg {
    /// Finds `espeak-ng` on the `PATH` and lists its voices.
    pub async fn detect() -> Result<Self, EngineError> {
        Self::detect_program(ENGINE).await
    }

    /// Lists the voices of the eSpeak NG executable `program`; fails when it cannot be run
    /// or offers no voice.
    pub async fn detect_program(program: &str) -> Result<Self, EngineError> {
        let output = Command::new(program)
            .arg("--voices")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), output)
            .await
            .map_err(|_| EngineError::failed(ENGINE, "listing voices timed out"))?
            .map_err(|e| EngineError::failed(ENGINE, format!("cannot run {program}: {e}")))?;
        if !output.status.success() {
            return Err(EngineError::failed(
                ENGINE,
                format!("listing voices exited with {}", output.status),
            ));
        }
        let voices = parse_voices(&String::from_utf8_lossy(&output.stdout));
        if voices.is_empty() {
            return Err(EngineError::failed(ENGINE, "no voices installed"));
        }
        tracing::info!(program, voices = voices.len(), "espeak-ng loaded");
        let slots = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            program: program.into(),
            voices: voices.into(),
            admitted: Arc::new(Semaphore::new(0)),
            admitted_capacity: 0,
            running: Arc::new(Semaphore::new(0)),
        }
        .with_capacity(slots, slots * WAITING_PER_SLOT))
    }

    /// Runs at most `running` processes at once and lets at most `waiting` more requests
    /// wait for one; further requests are refused with [`EngineError::Busy`].
    pub fn with_capacity(mut self, running: usize, waiting: usize) -> Self {
        let running = running.max(1);
        self.admitted_capacity = running + waiting;
        self.admitted = Arc::new(Semaphore::new(self.admitted_capacity));
        self.running = Arc::new(Semaphore::new(running));
        self
    }

    /// The voice `wanted` names: an identifier, a language or a name (case-insensitive), in
    /// that order of preference.
    fn find_voice(&self, wanted: &str) -> Option<&Voice> {
        let wanted = wanted.trim();
        self.voices
            .iter()
            .find(|v| v.identifier.eq_ignore_ascii_case(wanted))
            .or_else(|| {
                self.voices
                    .iter()
                    .find(|v| v.language.eq_ignore_ascii_case(wanted))
            })
            .or_else(|| {
                self.voices
                    .iter()
                    .find(|v| v.name.eq_ignore_ascii_case(wanted))
            })
    }
}

/// Parses `espeak-ng --voices`: a header, then `priority language age/gender name file
/// [other languages]` per line.
fn parse_voices(listing: &str) -> Vec<Voice> {
    listing
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _priority = fields.next()?;
            let language = fields.next()?;
            let gender = fields.next()?.rsplit('/').next().unwrap_or_default();
            let name = fields.next()?;
            let identifier = fields.next()?;
            Some(Voice {
                name: name.to_owned(),
                language: language.to_owned(),
                identifier: identifier.to_owned(),
                gender: if gender == "-" || gender == "--" {
                    String::new()
                } else {
                    gender.to_owned()
                },
            })
        })
        .collect()
}

/// Fixes the sizes of a WAV written to a pipe (eSpeak NG cannot seek back to fill them in
/// and leaves them at their maximum) so that the file is complete.
fn fix_stream_header(wav: &mut [u8]) -> Result<(), EngineError> {
    let bad = || EngineError::failed(ENGINE, "the output is not a WAV file");
    if wav.len() < 12 || &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err(bad());
    }
    let riff = u32::try_from(wav.len() - 8).map_err(|_| bad())?;
    wav[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut at = 12;
    while at + 8 <= wav.len() {
        let size = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]);
        if &wav[at..at + 4] == b"data" {
            let data = u32::try_from(wav.len() - at - 8).map_err(|_| bad())?;
            wav[at + 4..at + 8].copy_from_slice(&data.to_le_bytes());
            return Ok(());
        }
        at += 8 + size as usize + (size as usize & 1);
    }
    Err(bad())
}

impl Synthesizer for EspeakNg {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn voices(&self) -> &[Voice] {
        &self.voices
    }

    fn synthesize(
        &self,
        text: String,
        voice: Option<String>,
        words_per_minute: Option<u32>,
    ) -> BoxFuture<'static, Result<Speech, EngineError>> {
        let checked = (|| {
            if text.trim().is_empty() {
                return Err(EngineError::invalid("text", "empty"));
            }
            let chars = text.chars().count();
            if chars > MAX_TEXT_CHARS {
                return Err(EngineError::invalid(
                    "text",
                    format!("{chars} characters, at most {MAX_TEXT_CHARS}"),
                ));
            }
            let voice = match voice.as_deref() {
                None => None,
                Some(wanted) => Some(
                    self.find_voice(wanted)
                        .ok_or_else(|| {
                            EngineError::invalid("voice", format!("{wanted:?} is not installed"))
                        })?
                        .identifier
                        .clone(),
                ),
            };
            if let Some(wpm) = words_per_minute
                && !WORDS_PER_MINUTE.contains(&wpm)
            {
                return Err(EngineError::invalid(
                    "words_per_minute",
                    format!(
                        "{wpm} is outside {}..={}",
                        WORDS_PER_MINUTE.start(),
                        WORDS_PER_MINUTE.end()
                    ),
                ));
            }
            Ok(voice)
        })();
        let program = Arc::clone(&self.program);
        let admitted = Arc::clone(&self.admitted).try_acquire_owned();
        let capacity = self.admitted_capacity;
        let running = Arc::clone(&self.running);
        Box::pin(async move {
            let voice = checked?;
            let _admitted = admitted.map_err(|_| EngineError::Busy {
                engine: ENGINE,
                queued: capacity,
            })?;
            let _running = running
                .acquire_owned()
                .await
                .map_err(|_| EngineError::Stopped { engine: ENGINE })?;
            let mut command = Command::new(&*program);
            command.args(["--stdin", "--stdout"]);
            if let Some(voice) = &voice {
                command.args(["-v", voice]);
            }
            if let Some(wpm) = words_per_minute {
                command.args(["-s", &wpm.to_string()]);
            }
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| EngineError::failed(ENGINE, format!("could not start: {e}")))?;
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| EngineError::failed(ENGINE, "no stdin"))?;
            let writer = tokio::spawn(async move {
                let _ = stdin.write_all(text.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
            let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
                .await
                .map_err(|_| {
                    EngineError::failed(ENGINE, format!("timed out after {} s", TIMEOUT.as_secs()))
                })?
                .map_err(|e| EngineError::failed(ENGINE, e))?;
            let _ = writer.await;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(EngineError::failed(
                    ENGINE,
                    format!(
                        "exited with {}: {}",
                        output.status,
                        stderr.trim().chars().take(200).collect::<String>()
                    ),
                ));
            }
            let mut wav = output.stdout;
            fix_stream_header(&mut wav)?;
            let reader = hound::WavReader::new(Cursor::new(&wav))
                .map_err(|e| EngineError::failed(ENGINE, format!("unreadable WAV: {e}")))?;
            let sample_rate = reader.spec().sample_rate;
            if sample_rate == 0 {
                return Err(EngineError::failed(ENGINE, "WAV with no sample rate"));
            }
            let duration = f64::from(reader.duration()) / f64::from(sample_rate);
            Ok(Speech {
                wav,
                sample_rate,
                duration,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_are_parsed_from_the_listing() {
        let listing = "Pty Language       Age/Gender VoiceName          File                 Other Languages\n \
            5  af              --/M      Afrikaans          gmw/af               \n \
            2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)\n \
            5  en-us           --/F      us-mbrola-1        mb/mb-us1            (en 8)\n";
        let voices = parse_voices(listing);
        assert_eq!(voices.len(), 3);
        assert_eq!(
            voices[1],
            Voice {
                name: "English_(Great_Britain)".into(),
                language: "en-gb".into(),
                identifier: "gmw/en".into(),
                gender: "M".into(),
            }
        );
        assert_eq!(voices[2].gender, "F");
    }

    #[test]
    fn a_streamed_wav_header_gets_its_sizes() {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&0x7fff_f024u32.to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 1, 0]);
        wav.extend_from_slice(&22_050u32.to_le_bytes());
        wav.extend_from_slice(&44_100u32.to_le_bytes());
        wav.extend_from_slice(&[2, 0, 16, 0]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&0x7fff_f000u32.to_le_bytes());
        wav.extend_from_slice(&[0u8; 2 * 2205]);
        fix_stream_header(&mut wav).expect("fixed");
        let reader = hound::WavReader::new(Cursor::new(&wav)).expect("readable");
        assert_eq!(reader.duration(), 2205);
        assert!(fix_stream_header(&mut b"not a wav file".to_vec()).is_err());
    }
}
