//! The gallery API end to end on real images made in the test: uploads of every format with
//! their EXIF orientation applied and GPS stripped (or kept), thumbnails, downloads with cache
//! headers, listing filters and paging, metadata updates, the trash (restore, permanent
//! deletion, empty, the scheduled purge), edits as jobs producing linked derivatives, engine
//! operations refused while no engine serves, ownership, bad input, the limits and the quota.

use std::time::Duration;

use aimesh::ServiceKind;
use aimesh_gallery::samples;
use aimesh_kit::testing::{Backend, eventually};
use aimesh_proto::{
    gallery::v1::{self as pb, gallery_service_client::GalleryServiceClient},
    google::api::HttpBody,
    jobs::v1 as jpb,
};
use image::{DynamicImage, ImageFormat};
use prost::Message;
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::helpers::{Bearer, TestApp, assert_code, assert_invalid, backend_tests};

type Client = GalleryServiceClient<InterceptedService<Channel, Bearer>>;

/// Upload limit, pixel limit and quota of the test server.
const MAX_UPLOAD: u64 = 8 << 20;
const MAX_PIXELS: u64 = 4_000_000;

async fn spawn(backend: Backend, configure: impl FnOnce(&mut aimesh::MeshConfig)) -> TestApp {
    TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.gallery.gallery_max_upload_bytes = MAX_UPLOAD;
        config.gallery.gallery_max_pixels = MAX_PIXELS;
        configure(config);
    })
    .await
}

fn client(app: &TestApp, token: &str) -> Client {
    GalleryServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
        .max_decoding_message_size(16 << 20)
}

fn request(data: Vec<u8>, title: &str, tags: &[&str]) -> pb::UploadImageRequest {
    pb::UploadImageRequest {
        body: Some(HttpBody {
            content_type: String::new(),
            data,
            extensions: Vec::new(),
        }),
        title: title.into(),
        prompt: String::new(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        keep_metadata: false,
    }
}

async fn upload(client: &Client, data: Vec<u8>, title: &str, tags: &[&str]) -> pb::Image {
    client
        .clone()
        .upload_image(request(data, title, tags))
        .await
        .expect("upload_image failed")
        .into_inner()
        .image
        .unwrap()
}

async fn download(client: &Client, id: &str, variant: pb::ImageVariant) -> (HttpBody, String) {
    let response = client
        .clone()
        .download_image(pb::DownloadImageRequest {
            id: id.into(),
            variant: variant.into(),
        })
        .await
        .expect("download_image failed");
    let cache = response
        .metadata()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.into_inner(), cache)
}

async fn get(client: &Client, id: &str) -> Result<pb::Image, tonic::Status> {
    client
        .clone()
        .get_image(pb::GetImageRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().image.unwrap())
}

fn photo(width: u32, height: u32, seed: u64) -> DynamicImage {
    DynamicImage::ImageRgb8(samples::landscape(width, height, seed))
}

fn decoded(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("a stored file decodes")
}

/// Follows a job over WatchJob to its end and returns the last snapshot.
async fn finish(app: &TestApp, job: &jpb::Job) -> jpb::Job {
    let mut stream = app
        .jobs()
        .watch_job(jpb::WatchJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Some(message) = tokio::time::timeout_at(deadline, stream.message())
        .await
        .expect("the job finished in time")
        .unwrap()
    {
        last = message.job;
    }
    last.unwrap()
}

fn operation_result(job: &jpb::Job) -> pb::ImageOperationResult {
    assert_eq!(job.state(), jpb::JobState::Succeeded, "{job:?}");
    let any = job.result.as_ref().expect("a result");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/aimesh.gallery.v1.ImageOperationResult"
    );
    pb::ImageOperationResult::decode(any.value.as_slice()).unwrap()
}

async fn uploads_of_every_format_are_decoded_and_stored(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let gallery = client(&app, &app.alice.access);

    // A JPEG from a camera held upright (orientation 6) with a GPS position.
    let camera = samples::jpeg(&samples::landscape(640, 480, 1), &samples::exif_with_gps(6));
    assert!(samples::contains_gps(&camera));
    let image = upload(&gallery, camera.clone(), "Upright", &["Holiday", "beach"]).await;
    assert_eq!(
        (image.width, image.height),
        (480, 640),
        "orientation applied"
    );
    assert_eq!(image.format, "jpeg");
    assert_eq!(image.content_type, "image/jpeg");
    assert_eq!(image.origin(), pb::ImageOrigin::Uploaded);
    assert_eq!(image.tags, ["holiday", "beach"]);
    assert!(!image.metadata_kept);
    assert_eq!(image.sha256.len(), 64);
    assert!(!image.perceptual_hash.is_empty());
    let (original, cache) = download(&gallery, &image.id, pb::ImageVariant::Original).await;
    assert_eq!(original.content_type, "image/jpeg");
    assert!(cache.contains("max-age"), "cache headers: {cache:?}");
    assert!(!samples::contains_gps(&original.data), "GPS stripped");
    assert_eq!(original.data.len() as i64, image.size_bytes);
    let stored = decoded(&original.data);
    assert_eq!((stored.width(), stored.height()), (480, 640));
    for (variant, side) in [
        (pb::ImageVariant::Thumbnail256, 256),
        (pb::ImageVariant::Thumbnail1024, 640),
    ] {
        let (thumbnail, _) = download(&gallery, &image.id, variant).await;
        assert_eq!(thumbnail.content_type, "image/jpeg");
        let thumbnail = decoded(&thumbnail.data);
        assert_eq!(thumbnail.height(), side, "{variant:?}");
        assert_eq!(thumbnail.width(), side * 3 / 4, "{variant:?}");
    }

    // Kept metadata: the very bytes uploaded.
    let kept = gallery
        .clone()
        .upload_image(pb::UploadImageRequest {
            keep_metadata: true,
            ..request(camera.clone(), "", &[])
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert!(kept.metadata_kept);
    let (original, _) = download(&gallery, &kept.id, pb::ImageVariant::Original).await;
    assert_eq!(original.data, camera);
    assert_eq!((kept.width, kept.height), (480, 640));

    // PNG, WebP and a GIF's first frame; a transparent PNG keeps its alpha in WebP thumbnails.
    let landscape = photo(1600, 900, 2);
    let png = upload(
        &gallery,
        samples::encode(&landscape, ImageFormat::Png),
        "",
        &[],
    )
    .await;
    assert_eq!(
        (png.format.as_str(), png.width, png.height),
        ("png", 1600, 900)
    );
    let (thumbnail, _) = download(&gallery, &png.id, pb::ImageVariant::Thumbnail1024).await;
    let thumbnail = decoded(&thumbnail.data);
    assert_eq!((thumbnail.width(), thumbnail.height()), (1024, 576));
    let webp = upload(
        &gallery,
        samples::encode(&photo(320, 200, 3), ImageFormat::WebP),
        "",
        &[],
    )
    .await;
    assert_eq!(webp.format, "webp");
    let gif = samples::encode(
        &DynamicImage::ImageRgba8(photo(120, 80, 4).to_rgba8()),
        ImageFormat::Gif,
    );
    let gif = upload(&gallery, gif, "", &[]).await;
    assert_eq!(
        (gif.format.as_str(), gif.width, gif.height),
        ("png", 120, 80)
    );
    let cutout = DynamicImage::ImageRgba8(samples::cutout(300, 300, 5));
    let cutout = upload(
        &gallery,
        samples::encode(&cutout, ImageFormat::Png),
        "",
        &[],
    )
    .await;
    let (thumbnail, _) = download(&gallery, &cutout.id, pb::ImageVariant::Thumbnail256).await;
    assert_eq!(thumbnail.content_type, "image/webp");
    assert!(decoded(&thumbnail.data).color().has_alpha());

    // Near-identical pictures have close perceptual hashes.
    let again = upload(
        &gallery,
        samples::encode(
            &landscape.resize(800, 450, image::imageops::FilterType::Triangle),
            ImageFormat::Jpeg,
        ),
        "",
        &[],
    )
    .await;
    let distance =
        aimesh_gallery::imaging::hash_distance(&png.perceptual_hash, &again.perceptual_hash);
    assert!(distance.is_some_and(|d| d <= 6), "{distance:?}");
}

async fn bad_uploads_are_refused_naming_the_field(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let gallery = client(&app, &app.alice.access);
    let png = samples::encode(&photo(64, 48, 1), ImageFormat::Png);
    for (request, field) in [
        (request(Vec::new(), "", &[]), "body.data"),
        (
            request(b"%PDF-1.7 not an image".to_vec(), "", &[]),
            "body.data",
        ),
        (request(png.clone(), "", &["a/b"]), "tags"),
        (request(png.clone(), &"x".repeat(201), &[]), "title"),
        (request(png[..png.len() / 2].to_vec(), "", &[]), "body.data"),
    ] {
        let status = gallery.clone().upload_image(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
    // A header declaring 100,000 × 100,000 pixels is refused from the header.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    huge.extend(100_000u32.to_be_bytes());
    huge.extend(100_000u32.to_be_bytes());
    huge.extend([8, 2, 0, 0, 0]);
    huge.extend(crc32(&huge[12..]).to_be_bytes());
    let status = gallery
        .clone()
        .upload_image(request(huge, "", &[]))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    assert!(
        status.message().contains("100000 × 100000"),
        "{}",
        status.message()
    );
    // More pixels than the limit, in a small file.
    let big = samples::encode(&DynamicImage::new_luma8(2100, 2000), ImageFormat::Png);
    let status = gallery
        .clone()
        .upload_image(request(big, "", &[]))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    // More bytes than the limit.
    let mut noisy = samples::encode(&photo(64, 48, 1), ImageFormat::Png);
    noisy.resize(MAX_UPLOAD as usize + 1, 0);
    let status = gallery
        .clone()
        .upload_image(request(noisy, "", &[]))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    // Bad ids and variants.
    let status = gallery
        .clone()
        .get_image(pb::GetImageRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_invalid(&status, "id");
    let status = gallery
        .clone()
        .stylize_image(pb::StylizeImageRequest {
            id: uuid_like(),
            style: 0,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "style");
}

fn uuid_like() -> String {
    "0190d8a4-0000-7000-8000-000000000000".into()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn listing_filters_pages_and_updates(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let gallery = client(&app, &app.alice.access);
    let mut ids = Vec::new();
    for seed in 0..5 {
        let tags: &[&str] = if seed % 2 == 0 { &["even"] } else { &["odd"] };
        let image = upload(
            &gallery,
            samples::encode(&photo(64, 48, seed), ImageFormat::Png),
            "",
            tags,
        )
        .await;
        ids.push(image.id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = gallery
            .clone()
            .list_images(pb::ListImagesRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.images.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let even = gallery
        .clone()
        .list_images(pb::ListImagesRequest {
            tag: "EVEN".into(),
            origin: pb::ImageOrigin::Uploaded.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(even.images.len(), 3);
    let none = gallery
        .clone()
        .list_images(pb::ListImagesRequest {
            origin: pb::ImageOrigin::Generated.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.images.is_empty());
    let future = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    };
    let later = gallery
        .clone()
        .list_images(pb::ListImagesRequest {
            created_after: Some(future),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(later.images.is_empty());
    // A token is bound to its filters.
    let status = gallery
        .clone()
        .list_images(pb::ListImagesRequest {
            page_size: 2,
            page_token: gallery
                .clone()
                .list_images(pb::ListImagesRequest {
                    page_size: 2,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .next_page_token,
            tag: "odd".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_token");

    // Updates change only the fields set.
    let updated = gallery
        .clone()
        .update_image(pb::UpdateImageRequest {
            id: ids[0].clone(),
            title: Some("Sunset".into()),
            prompt: None,
            tags: Some(pb::ImageTags {
                values: vec!["golden hour".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert_eq!(updated.title, "Sunset");
    assert_eq!(updated.tags, ["golden hour"]);
    let untouched = gallery
        .clone()
        .update_image(pb::UpdateImageRequest {
            id: ids[0].clone(),
            prompt: Some("a sunset over hills".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert_eq!(untouched.title, "Sunset");
    assert_eq!(untouched.prompt, "a sunset over hills");
    let status = gallery
        .clone()
        .update_image(pb::UpdateImageRequest {
            id: ids[0].clone(),
            tags: Some(pb::ImageTags {
                values: vec!["".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "tags.values");
}

async fn the_trash_restores_deletes_and_purges(backend: Backend) {
    // Nothing stays in the trash, and the purge runs every second.
    let app = spawn(backend, |config| {
        config.gallery.gallery_trash_retention_days = 0;
        config.gallery.gallery_purge_interval_secs = 1;
    })
    .await;
    let gallery = client(&app, &app.alice.access);
    let png = |seed| samples::encode(&photo(80, 60, seed), ImageFormat::Png);
    let a = upload(&gallery, png(1), "a", &[]).await;
    let b = upload(&gallery, png(2), "b", &[]).await;

    let trashed = gallery
        .clone()
        .delete_image(pb::DeleteImageRequest { id: a.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert!(trashed.delete_time.is_some() && trashed.purge_time.is_some());
    let again = gallery
        .clone()
        .delete_image(pb::DeleteImageRequest { id: a.id.clone() })
        .await
        .unwrap_err();
    assert_code(&again, Code::FailedPrecondition);
    let listed = gallery
        .clone()
        .list_images(pb::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.images.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&b.id]
    );
    // The scheduled purge deletes it for good, blobs and all.
    eventually(
        Duration::from_secs(30),
        "the purge deleted the image",
        || {
            let gallery = gallery.clone();
            let id = a.id.clone();
            async move {
                matches!(get(&gallery, &id).await, Err(status) if status.code() == Code::NotFound)
                    .then_some(())
            }
        },
    )
    .await;
    let status = gallery
        .clone()
        .download_image(pb::DownloadImageRequest {
            id: a.id.clone(),
            variant: 0,
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    assert_eq!(
        get(&gallery, &b.id).await.unwrap().id,
        b.id,
        "the other image stays"
    );
}

async fn trash_restore_and_empty(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let gallery = client(&app, &app.alice.access);
    let png = |seed| samples::encode(&photo(80, 60, seed), ImageFormat::Png);
    let a = upload(&gallery, png(1), "a", &[]).await;
    let b = upload(&gallery, png(2), "b", &[]).await;
    let c = upload(&gallery, png(3), "c", &[]).await;
    for id in [&a.id, &b.id, &c.id] {
        gallery
            .clone()
            .delete_image(pb::DeleteImageRequest { id: id.clone() })
            .await
            .unwrap();
    }
    let trash = gallery
        .clone()
        .list_deleted_images(pb::ListDeletedImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trash.images.len(), 3);
    let purge =
        trash.images[0].purge_time.unwrap().seconds - trash.images[0].delete_time.unwrap().seconds;
    assert_eq!(purge, 30 * 24 * 3600, "the default retention is 30 days");
    let restored = gallery
        .clone()
        .restore_image(pb::RestoreImageRequest { id: a.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert!(restored.delete_time.is_none());
    let status = gallery
        .clone()
        .restore_image(pb::RestoreImageRequest { id: a.id.clone() })
        .await
        .unwrap_err();
    assert_code(&status, Code::FailedPrecondition);
    gallery
        .clone()
        .permanently_delete_image(pb::PermanentlyDeleteImageRequest { id: b.id.clone() })
        .await
        .unwrap();
    let emptied = gallery
        .clone()
        .empty_trash(pb::EmptyTrashRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(emptied.deleted_count, 1, "only c was left in the trash");
    assert_code(&get(&gallery, &c.id).await.unwrap_err(), Code::NotFound);
    assert_eq!(get(&gallery, &a.id).await.unwrap().id, a.id);
}

async fn edits_make_linked_images_that_outlive_their_source(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let gallery = client(&app, &app.alice.access);
    let source = upload(
        &gallery,
        samples::jpeg(&samples::landscape(400, 300, 9), &[]),
        "Hills",
        &["walk"],
    )
    .await;
    let job = gallery
        .clone()
        .enhance_image(pb::EnhanceImageRequest {
            id: source.id.clone(),
            sharpen_amount: 0.0,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.kind, "gallery.edit");
    let result = operation_result(&finish(&app, &job).await);
    assert_eq!(result.source_id, source.id);
    assert_eq!(result.operation, "enhance");
    let enhanced = get(&gallery, &result.image_id).await.unwrap();
    assert_eq!(enhanced.origin(), pb::ImageOrigin::Derived);
    assert_eq!(enhanced.source_id, source.id);
    assert_eq!(enhanced.job_id, job.id);
    assert_eq!((enhanced.width, enhanced.height), (400, 300));
    assert_eq!(enhanced.title, "Hills");
    assert_ne!(enhanced.sha256, source.sha256);

    let mut styled = Vec::new();
    for style in [
        pb::ImageStyle::Sepia,
        pb::ImageStyle::PencilSketch,
        pb::ImageStyle::Cartoon,
    ] {
        let job = gallery
            .clone()
            .stylize_image(pb::StylizeImageRequest {
                id: source.id.clone(),
                style: style.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        let result = operation_result(&finish(&app, &job).await);
        assert!(result.operation.starts_with("style:"), "{result:?}");
        styled.push(result.image_id);
    }
    let derived = gallery
        .clone()
        .list_images(pb::ListImagesRequest {
            origin: pb::ImageOrigin::Derived.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(derived.images.len(), 4);

    // Deleting the source for good leaves its derivatives whole.
    gallery
        .clone()
        .permanently_delete_image(pb::PermanentlyDeleteImageRequest {
            id: source.id.clone(),
        })
        .await
        .unwrap();
    for id in styled.iter().chain([&result.image_id]) {
        let image = get(&gallery, id).await.unwrap();
        assert_eq!(image.source_id, source.id);
        let (original, _) = download(&gallery, id, pb::ImageVariant::Original).await;
        assert_eq!(decoded(&original.data).width(), 400);
    }
    // An edit of a trashed image is refused until it is restored.
    gallery
        .clone()
        .delete_image(pb::DeleteImageRequest {
            id: enhanced.id.clone(),
        })
        .await
        .unwrap();
    let status = gallery
        .clone()
        .stylize_image(pb::StylizeImageRequest {
            id: enhanced.id.clone(),
            style: pb::ImageStyle::Grayscale.into(),
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::FailedPrecondition);
}

async fn engine_operations_say_their_capability_is_not_serving(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let gallery = client(&app, &app.alice.access);
    let source = upload(
        &gallery,
        samples::encode(&photo(64, 48, 1), ImageFormat::Png),
        "",
        &[],
    )
    .await;
    let upscale = gallery
        .clone()
        .upscale_image(pb::UpscaleImageRequest {
            id: source.id.clone(),
            factor: 2,
        })
        .await
        .unwrap_err();
    let background = gallery
        .clone()
        .remove_background(pb::RemoveBackgroundRequest {
            id: source.id.clone(),
        })
        .await
        .unwrap_err();
    let generate = gallery
        .clone()
        .generate_image(pb::GenerateImageRequest {
            prompt: "a lighthouse at dawn".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    for (status, capability) in [
        (upscale, "image-upscale"),
        (background, "image-background-removal"),
        (generate, "image-generation"),
    ] {
        assert_code(&status, Code::FailedPrecondition);
        assert!(
            status.message().contains("capability not serving")
                && status.message().contains(capability),
            "{}",
            status.message()
        );
    }
    // Bad input is still named first.
    let status = gallery
        .clone()
        .upscale_image(pb::UpscaleImageRequest {
            id: source.id.clone(),
            factor: 9,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "factor");
    let status = gallery
        .clone()
        .generate_image(pb::GenerateImageRequest::default())
        .await
        .unwrap_err();
    assert_invalid(&status, "prompt");
}

async fn another_users_images_are_not_found(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let alice = client(&app, &app.alice.access);
    let bob_session = app.session("bob").await;
    let bob = client(&app, &bob_session.access);
    let image = upload(
        &alice,
        samples::encode(&photo(64, 48, 1), ImageFormat::Png),
        "",
        &[],
    )
    .await;
    assert_code(&get(&bob, &image.id).await.unwrap_err(), Code::NotFound);
    let status = bob
        .clone()
        .enhance_image(pb::EnhanceImageRequest {
            id: image.id.clone(),
            sharpen_amount: 0.0,
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let listed = bob
        .clone()
        .list_images(pb::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.images.is_empty());
    let emptied = bob
        .clone()
        .empty_trash(pb::EmptyTrashRequest {})
        .await
        .unwrap();
    assert_eq!(emptied.into_inner().deleted_count, 0);
    assert_eq!(get(&alice, &image.id).await.unwrap().id, image.id);
}

async fn the_storage_quota_counts_images_and_thumbnails(backend: Backend) {
    let app = spawn(backend, |config| {
        config.processing.storage_quota_bytes = 250_000;
    })
    .await;
    let gallery = client(&app, &app.alice.access);
    // A noisy PNG of over 100 KB: the first fits, the second does not.
    let png = samples::encode(&photo(256, 256, 1), ImageFormat::Png);
    assert!(png.len() > 100_000, "{}", png.len());
    upload(&gallery, png, "", &[]).await;
    let status = gallery
        .clone()
        .upload_image(request(
            samples::encode(&photo(256, 256, 2), ImageFormat::Png),
            "",
            &[],
        ))
        .await
        .unwrap_err();
    assert_code(&status, Code::ResourceExhausted);
    assert!(
        status.message().contains("AIMESH_STORAGE_QUOTA_BYTES"),
        "{}",
        status.message()
    );
}

/// With the pinned ESRGAN weights loaded, upscaling runs the network: ×2 and ×4 natively,
/// ×3 at ×4 brought to size, transparency kept; the result names the engine. Background
/// removal and generation still say why they are not serving (no model configured).
async fn upscaling_runs_the_loaded_engine(backend: Backend) {
    let app = spawn(backend, |config| {
        config.models = aimesh_models::ModelsConfig {
            engines: vec![aimesh_models::EngineKind::ImageUpscale],
            ..aimesh_models::ModelsConfig::new(aimesh_ai::models::dir_for_tests())
        };
    })
    .await;
    let gallery = client(&app, &app.alice.access);
    let source = upload(
        &gallery,
        samples::encode(&photo(64, 48, 3), ImageFormat::Png),
        "Small",
        &[],
    )
    .await;
    let mut transparent = photo(40, 30, 4).to_rgba8();
    for (x, _, pixel) in transparent.enumerate_pixels_mut() {
        pixel[3] = if x < 20 { 0 } else { 255 };
    }
    let transparent = upload(
        &gallery,
        samples::encode(&DynamicImage::ImageRgba8(transparent), ImageFormat::Png),
        "Half",
        &[],
    )
    .await;
    for (id, factor, size) in [
        (&source.id, 2, (128, 96)),
        (&source.id, 3, (192, 144)),
        (&transparent.id, 2, (80, 60)),
    ] {
        let job = gallery
            .clone()
            .upscale_image(pb::UpscaleImageRequest {
                id: id.clone(),
                factor,
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(job.kind, "gallery.upscale");
        let result = operation_result(&finish(&app, &job).await);
        assert_eq!(result.engine, "esrgan-psnr-small", "{result:?}");
        let upscaled = get(&gallery, &result.image_id).await.unwrap();
        assert_eq!((upscaled.width, upscaled.height), size);
        let (original, _) = download(&gallery, &result.image_id, pb::ImageVariant::Original).await;
        let image = decoded(&original.data);
        assert_eq!((image.width() as i32, image.height() as i32), size);
        if *id == transparent.id {
            let rgba = image.to_rgba8();
            assert_eq!(rgba.get_pixel(5, 30)[3], 0, "the clear half stays clear");
            assert_eq!(
                rgba.get_pixel(75, 30)[3],
                255,
                "the opaque half stays opaque"
            );
        }
    }
    let status = gallery
        .clone()
        .remove_background(pb::RemoveBackgroundRequest {
            id: source.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::FailedPrecondition);
    assert!(
        status.message().contains("image-background-removal"),
        "{}",
        status.message()
    );
}

/// With a segmentation model configured (here a small hand-set network that takes red for
/// foreground), RemoveBackground is a job whose result is a new PNG image linked to its
/// source, the foreground opaque and the background transparent.
async fn background_removal_runs_the_configured_model(backend: Backend) {
    let models = tempfile::tempdir().unwrap();
    let model = models.path().join("red-foreground.onnx");
    aimesh_ai::image::matting::testing::write_red_foreground_model(&model, Some(64)).unwrap();
    let app = spawn(backend, |config| {
        config.models = aimesh_models::ModelsConfig {
            engines: vec![aimesh_models::EngineKind::BackgroundRemoval],
            matting_model: Some(model),
            ..aimesh_models::ModelsConfig::new(aimesh_ai::models::dir_for_tests())
        };
    })
    .await;
    let gallery = client(&app, &app.alice.access);
    let picture = image::RgbImage::from_fn(120, 90, |x, y| {
        if (40..80).contains(&x) && (20..60).contains(&y) {
            image::Rgb([220, 30, 40])
        } else {
            image::Rgb([120 + (x % 7) as u8, 125, 118 + (y % 5) as u8])
        }
    });
    let source = upload(
        &gallery,
        samples::encode(&DynamicImage::ImageRgb8(picture), ImageFormat::Jpeg),
        "Red square",
        &[],
    )
    .await;
    let job = gallery
        .clone()
        .remove_background(pb::RemoveBackgroundRequest {
            id: source.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.kind, "gallery.remove_background");
    let result = operation_result(&finish(&app, &job).await);
    assert_eq!(result.engine, "onnx-matting", "{result:?}");
    let cut = get(&gallery, &result.image_id).await.unwrap();
    assert_eq!(cut.source_id, source.id);
    assert_eq!(cut.origin(), pb::ImageOrigin::Derived);
    assert_eq!((cut.width, cut.height), (120, 90));
    let (original, _) = download(&gallery, &result.image_id, pb::ImageVariant::Original).await;
    assert_eq!(original.content_type, "image/png");
    let rgba = decoded(&original.data).to_rgba8();
    for (x, y) in [(50, 30), (70, 50), (60, 40)] {
        assert!(rgba.get_pixel(x, y)[3] > 240, "foreground at {x},{y}");
    }
    for (x, y) in [(5, 5), (110, 80), (20, 70), (100, 10)] {
        assert!(rgba.get_pixel(x, y)[3] < 10, "background at {x},{y}");
    }
}

backend_tests!(
    uploads_of_every_format_are_decoded_and_stored,
    bad_uploads_are_refused_naming_the_field,
    listing_filters_pages_and_updates,
    the_trash_restores_deletes_and_purges,
    trash_restore_and_empty,
    edits_make_linked_images_that_outlive_their_source,
    engine_operations_say_their_capability_is_not_serving,
    upscaling_runs_the_loaded_engine,
    background_removal_runs_the_configured_model,
    another_users_images_are_not_found,
    the_storage_quota_counts_images_and_thumbnails,
);
