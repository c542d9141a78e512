//! Speech engines on the real model and the real synthesiser: eSpeak NG speaks a sentence,
//! Whisper tiny.en writes it back down.
//!
//! Needs the pinned models (`AIMESH_MODELS_DIR`) and `espeak-ng` on the `PATH`.

use std::{fs, io::Cursor, path::Path, sync::OnceLock};

use aimesh_ai::{
    engine::EngineError,
    models::{self, ModelError},
    speech::{
        self, EspeakNg, Synthesizer, Transcriber, Whisper, WhisperOptions,
        convert::{CONFIG_FILE, MODEL_ID, WEIGHTS_FILE},
        word_error_rate as wer,
    },
};

const SENTENCE: &str =
    "The quick brown fox jumps over the lazy dog. Machine translation is useful.";

/// Converts the real model once per test binary.
fn models_dir() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = models::dir_for_tests();
        speech::prepare(&dir).expect("whisper prepared");
        dir
    })
}

fn whisper(options: WhisperOptions) -> Whisper {
    Whisper::load(models_dir(), options).expect("whisper loads")
}

async fn espeak() -> EspeakNg {
    EspeakNg::detect().await.expect("espeak-ng is installed")
}

fn samples(wav: &[u8]) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::new(Cursor::new(wav)).expect("wav");
    let rate = reader.spec().sample_rate;
    let samples = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    (samples, rate)
}

/// The same speech at twice the rate (linear interpolation), in stereo with a quieter right
/// channel: exercises resampling from 44.1 kHz and the downmix.
fn stereo_44k(wav: &[u8]) -> Vec<u8> {
    let (mono, rate) = samples(wav);
    assert_eq!(rate, 22_050);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).expect("writer");
    for (i, &s) in mono.iter().enumerate() {
        let next = mono.get(i + 1).copied().unwrap_or(s);
        for value in [s, ((i32::from(s) + i32::from(next)) / 2) as i16] {
            writer.write_sample(value).expect("left");
            writer.write_sample(value / 2).expect("right");
        }
    }
    writer.finalize().expect("finalize");
    out.into_inner()
}

fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut crc, &b| {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |mut crc, &b| {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// A minimal FLAC encoder (verbatim subframes, 16-bit, fixed blocks): enough to exercise
/// the FLAC decoder without an external encoder.
fn flac(interleaved: &[i16], channels: u8, rate: u32) -> Vec<u8> {
    const BLOCK: usize = 4096;
    let frames = interleaved.len() / usize::from(channels);
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]); // last metadata block: STREAMINFO, 34 bytes
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&[0; 6]); // frame sizes unknown
    let packed: u64 =
        (u64::from(rate) << 44) | (u64::from(channels - 1) << 41) | (15u64 << 36) | frames as u64;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0; 16]); // no MD5
    for (number, block) in interleaved
        .chunks(BLOCK * usize::from(channels))
        .enumerate()
    {
        assert!(number < 128, "one-byte frame numbers only");
        let len = block.len() / usize::from(channels);
        let mut frame = vec![0xFF, 0xF8, 0x70, ((channels - 1) << 4) | 0x08, number as u8];
        frame.extend_from_slice(&((len - 1) as u16).to_be_bytes());
        frame.push(crc8(&frame));
        for channel in 0..usize::from(channels) {
            frame.push(0x02); // verbatim
            for sample in block.iter().skip(channel).step_by(usize::from(channels)) {
                frame.extend_from_slice(&sample.to_be_bytes());
            }
        }
        let crc = crc16(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

#[tokio::test]
async fn espeak_speech_is_transcribed_with_timed_segments() {
    let speech = espeak()
        .await
        .synthesize(SENTENCE.into(), None, None)
        .await
        .expect("speaks");
    let whisper = whisper(WhisperOptions::default());
    assert_eq!(whisper.name(), "whisper-tiny.en");
    let transcript = whisper
        .transcribe(speech.wav.clone())
        .await
        .expect("transcribes");
    eprintln!("{transcript:?}");
    let error_rate = wer(SENTENCE, &transcript.text);
    assert!(error_rate < 0.2, "WER {error_rate}: {:?}", transcript.text);
    assert_eq!(transcript.language, "en");
    assert!((transcript.duration - speech.duration).abs() < 0.01);
    assert!(!transcript.segments.is_empty());
    let mut previous_end = 0.0;
    for segment in &transcript.segments {
        assert!(segment.start >= previous_end - 1e-9, "{transcript:?}");
        assert!(segment.end > segment.start, "{transcript:?}");
        assert!(segment.end <= transcript.duration + 1e-9, "{transcript:?}");
        assert!(!segment.text.is_empty());
        previous_end = segment.end;
    }

    // The same speech at 44.1 kHz in stereo.
    let resampled = whisper
        .transcribe(stereo_44k(&speech.wav))
        .await
        .expect("transcribes");
    let error_rate = wer(SENTENCE, &resampled.text);
    assert!(error_rate < 0.2, "WER {error_rate}: {:?}", resampled.text);
    assert!((resampled.duration - speech.duration).abs() < 0.01);

    // The same speech as FLAC.
    let (mono, rate) = samples(&speech.wav);
    let flac = whisper
        .transcribe(flac(&mono, 1, rate))
        .await
        .expect("transcribes FLAC");
    let error_rate = wer(SENTENCE, &flac.text);
    assert!(error_rate < 0.2, "WER {error_rate}: {:?}", flac.text);
    assert!((flac.duration - speech.duration).abs() < 0.01);
}

#[tokio::test]
async fn long_audio_is_transcribed_across_windows() {
    let passage = "Machine translation is useful when you read a page written in a language \
        you do not know. The weather today is cold in the morning and warm in the afternoon. \
        A service mesh moves requests between programs and records how long each of them took. "
        .repeat(3);
    let speech = espeak()
        .await
        .synthesize(passage.clone(), None, None)
        .await
        .expect("speaks");
    assert!(speech.duration > 35.0, "{}", speech.duration);
    let transcript = whisper(WhisperOptions::default())
        .transcribe(speech.wav)
        .await
        .expect("transcribes");
    let error_rate = wer(&passage, &transcript.text);
    assert!(error_rate < 0.25, "WER {error_rate}: {:?}", transcript.text);
    let last = transcript.segments.last().expect("segments");
    assert!(last.end > 30.0, "{transcript:?}");
    for pair in transcript.segments.windows(2) {
        assert!(pair[1].start >= pair[0].start, "{transcript:?}");
    }
}

#[tokio::test]
async fn undecodable_and_too_long_audio_are_refused() {
    let whisper = whisper(WhisperOptions {
        max_duration: std::time::Duration::from_secs(2),
        ..WhisperOptions::default()
    });
    for audio in [
        Vec::new(),
        b"RIFF garbage that is not a wave file at all".repeat(20),
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ] {
        let error = whisper.transcribe(audio).await.expect_err("refused");
        assert!(
            matches!(error, EngineError::InvalidInput { field: "audio", .. }),
            "{error}"
        );
    }
    let speech = espeak()
        .await
        .synthesize(SENTENCE.into(), None, None)
        .await
        .expect("speaks");
    let error = whisper.transcribe(speech.wav).await.expect_err("too long");
    assert!(
        matches!(error, EngineError::InvalidInput { field: "audio", .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_full_queue_refuses_with_busy() {
    let speech = espeak()
        .await
        .synthesize(SENTENCE.into(), None, None)
        .await
        .expect("speaks");
    let whisper = whisper(WhisperOptions {
        queue_capacity: 1,
        ..WhisperOptions::default()
    });
    // Submitted at call time, long before the first transcription ends.
    let requests: Vec<_> = (0..4)
        .map(|_| whisper.transcribe(speech.wav.clone()))
        .collect();
    let results = futures::future::join_all(requests).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Busy { queued: 1, .. })))
        .count();
    assert!(busy >= 1, "{results:?}");
    let done: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(!done.is_empty());
    assert!(done.iter().all(|t| t.text == done[0].text));
}

#[tokio::test]
async fn espeak_voices_rates_and_refusals() {
    let espeak = espeak().await;
    assert_eq!(espeak.name(), "espeak-ng");
    let english: Vec<_> = espeak
        .voices()
        .iter()
        .filter(|v| v.language == "en" || v.language.starts_with("en-"))
        .collect();
    assert!(!english.is_empty(), "{:?}", espeak.voices());

    let speech = espeak
        .synthesize(SENTENCE.into(), None, None)
        .await
        .expect("speaks");
    assert_eq!(speech.sample_rate, 22_050);
    assert!((2.5..8.0).contains(&speech.duration), "{}", speech.duration);
    let (samples, _) = samples(&speech.wav);
    assert!((samples.len() as f64 / 22_050.0 - speech.duration).abs() < 1e-6);
    assert!(samples.iter().any(|&s| s.unsigned_abs() > 1000), "audible");

    let longer = espeak
        .synthesize(format!("{SENTENCE} {SENTENCE}"), None, None)
        .await
        .expect("speaks");
    assert!(
        longer.duration > speech.duration * 1.6,
        "{}",
        longer.duration
    );
    let slower = espeak
        .synthesize(SENTENCE.into(), None, Some(100))
        .await
        .expect("speaks");
    assert!(
        slower.duration > speech.duration * 1.3,
        "{}",
        slower.duration
    );
    let american = espeak
        .synthesize(SENTENCE.into(), Some("en-us".into()), None)
        .await
        .expect("speaks");
    assert!(american.duration > 2.0);

    let refusals = [
        (String::new(), None, None, "text"),
        ("  \n ".into(), None, None, "text"),
        ("a".repeat(20_000), None, None, "text"),
        (SENTENCE.into(), Some("no-such-voice".into()), None, "voice"),
        (SENTENCE.into(), None, Some(5), "words_per_minute"),
        (SENTENCE.into(), None, Some(5_000), "words_per_minute"),
    ];
    for (text, voice, wpm, field) in refusals {
        let error = espeak
            .synthesize(text, voice, wpm)
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, EngineError::InvalidInput { field: f, .. } if *f == field),
            "{field}: {error}"
        );
    }
}

#[test]
fn conversion_is_idempotent_and_tampering_is_detected_and_repaired() {
    let real = models_dir().join(MODEL_ID);
    let copy = tempfile::tempdir().expect("tempdir");
    let dir = copy.path().join(MODEL_ID);
    fs::create_dir_all(&dir).expect("mkdir");
    for file in ["model.bin", "tokenizer.json", "config.json"] {
        fs::copy(real.join(file), dir.join(file)).expect("copy");
    }
    speech::prepare_model(copy.path(), MODEL_ID).expect("converts");
    let weights = dir.join(WEIGHTS_FILE);
    let config = dir.join(CONFIG_FILE);
    models::verify_derived(&weights).expect("weights recorded");
    models::verify_derived(&config).expect("config recorded");
    let digest = models::sha256_file(&weights).expect("digest");
    assert_eq!(
        digest,
        models::sha256_file(&real.join(WEIGHTS_FILE)).expect("digest"),
        "conversion is deterministic"
    );
    let config_json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config).expect("read")).expect("json");
    assert_eq!(config_json["d_model"], 384);
    assert_eq!(config_json["encoder_layers"], 4);
    assert_eq!(config_json["decoder_attention_heads"], 6);
    assert_eq!(config_json["vocab_size"], 51_864);
    assert_eq!(config_json["max_source_positions"], 1_500);
    assert!(
        config_json["suppress_tokens"]
            .as_array()
            .is_some_and(|t| t.len() > 80)
    );

    // Idempotent: intact derived files are left alone.
    let modified = fs::metadata(&weights)
        .and_then(|m| m.modified())
        .expect("mtime");
    speech::prepare_model(copy.path(), MODEL_ID).expect("verifies");
    assert_eq!(
        fs::metadata(&weights)
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified
    );

    // A tampered conversion is detected, then redone.
    let mut bytes = fs::read(&weights).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(&weights, bytes).expect("tamper");
    assert!(matches!(
        models::verify_derived(&weights),
        Err(ModelError::Checksum { .. })
    ));
    assert!(matches!(
        Whisper::load(copy.path(), WhisperOptions::default()),
        Err(ModelError::Checksum { .. })
    ));
    speech::prepare_model(copy.path(), MODEL_ID).expect("reconverts");
    assert_eq!(models::sha256_file(&weights).expect("digest"), digest);
    Whisper::load(copy.path(), WhisperOptions::default()).expect("loads again");

    // A corrupt pinned file is refused before anything is converted.
    let model_bin = dir.join("model.bin");
    let mut bytes = fs::read(&model_bin).expect("read");
    bytes[1_000_000] ^= 0x01;
    fs::write(&model_bin, bytes).expect("corrupt");
    fs::remove_file(&weights).expect("remove");
    let error = speech::prepare_model(copy.path(), MODEL_ID).expect_err("refused");
    assert!(matches!(error, ModelError::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("model.bin"), "{error}");
    assert!(!weights.exists());
}

#[test]
fn convert_refuses_files_that_are_not_whisper_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("model.bin");
    fs::write(&bogus, b"\x06\x00\x00\x00\x0a\x00MarianSpec").expect("write");
    let error =
        speech::convert_ct2(&bogus, &dir.path().join("out.safetensors")).expect_err("refused");
    assert!(matches!(error, ModelError::Invalid { .. }), "{error}");
    fs::write(&bogus, b"\x06\x00").expect("write");
    let error =
        speech::convert_ct2(&bogus, &dir.path().join("out.safetensors")).expect_err("refused");
    assert!(error.to_string().contains("truncated"), "{error}");
}

/// Stage timings on a clip named by `AIMESH_SPEECH_CLIP` (for profiling in the dev profile;
/// `aimesh-bench transcribe` is the benchmark).
#[test]
#[ignore = "profiling aid: needs AIMESH_SPEECH_CLIP"]
fn stage_timings_of_a_clip() {
    let clip = std::env::var_os("AIMESH_SPEECH_CLIP").expect("AIMESH_SPEECH_CLIP");
    let audio = fs::read(clip).expect("clip");
    let mut model =
        speech::WhisperModel::load(models_dir(), "whisper-tiny.en", &WhisperOptions::default())
            .expect("loads");
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let (transcript, stages) = model
            .transcribe_file(audio.clone(), None)
            .expect("transcribes");
        eprintln!(
            "{:.3} s for {:.1} s: {stages:?}",
            started.elapsed().as_secs_f64(),
            transcript.duration
        );
    }
}

/// Synthesis is bounded like the other engines: beyond the processes running and the
/// requests waiting for one, a request is refused at once with Busy, and the admitted ones
/// all complete.
#[tokio::test]
async fn espeak_refuses_beyond_its_capacity() {
    let espeak = espeak().await.with_capacity(1, 1);
    let requests: Vec<_> = (0..6)
        .map(|_| espeak.synthesize(format!("{SENTENCE} {SENTENCE}"), None, None))
        .collect();
    let results = futures::future::join_all(requests).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Busy { queued: 2, .. })))
        .count();
    let spoken = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((spoken, busy), (2, 4), "{results:?}");
    // Capacity comes back once they are done.
    espeak
        .synthesize(SENTENCE.into(), None, None)
        .await
        .expect("speaks again");
}

/// The language codes the API accepts are the multilingual model's language tokens.
#[test]
fn whisper_languages_are_the_base_model_tokens() {
    let spec = aimesh_ai::models::spec("whisper-base").expect("in the catalog");
    let tokenizer = tokenizers::Tokenizer::from_file(spec.dir(models_dir()).join("tokenizer.json"))
        .expect("the base tokenizer");
    let sot = tokenizer.token_to_id("<|startoftranscript|>").expect("sot");
    let translate = tokenizer.token_to_id("<|translate|>").expect("translate");
    let codes: Vec<String> = (sot + 1..translate)
        .filter_map(|id| tokenizer.id_to_token(id))
        .map(|token| {
            token
                .trim_start_matches("<|")
                .trim_end_matches("|>")
                .to_owned()
        })
        .collect();
    assert_eq!(codes, speech::WHISPER_LANGUAGES);
}
