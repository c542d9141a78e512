//! The tonic adapter of `aimesh.identity.v1.IdentityService`.

use aimesh_kit::{
    auth::{client_address, principal},
    error::Violations,
    proto::timestamp,
};
use aimesh_proto::identity::v1::{self as pb, identity_service_server::IdentityService};
use chrono::{TimeZone, Utc};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Tokens, User},
    error::IdentityError,
    service::{Identity, Registration},
};

/// Longest login identifier or password accepted before any work is done.
const MAX_CREDENTIAL_LEN: usize = 1024;
/// Longest token accepted.
const MAX_TOKEN_LEN: usize = 4096;

/// The gRPC face of the identity service.
#[derive(Clone)]
pub struct IdentityApi {
    identity: Identity,
}

impl IdentityApi {
    /// Wraps the service.
    pub fn new(identity: Identity) -> Self {
        Self { identity }
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
}

fn user_to_proto(user: &User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        username: user.username.clone(),
        email: user.email.clone(),
        create_time: Some(timestamp(user.created_at)),
        api_call_count: user.api_calls,
    }
}
