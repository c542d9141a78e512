//! Authentication of every RPC.
//!
//! [`AuthLayer`] sits on the server in front of all services. For each request it lets public
//! methods (account creation and login, token refresh, key discovery, health, reflection) pass
//! as they are; for everything else it requires `authorization: Bearer <token>`: an access
//! token (a JWT, verified by [`jwt::JwtVerifier`]) or a personal API token (`aimesh_pat_...`,
//! looked up through [`AccountHooks`] and held to its [`scope::TokenScope`]). It checks the
//! account is still active and what roles it holds now, counts the call ([`AccountHooks`]),
//! applies the per-user rate limit, and hands the handler a [`Principal`] in the request's
//! extensions. Failures are answered by the layer itself: UNAUTHENTICATED, PERMISSION_DENIED
//! (a call outside an API token's scope), or RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo`
//! detail.

pub mod client;
pub mod jwt;
pub mod remote;
pub mod scope;

use std::{
    num::NonZeroU32,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use tower::{Layer, Service};

pub use self::client::{ClientAddress, TrustedProxies, client_address};
use self::jwt::{JwtVerifier, TokenError};

/// Methods callable without an access token (exact gRPC paths or path prefixes ending in `.`
/// or `/`).
pub const PUBLIC_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/aimesh.identity.v1.IdentityService/Register",
    "/aimesh.identity.v1.IdentityService/Login",
    "/aimesh.identity.v1.IdentityService/RefreshToken",
    "/aimesh.identity.v1.IdentityService/Logout",
    "/aimesh.identity.v1.IdentityService/ValidateToken",
    "/aimesh.identity.v1.IdentityService/GetJwks",
    // A signed URL's token is its own credential (browsers' <img>, <audio> and links send none).
    "/aimesh.files.v1.FilesService/GetSignedFile",
];

fn is_public(path: &str) -> bool {
    PUBLIC_METHODS.iter().any(|public| {
        if public.ends_with('/') || public.ends_with('.') {
            path.starts_with(public)
        } else {
            path == *public
        }
    })
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The caller's user id: the owner of every resource they create.
    pub user_id: String,
    /// The caller's username.
    pub username: String,
    /// The roles the caller holds for this call: those of their access token that the account
    /// still has (none with an API token).
    pub roles: Vec<String>,
    /// The id of the personal API token the call was made with, if it was.
    pub api_token_id: Option<String>,
}

impl Principal {
    /// Returns whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == scope::ROLE_ADMIN)
    }
}

/// Returns the request's principal when it is an administrator: UNAUTHENTICATED without
/// one, PERMISSION_DENIED for anyone else.
#[allow(clippy::result_large_err)]
pub fn require_admin<T>(request: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    let principal = principal(request)?;
    if principal.is_admin() {
        Ok(principal)
    } else {
        Err(tonic::Status::permission_denied(
            "only administrators may call this method",
        ))
    }
}

/// Returns the request's principal, or UNAUTHENTICATED when the auth layer set none.
#[allow(clippy::result_large_err)]
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("missing credentials"))
}

/// Where an account stands, as the authenticator needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountState {
    /// It may call; with the roles it holds now.
    Active {
        /// Current roles.
        roles: Vec<String>,
    },
    /// An administrator disabled it: its tokens are refused.
    Disabled,
    /// It does not exist (any more).
    Missing,
}

/// A personal API token, as the account store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenGrant {
    /// The token's id.
    pub token_id: String,
    /// Its owner's user id.
    pub user_id: String,
    /// Its owner's username.
    pub username: String,
    /// What it may call.
    pub scope: scope::TokenScope,
}

/// What the authenticator asks of the account store (the identity service's tables).
pub trait AccountHooks: Send + Sync + 'static {
    /// Returns where the account stands.
    fn state<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<AccountState, String>>;
    /// Returns the live (not revoked, not expired) API token whose secret is `token`.
    fn api_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<ApiTokenGrant>, String>>;
    /// Counts one authenticated call by the account (and records the API token's use).
    fn record_call(&self, user_id: &str, api_token_id: Option<&str>);
}

/// Per-user request rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests allowed in a burst.
    pub burst: NonZeroU32,
}

/// Authentication settings, shared by every service process.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// Issuer (`iss`) of access tokens.
    #[arg(long, env = "AIMESH_JWT_ISSUER", default_value = "aimesh")]
    pub jwt_issuer: String,

    /// gRPC address of the identity service whose keys verify tokens, when it runs in another
    /// process (e.g. `http://identity:50051`).
    #[arg(long, env = "AIMESH_IDENTITY_URL")]
    pub identity_url: Option<String>,

    /// Sustained authenticated requests per second allowed per user (0: no limit).
    #[arg(long, env = "AIMESH_RATE_LIMIT_PER_SEC", default_value_t = 50)]
    pub rate_limit_per_sec: u32,

    /// Requests per user allowed in a burst above the sustained rate.
    #[arg(long, env = "AIMESH_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,

    /// Proxies (addresses or CIDR ranges, comma-separated; `none` for no proxy) whose report
    /// of the client's address (`x-envoy-external-address`, `x-forwarded-for`) is believed:
    /// the edge. Per-address limits (logins, registrations) key on that address.
    #[arg(
        long,
        env = "AIMESH_TRUSTED_PROXIES",
        default_value = "127.0.0.0/8,::1",
        value_parser = TrustedProxies::parse
    )]
    pub trusted_proxies: TrustedProxies,
}

impl AuthConfig {
    /// Returns the per-user rate limit, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        let per_second = NonZeroU32::new(self.rate_limit_per_sec)?;
        Some(RateLimit {
            per_second,
            burst: NonZeroU32::new(self.rate_limit_burst).unwrap_or(per_second),
        })
    }

    /// Returns a configuration for tests: no remote identity, generous limits.
    pub fn for_tests() -> Self {
        Self {
            jwt_issuer: "aimesh".into(),
            identity_url: None,
            rate_limit_per_sec: 1000,
            rate_limit_burst: 1000,
            trusted_proxies: TrustedProxies::parse("127.0.0.0/8,::1").unwrap_or_default(),
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Denied {
    Unauthenticated(String),
    Forbidden(String),
    RateLimited(Duration),
    Unavailable,
}

impl Denied {
    fn into_status(self) -> tonic::Status {
        match self {
            Denied::Unauthenticated(message) => tonic::Status::unauthenticated(message),
            Denied::Forbidden(message) => tonic::Status::permission_denied(message),
            Denied::RateLimited(wait) => crate::error::retry_status(
                &format!(
                    "rate limit exceeded; retry in {} ms",
                    wait.as_millis().max(1)
                ),
                wait,
            ),
            Denied::Unavailable => {
                tonic::Status::unavailable("the service is temporarily unavailable")
            }
        }
    }
}

/// Decides who makes a request, and whether they may.
pub struct Authenticator {
    verifier: Arc<JwtVerifier>,
    accounts: Option<Arc<dyn AccountHooks>>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    trusted_proxies: TrustedProxies,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("verifier", &self.verifier)
            .field("accounts", &self.accounts.is_some())
            .field("rate_limited", &self.limiter.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Creates an authenticator; requests from `trusted_proxies` are attributed to the client
    /// address the proxy reports.
    pub fn new(
        verifier: Arc<JwtVerifier>,
        accounts: Option<Arc<dyn AccountHooks>>,
        rate_limit: Option<RateLimit>,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        let limiter = rate_limit.map(|limit| {
            DefaultKeyedRateLimiter::keyed(
                Quota::per_second(limit.per_second).allow_burst(limit.burst),
            )
        });
        Self {
            verifier,
            accounts,
            limiter,
            trusted_proxies,
        }
    }

    /// Returns the verifier.
    pub fn verifier(&self) -> &Arc<JwtVerifier> {
        &self.verifier
    }

    /// Forgets rate-limit state of users idle long enough to be back at a full bucket.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    async fn authenticate(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Principal, Denied> {
        let token = bearer_token(headers)?;
        let mut principal = if scope::is_api_token(token) {
            self.api_token_principal(path, token).await?
        } else {
            let claims = self.verifier.verify(token).map_err(|error| {
                if error == TokenError::UnknownKey {
                    tracing::debug!("token signed with an unknown key");
                }
                Denied::Unauthenticated(error.to_string())
            })?;
            Principal {
                user_id: claims.sub.clone(),
                username: claims.usr.clone(),
                roles: claims.roles.clone(),
                api_token_id: None,
            }
        };
        if let Some(accounts) = &self.accounts {
            match accounts.state(&principal.user_id).await {
                // A role revoked since the token was issued is gone at once.
                Ok(AccountState::Active { roles }) => principal.roles.retain(|r| roles.contains(r)),
                Ok(AccountState::Disabled) => {
                    return Err(Denied::Unauthenticated("account is disabled".into()));
                }
                Ok(AccountState::Missing) => {
                    return Err(Denied::Unauthenticated("account no longer exists".into()));
                }
                Err(error) => {
                    tracing::error!(%error, "account check failed");
                    return Err(Denied::Unavailable);
                }
            }
        }
        if let Some(limiter) = &self.limiter
            && let Err(not_until) = limiter.check_key(&principal.user_id)
        {
            let wait = not_until.wait_time_from(limiter.clock().now());
            return Err(Denied::RateLimited(wait));
        }
        if let Some(accounts) = &self.accounts {
            accounts.record_call(&principal.user_id, principal.api_token_id.as_deref());
        }
        Ok(principal)
    }

    /// The caller of a personal API token, if the token is live and `path` within its scope.
    async fn api_token_principal(&self, path: &str, token: &str) -> Result<Principal, Denied> {
        let Some(accounts) = &self.accounts else {
            return Err(Denied::Unauthenticated(
                "API tokens are not accepted by this server".into(),
            ));
        };
        let grant = match accounts.api_token(token).await {
            Ok(Some(grant)) => grant,
            Ok(None) => return Err(Denied::Unauthenticated("invalid API token".into())),
            Err(error) => {
                tracing::error!(%error, "API token lookup failed");
                return Err(Denied::Unavailable);
            }
        };
        if !grant.scope.allows(path) {
            return Err(Denied::Forbidden(format!(
                "this API token ({}, {}) does not allow {path}",
                grant.scope.access,
                if grant.scope.services.is_empty() {
                    "every service".to_owned()
                } else {
                    grant.scope.services.join(", ")
                }
            )));
        }
        Ok(Principal {
            user_id: grant.user_id,
            username: grant.username,
            roles: Vec::new(),
            api_token_id: Some(grant.token_id),
        })
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Denied> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| Denied::Unauthenticated("missing bearer token".into()))?;
    let value = value
        .to_str()
        .map_err(|_| Denied::Unauthenticated("invalid authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Denied::Unauthenticated("invalid authorization header".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Denied::Unauthenticated(
            "authorization must be `Bearer <token>`".into(),
        ));
    }
    Ok(token.trim())
}

/// Authenticates every request before it reaches a service.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    /// Creates the layer.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S, B, R> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone may not be ready: call the one that was polled, keep the clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|addr| addr.ip());
        if let Some(client) = self
            .authenticator
            .trusted_proxies
            .client(peer, request.headers())
        {
            request.extensions_mut().insert(ClientAddress(client));
        }
        if is_public(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            match authenticator
                .authenticate(request.uri().path(), request.headers())
                .await
            {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(denied) => Ok(denied.into_status().into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_methods_are_matched_exactly() {
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(is_public("/aimesh.identity.v1.IdentityService/Login"));
        assert!(!is_public("/aimesh.identity.v1.IdentityService/LoginX"));
        assert!(!is_public("/aimesh.identity.v1.IdentityService/GetProfile"));
        assert!(!is_public("/aimesh.notes.v1.NotesService/GetNote"));
        assert!(is_public("/aimesh.files.v1.FilesService/GetSignedFile"));
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut headers = http::HeaderMap::new();
        assert!(bearer_token(&headers).is_err());
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer_token(&headers).is_err());
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(bearer_token(&headers).is_err());
        headers.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer_token(&headers).unwrap(), "abc.def.ghi");
    }
}
