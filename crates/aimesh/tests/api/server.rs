//! Health, reflection and grpc-web on the mesh's server.

use aimesh_kit::testing::Backend;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::{TestApp, backend_tests};

async fn health_reports_serving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "aimesh.notes.v1.NotesService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check failed")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

async fn reflection_lists_the_services(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call failed")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("reflection stream failed")
        .expect("a reflection response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"aimesh.notes.v1.NotesService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("bench")),
        "unserved service listed: {names:?}"
    );
}

/// A grpc-web call over plain HTTP/1.1, as a browser would make it.
async fn grpc_web_over_http1(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn(backend).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // One uncompressed data frame holding an empty GetNoteStatsRequest.
    let body = [0u8, 0, 0, 0, 0];
    let head = format!(
        "POST /aimesh.notes.v1.NotesService/GetNoteStats HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        app.alice.access,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/grpc-web"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
}

backend_tests!(
    health_reports_serving,
    reflection_lists_the_services,
    grpc_web_over_http1,
);

/// Prometheus metrics on the admin listener count and time the calls made.
mod metrics {
    use std::time::Duration;

    use aimesh_proto::notes::v1 as pb;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::helpers::TestApp;

    async fn scrape(addr: std::net::SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        body
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_are_counted_and_timed() {
        let app = TestApp::spawn(aimesh_kit::testing::Backend::Sqlite).await;
        let addr = app.metrics_addr.expect("metrics are on in tests");
        app.notes
            .clone()
            .get_note_stats(pb::GetNoteStatsRequest {})
            .await
            .unwrap();
        let _ = app
            .notes
            .clone()
            .get_note(pb::GetNoteRequest { id: "bad".into() })
            .await;
        let text = aimesh_kit::testing::eventually(
            Duration::from_secs(5),
            "the call is in the metrics",
            || async {
                let text = scrape(addr).await;
                text.contains("GetNoteStats").then_some(text)
            },
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains(
                r#"aimesh_grpc_requests_total{method="/aimesh.notes.v1.NotesService/GetNoteStats",code="0"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"aimesh_grpc_requests_total{method="/aimesh.notes.v1.NotesService/GetNote",code="3"}"#
            ),
            "INVALID_ARGUMENT is counted by code: {text}"
        );
        assert!(
            text.contains("aimesh_grpc_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
