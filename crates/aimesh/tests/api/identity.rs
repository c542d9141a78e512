//! Accounts, tokens and tenancy end to end, including attacks on tokens.

use aimesh::ServiceKind;
use aimesh_identity::keys::SigningKeys;
use aimesh_kit::testing::Backend;
use aimesh_proto::{identity::v1 as idpb, notes::v1 as pb};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use tonic_types::StatusExt;

use aimesh_proto::{
    identity::v1::identity_service_client::IdentityServiceClient,
    notes::v1::notes_service_client::NotesServiceClient,
};

use crate::helpers::{
    Bearer, PASSWORD, TestApp, assert_code, assert_invalid, backend_tests, create_note,
};

fn register(username: &str, email: &str, password: &str) -> idpb::RegisterRequest {
    idpb::RegisterRequest {
        username: username.into(),
        email: email.into(),
        password: password.into(),
        password2: String::new(),
    }
}

fn login(email: &str, username: &str, password: &str) -> idpb::LoginRequest {
    idpb::LoginRequest {
        email: email.into(),
        username: username.into(),
        password: password.into(),
    }
}

async fn list_notes(notes: &crate::helpers::NotesClient) -> Result<Vec<pb::Note>, tonic::Status> {
    notes
        .clone()
        .list_notes(pb::ListNotesRequest::default())
        .await
        .map(|r| r.into_inner().notes)
}

async fn accounts_and_profiles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut anonymous = app.anonymous_identity();

    // Email is case-insensitive; username works as the login too.
    let by_email = anonymous
        .login(login("ALICE@Example.com", "", PASSWORD))
        .await
        .unwrap()
        .into_inner();
    let by_username = anonymous
        .login(login("", "Alice", PASSWORD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_email.user.as_ref().unwrap().id, app.alice.user_id);
    assert_eq!(by_username.user.as_ref().unwrap().id, app.alice.user_id);
    let expires = by_email.access_expire_time.unwrap().seconds - Utc::now().timestamp();
    assert!((890..=900).contains(&expires), "access lifetime {expires}s");

    let profile = app
        .alice
        .identity
        .clone()
        .get_profile(idpb::GetProfileRequest {})
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(profile.username, "alice");
    assert_eq!(profile.email, "alice@example.com");
    assert!(profile.create_time.is_some());
    let before = profile.api_call_count;
    assert!(before >= 1, "the profile call itself counts");
    for _ in 0..3 {
        list_notes(&app.notes).await.unwrap();
    }
    let after = app
        .alice
        .identity
        .clone()
        .get_profile(idpb::GetProfileRequest {})
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .api_call_count;
    assert_eq!(after, before + 4, "three listings and one profile call");

    // Duplicates, case-insensitively, are ALREADY_EXISTS.
    let taken = anonymous
        .register(register("someone", "Alice@EXAMPLE.com", PASSWORD))
        .await
        .unwrap_err();
    assert_code(&taken, tonic::Code::AlreadyExists);
    assert!(taken.message().contains("email"));
    let taken = anonymous
        .register(register("ALICE", "other@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_code(&taken, tonic::Code::AlreadyExists);
    assert!(taken.message().contains("username"));

    // Validation answers every public call through the same token check as a client would.
    let validated = anonymous
        .validate_token(idpb::ValidateTokenRequest {
            token: app.alice.access.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(validated.user_id, app.alice.user_id);
    let jwks = anonymous
        .get_jwks(idpb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(
        (jwks.keys[0].kty.as_str(), jwks.keys[0].alg.as_str()),
        ("OKP", "EdDSA")
    );
}

async fn bad_registrations_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut anonymous = app.anonymous_identity();
    let long = "x".repeat(10_000);
    let cases = [
        (register("ab", "a@example.com", PASSWORD), "username"),
        (
            register("robert'); DROP TABLE users;--", "r@example.com", PASSWORD),
            "username",
        ),
        (register(&long, "l@example.com", PASSWORD), "username"),
        (register("bobby", "not-an-email", PASSWORD), "email"),
        (register("bobby", "' OR 1=1 --@x.com", PASSWORD), "email"),
        (
            register("bobby", &format!("{long}@example.com"), PASSWORD),
            "email",
        ),
        (register("bobby", "b@example.com", "short1A"), "password"),
        (
            register("bobby", "b@example.com", "alllowercaseletters"),
            "password",
        ),
        (
            register("bobby", "b@example.com", "Bobby-Password-1"),
            "password",
        ),
        (register("bobby", "b@example.com", &long), "password"),
        (
            idpb::RegisterRequest {
                password2: "Something-Else-1".into(),
                ..register("bobby", "b@example.com", PASSWORD)
            },
            "password2",
        ),
    ];
    for (request, field) in cases {
        let status = anonymous.register(request).await.unwrap_err();
        assert_invalid(&status, field);
        assert!(!status.message().contains(PASSWORD), "password echoed");
    }
    for (request, field) in [
        (login("", "", PASSWORD), "email"),
        (login("a@example.com", "", ""), "password"),
        (login(&long, "", PASSWORD), "email"),
    ] {
        let status = anonymous.login(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
    // SQL in credentials is just a wrong credential.
    let status = anonymous
        .login(login("' OR '1'='1", "", "' OR '1'='1"))
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::Unauthenticated);
}

async fn wrong_credentials_and_unknown_users_look_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut anonymous = app.anonymous_identity();
    let wrong = anonymous
        .login(login("alice@example.com", "", "Wrong-Password-9"))
        .await
        .unwrap_err();
    let unknown = anonymous
        .login(login("nobody@example.com", "", "Wrong-Password-9"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        (wrong.code(), wrong.message()),
        (unknown.code(), unknown.message())
    );
    assert!(!wrong.message().contains("Wrong-Password-9"));
}

async fn login_attempts_are_throttled(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.identity.login_attempts_per_minute = 3;
    })
    .await;
    let mut anonymous = app.anonymous_identity();
    let mut throttled = None;
    for _ in 0..5 {
        if let Err(status) = anonymous
            .login(login("alice@example.com", "", "Wrong-Password-9"))
            .await
            && status.code() == tonic::Code::ResourceExhausted
        {
            throttled = Some(status);
        }
    }
    let status = throttled.expect("the fifth attempt in a minute is throttled");
    assert!(status.get_details_retry_info().is_some(), "{status:?}");
    // Even the right password waits.
    let status = anonymous
        .login(login("alice@example.com", "", PASSWORD))
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::ResourceExhausted);
}

/// A request as the edge forwards it: from a trusted peer (loopback), naming the client.
fn from_client<T>(message: T, client: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-envoy-external-address", client.parse().unwrap());
    request
}

/// Behind the edge every request comes from the edge's address: one client's bad attempts
/// must not lock out the others, and attempts refused by address leave no per-account state.
async fn login_throttling_keys_on_the_client_behind_the_edge(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.identity.login_attempts_per_minute_per_address = 3;
    })
    .await;
    let mut anonymous = app.anonymous_identity();
    let attacker = "198.51.100.66";
    let mut refused = 0;
    for n in 0..8 {
        // Different accounts, so only the address quota can refuse.
        let email = format!("nobody{n}@example.com");
        let status = anonymous
            .login(from_client(login(&email, "", "Wrong-Password-9"), attacker))
            .await
            .unwrap_err();
        if status.code() == tonic::Code::ResourceExhausted {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 5,
        "the attacker's address gets 3 attempts a minute"
    );
    // Another client behind the same edge still logs in.
    anonymous
        .login(from_client(
            login("alice@example.com", "", PASSWORD),
            "203.0.113.10",
        ))
        .await
        .expect("another client is not locked out");
    // The refused attempts spent nothing of alice's account quota: the attacker aiming at
    // alice from its exhausted address is refused by address, and alice still logs in.
    for _ in 0..20 {
        let status = anonymous
            .login(from_client(
                login("alice@example.com", "", "Wrong-Password-9"),
                attacker,
            ))
            .await
            .unwrap_err();
        assert_code(&status, tonic::Code::ResourceExhausted);
    }
    anonymous
        .login(from_client(
            login("alice@example.com", "", PASSWORD),
            "203.0.113.11",
        ))
        .await
        .expect("refused attempts did not spend alice's quota");
}

/// A peer that is not a trusted proxy cannot pick its address with a header.
async fn untrusted_peers_cannot_claim_an_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.identity.login_attempts_per_minute_per_address = 2;
        config.auth.trusted_proxies = aimesh_kit::auth::TrustedProxies::parse("192.0.2.1").unwrap();
    })
    .await;
    let mut anonymous = app.anonymous_identity();
    for n in 0..2 {
        let _ = anonymous
            .login(from_client(
                login("alice@example.com", "", "Wrong-Password-9"),
                &format!("198.51.100.{n}"),
            ))
            .await;
    }
    let status = anonymous
        .login(from_client(
            login("alice@example.com", "", PASSWORD),
            "198.51.100.99",
        ))
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::ResourceExhausted);
}

/// Registrations are limited per client address, and password hashing (~19 MiB of memory
/// each) runs a bounded number at once: beyond the wait, RESOURCE_EXHAUSTED with a RetryInfo.
async fn registrations_are_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.identity.registrations_per_minute_per_address = 2;
        config.identity.password_hashing_concurrency = 1;
        config.identity.password_hashing_wait_ms = 0;
    })
    .await;
    let anonymous = app.anonymous_identity();
    // Many at once from different clients: hashing one at a time, with no wait, refuses some.
    let attempts = (0..6).map(|n| {
        let mut client = anonymous.clone();
        async move {
            client
                .register(from_client(
                    register(
                        &format!("burst{n}"),
                        &format!("burst{n}@example.com"),
                        PASSWORD,
                    ),
                    &format!("203.0.113.{n}"),
                ))
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let busy: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .inspect(|status| assert_code(status, tonic::Code::ResourceExhausted))
        .collect();
    assert!(
        !busy.is_empty(),
        "six hashes at once with one slot and no wait"
    );
    assert!(busy[0].get_details_retry_info().is_some(), "{:?}", busy[0]);
    assert!(results.iter().any(Result::is_ok), "one slot still serves");

    // One address: two registrations a minute.
    let mut client = anonymous.clone();
    let mut outcomes = Vec::new();
    for n in 0..3 {
        outcomes.push(
            client
                .register(from_client(
                    register(
                        &format!("same{n}"),
                        &format!("same{n}@example.com"),
                        PASSWORD,
                    ),
                    "198.51.100.20",
                ))
                .await
                .map(drop)
                .map_err(|status| status.code()),
        );
    }
    assert_eq!(
        outcomes,
        [Ok(()), Ok(()), Err(tonic::Code::ResourceExhausted)]
    );
    // A taken email is refused as such, before any hashing.
    let status = client
        .register(from_client(
            register("alice2", "alice@example.com", PASSWORD),
            "198.51.100.21",
        ))
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::AlreadyExists);
}

async fn refresh_tokens_rotate_and_replay_revokes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut anonymous = app.anonymous_identity();
    let refresh = |token: &str| idpb::RefreshTokenRequest {
        refresh: token.into(),
    };
    let first = app.alice.refresh.clone();
    let second = anonymous
        .refresh_token(refresh(&first))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.refresh, first);
    // The new access token works.
    list_notes(&app.notes_with_token(&second.access))
        .await
        .unwrap();
    let third = anonymous
        .refresh_token(refresh(&second.refresh))
        .await
        .unwrap()
        .into_inner();

    // Replaying a spent token fails and revokes the whole family.
    let replay = anonymous.refresh_token(refresh(&first)).await.unwrap_err();
    assert_code(&replay, tonic::Code::Unauthenticated);
    let revoked = anonymous
        .refresh_token(refresh(&third.refresh))
        .await
        .unwrap_err();
    assert_code(&revoked, tonic::Code::Unauthenticated);

    // Logout revokes; garbage is refused.
    let fresh = anonymous
        .login(login("alice@example.com", "", PASSWORD))
        .await
        .unwrap()
        .into_inner();
    anonymous
        .logout(idpb::LogoutRequest {
            refresh: fresh.refresh.clone(),
        })
        .await
        .unwrap();
    let after_logout = anonymous
        .refresh_token(refresh(&fresh.refresh))
        .await
        .unwrap_err();
    assert_code(&after_logout, tonic::Code::Unauthenticated);
    let garbage = anonymous
        .refresh_token(refresh("garbage"))
        .await
        .unwrap_err();
    assert_code(&garbage, tonic::Code::Unauthenticated);
    let empty = anonymous.refresh_token(refresh("")).await.unwrap_err();
    assert_invalid(&empty, "refresh");
}

/// Builds `header.payload.signature` from JSON parts.
fn forge(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn forged_and_stale_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let keys = SigningKeys::load_or_create(&app.db.data_dir().join("jwt-signing-key.pem"), &[])
        .expect("the server's signing key");
    let kid = keys.published()[0].kid.clone();
    let now = Utc::now();
    let user = app.alice.user_id.clone();

    let valid = app.alice.access.clone();
    let parts: Vec<&str> = valid.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.replace(&user, "00000000-0000-7000-8000-000000000000")),
        parts[2]
    );
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let tampered_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature)
    );

    let claims = |iat: i64, exp: i64| {
        format!(
            r#"{{"sub":"{user}","usr":"alice","iss":"aimesh","aud":"aimesh","iat":{iat},"nbf":{iat},"exp":{exp},"jti":"x"}}"#
        )
    };
    let alg_none = forge(
        r#"{"alg":"none","typ":"JWT"}"#,
        &claims(now.timestamp(), now.timestamp() + 600),
        b"",
    );
    let hs256 = {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let secret = URL_SAFE_NO_PAD.decode(&keys.published()[0].x).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&claims(now.timestamp(), now.timestamp() + 600)).unwrap();
        jsonwebtoken::encode(&header, &value, &EncodingKey::from_secret(&secret)).unwrap()
    };
    let other_key = {
        let dir = tempfile::tempdir().unwrap();
        let other = SigningKeys::load_or_create(&dir.path().join("other.pem"), &[]).unwrap();
        other
            .sign("aimesh", &user, "alice", now, now + Duration::minutes(10))
            .unwrap()
    };
    let expired = keys
        .sign(
            "aimesh",
            &user,
            "alice",
            now - Duration::hours(2),
            now - Duration::hours(1),
        )
        .unwrap();
    let not_yet = keys
        .sign(
            "aimesh",
            &user,
            "alice",
            now + Duration::hours(1),
            now + Duration::hours(2),
        )
        .unwrap();
    let wrong_issuer = keys
        .sign(
            "someone-else",
            &user,
            "alice",
            now,
            now + Duration::minutes(10),
        )
        .unwrap();

    for (name, token) in [
        ("malformed", "not.a.jwt".to_owned()),
        ("garbage", "x".repeat(5000)),
        ("tampered payload", tampered_payload),
        ("tampered signature", tampered_signature),
        ("alg none", alg_none),
        ("algorithm confusion", hs256),
        ("unknown key", other_key),
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong issuer", wrong_issuer),
    ] {
        let status = list_notes(&app.notes_with_token(&token)).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{name}: {status:?}"
        );
        assert!(!status.message().contains(&token), "{name}: token echoed");
    }
    // No token at all.
    let status =
        aimesh_proto::notes::v1::notes_service_client::NotesServiceClient::new(app.channel.clone())
            .list_notes(pb::ListNotesRequest::default())
            .await
            .unwrap_err();
    assert_code(&status, tonic::Code::Unauthenticated);
    // A token the server signed itself, with good times, works.
    let fresh = keys
        .sign("aimesh", &user, "alice", now, now + Duration::minutes(10))
        .unwrap();
    list_notes(&app.notes_with_token(&fresh)).await.unwrap();
}

async fn deleted_accounts_lose_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bob = app.session("bob").await;
    create_note(&bob.notes, "bob's", "text", "en").await;
    let wrong = bob
        .identity
        .clone()
        .delete_account(idpb::DeleteAccountRequest {
            password: "Wrong-Password-9".into(),
        })
        .await
        .unwrap_err();
    assert_code(&wrong, tonic::Code::Unauthenticated);
    bob.identity
        .clone()
        .delete_account(idpb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let status = list_notes(&bob.notes).await.unwrap_err();
    assert_code(&status, tonic::Code::Unauthenticated);
    let refresh = app
        .anonymous_identity()
        .refresh_token(idpb::RefreshTokenRequest {
            refresh: bob.refresh.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&refresh, tonic::Code::Unauthenticated);
    // Others are unaffected.
    list_notes(&app.notes).await.unwrap();
}

async fn tenants_are_isolated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bob = app.session("bob").await;
    let note = app.create_note("alice's", "private text", "en").await;
    let mut bob_notes = bob.notes.clone();

    let status = bob_notes
        .get_note(pb::GetNoteRequest {
            id: note.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let status = bob_notes
        .update_note(pb::UpdateNoteRequest {
            note: Some(pb::Note {
                id: note.id.clone(),
                title: "mine now".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let status = bob_notes
        .delete_note(pb::DeleteNoteRequest {
            id: note.id.clone(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    assert!(list_notes(&bob.notes).await.unwrap().is_empty());
    let stats = bob_notes
        .get_note_stats(pb::GetNoteStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_notes, 0);

    let mine = list_notes(&app.notes).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].title, "alice's");
}

async fn per_user_rate_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.auth.rate_limit_per_sec = 1;
        config.auth.rate_limit_burst = 3;
    })
    .await;
    let mut limited = None;
    for _ in 0..10 {
        if let Err(status) = list_notes(&app.notes).await {
            limited = Some(status);
            break;
        }
    }
    let status = limited.expect("ten calls at once exceed a burst of three");
    assert_code(&status, tonic::Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("retry info");
    assert!(retry.retry_delay.is_some());
    // Another user has a bucket of their own.
    let bob = app.session("bob").await;
    list_notes(&bob.notes).await.unwrap();
}

/// A process without the identity service verifies tokens with the keys identity publishes,
/// and reads accounts (disabled, deleted, roles) from the database the deployment shares.
async fn services_apart_verify_with_published_keys(backend: Backend) {
    let identity = TestApp::spawn(backend).await;
    let url = format!("http://{}", identity.addr);
    let shared = identity.db.url.clone();
    let notes_only = TestApp::spawn_with(backend, &[ServiceKind::Notes], |config| {
        config.auth.identity_url = Some(url);
        config.server.database_url = Some(shared.into());
    })
    .await;
    let notes = notes_only.notes_with_token(&identity.alice.access);
    let created = create_note(&notes, "remote", "verified by JWKS", "en").await;
    let listed = list_notes(&notes).await.unwrap();
    assert_eq!(listed[0].id, created.id);
    let forged = list_notes(&notes_only.notes_with_token("e30.e30.e30"))
        .await
        .unwrap_err();
    assert_code(&forged, tonic::Code::Unauthenticated);
}

/// A mesh CA and one certificate it signs for `localhost`, usable by servers and clients alike
/// (as the Helm chart's mtls Secret is), written as PEM files into `dir`.
fn mesh_pki(dir: &std::path::Path) -> aimesh_kit::tls::TlsConfig {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        Some(path)
    };
    aimesh_kit::tls::TlsConfig {
        tls_cert: write("tls.crt", cert.pem()),
        tls_key: write("tls.key", key.serialize_pem()),
        tls_client_ca: write("ca.crt", issuer.pem()),
        tls_ca: Some(dir.join("ca.crt")),
    }
}

/// Starts `services` on `database_url` serving mutual TLS with `tls`; returns the address.
async fn spawn_mutual_tls(
    database_url: &str,
    data_dir: std::path::PathBuf,
    services: &[ServiceKind],
    tls: &aimesh_kit::tls::TlsConfig,
    configure: impl FnOnce(&mut aimesh::MeshConfig),
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
    let mut config = aimesh::MeshConfig::for_tests(data_dir, Some(database_url.to_owned()));
    config.server.tls = tls.clone();
    configure(&mut config);
    let mesh = aimesh::Mesh::build(&config, services)
        .await
        .expect("failed to build the mesh");
    let addr = mesh.local_addr();
    let stop = mesh.shutdown_token();
    tokio::spawn(mesh.run_until_stopped());
    (addr, stop)
}

/// Calls GetJwks on `endpoint`: any failure, from the URL to the handshake to the call.
async fn get_jwks(endpoint: anyhow::Result<tonic::transport::Endpoint>) -> anyhow::Result<()> {
    let channel = endpoint?.connect().await?;
    IdentityServiceClient::new(channel)
        .get_jwks(idpb::GetJwksRequest {})
        .await?;
    Ok(())
}

/// Mutual TLS between services: an identity server that requires client certificates from the
/// mesh's CA refuses callers without one (and plain HTTP/2), and a notes process whose
/// AIMESH_IDENTITY_URL is `https://` fetches the token keys from it with its certificate.
async fn token_keys_over_mutual_tls(backend: Backend) {
    aimesh_kit::telemetry::init_for_tests();
    let db = aimesh_kit::testing::TestDatabase::create(backend).await;
    let pki_dir = tempfile::tempdir().unwrap();
    let tls = mesh_pki(pki_dir.path());
    let (identity_addr, identity_stop) = spawn_mutual_tls(
        &db.url,
        db.data_dir(),
        &[ServiceKind::Identity],
        &tls,
        |_| {},
    )
    .await;
    let identity_url = format!("https://localhost:{}", identity_addr.port());

    // With the certificate: served.
    let channel = tls
        .endpoint(&identity_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let alice = TestApp::session_on(&channel, "alice").await;
    // Without one: refused at the handshake, the call never served.
    let anonymous = aimesh_kit::tls::TlsConfig {
        tls_ca: tls.tls_ca.clone(),
        ..Default::default()
    };
    let refused = get_jwks(anonymous.endpoint(&identity_url)).await;
    assert!(
        refused.is_err(),
        "a caller without a client certificate was served"
    );
    // Plain HTTP/2 on the TLS port: no answer either.
    let plain = get_jwks(
        tonic::transport::Endpoint::from_shared(format!("http://{identity_addr}"))
            .map_err(Into::into),
    )
    .await;
    assert!(
        plain.is_err(),
        "plain HTTP/2 was served on the mutual TLS port"
    );

    // A notes process apart: the keys come over https with its certificate, so alice's token
    // verifies there; a forged one does not.
    let notes_dir = tempfile::tempdir().unwrap();
    let (notes_addr, notes_stop) = spawn_mutual_tls(
        &db.url,
        notes_dir.path().to_owned(),
        &[ServiceKind::Notes],
        &tls,
        |config| config.auth.identity_url = Some(identity_url.clone()),
    )
    .await;
    let notes_channel = tls
        .endpoint(&format!("https://localhost:{}", notes_addr.port()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let notes =
        NotesServiceClient::with_interceptor(notes_channel.clone(), Bearer::token(&alice.access));
    let created = create_note(
        &notes,
        "over mTLS",
        "verified by keys fetched over TLS",
        "en",
    )
    .await;
    assert_eq!(list_notes(&notes).await.unwrap()[0].id, created.id);
    let forged = NotesServiceClient::with_interceptor(notes_channel, Bearer::token("e30.e30.e30"));
    assert_code(
        &list_notes(&forged).await.unwrap_err(),
        tonic::Code::Unauthenticated,
    );
    notes_stop.cancel();
    identity_stop.cancel();
}

backend_tests!(
    accounts_and_profiles,
    bad_registrations_are_refused,
    wrong_credentials_and_unknown_users_look_the_same,
    login_attempts_are_throttled,
    login_throttling_keys_on_the_client_behind_the_edge,
    untrusted_peers_cannot_claim_an_address,
    registrations_are_bounded,
    refresh_tokens_rotate_and_replay_revokes,
    forged_and_stale_tokens_are_refused,
    deleted_accounts_lose_access,
    tenants_are_isolated,
    per_user_rate_limit,
    services_apart_verify_with_published_keys,
    token_keys_over_mutual_tls,
);
