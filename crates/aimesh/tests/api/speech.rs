//! The speech API end to end on the real engines (Whisper tiny.en and base, eSpeak NG):
//! synthesis into stored audio with its cache, a transcription of that audio followed over
//! WatchJob window by window, exports as text, SRT and WebVTT, deletion, ownership, bad
//! input, the recordings' retention, and Spanish and French speech with its language
//! detected.

use std::{io::Cursor, time::Duration};

use aimesh::ServiceKind;
use aimesh_kit::testing::{Backend, eventually};
use aimesh_models::{EngineKind, ModelsConfig};
use aimesh_proto::{
    google::api::HttpBody,
    jobs::v1 as jpb,
    processing::v1::{self as tpb, task_service_client::TaskServiceClient},
    speech::v1::{self as pb, speech_service_client::SpeechServiceClient},
};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::helpers::{Bearer, TestApp, assert_code, assert_invalid, backend_tests};

type Client = SpeechServiceClient<InterceptedService<Channel, Bearer>>;

/// Upload and duration limits of the test server.
const MAX_UPLOAD: u64 = 4 << 20;
const MAX_SECONDS: u64 = 90;

/// About 35 seconds of speech at eSpeak NG's default rate: two 30-second windows.
const PASSAGE: &str = "The quick brown fox jumps over the lazy dog. Machine translation is \
useful for travellers. The weather today is sunny and warm, with a light breeze from the west. \
Tomato plants need full sun, rich soil and deep watering twice a week. The library opens at nine \
in the morning and closes at six in the evening. Please remember to bring your ticket, your \
passport and a pen. The train to the coast leaves from platform four every hour. Volcanoes \
erupt when the pressure of the magma inside the mountain builds up. The baker wakes up early to \
prepare bread, cakes and pastries for the market. Our neighbours painted their fence blue and \
planted roses along the path to the front door.";

async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut aimesh::MeshConfig)) -> TestApp {
    TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        let mut models = ModelsConfig::new(aimesh_ai::models::dir_for_tests());
        models.engines = vec![EngineKind::Transcription, EngineKind::Speech];
        // The multilingual model only where a test needs it (it loads in a second or two).
        models.whisper_models = vec!["whisper-tiny.en".into()];
        config.models = models;
        config.speech.speech_max_upload_bytes = MAX_UPLOAD;
        config.speech.speech_max_duration_secs = MAX_SECONDS;
        configure(config);
    })
    .await
}

fn client(app: &TestApp, token: &str) -> Client {
    SpeechServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
        .max_decoding_message_size(16 << 20)
}

/// A WAV file of a 440 Hz tone.
fn tone(seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
    for n in 0..(16_000.0 * seconds) as usize {
        let s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 16_000.0).sin();
        writer.write_sample((s * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    bytes.into_inner()
}

fn create_request(filename: &str, data: Vec<u8>, language: &str) -> pb::CreateTranscriptionRequest {
    pb::CreateTranscriptionRequest {
        body: Some(HttpBody {
            content_type: "audio/wav".into(),
            data,
            extensions: Vec::new(),
        }),
        filename: filename.into(),
        language: language.into(),
        model: String::new(),
    }
}

/// How long a job of these tests may take to end.
const JOB_LIMIT: Duration = Duration::from_secs(300);

async fn get(client: &Client, id: &str) -> pb::Transcription {
    client
        .clone()
        .get_transcription(pb::GetTranscriptionRequest { id: id.into() })
        .await
        .expect("get_transcription failed")
        .into_inner()
        .transcription
        .unwrap()
}

async fn export(client: &Client, id: &str, format: &str) -> HttpBody {
    client
        .clone()
        .export_transcription(pb::ExportTranscriptionRequest {
            id: id.into(),
            format: format.into(),
        })
        .await
        .expect("export_transcription failed")
        .into_inner()
}

async fn synthesize(client: &Client, text: &str, rate: i32) -> pb::SynthesizeAudioResponse {
    client
        .clone()
        .synthesize_audio(pb::SynthesizeAudioRequest {
            text: text.into(),
            voice: "en-us".into(),
            format: pb::AudioFormat::Wav.into(),
            words_per_minute: rate,
            sample_rate_hertz: 0,
        })
        .await
        .expect("synthesize_audio failed")
        .into_inner()
}

async fn speech_end_to_end(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let token = app.alice.access.clone();
    let speech = client(&app, &token);

    // Voices, filtered by language.
    let voices = speech
        .clone()
        .list_voices(pb::ListVoicesRequest {
            language: "en".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voices.engine, "espeak-ng");
    assert!(!voices.voices.is_empty());
    assert!(voices.voices.iter().all(|v| v.language.starts_with("en")));

    // Synthesis into stored audio; the identical request is served from the cache.
    let first = synthesize(&speech, PASSAGE, 0).await;
    assert!(!first.cached);
    let audio = first.audio.unwrap();
    assert_eq!(audio.content_type, "audio/wav");
    assert_eq!(audio.engine, "espeak-ng");
    assert!(audio.duration_seconds > 30.0, "{}", audio.duration_seconds);
    let again = synthesize(&speech, PASSAGE, 0).await;
    assert!(again.cached, "an identical request is a cache hit");
    assert_eq!(again.audio.unwrap().id, audio.id);
    let faster = synthesize(&speech, PASSAGE, 220).await;
    assert!(!faster.cached, "another rate is another request");
    let faster = faster.audio.unwrap();
    assert_ne!(faster.id, audio.id);
    let body = speech
        .clone()
        .download_audio(pb::DownloadAudioRequest {
            id: audio.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(body.content_type, "audio/wav");
    assert_eq!(&body.data[..4], b"RIFF");
    assert_eq!(body.data.len() as i64, audio.size_bytes);
    let listed = speech
        .clone()
        .list_audio(pb::ListAudioRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.audio[0].id, faster.id, "newest first");
    assert!(!listed.next_page_token.is_empty());

    // The synthesised audio, transcribed as a job: a progress report per 30-second window
    // with the transcript so far, then the stored transcript with timed segments.
    let created = speech
        .clone()
        .create_transcription(create_request("passage.wav", body.data.clone(), ""))
        .await
        .unwrap()
        .into_inner();
    let transcription = created.transcription.unwrap();
    assert_eq!(transcription.status(), pb::TranscriptionStatus::Pending);
    assert_eq!(transcription.language, "en");
    assert!(transcription.audio_stored);
    let job = created.job.unwrap();
    assert_eq!(job.kind, "speech.transcribe");
    assert_eq!(transcription.job_id, job.id);
    let seen = app.watch_job_to_end(&token, &job.id, JOB_LIMIT).await;
    let last = seen.last().unwrap();
    assert_eq!(last.state(), jpb::JobState::Succeeded, "{last:?}");
    let progress: Vec<(String, String)> = seen
        .iter()
        .filter_map(|j| j.progress.as_ref())
        .map(|p| (p.message.clone(), p.partial_output.clone()))
        .collect();
    assert!(
        progress
            .iter()
            .any(|(message, partial)| message.contains("window 1 of 2") && !partial.is_empty())
            || seen.len() <= 2,
        "windows reported: {progress:?}"
    );
    let ready = get(&speech, &transcription.id).await;
    assert_eq!(ready.status(), pb::TranscriptionStatus::Ready);
    assert_eq!(ready.engine, "whisper-tiny.en");
    assert!(ready.duration_seconds > 30.0, "{}", ready.duration_seconds);
    let text = ready.text.to_lowercase();
    for word in ["quick", "weather", "library", "train", "market"] {
        assert!(text.contains(word), "{word:?} missing from {text:?}");
    }
    assert!(ready.segments.len() >= 2);
    assert!(
        ready
            .segments
            .windows(2)
            .all(|w| w[0].start_seconds <= w[1].start_seconds)
    );
    assert!(
        ready.segments.iter().any(|s| s.start_seconds >= 30.0),
        "the second window's segments sit after 30 s: {:?}",
        ready.segments
    );

    // Exports.
    let plain = export(&speech, &ready.id, "").await;
    assert_eq!(plain.content_type, "text/plain; charset=utf-8");
    let plain = String::from_utf8(plain.data).unwrap();
    assert_eq!(plain.lines().count(), ready.segments.len());
    assert!(plain.to_lowercase().contains("weather"));
    let srt = export(&speech, &ready.id, "srt").await;
    assert_eq!(srt.content_type, "application/x-subrip");
    let srt = String::from_utf8(srt.data).unwrap();
    assert!(srt.starts_with("1\n00:00:"), "{srt}");
    let cue_times: Vec<&str> = srt.lines().filter(|l| l.contains(" --> ")).collect();
    assert_eq!(cue_times.len(), ready.segments.len());
    assert!(
        cue_times
            .iter()
            .all(|l| l.len() == 29 && l.as_bytes()[8] == b','),
        "{cue_times:?}"
    );
    let vtt = export(&speech, &ready.id, "vtt").await;
    assert_eq!(vtt.content_type, "text/vtt; charset=utf-8");
    let vtt = String::from_utf8(vtt.data).unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:"), "{vtt}");
    assert!(vtt.contains(".") && !vtt.contains(",000 -->"));

    // Listing, then deletion of the audio and of the transcription.
    let page = speech
        .clone()
        .list_transcriptions(pb::ListTranscriptionsRequest {
            status: pb::TranscriptionStatus::Ready.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.transcriptions.len(), 1);
    assert!(
        page.transcriptions[0].text.is_empty(),
        "lists carry no text"
    );
    speech
        .clone()
        .delete_audio(pb::DeleteAudioRequest {
            id: audio.id.clone(),
        })
        .await
        .unwrap();
    let gone = speech
        .clone()
        .download_audio(pb::DownloadAudioRequest {
            id: audio.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&gone, Code::NotFound);
    speech
        .clone()
        .delete_transcription(pb::DeleteTranscriptionRequest {
            id: ready.id.clone(),
        })
        .await
        .unwrap();
    let gone = speech
        .clone()
        .get_transcription(pb::GetTranscriptionRequest {
            id: ready.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&gone, Code::NotFound);
    // Each change was told as a domain event.
    app.assert_events(
        &app.alice.user_id,
        &["speech.audio.generated", "speech.transcription.finished"],
    )
    .await;
}

async fn other_users_speech_is_not_found(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let alice = client(&app, &app.alice.access);
    let transcription = alice
        .clone()
        .create_transcription(create_request("tone.wav", tone(1.0), "en"))
        .await
        .unwrap()
        .into_inner()
        .transcription
        .unwrap();
    let audio = synthesize(&alice, "Hello there.", 0).await.audio.unwrap();
    let bob = app.session("bob").await;
    let mut speech = client(&app, &bob.access);
    let id = transcription.id.clone();
    let statuses = vec![
        speech
            .get_transcription(pb::GetTranscriptionRequest { id: id.clone() })
            .await
            .unwrap_err(),
        speech
            .export_transcription(pb::ExportTranscriptionRequest {
                id: id.clone(),
                format: "srt".into(),
            })
            .await
            .unwrap_err(),
        speech
            .delete_transcription(pb::DeleteTranscriptionRequest { id: id.clone() })
            .await
            .unwrap_err(),
        speech
            .get_audio(pb::GetAudioRequest {
                id: audio.id.clone(),
            })
            .await
            .unwrap_err(),
        speech
            .download_audio(pb::DownloadAudioRequest {
                id: audio.id.clone(),
            })
            .await
            .unwrap_err(),
        speech
            .delete_audio(pb::DeleteAudioRequest {
                id: audio.id.clone(),
            })
            .await
            .unwrap_err(),
    ];
    for status in &statuses {
        assert_code(status, Code::NotFound);
    }
    let listed = speech
        .list_transcriptions(pb::ListTranscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.transcriptions.is_empty());
    // Bob's identical synthesis is his own, not a hit on alice's cache.
    let his = synthesize(&speech, "Hello there.", 0).await;
    assert!(!his.cached);
    assert_ne!(his.audio.unwrap().id, audio.id);
    // Alice still has hers.
    get(&alice, &id).await;
}

async fn bad_input_is_named(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let mut speech = client(&app, &app.alice.access);

    let status = speech
        .create_transcription(create_request("", Vec::new(), ""))
        .await
        .unwrap_err();
    assert_invalid(&status, "filename");
    assert_invalid(&status, "body.data");
    let status = speech
        .create_transcription(create_request(
            "noise.wav",
            b"this is not audio at all".repeat(100),
            "",
        ))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    assert!(
        status.message().contains("not a supported audio file"),
        "{}",
        status.message()
    );
    let status = speech
        .create_transcription(create_request("a.wav", tone(0.5), "english"))
        .await
        .unwrap_err();
    assert_invalid(&status, "language");
    let status = speech
        .create_transcription(create_request("a.wav", tone(0.5), "xx"))
        .await
        .unwrap_err();
    assert_invalid(&status, "language");
    let status = speech
        .create_transcription(pb::CreateTranscriptionRequest {
            model: "whisper-tiny.en".into(),
            ..create_request("a.wav", tone(0.5), "es")
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "language");
    assert!(status.message().contains("English"), "{}", status.message());
    let status = speech
        .create_transcription(pb::CreateTranscriptionRequest {
            model: "whisper-large".into(),
            ..create_request("a.wav", tone(0.5), "")
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "model");
    // Spanish needs the multilingual model, which this server does not load.
    let status = speech
        .create_transcription(create_request("a.wav", tone(0.5), "es"))
        .await
        .unwrap_err();
    assert_code(&status, Code::FailedPrecondition);
    assert!(
        status.message().contains("whisper-base"),
        "{}",
        status.message()
    );
    let status = speech
        .create_transcription(create_request(
            "big.wav",
            vec![0; MAX_UPLOAD as usize + 1],
            "",
        ))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    assert!(
        status.message().contains(&MAX_UPLOAD.to_string()),
        "{}",
        status.message()
    );
    let status = speech
        .create_transcription(create_request(
            "long.wav",
            tone(MAX_SECONDS as f32 + 5.0),
            "",
        ))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    assert!(
        status.message().contains("longer than the limit"),
        "{}",
        status.message()
    );

    let status = speech
        .export_transcription(pb::ExportTranscriptionRequest {
            id: "nope".into(),
            format: "docx".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "id");
    assert_invalid(&status, "format");
    let status = speech
        .list_transcriptions(pb::ListTranscriptionsRequest {
            page_size: -1,
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_size");

    let status = speech
        .synthesize_audio(pb::SynthesizeAudioRequest {
            text: " ".into(),
            voice: String::new(),
            format: 42,
            words_per_minute: 10,
            sample_rate_hertz: 12_345,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "text");
    assert_invalid(&status, "format");
    assert_invalid(&status, "words_per_minute");
    assert_invalid(&status, "sample_rate_hertz");
    assert!(status.message().contains("44100"), "{}", status.message());
    let status = speech
        .synthesize_audio(pb::SynthesizeAudioRequest {
            text: "Hello".into(),
            voice: "klingon-warrior".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "voice");
}

async fn recordings_expire_and_transcripts_stay(backend: Backend) {
    let app = spawn_with(backend, |config| {
        config.speech.audio_retention_secs = 1;
        config.speech.audio_retention_sweep_secs = 1;
    })
    .await;
    let token = app.alice.access.clone();
    let speech = client(&app, &token);
    let audio = synthesize(&speech, "Good morning, everybody.", 0)
        .await
        .audio
        .unwrap();
    let wav = speech
        .clone()
        .download_audio(pb::DownloadAudioRequest { id: audio.id })
        .await
        .unwrap()
        .into_inner()
        .data;
    let created = speech
        .clone()
        .create_transcription(create_request("morning.wav", wav, "en"))
        .await
        .unwrap()
        .into_inner();
    let id = created.transcription.unwrap().id;
    let seen = app
        .watch_job_to_end(&token, &created.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let expired = eventually(Duration::from_secs(30), "the recording expires", || {
        let speech = speech.clone();
        let id = id.clone();
        async move {
            let t = get(&speech, &id).await;
            (!t.audio_stored).then_some(t)
        }
    })
    .await;
    assert_eq!(expired.status(), pb::TranscriptionStatus::Ready);
    assert!(
        expired.text.to_lowercase().contains("morning"),
        "{}",
        expired.text
    );
}

/// Spanish and French speech (eSpeak NG's `roa/es` and `roa/fr` voices), transcribed by Whisper base
/// with the language detected on the first window and stored with its probability: once
/// asked with "auto", once by naming the model and no language.
async fn languages_are_detected(backend: Backend) {
    let app = spawn_with(backend, |config| {
        config.models.whisper_models = vec!["whisper-tiny.en".into(), "whisper-base".into()];
    })
    .await;
    let token = app.alice.access.clone();
    let speech = client(&app, &token);
    let cases = [
        (
            "es",
            "El perro come pan en la cocina y el gato duerme.",
            pb::CreateTranscriptionRequest {
                language: "auto".into(),
                ..create_request("es.wav", Vec::new(), "")
            },
            ["perro", "cocina", "gato"],
        ),
        (
            "fr",
            "Le chat dort dans la maison et le chien mange du pain.",
            pb::CreateTranscriptionRequest {
                model: "whisper-base".into(),
                ..create_request("fr.wav", Vec::new(), "")
            },
            ["chat", "maison", "chien"],
        ),
    ];
    for (language, sentence, mut request, words) in cases {
        let spoken = speech
            .clone()
            .synthesize_audio(pb::SynthesizeAudioRequest {
                text: sentence.into(),
                voice: format!("roa/{language}"),
                ..Default::default()
            })
            .await
            .expect("synthesize_audio failed")
            .into_inner()
            .audio
            .unwrap();
        let wav = speech
            .clone()
            .download_audio(pb::DownloadAudioRequest { id: spoken.id })
            .await
            .unwrap()
            .into_inner();
        request.body.as_mut().unwrap().data = wav.data;
        let created = speech
            .clone()
            .create_transcription(request)
            .await
            .unwrap()
            .into_inner();
        let pending = created.transcription.unwrap();
        assert_eq!(pending.language, "", "to be detected");
        let job = created.job.unwrap();
        let seen = app.watch_job_to_end(&token, &job.id, JOB_LIMIT).await;
        let last = seen.last().unwrap();
        assert_eq!(last.state(), jpb::JobState::Succeeded, "{last:?}");
        let ready = get(&speech, &pending.id).await;
        assert_eq!(ready.engine, "whisper-base");
        assert_eq!(ready.language, language, "{ready:?}");
        assert!(
            ready.language_probability > 0.5 && ready.language_probability <= 1.0,
            "{ready:?}"
        );
        // Whisper base hears eSpeak NG's formant voices poorly (the French sentence came out
        // as "et que ça doit dans la même hérocie à mon bouteau."): the language is asserted,
        // the words only printed; speech_bench measures the word error rate.
        let text = ready.text.to_lowercase();
        println!(
            "{language}: {text:?} (p = {:.3}; listening for {words:?})",
            ready.language_probability
        );
        assert!(!text.trim().is_empty(), "{ready:?}");
        // The list carries the detected language too.
        let listed = speech
            .clone()
            .list_transcriptions(pb::ListTranscriptionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        let summary = listed
            .transcriptions
            .iter()
            .find(|t| t.id == ready.id)
            .unwrap();
        assert_eq!(
            (summary.language.as_str(), summary.language_probability),
            (language, ready.language_probability)
        );
    }
}

/// A finished transcription is a source of processing tasks: its transcript is summarised
/// (and a transcription not READY yet is refused with FAILED_PRECONDITION).
async fn a_transcript_is_summarised(backend: Backend) {
    let app = spawn_with(backend, |config| {
        config.models.engines.push(EngineKind::Embeddings);
    })
    .await;
    let token = app.alice.access.clone();
    let speech = client(&app, &token);
    let tasks = TaskServiceClient::with_interceptor(app.channel.clone(), Bearer::token(&token));
    let text = "The library opens at nine in the morning. Children read books about animals \
                and the sea. The train to the coast leaves every hour. Tomato plants need full \
                sun and deep watering.";
    let audio = synthesize(&speech, text, 0).await.audio.unwrap();
    let wav = speech
        .clone()
        .download_audio(pb::DownloadAudioRequest { id: audio.id })
        .await
        .unwrap()
        .into_inner();
    let created = speech
        .clone()
        .create_transcription(create_request("library.wav", wav.data, ""))
        .await
        .unwrap()
        .into_inner();
    let transcription = created.transcription.unwrap();
    let on_transcription = Some(tpb::TaskSource {
        kind: Some(tpb::task_source::Kind::TranscriptionId(
            transcription.id.clone(),
        )),
    });
    let summarize = |source: Option<tpb::TaskSource>| {
        let mut tasks = tasks.clone();
        async move {
            tasks
                .submit_task(tpb::SubmitTaskRequest {
                    source,
                    r#type: tpb::TaskType::Summarize.into(),
                    translate: None,
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    // Not READY yet (the job has barely started).
    let early = summarize(on_transcription.clone()).await;
    if let Err(status) = &early {
        assert_code(status, Code::FailedPrecondition);
        assert!(status.message().contains("READY"), "{}", status.message());
    }
    let seen = app
        .watch_job_to_end(&token, &created.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);

    let submitted = summarize(on_transcription).await.unwrap();
    let seen = app
        .watch_job_to_end(&token, &submitted.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let task = tasks
        .clone()
        .get_task(tpb::GetTaskRequest {
            id: submitted.task.unwrap().id,
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(task.status(), tpb::TaskStatus::Succeeded, "{task:?}");
    let Some(tpb::task_result::Kind::Summary(summary)) =
        task.result.as_ref().and_then(|r| r.kind.as_ref())
    else {
        panic!("a summary: {task:?}");
    };
    assert!(!summary.sentences.is_empty(), "{summary:?}");
    let summary = summary.text.to_lowercase();
    assert!(
        ["library", "train", "tomato", "children"]
            .iter()
            .any(|word| summary.contains(word)),
        "{summary:?}"
    );

    // Another user's transcription is not found.
    let bob = app.session("bob").await;
    let status =
        TaskServiceClient::with_interceptor(app.channel.clone(), Bearer::token(&bob.access))
            .submit_task(tpb::SubmitTaskRequest {
                source: Some(tpb::TaskSource {
                    kind: Some(tpb::task_source::Kind::TranscriptionId(transcription.id)),
                }),
                r#type: tpb::TaskType::Summarize.into(),
                translate: None,
            })
            .await
            .unwrap_err();
    assert_code(&status, Code::NotFound);
}

/// Transcribes `data` and returns the transcript, lowercased.
async fn transcribe(
    app: &TestApp,
    speech: &Client,
    filename: &str,
    content_type: &str,
    data: Vec<u8>,
) -> String {
    let mut request = create_request(filename, data, "en");
    request.body.as_mut().unwrap().content_type = content_type.into();
    let created = speech
        .clone()
        .create_transcription(request)
        .await
        .unwrap_or_else(|status| panic!("{filename}: {status:?}"))
        .into_inner();
    let job = created.job.unwrap();
    let seen = app
        .watch_job_to_end(&app.alice.access, &job.id, JOB_LIMIT)
        .await;
    assert_eq!(
        seen.last().unwrap().state(),
        jpb::JobState::Succeeded,
        "{filename}: {seen:?}"
    );
    get(speech, &created.transcription.unwrap().id)
        .await
        .text
        .to_lowercase()
}

async fn audio_formats_and_recorded_formats(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let speech = client(&app, &app.alice.access);
    let text = "The library opens at nine in the morning and closes at six in the evening.";
    let mut stored = Vec::new();
    for (format, rate, content_type, magic) in [
        (pb::AudioFormat::Wav, 16_000, "audio/wav", &b"RIFF"[..]),
        (pb::AudioFormat::Mp3, 16_000, "audio/mpeg", &[0xff][..]),
        (pb::AudioFormat::OggOpus, 24_000, "audio/ogg", &b"OggS"[..]),
    ] {
        let made = speech
            .clone()
            .synthesize_audio(pb::SynthesizeAudioRequest {
                text: text.into(),
                voice: "en-us".into(),
                format: format.into(),
                words_per_minute: 0,
                sample_rate_hertz: rate,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!made.cached);
        let audio = made.audio.unwrap();
        assert_eq!(audio.format(), format);
        assert_eq!(audio.content_type, content_type);
        assert_eq!(audio.sample_rate_hertz, rate);
        assert!(audio.duration_seconds > 3.0, "{}", audio.duration_seconds);
        let body = speech
            .clone()
            .download_audio(pb::DownloadAudioRequest {
                id: audio.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(body.content_type, content_type);
        assert!(
            body.data.starts_with(magic),
            "{format:?}: {:?}",
            &body.data[..8]
        );
        assert_eq!(body.data.len() as i64, audio.size_bytes);
        stored.push((audio, body.data));
    }
    let wav_size = stored[0].0.size_bytes;
    assert!(
        stored[1].0.size_bytes * 2 < wav_size,
        "MP3 at 64 kbit/s is under half of 16-bit WAV"
    );
    assert!(
        stored[2].0.size_bytes * 4 < wav_size,
        "Opus at 32 kbit/s is under a quarter"
    );
    // Another format or sample rate is another request; the same one is a cache hit.
    let again = speech
        .clone()
        .synthesize_audio(pb::SynthesizeAudioRequest {
            text: text.into(),
            voice: "en-us".into(),
            format: pb::AudioFormat::OggOpus.into(),
            words_per_minute: 0,
            sample_rate_hertz: 24_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.cached);
    assert_eq!(again.audio.unwrap().id, stored[2].0.id);

    // The Opus and MP3 files transcribe back to the words spoken.
    for (audio, data) in &stored[1..] {
        let heard = transcribe(
            &app,
            &speech,
            "synthesised",
            &audio.content_type,
            data.clone(),
        )
        .await;
        for word in ["library", "morning", "evening"] {
            assert!(
                heard.contains(word),
                "{:?}: {word:?} missing from {heard:?}",
                audio.format()
            );
        }
    }
    // What browsers (WebM/Opus) and phones (MP4/AAC) record.
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../aimesh-speech/tests/fixtures"
    );
    for (name, content_type) in [
        ("voice-note.webm", "audio/webm"),
        ("voice-note.m4a", "audio/mp4"),
    ] {
        let data = std::fs::read(format!("{fixtures}/{name}")).unwrap();
        let heard = transcribe(&app, &speech, name, content_type, data).await;
        for word in ["quarterly", "report", "friday", "meeting", "floor"] {
            assert!(
                heard.contains(word),
                "{name}: {word:?} missing from {heard:?}"
            );
        }
    }
}

async fn the_audio_cache_evicts_the_least_recently_used(backend: Backend) {
    // Room for two of these sentences (each some 140 KB of WAV), not three.
    let app = spawn_with(backend, |config| config.speech.audio_cache_bytes = 300_000).await;
    let speech = client(&app, &app.alice.access);
    let first = synthesize(&speech, "The first sentence, spoken slowly and clearly.", 0).await;
    let first = first.audio.unwrap();
    assert!(
        first.size_bytes > 110_000 && first.size_bytes < 150_000,
        "{}",
        first.size_bytes
    );
    let second = synthesize(
        &speech,
        "The second sentence, spoken slowly and clearly.",
        0,
    )
    .await;
    let second = second.audio.unwrap();
    // The first is used again (downloaded): the second becomes the least recently used.
    speech
        .clone()
        .download_audio(pb::DownloadAudioRequest {
            id: first.id.clone(),
        })
        .await
        .unwrap();
    let third = synthesize(&speech, "The third sentence, spoken slowly and clearly.", 0).await;
    let third = third.audio.unwrap();
    let get = |id: &str| {
        let mut speech = speech.clone();
        let id = id.to_owned();
        async move { speech.get_audio(pb::GetAudioRequest { id }).await }
    };
    assert_code(&get(&second.id).await.unwrap_err(), Code::NotFound);
    get(&first.id).await.expect("the recently used audio stays");
    get(&third.id).await.expect("the new audio stays");
    // Asked for again, the evicted audio is synthesised anew.
    let again = synthesize(
        &speech,
        "The second sentence, spoken slowly and clearly.",
        0,
    )
    .await;
    assert!(!again.cached);
    assert_ne!(again.audio.unwrap().id, second.id);
}

backend_tests!(
    audio_formats_and_recorded_formats,
    the_audio_cache_evicts_the_least_recently_used,
    a_transcript_is_summarised,
    languages_are_detected,
    speech_end_to_end,
    other_users_speech_is_not_found,
    bad_input_is_named,
    recordings_expire_and_transcripts_stay,
);
