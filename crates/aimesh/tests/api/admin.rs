//! The admin service, administrators, disabled accounts, personal API tokens, account
//! deletion across services, and job retention — on SQLite and PostgreSQL.

use std::time::Duration;

use aimesh::ServiceKind;
use aimesh_jobs::SubmitOptions;
use aimesh_kit::testing::{Backend, eventually};
use aimesh_proto::{
    admin::v1::{self as apb, admin_service_client::AdminServiceClient},
    files::v1::{self as fpb, files_service_client::FilesServiceClient},
    google::api::HttpBody,
    identity::v1 as idpb,
    jobs::v1 as jpb,
    notes::v1 as pb,
    processing::v1::{self as ppb, processing_service_client::ProcessingServiceClient},
};
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    dynamic::call,
    helpers::{
        Bearer, PASSWORD, Session, TestApp, assert_code, assert_invalid, backend_tests, create_note,
    },
};

type AdminClient = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// A mesh whose `root@example.com` is an administrator (AIMESH_ADMIN_EMAILS), and root's
/// session.
async fn spawn(backend: Backend) -> (TestApp, Session) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.identity.admin_emails = vec!["Root@Example.com".into()];
    })
    .await;
    let root = app.session("root").await;
    (app, root)
}

fn admin(app: &TestApp, token: &str) -> AdminClient {
    AdminServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
}

async fn api_token(
    session: &Session,
    access: idpb::ApiTokenAccess,
    services: &[&str],
) -> idpb::CreateApiTokenResponse {
    session
        .identity
        .clone()
        .create_api_token(idpb::CreateApiTokenRequest {
            name: "script".into(),
            access: access as i32,
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            ttl_seconds: 0,
        })
        .await
        .expect("create_api_token")
        .into_inner()
}

/// Every method of the admin service, called by a user who is no administrator, and by an
/// administrator's API token, answers PERMISSION_DENIED before looking at the request; an
/// administrator's login gets past the check. Generated from the descriptor set, so a new
/// admin method is covered without editing this test.
async fn admin_methods_refuse_everyone_but_administrators(backend: Backend) {
    let (app, root) = spawn(backend).await;
    let bob = app.session("bob").await;
    let roots_script = api_token(&root, idpb::ApiTokenAccess::ReadWrite, &[])
        .await
        .secret;
    let pool = DescriptorPool::decode(aimesh_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let service = pool
        .get_service_by_name("aimesh.admin.v1.AdminService")
        .expect("the admin service");
    let mut checked = 0;
    for method in service.methods() {
        let name = method.full_name().to_owned();
        let empty = DynamicMessage::new(method.input());
        for (who, token) in [
            ("a user", bob.access.as_str()),
            ("alice", app.alice.access.as_str()),
            ("an administrator's API token", roots_script.as_str()),
        ] {
            let outcome = call(&app, token, &method, empty.clone()).await;
            match outcome {
                Err(status) if status.code() == tonic::Code::PermissionDenied => {}
                other => panic!("{name} called by {who} answered {other:?}"),
            }
        }
        if !method.is_server_streaming() {
            let outcome = call(&app, &root.access, &method, empty).await;
            if let Err(status) = outcome {
                assert!(
                    !matches!(
                        status.code(),
                        tonic::Code::PermissionDenied
                            | tonic::Code::Unauthenticated
                            | tonic::Code::Internal
                    ),
                    "{name} called by an administrator answered {status:?}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} admin methods checked");
}

/// Root's token says `admin` and the profile shows the role; a revoked role is refused at
/// once even while the token still carries it.
async fn roles_travel_in_tokens_and_are_checked_on_the_server(backend: Backend) {
    let (app, root) = spawn(backend).await;
    let profile = root
        .identity
        .clone()
        .get_profile(idpb::GetProfileRequest {})
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(profile.roles, vec!["admin".to_owned()]);
    let claims = root.access.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    let alice_claims = app.alice.access.split('.').nth(1).unwrap();
    let alice_claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            alice_claims,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(alice_claims.get("roles").is_none());

    admin(&app, &root.access)
        .list_users(apb::ListUsersRequest::default())
        .await
        .expect("an administrator lists users");
    // The role is taken away while root's token still says admin.
    let accounts = aimesh_identity::AccountAdmin::new(
        aimesh_identity::IdentityStore::new(app.core.db.clone()),
        aimesh_identity::accounts::AccountDirectory::new(aimesh_identity::IdentityStore::new(
            app.core.db.clone(),
        )),
        app.core.bus.clone(),
        aimesh_kit::owned::OwnedDataRegistry::new(),
    );
    accounts.set_admin("root@example.com", false).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the revoked role is refused",
        || {
            let mut client = admin(&app, &root.access);
            async move {
                let status = client
                    .list_users(apb::ListUsersRequest::default())
                    .await
                    .err()?;
                (status.code() == tonic::Code::PermissionDenied).then_some(())
            }
        },
    )
    .await;
}

/// Disabling an account stops its access and API tokens within a second, and its logins;
/// enabling it lets them work again; both are in the audit log with who did them.
async fn disabled_accounts_are_refused_until_enabled(backend: Backend) {
    let (app, root) = spawn(backend).await;
    let bob = app.session("bob").await;
    let script = api_token(&bob, idpb::ApiTokenAccess::ReadOnly, &[])
        .await
        .secret;
    let bobs_notes = app.notes_with_token(&bob.access);
    create_note(&bobs_notes, "bob's", "text", "en").await;
    let mut ops = admin(&app, &root.access);

    let status = ops
        .disable_user(apb::DisableUserRequest {
            user_id: root.user_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::FailedPrecondition);
    assert_invalid(
        &ops.disable_user(apb::DisableUserRequest {
            user_id: "nope".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err(),
        "user_id",
    );

    let disabled = ops
        .disable_user(apb::DisableUserRequest {
            user_id: bob.user_id.clone(),
            reason: "spam".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(disabled.disable_time.is_some());
    for token in [&bob.access, &script] {
        eventually(
            Duration::from_secs(1),
            "the disabled account's token is refused",
            || {
                let mut notes = app.notes_with_token(token);
                async move {
                    let status = notes
                        .list_notes(pb::ListNotesRequest::default())
                        .await
                        .err()?;
                    (status.code() == tonic::Code::Unauthenticated).then_some(())
                }
            },
        )
        .await;
    }
    let login = app
        .anonymous_identity()
        .login(idpb::LoginRequest {
            email: "bob@example.com".into(),
            username: String::new(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_code(&login, tonic::Code::PermissionDenied);
    let refresh = app
        .anonymous_identity()
        .refresh_token(idpb::RefreshTokenRequest {
            refresh: bob.refresh.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&refresh, tonic::Code::PermissionDenied);

    let listed = ops
        .list_users(apb::ListUsersRequest {
            search: "BOB@".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.users.len(), 1);
    let listed_bob = &listed.users[0];
    assert_eq!(listed_bob.id, bob.user_id);
    assert!(listed_bob.disable_time.is_some());
    assert!(listed_bob.api_call_count >= 1, "{listed_bob:?}");

    ops.enable_user(apb::EnableUserRequest {
        user_id: bob.user_id.clone(),
        reason: "appeal".into(),
    })
    .await
    .unwrap();
    eventually(
        Duration::from_secs(1),
        "the enabled account's token works",
        || {
            let mut notes = bobs_notes.clone();
            async move {
                notes
                    .list_notes(pb::ListNotesRequest::default())
                    .await
                    .ok()
                    .map(drop)
            }
        },
    )
    .await;
    // The refresh token refused while the account was disabled was not spent: it works now.
    app.anonymous_identity()
        .refresh_token(idpb::RefreshTokenRequest {
            refresh: bob.refresh.clone(),
        })
        .await
        .expect("a refresh token refused while disabled still works once enabled");

    let audit = ops
        .list_audit_log(apb::ListAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("user.enable", bob.user_id.as_str(), "appeal"),
            ("user.disable", bob.user_id.as_str(), "spam"),
        ]
    );
    assert!(audit.iter().all(|e| e.actor_id == root.user_id));

    // Pages of one entry.
    let first = ops
        .list_audit_log(apb::ListAuditLogRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), 1);
    let second = ops
        .list_audit_log(apb::ListAuditLogRequest {
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.entries[0].action, "user.disable");
}

/// Administrators list every user's jobs with filters, see each kind's queue, cancel and
/// retry anyone's job, and follow every job's changes on one stream.
async fn administrators_see_and_manage_every_job(backend: Backend) {
    let (app, root) = spawn(backend).await;
    let mut ops = admin(&app, &root.access);
    let mut stream = ops
        .watch_jobs(apb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    // Jobs of a kind no worker runs here: they stay queued.
    let options = || SubmitOptions {
        max_attempts: 1,
        ..SubmitOptions::default()
    };
    let alices = app
        .core
        .jobs
        .submit(&app.alice.user_id, "test.idle", b"{}".to_vec(), options())
        .await
        .unwrap();
    let bob = app.session("bob").await;
    let bobs = app
        .core
        .jobs
        .submit(&bob.user_id, "test.idle", b"{}".to_vec(), options())
        .await
        .unwrap();
    let seen = stream.message().await.unwrap().unwrap().job.unwrap();
    assert_eq!(seen.id, alices.id.to_string());
    let seen = stream.message().await.unwrap().unwrap().job.unwrap();
    assert_eq!(seen.id, bobs.id.to_string());

    let all = ops
        .list_jobs(apb::ListJobsRequest {
            kind: "test.idle".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(all.len(), 2);
    let only_bob = ops
        .list_jobs(apb::ListJobsRequest {
            owner_id: bob.user_id.clone(),
            state: jpb::JobState::Queued as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0].id, bobs.id.to_string());
    assert_invalid(
        &ops.list_jobs(apb::ListJobsRequest {
            state: 99,
            ..Default::default()
        })
        .await
        .unwrap_err(),
        "state",
    );

    let stats = ops
        .get_queue_stats(apb::GetQueueStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .queues;
    let idle = stats
        .iter()
        .find(|q| q.kind == "test.idle")
        .expect("the kind");
    assert_eq!((idle.queued, idle.running), (2, 0));
    assert!(idle.oldest_queued_age.is_some());

    let cancelled = ops
        .cancel_job(apb::CancelJobRequest {
            id: bobs.id.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(cancelled.state, jpb::JobState::Cancelled as i32);
    let seen = stream.message().await.unwrap().unwrap().job.unwrap();
    assert_eq!(seen.state, jpb::JobState::Cancelled as i32);
    let retried = ops
        .retry_job(apb::RetryJobRequest {
            id: bobs.id.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(retried.state, jpb::JobState::Queued as i32);
    let status = ops
        .retry_job(apb::RetryJobRequest {
            id: alices.id.to_string(),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::FailedPrecondition);
    let status = ops
        .cancel_job(apb::CancelJobRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);

    let audit = ops
        .list_audit_log(apb::ListAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["job.retry", "job.cancel"]);
}

/// Personal API tokens: shown once, listed without their secret, limited to their scope,
/// their last use recorded, refused once revoked.
async fn api_tokens_are_scoped_and_revocable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = &app.alice;
    let mut identity = alice.identity.clone();
    for (request, field) in [
        (
            idpb::CreateApiTokenRequest {
                name: "x".into(),
                ..Default::default()
            },
            "access",
        ),
        (
            idpb::CreateApiTokenRequest {
                name: " ".into(),
                access: idpb::ApiTokenAccess::ReadOnly as i32,
                ..Default::default()
            },
            "name",
        ),
        (
            idpb::CreateApiTokenRequest {
                name: "x".into(),
                access: idpb::ApiTokenAccess::ReadOnly as i32,
                services: vec!["aimesh.nope.v1.Nope".into()],
                ..Default::default()
            },
            "services",
        ),
        (
            idpb::CreateApiTokenRequest {
                name: "x".into(),
                access: idpb::ApiTokenAccess::ReadOnly as i32,
                services: vec!["aimesh.admin.v1.AdminService".into()],
                ..Default::default()
            },
            "services",
        ),
        (
            idpb::CreateApiTokenRequest {
                name: "x".into(),
                access: idpb::ApiTokenAccess::ReadOnly as i32,
                ttl_seconds: -1,
                ..Default::default()
            },
            "ttl_seconds",
        ),
    ] {
        assert_invalid(
            &identity.create_api_token(request).await.unwrap_err(),
            field,
        );
    }

    let reader = api_token(
        alice,
        idpb::ApiTokenAccess::ReadOnly,
        &["aimesh.notes.v1.NotesService"],
    )
    .await;
    assert!(reader.secret.starts_with("aimesh_pat_"));
    let note = create_note(&app.notes, "alice's", "The house is big.", "en").await;
    let mut notes = app.notes_with_token(&reader.secret);
    let listed = notes
        .list_notes(pb::ListNotesRequest::default())
        .await
        .expect("a read-only token reads")
        .into_inner()
        .notes;
    assert_eq!(listed[0].id, note.id);
    let status = notes
        .create_note(pb::CreateNoteRequest {
            note: Some(pb::Note {
                title: "t".into(),
                original_text: "x".into(),
                original_language: "en".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::PermissionDenied);
    let status = app
        .jobs_with_token(&reader.secret)
        .list_jobs(jpb::ListJobsRequest::default())
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::PermissionDenied);

    let writer = api_token(alice, idpb::ApiTokenAccess::ReadWrite, &[]).await;
    let written = create_note(
        &app.notes_with_token(&writer.secret),
        "by script",
        "x",
        "en",
    )
    .await;
    // Alice's own note.
    crate::helpers::get_note(&app.notes, &written.id).await;
    app.jobs_with_token(&writer.secret)
        .list_jobs(jpb::ListJobsRequest::default())
        .await
        .expect("a read-write token for every service");
    // No token mints tokens or deletes the account.
    let mut scripted_identity = aimesh_proto::identity::v1::identity_service_client::IdentityServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&writer.secret),
    );
    let status = scripted_identity
        .create_api_token(idpb::CreateApiTokenRequest {
            name: "more".into(),
            access: idpb::ApiTokenAccess::ReadWrite as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::PermissionDenied);
    let status = scripted_identity
        .delete_account(idpb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::PermissionDenied);

    // Listed without secrets, with their last use.
    let tokens = eventually(Duration::from_secs(5), "the last use is recorded", || {
        let mut identity = identity.clone();
        async move {
            let tokens = identity
                .list_api_tokens(idpb::ListApiTokensRequest {})
                .await
                .unwrap()
                .into_inner()
                .api_tokens;
            tokens
                .iter()
                .all(|t| t.last_use_time.is_some())
                .then_some(tokens)
        }
    })
    .await;
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[1].id, reader.api_token.as_ref().unwrap().id);
    assert_eq!(tokens[1].access, idpb::ApiTokenAccess::ReadOnly as i32);
    assert_eq!(tokens[1].services, vec!["aimesh.notes.v1.NotesService"]);

    // Revoked: refused at once; another user cannot revoke it.
    let bob = app.session("bob").await;
    let status = bob
        .identity
        .clone()
        .revoke_api_token(idpb::RevokeApiTokenRequest {
            id: reader.api_token.as_ref().unwrap().id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let revoked = identity
        .revoke_api_token(idpb::RevokeApiTokenRequest {
            id: reader.api_token.as_ref().unwrap().id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .api_token
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    let status = notes
        .list_notes(pb::ListNotesRequest::default())
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::Unauthenticated);
    let status = app
        .notes_with_token("aimesh_pat_forged")
        .list_notes(pb::ListNotesRequest::default())
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::Unauthenticated);
}

/// Counts the rows of `table` whose `column` is `owner`.
async fn rows(app: &TestApp, table: &str, column: &str, owner: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE CAST({column} AS TEXT) = $1");
    // The identity tables key accounts by UUID (a BLOB on SQLite): compare those by value.
    let uuid = uuid::Uuid::try_parse(owner).ok();
    match &app.core.db {
        aimesh_kit::db::Db::Sqlite(pool) => {
            if column == "user_id" || column == "id" {
                let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table} WHERE {column} = $1"
                )))
                .bind(uuid)
                .fetch_one(pool)
                .await
                .unwrap();
                count
            } else {
                let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(owner)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                count
            }
        }
        aimesh_kit::db::Db::Postgres(pool) => {
            let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .fetch_one(pool)
                .await
                .unwrap();
            count
        }
    }
}

/// Fills an account with data in every service: notes (one translated), jobs, a document
/// with its stored file, an upload in progress, an API token.
async fn fill(app: &TestApp, session: &Session) {
    let note = create_note(&session.notes, "mine", "The house is big.", "en").await;
    app.core
        .notes
        .put_translation(
            &session.user_id,
            uuid::Uuid::try_parse(&note.id).unwrap(),
            &aimesh_notes::domain::Translation {
                target_language: "es".into(),
                text: "La casa es grande.".into(),
                engine: "test".into(),
                created_at: aimesh_kit::db::now(),
            },
        )
        .await
        .unwrap();
    app.core
        .jobs
        .submit(
            &session.user_id,
            "test.idle",
            b"{}".to_vec(),
            SubmitOptions::default(),
        )
        .await
        .unwrap();
    let mut processing = ProcessingServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&session.access),
    );
    processing
        .upload_document(ppb::UploadDocumentRequest {
            body: Some(HttpBody {
                content_type: "text/plain".into(),
                data: b"Notes on the garden.".to_vec(),
                extensions: Vec::new(),
            }),
            filename: "garden.txt".into(),
            generate_notes: Some(false),
        })
        .await
        .unwrap();
    processing
        .create_upload(ppb::CreateUploadRequest {
            filename: "later.txt".into(),
            size_bytes: 64,
            ..Default::default()
        })
        .await
        .unwrap();
    ppb::task_service_client::TaskServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&session.access),
    )
    .submit_task(ppb::SubmitTaskRequest {
        source: Some(ppb::TaskSource {
            kind: Some(ppb::task_source::Kind::NoteId(note.id.clone())),
        }),
        r#type: ppb::TaskType::Keywords.into(),
        translate: None,
    })
    .await
    .unwrap();
    api_token(session, idpb::ApiTokenAccess::ReadOnly, &[]).await;
}

async fn assert_nothing_left(app: &TestApp, user_id: &str) {
    for (table, column) in [
        ("notes", "owner_id"),
        ("jobs", "owner_id"),
        ("documents", "owner_id"),
        ("uploads", "owner_id"),
        ("tasks", "owner_id"),
        ("quizzes", "owner_id"),
        ("quiz_submissions", "owner_id"),
        ("images", "owner_id"),
        ("transcriptions", "owner_id"),
        ("synthesized_audio", "owner_id"),
        ("reports", "owner_id"),
        ("chat_sessions", "owner_id"),
        ("chat_messages", "owner_id"),
        ("users", "id"),
        ("refresh_tokens", "user_id"),
        ("api_tokens", "user_id"),
    ] {
        assert_eq!(
            rows(app, table, column, user_id).await,
            0,
            "{table} keeps rows of the deleted account"
        );
    }
    // Of its events, only its deletion's stays (for consumers to forget the account).
    let events = app.core.events.store().of_owner(user_id).await.unwrap();
    assert!(
        events
            .iter()
            .all(|event| event.event_type == "identity.account.deleted"),
        "events of the deleted account kept: {events:?}"
    );
    let orphans = match &app.core.db {
        aimesh_kit::db::Db::Sqlite(pool) => sqlx::query_as::<_, (i64,)>(
            "SELECT COUNT(*) FROM note_translations WHERE note_id NOT IN (SELECT id FROM notes)",
        )
        .fetch_one(pool)
        .await
        .unwrap()
        .0,
        aimesh_kit::db::Db::Postgres(pool) => sqlx::query_as::<_, (i64,)>(
            "SELECT COUNT(*) FROM note_translations WHERE note_id NOT IN (SELECT id FROM notes)",
        )
        .fetch_one(pool)
        .await
        .unwrap()
        .0,
    };
    assert_eq!(orphans, 0, "translations of deleted notes remain");
    let blobs = app.db.data_dir().join("blobs").join(user_id);
    let files = std::fs::read_dir(&blobs)
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "stored files of the deleted account remain");
}

/// An account's export is one ZIP archive with every service's records in the REST API's JSON
/// and the stored files, fetched without a token through its signed URL; another account's
/// data is not in it, and the archive goes with the account.
async fn an_account_exports_what_it_stores(backend: Backend) {
    let (app, _root) = spawn(backend).await;
    let bob = app.session("bob").await;
    fill(&app, &app.alice).await;
    fill(&app, &bob).await;

    let mut identity = app.alice.identity.clone();
    let status = identity
        .export_account(idpb::ExportAccountRequest {
            idempotency_key: "k".repeat(201),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "idempotency_key");
    let status = identity
        .export_account(idpb::ExportAccountRequest {
            idempotency_key: "a\u{0}b".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "idempotency_key");
    let job = identity
        .export_account(idpb::ExportAccountRequest {
            idempotency_key: "first".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.kind, "identity.export");
    let again = identity
        .export_account(idpb::ExportAccountRequest {
            idempotency_key: "first".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(again.id, job.id, "the same key is the same export");
    let seen = app
        .watch_job_to_end(&app.alice.access, &job.id, Duration::from_secs(120))
        .await;
    let done = seen.last().unwrap();
    assert_eq!(done.state(), jpb::JobState::Succeeded, "{}", done.error);
    let result: idpb::ExportAccountResult =
        prost::Message::decode(done.result.as_ref().unwrap().value.as_slice()).unwrap();
    let count = |service: &str| {
        result
            .exported
            .iter()
            .find(|e| e.service == service)
            .map(|e| e.count)
    };
    assert_eq!(count("notes"), Some(1));
    assert_eq!(count("tasks"), Some(1));
    assert_eq!(
        count("processing"),
        Some(2),
        "the document and its original"
    );

    // The URL needs no token.
    let token = result.url.rsplit('/').next().unwrap().to_owned();
    let mut files = FilesServiceClient::new(app.channel.clone());
    let archive = files
        .get_signed_file(fpb::GetSignedFileRequest {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archive.content_type, "application/zip");
    assert_eq!(archive.data.len() as i64, result.size_bytes);
    assert_eq!(aimesh_kit::blob::sha256_hex(&archive.data), result.sha256);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.data)).unwrap();
    let mut read = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
        text
    };
    let notes: serde_json::Value = serde_json::from_str(&read("notes/notes.json")).unwrap();
    assert_eq!(notes.as_array().unwrap().len(), 1, "alice's note only");
    assert_eq!(notes[0]["title"], "mine");
    assert_eq!(notes[0]["translations"][0]["text"], "La casa es grande.");
    let documents: serde_json::Value =
        serde_json::from_str(&read("processing/documents.json")).unwrap();
    assert_eq!(documents.as_array().unwrap().len(), 1);
    let id = documents[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        read(&format!("processing/originals/{id}-garden.txt")),
        "Notes on the garden."
    );
    let tasks: serde_json::Value = serde_json::from_str(&read("processing/tasks.json")).unwrap();
    assert_eq!(tasks[0]["type"], "TASK_TYPE_KEYWORDS");
    let jobs: serde_json::Value = serde_json::from_str(&read("jobs/jobs.json")).unwrap();
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|job| job["kind"] == "test.idle"),
        "{jobs}"
    );
    for part in [
        "gallery/images.json",
        "speech/transcriptions.json",
        "speech/audio.json",
        "reports/reports.json",
        "conversation/sessions.json",
        "conversation/messages.json",
        "processing/quizzes.json",
        "processing/quiz_submissions.json",
    ] {
        assert_eq!(read(part).trim(), "[]", "{part}");
    }

    // Deleting the account deletes the archive: its URL finds nothing.
    identity
        .delete_account(idpb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let status = files
        .get_signed_file(fpb::GetSignedFileRequest { token })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
}

/// Deleting an account — by its owner, or by an administrator — deletes what it owns in
/// every service: notes and translations, jobs and their results, documents, uploads and
/// stored files, tokens. Other accounts' data stays.
async fn deleting_an_account_leaves_nothing_behind(backend: Backend) {
    let (app, root) = spawn(backend).await;
    let bob = app.session("bob").await;
    fill(&app, &app.alice).await;
    fill(&app, &bob).await;
    fill(&app, &root).await;

    app.alice
        .identity
        .clone()
        .delete_account(idpb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    assert_nothing_left(&app, &app.alice.user_id).await;

    let deleted = admin(&app, &root.access)
        .delete_user(apb::DeleteUserRequest {
            user_id: bob.user_id.clone(),
            reason: "asked to".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .deleted;
    let services: Vec<&str> = deleted.iter().map(|d| d.service.as_str()).collect();
    assert_eq!(
        services,
        vec![
            "jobs",
            "notes",
            "tasks",
            "quizzes",
            "processing",
            "gallery",
            "speech",
            "reports",
            "conversation",
            "exports",
            "events",
        ]
    );
    // Bob kept jobs, notes and documents (his images, audio and reports are the files suite's).
    assert!(deleted[..3].iter().all(|d| d.count >= 1), "{deleted:?}");
    assert_nothing_left(&app, &bob.user_id).await;
    let status = bob
        .notes
        .clone()
        .list_notes(pb::ListNotesRequest::default())
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::Unauthenticated);

    // Root's data is untouched.
    for (table, column) in [
        ("notes", "owner_id"),
        ("jobs", "owner_id"),
        ("documents", "owner_id"),
    ] {
        assert!(
            rows(&app, table, column, &root.user_id).await >= 1,
            "{table}"
        );
    }
}

/// Finished jobs older than the cutoff are purged in batches; queued and recent ones stay.
async fn finished_jobs_are_purged_in_batches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let jobs = &app.core.jobs;
    let owner = &app.alice.user_id;
    let mut finished = Vec::new();
    for _ in 0..5 {
        let job = jobs
            .submit(owner, "test.idle", Vec::new(), SubmitOptions::default())
            .await
            .unwrap();
        jobs.cancel(owner, job.id).await.unwrap();
        finished.push(job.id);
    }
    let queued = jobs
        .submit(owner, "test.idle", Vec::new(), SubmitOptions::default())
        .await
        .unwrap();
    let before_all = aimesh_kit::db::now() - chrono::Duration::hours(1);
    assert_eq!(jobs.purge_finished(before_all, 2).await.unwrap(), 0);
    let cutoff = aimesh_kit::db::now() + chrono::Duration::seconds(1);
    assert_eq!(jobs.purge_finished(cutoff, 2).await.unwrap(), 2);
    assert_eq!(jobs.purge_finished(cutoff, 2).await.unwrap(), 2);
    assert_eq!(jobs.purge_finished(cutoff, 2).await.unwrap(), 1);
    assert_eq!(jobs.purge_finished(cutoff, 2).await.unwrap(), 0);
    for id in finished {
        assert!(jobs.get(owner, id).await.is_err());
    }
    assert!(jobs.get(owner, queued.id).await.is_ok());
}

backend_tests!(
    admin_methods_refuse_everyone_but_administrators,
    roles_travel_in_tokens_and_are_checked_on_the_server,
    disabled_accounts_are_refused_until_enabled,
    administrators_see_and_manage_every_job,
    api_tokens_are_scoped_and_revocable,
    deleting_an_account_leaves_nothing_behind,
    an_account_exports_what_it_stores,
    finished_jobs_are_purged_in_batches,
);

/// `aimesh backup` copies the running embedded default (database and stored files);
/// `aimesh restore` puts the copy in place of a fresh data directory, which then holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_is_backed_up_and_restored() {
    use aimesh_kit::config::ServerConfig;

    let app = TestApp::spawn(Backend::Sqlite).await;
    fill(&app, &app.alice).await;
    let server = ServerConfig::for_tests(app.db.data_dir(), Some(app.db.url.clone()));
    let processing = aimesh::ProcessingSettings::for_tests();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    aimesh::ops::backup(&server, &processing, &backup)
        .await
        .unwrap();
    assert!(
        aimesh::ops::backup(&server, &processing, &backup)
            .await
            .is_err(),
        "a backup never overwrites another"
    );

    let fresh = dir.path().join("fresh");
    let restored = ServerConfig::for_tests(fresh.clone(), None);
    aimesh::ops::restore(&restored, &processing, &backup, false).unwrap();
    assert!(aimesh::ops::restore(&restored, &processing, &backup, false).is_err());
    let db = aimesh::connect(&restored).await.unwrap();
    let aimesh_kit::db::Db::Sqlite(pool) = &db else {
        panic!("the restored database is SQLite")
    };
    let (notes,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(pool)
        .await
        .unwrap();
    let (documents,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM documents")
        .fetch_one(pool)
        .await
        .unwrap();
    db.close().await;
    assert_eq!((notes, documents), (1, 1));
    let files = std::fs::read_dir(fresh.join("blobs").join(&app.alice.user_id))
        .unwrap()
        .count();
    assert_eq!(files, 1);
}
