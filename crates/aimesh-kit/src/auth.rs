//! The caller's identity. A tower layer on the server puts a [`Principal`] into every
//! request's extensions; handlers read it with [`principal`] and scope every query to it.
//!
//! Until token verification is configured, the server runs single-user: every request is made
//! by the local principal. The data model is multi-tenant from the start (every row has an
//! owner), so turning verification on changes no storage.

use std::task::{Context, Poll};

use tower::{Layer, Service};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The caller's user id: the owner of every resource they create.
    pub user_id: String,
}

impl Principal {
    /// The user id of the single local user when authentication is off.
    pub const LOCAL_USER_ID: &'static str = "local";

    /// Returns the local principal.
    pub fn local() -> Self {
        Self {
            user_id: Self::LOCAL_USER_ID.to_owned(),
        }
    }
}

/// Returns the request's principal, or `UNAUTHENTICATED` when the auth layer set none.
#[allow(clippy::result_large_err)]
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("missing credentials"))
}

/// Attaches the caller's [`Principal`] to every request.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    _priv: (),
}

impl AuthLayer {
    /// Creates a layer that attributes every request to the local user.
    pub fn local() -> Self {
        Self { _priv: () }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(Principal::local());
        self.inner.call(request)
    }
}
