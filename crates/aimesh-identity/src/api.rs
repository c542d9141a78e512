//! The tonic adapter of `aimesh.identity.v1.IdentityService`.

use std::sync::Arc;

use aimesh_kit::{
    auth::{
        client_address, principal,
        scope::{Access, TokenScope},
    },
    error::Violations,
    proto::timestamp,
};
use aimesh_proto::identity::v1::{self as pb, identity_service_server::IdentityService};
use chrono::{TimeZone, Utc};
use futures::future::BoxFuture;
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, ApiToken, NewApiToken, Tokens, User},
    error::IdentityError,
    service::{Identity, Registration},
};

/// Longest login identifier or password accepted before any work is done.
const MAX_CREDENTIAL_LEN: usize = 1024;
/// Longest token accepted.
const MAX_TOKEN_LEN: usize = 4096;

/// Longest idempotency key of an export, in bytes.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// Starts an account's data export where the mesh runs its jobs; the identity service only
/// asks for it (the export reads every service's data, which the identity service does not
/// hold).
pub trait AccountExports: Send + Sync + 'static {
    /// Submits the export of `owner`'s data (deduplicated by `idempotency_key` when given)
    /// and returns its job.
    fn start<'a>(
        &'a self,
        owner: &'a str,
        idempotency_key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<aimesh_proto::jobs::v1::Job, Status>>;
}

/// The gRPC face of the identity service.
#[derive(Clone)]
pub struct IdentityApi {
    identity: Identity,
    exports: Option<Arc<dyn AccountExports>>,
}

impl IdentityApi {
    /// Wraps the service.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            exports: None,
        }
    }

    /// Serves ExportAccount through `exports` (without it the call is UNIMPLEMENTED).
    pub fn with_exports(mut self, exports: Arc<dyn AccountExports>) -> Self {
        self.exports = Some(exports);
        self
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::identity_service_server::IdentityServiceServer<Self> {
        pb::identity_service_server::IdentityServiceServer::new(self)
    }
}

fn invalid(violations: Violations) -> Result<(), IdentityError> {
    violations
        .into_result()
        .map_err(IdentityError::InvalidArgument)
}

fn required(violations: &mut Violations, field: &str, value: &str, max: usize) {
    if value.is_empty() {
        violations.add(field, "must not be empty");
    } else if value.len() > max {
        violations.add(field, format!("must be at most {max} bytes"));
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let client = client_address(&request);
        let request = request.into_inner();
        let mut violations = Violations::new();
        let username = violations.check("username", domain::validate_username(&request.username));
        let email = violations.check("email", domain::validate_email(&request.email));
        violations.check(
            "password",
            domain::validate_password(&request.password, &request.username, &request.email),
        );
        if !request.password2.is_empty() && request.password2 != request.password {
            violations.add("password2", "does not match password");
        }
        let (username, email) = violations
            .finish((username, email))
            .map_err(IdentityError::InvalidArgument)?;
        let user = self
            .identity
            .register(
                Registration {
                    username,
                    email,
                    password: request.password,
                },
                client,
            )
            .await?;
        Ok(Response::new(pb::RegisterResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = client_address(&request);
        let request = request.into_inner();
        let mut violations = Violations::new();
        let login = match (request.email.is_empty(), request.username.is_empty()) {
            (false, _) => {
                required(&mut violations, "email", &request.email, MAX_CREDENTIAL_LEN);
                request.email
            }
            (true, false) => {
                required(
                    &mut violations,
                    "username",
                    &request.username,
                    MAX_CREDENTIAL_LEN,
                );
                request.username
            }
            (true, true) => {
                violations.add("email", "email or username is required");
                String::new()
            }
        };
        required(
            &mut violations,
            "password",
            &request.password,
            MAX_CREDENTIAL_LEN,
        );
        invalid(violations)?;
        let (user, tokens) = self
            .identity
            .login(&login, &request.password, client)
            .await?;
        Ok(Response::new(pb::LoginResponse {
            access: tokens.access.clone(),
            refresh: tokens.refresh.clone(),
            access_expire_time: Some(timestamp(tokens.access_expires_at)),
            refresh_expire_time: Some(timestamp(tokens.refresh_expires_at)),
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::new();
        required(&mut violations, "refresh", &request.refresh, MAX_TOKEN_LEN);
        invalid(violations)?;
        let Tokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
        } = self.identity.refresh(&request.refresh).await?;
        Ok(Response::new(pb::RefreshTokenResponse {
            access,
            refresh,
            access_expire_time: Some(timestamp(access_expires_at)),
            refresh_expire_time: Some(timestamp(refresh_expires_at)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::new();
        required(&mut violations, "refresh", &request.refresh, MAX_TOKEN_LEN);
        invalid(violations)?;
        self.identity.logout(&request.refresh).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let caller = principal(&request)?;
        let user = self.identity.profile(&caller.user_id).await?;
        Ok(Response::new(pb::GetProfileResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::new();
        required(
            &mut violations,
            "password",
            &request.password,
            MAX_CREDENTIAL_LEN,
        );
        invalid(violations)?;
        self.identity
            .delete_account(&caller.user_id, &request.password)
            .await?;
        Ok(Response::new(pb::DeleteAccountResponse {}))
    }

    async fn export_account(
        &self,
        request: Request<pb::ExportAccountRequest>,
    ) -> Result<Response<pb::ExportAccountResponse>, Status> {
        let caller = principal(&request)?;
        let key = request.into_inner().idempotency_key;
        let mut violations = Violations::new();
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            violations.add(
                "idempotency_key",
                format!("must be at most {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
            );
        } else if key.chars().any(char::is_control) {
            violations.add("idempotency_key", "must not contain control characters");
        }
        invalid(violations)?;
        let Some(exports) = &self.exports else {
            return Err(Status::unimplemented(
                "account exports are not served by this process: they run where the mesh's \
                 services and jobs do (aimesh serve)",
            ));
        };
        let job = exports
            .start(&caller.user_id, (!key.is_empty()).then_some(key.as_str()))
            .await?;
        Ok(Response::new(pb::ExportAccountResponse { job: Some(job) }))
    }

    async fn validate_token(
        &self,
        request: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::new();
        required(&mut violations, "token", &request.token, MAX_TOKEN_LEN);
        invalid(violations)?;
        let claims = self.identity.validate(&request.token).await?;
        Ok(Response::new(pb::ValidateTokenResponse {
            user_id: claims.sub.clone(),
            username: claims.usr.clone(),
            expire_time: Utc.timestamp_opt(claims.exp, 0).single().map(timestamp),
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = self
            .identity
            .keys()
            .published()
            .iter()
            .map(|key| pb::Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: key.x.clone(),
                kid: key.kid.clone(),
                alg: "EdDSA".into(),
                r#use: "sig".into(),
            })
            .collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }

    async fn create_api_token(
        &self,
        request: Request<pb::CreateApiTokenRequest>,
    ) -> Result<Response<pb::CreateApiTokenResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewApiToken::try_from(request.into_inner())?;
        let (token, secret) = self.identity.create_api_token(&caller.user_id, new).await?;
        Ok(Response::new(pb::CreateApiTokenResponse {
            api_token: Some(api_token_to_proto(&token)),
            secret,
        }))
    }

    async fn list_api_tokens(
        &self,
        request: Request<pb::ListApiTokensRequest>,
    ) -> Result<Response<pb::ListApiTokensResponse>, Status> {
        let caller = principal(&request)?;
        let tokens = self.identity.list_api_tokens(&caller.user_id).await?;
        Ok(Response::new(pb::ListApiTokensResponse {
            api_tokens: tokens.iter().map(api_token_to_proto).collect(),
        }))
    }

    async fn revoke_api_token(
        &self,
        request: Request<pb::RevokeApiTokenRequest>,
    ) -> Result<Response<pb::RevokeApiTokenResponse>, Status> {
        let caller = principal(&request)?;
        let mut violations = Violations::new();
        let id = violations.check("id", aimesh_kit::error::parse_uuid(&request.get_ref().id));
        let id = violations
            .finish(id)
            .map_err(IdentityError::InvalidArgument)?;
        let token = self.identity.revoke_api_token(&caller.user_id, id).await?;
        Ok(Response::new(pb::RevokeApiTokenResponse {
            api_token: Some(api_token_to_proto(&token)),
        }))
    }
}

/// Converts an account to its message.
pub fn user_to_proto(user: &User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        username: user.username.clone(),
        email: user.email.clone(),
        create_time: Some(timestamp(user.created_at)),
        api_call_count: user.api_calls,
        roles: user.roles(),
        disable_time: user.disabled_at.map(timestamp),
    }
}

fn api_token_to_proto(token: &ApiToken) -> pb::ApiToken {
    pb::ApiToken {
        id: token.id.to_string(),
        name: token.name.clone(),
        access: match token.scope.access {
            Access::ReadOnly => pb::ApiTokenAccess::ReadOnly,
            Access::ReadWrite => pb::ApiTokenAccess::ReadWrite,
        } as i32,
        services: token.scope.services.clone(),
        create_time: Some(timestamp(token.created_at)),
        expire_time: token.expires_at.map(timestamp),
        last_use_time: token.last_used_at.map(timestamp),
        revoke_time: token.revoked_at.map(timestamp),
    }
}

/// Most services one API token may name.
const MAX_TOKEN_SERVICES: usize = 20;
/// Longest API token lifetime, in seconds (ten years).
const MAX_TOKEN_TTL_SECS: i64 = 10 * 366 * 24 * 3600;

/// The full names of the mesh's services, from the descriptor set.
fn known_services() -> &'static [String] {
    static SERVICES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SERVICES.get_or_init(|| {
        let set = <prost_types::FileDescriptorSet as prost::Message>::decode(
            aimesh_proto::FILE_DESCRIPTOR_SET,
        )
        .unwrap_or_default();
        set.file
            .iter()
            .filter(|file| file.package().starts_with("aimesh."))
            .flat_map(|file| {
                file.service
                    .iter()
                    .map(move |service| format!("{}.{}", file.package(), service.name()))
            })
            .collect()
    })
}

impl TryFrom<pb::CreateApiTokenRequest> for NewApiToken {
    type Error = IdentityError;

    fn try_from(request: pb::CreateApiTokenRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let name = violations.check("name", domain::validate_token_name(&request.name));
        let access = violations.check(
            "access",
            match pb::ApiTokenAccess::try_from(request.access) {
                Ok(pb::ApiTokenAccess::ReadOnly) => Ok(Access::ReadOnly),
                Ok(pb::ApiTokenAccess::ReadWrite) => Ok(Access::ReadWrite),
                _ => Err(
                    "must be API_TOKEN_ACCESS_READ_ONLY or API_TOKEN_ACCESS_READ_WRITE".to_owned(),
                ),
            },
        );
        let services = violations.check("services", {
            if request.services.len() > MAX_TOKEN_SERVICES {
                Err(format!("must name at most {MAX_TOKEN_SERVICES} services"))
            } else if let Some(unknown) = request
                .services
                .iter()
                .find(|s| !known_services().contains(s))
            {
                Err(format!(
                    "{:?} is not a service of the mesh (full names such as \
                     aimesh.notes.v1.NotesService)",
                    unknown.chars().take(100).collect::<String>()
                ))
            } else if request
                .services
                .iter()
                .any(|s| s == "aimesh.admin.v1.AdminService")
            {
                Err("API tokens cannot call the admin service".to_owned())
            } else {
                let mut services = request.services.clone();
                services.sort();
                services.dedup();
                Ok(services)
            }
        });
        let expires_at = violations.check(
            "ttl_seconds",
            match request.ttl_seconds {
                0 => Ok(None),
                ttl if (1..=MAX_TOKEN_TTL_SECS).contains(&ttl) => {
                    Ok(Some(domain::now() + chrono::Duration::seconds(ttl)))
                }
                _ => Err(format!("must be 0 (never expires) to {MAX_TOKEN_TTL_SECS}")),
            },
        );
        let (name, access, services, expires_at) = violations
            .finish((name, access, services, expires_at))
            .map_err(IdentityError::InvalidArgument)?;
        Ok(NewApiToken {
            name,
            scope: TokenScope { access, services },
            expires_at,
        })
    }
}
