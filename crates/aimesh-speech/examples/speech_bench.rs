//! Speech benchmarks (not run in CI).
//!
//! `wer`: word error rate of the transcription models on speech eSpeak NG synthesises with
//! voices the API tests do not use (they speak with `en-us`, `es` and `fr`), over sentences
//! the tests do not say: Whisper tiny.en on English, Whisper base on English, Spanish and
//! French with the language left to detect (how often it was detected right is printed too). `hour`: streams an hour-long recording through the window-by-window decoder (and
//! transcribes its first windows) and reports the peak resident memory, against decoding the
//! whole file at once. `synth`: synthesis in characters per second, eSpeak NG alone and with
//! each stored format's encoding (WAV, MP3, Ogg Opus; sizes too), and the latency of a cache
//! hit (the stored audio found by its request key and marked used) on SQLite.
//!
//! ```sh
//! AIMESH_MODELS_DIR=... cargo run --release -p aimesh-speech --example speech_bench -- wer [whisper-base]
//! AIMESH_MODELS_DIR=... cargo run --release -p aimesh-speech --example speech_bench -- hour [windows]
//! cargo run --release -p aimesh-speech --example speech_bench -- synth [runs]
//! ```

use std::{path::PathBuf, time::Instant};

use aimesh_ai::speech::{
    EspeakNg, Synthesizer, TranscribeOptions, Transcriber, Whisper, WhisperOptions,
    convert::{MODEL_ID, MODEL_IDS, MULTILINGUAL_MODEL_ID},
};
use aimesh_speech::audio::{self, Windows};
use bytes::Bytes;

/// English sentences for the word error rate; none of them is said by the tests.
const SENTENCES: &[&str] = &[
    "The museum on the hill keeps a collection of old maps and clocks.",
    "Please close the window before you leave the kitchen.",
    "Our flight to the north was delayed by two hours because of snow.",
    "She planted seven rows of carrots and a few lines of onions.",
    "The committee will meet again next Thursday to discuss the budget.",
    "A small boat crossed the river just after the sun went down.",
    "He bought fresh bread, a bottle of milk and some green apples.",
    "Children learn new words quickly when they read every day.",
];

/// eSpeak NG voices the API tests do not use.
const VOICES: &[&str] = &[
    "gmw/en",
    "gmw/en-GB-x-rp",
    "gmw/en-GB-scotland",
    "gmw/en-029",
];

/// Spanish sentences (the tests say others).
const SENTENCES_ES: &[&str] = &[
    "El museo de la colina guarda una colección de mapas antiguos.",
    "Por favor, cierra la ventana antes de salir de la cocina.",
    "Nuestro vuelo al norte se retrasó dos horas por la nieve.",
    "Ella plantó siete filas de zanahorias en el huerto.",
    "El comité se reunirá otra vez el próximo jueves.",
    "Un pequeño barco cruzó el río después de la puesta del sol.",
];

/// French sentences (the tests say others).
const SENTENCES_FR: &[&str] = &[
    "Le musée sur la colline garde une collection de vieilles cartes.",
    "Ferme la fenêtre avant de quitter la cuisine, s'il te plaît.",
    "Notre vol vers le nord a été retardé de deux heures à cause de la neige.",
    "Elle a planté sept rangs de carottes dans le jardin.",
    "Le comité se réunira de nouveau jeudi prochain.",
    "Un petit bateau a traversé la rivière après le coucher du soleil.",
];

/// Spanish and French voices the tests do not use (they speak with `es` and `fr`).
const VOICES_ES: &[&str] = &["roa/es-419"];
const VOICES_FR: &[&str] = &["roa/fr-BE", "roa/fr-CH"];

fn models_dir() -> PathBuf {
    std::env::var_os("AIMESH_MODELS_DIR")
        .map(PathBuf::from)
        .expect("set AIMESH_MODELS_DIR to the models directory")
}

/// Peak resident set size of this process, in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One language's speech: its code, sentences and voices.
struct Corpus {
    language: &'static str,
    sentences: &'static [&'static str],
    voices: &'static [&'static str],
}

/// Transcribes every sentence in every voice of `corpus` with `model` (the language left to
/// detect when `detect`), printing the WER per voice and overall and, when detecting, how
/// often the language was right.
async fn wer_of(
    whisper: &Whisper,
    espeak: &EspeakNg,
    model: &str,
    corpus: &Corpus,
    detect: bool,
) -> (usize, usize) {
    let mut total_edits = 0;
    let mut total_words = 0;
    let mut detected_right = 0;
    let mut clips = 0;
    for voice in corpus.voices {
        let (mut voice_edits, mut voice_words) = (0, 0);
        for sentence in corpus.sentences {
            let speech = espeak
                .synthesize((*sentence).into(), Some((*voice).into()), None)
                .await
                .expect("synthesis");
            let options = TranscribeOptions {
                model: Some(model.to_owned()),
                language: (!detect).then(|| corpus.language.to_owned()),
            };
            let transcript = whisper
                .transcribe_with(speech.wav, options)
                .await
                .expect("transcription");
            clips += 1;
            detected_right += usize::from(transcript.language == corpus.language);
            let (edits, words) = aimesh_ai::speech::word_edits(sentence, &transcript.text);
            voice_edits += edits;
            voice_words += words;
        }
        println!(
            "{model:<16} {} {voice:<20} WER {:5.1}% ({voice_edits} edits / {voice_words} words)",
            corpus.language,
            100.0 * voice_edits as f64 / voice_words as f64
        );
        total_edits += voice_edits;
        total_words += voice_words;
    }
    let detection = if detect {
        format!("; language detected right {detected_right}/{clips}")
    } else {
        String::new()
    };
    println!(
        "{model:<16} {} all voices           WER {:5.1}% ({total_edits} / {total_words}){detection}",
        corpus.language,
        100.0 * total_edits as f64 / total_words as f64
    );
    (total_edits, total_words)
}

/// `only`: the one model to measure (both when `None`).
async fn wer(only: Option<&str>) {
    let options = WhisperOptions {
        models: MODEL_IDS.iter().map(|id| (*id).to_owned()).collect(),
        ..WhisperOptions::default()
    };
    let whisper = Whisper::load(&models_dir(), options).expect("whisper");
    let espeak = EspeakNg::detect().await.expect("espeak-ng");
    let english = Corpus {
        language: "en",
        sentences: SENTENCES,
        voices: VOICES,
    };
    let spanish = Corpus {
        language: "es",
        sentences: SENTENCES_ES,
        voices: VOICES_ES,
    };
    let french = Corpus {
        language: "fr",
        sentences: SENTENCES_FR,
        voices: VOICES_FR,
    };
    if only.is_none_or(|model| model == MODEL_ID) {
        wer_of(&whisper, &espeak, MODEL_ID, &english, false).await;
    }
    if only.is_some_and(|model| model != MULTILINGUAL_MODEL_ID) {
        return;
    }
    let available = whisper.models();
    if !available.contains(&MULTILINGUAL_MODEL_ID) {
        println!("{MULTILINGUAL_MODEL_ID} is not available: `aimesh models fetch` installs it");
        return;
    }
    for corpus in [&spanish, &french, &english] {
        wer_of(&whisper, &espeak, MULTILINGUAL_MODEL_ID, corpus, true).await;
    }
}

async fn hour(transcribe_windows: usize) {
    let espeak = EspeakNg::detect().await.expect("espeak-ng");
    let text = SENTENCES.join(" ");
    let speech = espeak
        .synthesize(text, Some("gmw/en".into()), None)
        .await
        .expect("synthesis");
    // Repeat the clip's samples (22.05 kHz, 16-bit mono) to an hour, as one WAV file.
    let reader = hound::WavReader::new(std::io::Cursor::new(&speech.wav)).expect("wav");
    let spec = reader.spec();
    let clip: Vec<i16> = reader
        .into_samples::<i16>()
        .map(|s| s.unwrap_or(0))
        .collect();
    let target = spec.sample_rate as usize * 3600;
    let mut file = std::io::Cursor::new(Vec::with_capacity(target * 2 + 44));
    {
        let mut writer = hound::WavWriter::new(&mut file, spec).expect("writer");
        for n in 0..target {
            writer.write_sample(clip[n % clip.len()]).expect("sample");
        }
        writer.finalize().expect("finalize");
    }
    let bytes = Bytes::from(file.into_inner());
    drop(clip);
    println!(
        "an hour of speech: {:.1} MiB WAV ({} Hz); peak RSS before decoding {:.1} MiB",
        bytes.len() as f64 / 1048576.0,
        spec.sample_rate,
        peak_rss_mib()
    );
    let whisper = (transcribe_windows > 0)
        .then(|| Whisper::load(&models_dir(), WhisperOptions::default()).expect("whisper"));
    let started = Instant::now();
    let mut windows = Windows::open(bytes.clone(), 4.0 * 3600.0).expect("open");
    let (mut count, mut seconds) = (0usize, 0.0);
    while let Some(window) = windows.next_window().expect("window") {
        seconds += window.len() as f64 / f64::from(audio::SAMPLE_RATE);
        if let Some(whisper) = &whisper
            && count < transcribe_windows
        {
            let wav = audio::wav_16k(&window).expect("wav");
            let transcript = whisper.transcribe(wav).await.expect("transcription");
            println!("window {count}: {}", transcript.text);
        }
        count += 1;
    }
    println!(
        "streamed: {count} windows, {seconds:.0} s of audio in {:.1} s; peak RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    // For contrast: the whole recording decoded at once (what the one-shot Transcribe does).
    let whole = aimesh_ai::speech::audio::decode_mono(
        bytes.to_vec(),
        audio::SAMPLE_RATE,
        std::time::Duration::from_secs(4 * 3600),
    )
    .expect("decode");
    println!(
        "whole file at once: {} samples; peak RSS {:.1} MiB",
        whole.len(),
        peak_rss_mib()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("wer") => wer(args.get(1).map(String::as_str)).await,
        Some("hour") => hour(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)).await,
        Some("synth") => synth(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5)).await,
        _ => eprintln!(
            "usage: speech_bench wer [model] | hour [windows to transcribe] | synth [runs]"
        ),
    }
}

/// The median of some durations, in seconds.
fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

async fn synth(runs: usize) {
    use aimesh_speech::{
        MIGRATIONS, SpeechStore,
        domain::{Audio, AudioFormat, now},
        encode::encode,
    };

    let runs = runs.max(1);
    let espeak = EspeakNg::detect().await.expect("espeak-ng");
    // About 1,000 characters (a minute of speech).
    let text = SENTENCES.join(" ").repeat(2);
    let chars = text.chars().count() as f64;
    let mut engine = Vec::new();
    let mut wav = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let speech = espeak
            .synthesize(text.clone(), Some("gmw/en-US".into()), None)
            .await
            .expect("synthesis");
        engine.push(start.elapsed().as_secs_f64());
        wav = speech.wav;
    }
    let engine = median(engine);
    println!(
        "== synth: {chars} characters, median of {runs} runs ==\n{:<28} {:>10} {:>12} {:>10}",
        "", "chars/s", "audio bytes", "encode ms"
    );
    println!(
        "{:<28} {:>10.0} {:>12} {:>10}",
        "eSpeak NG alone (WAV 22 kHz)",
        chars / engine,
        wav.len(),
        "-"
    );
    for (format, rate) in [
        (AudioFormat::Wav, 0),
        (AudioFormat::Mp3, 0),
        (AudioFormat::OggOpus, 0),
        (AudioFormat::OggOpus, 16_000),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let start = Instant::now();
            size = encode(&wav, format, rate).expect("encode").bytes.len();
            times.push(start.elapsed().as_secs_f64());
        }
        let encoding = median(times);
        println!(
            "{:<28} {:>10.0} {:>12} {:>10.1}",
            format!(
                "+ {} at {}",
                format.as_str(),
                if rate == 0 { 22_050 } else { rate }
            ),
            chars / (engine + encoding),
            size,
            encoding * 1e3
        );
    }

    // A cache hit: the request's audio found by its key and marked used.
    let database =
        aimesh_kit::testing::TestDatabase::create(aimesh_kit::testing::Backend::Sqlite).await;
    let db = database.connect().await;
    db.migrate(&aimesh_events::MIGRATIONS)
        .await
        .expect("migrations");
    db.migrate(&MIGRATIONS).await.expect("migrations");
    let store = SpeechStore::new(db);
    let mut keys = Vec::new();
    for n in 0..1_000 {
        let id = uuid::Uuid::now_v7();
        let key = format!("{n:064x}");
        store
            .insert_audio(&Audio {
                id,
                owner_id: "bench".into(),
                request_key: key.clone(),
                text: "text".into(),
                voice: String::new(),
                format: AudioFormat::Wav,
                words_per_minute: 0,
                sample_rate: 22_050,
                size_bytes: 1,
                duration_seconds: 1.0,
                engine: "espeak-ng".into(),
                blob: key.clone(),
                created_at: now(),
                last_used_at: now(),
            })
            .await
            .expect("insert");
        keys.push(key);
    }
    let mut hits = Vec::new();
    for round in 0..5 {
        for key in &keys {
            let start = Instant::now();
            let audio = store
                .find_audio("bench", key)
                .await
                .expect("find")
                .expect("hit");
            store
                .touch_audio("bench", audio.id, now())
                .await
                .expect("touch");
            if round > 0 {
                hits.push(start.elapsed().as_secs_f64());
            }
        }
    }
    hits.sort_by(f64::total_cmp);
    println!(
        "cache hit on SQLite (1,000 stored, {} lookups): p50 {:.0} µs, p99 {:.0} µs",
        hits.len(),
        hits[hits.len() / 2] * 1e6,
        hits[hits.len() * 99 / 100] * 1e6
    );
}
