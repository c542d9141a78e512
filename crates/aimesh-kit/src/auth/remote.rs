//! Keeps a [`JwtVerifier`] trusting the keys the identity service publishes, for processes that
//! run without the identity service: the keys are fetched over gRPC (`GetJwks`) at start and
//! refreshed periodically, so key rotation needs no restart and no shared database.

use std::{sync::Arc, time::Duration};

use aimesh_proto::identity::v1::{GetJwksRequest, identity_service_client::IdentityServiceClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use super::jwt::{JwtVerifier, PublicJwk};

/// Fetches the identity service's keys once into `verifier`, from `identity` (an endpoint made
/// by [`crate::tls::TlsConfig::endpoint`], so `https://` works).
pub async fn fetch_keys(identity: &Endpoint, verifier: &JwtVerifier) -> anyhow::Result<usize> {
    let endpoint = identity
        .clone()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let mut client = IdentityServiceClient::new(endpoint.connect().await?);
    let keys: Vec<PublicJwk> = client
        .get_jwks(GetJwksRequest {})
        .await?
        .into_inner()
        .keys
        .into_iter()
        .filter(|key| key.kty == "OKP" && key.crv == "Ed25519" && key.alg == "EdDSA")
        .map(|key| PublicJwk {
            kid: key.kid,
            x: key.x,
        })
        .collect();
    anyhow::ensure!(
        !keys.is_empty(),
        "the identity service published no usable key"
    );
    let rejected = verifier.set_keys(&keys);
    anyhow::ensure!(
        rejected.len() < keys.len(),
        "none of the published keys decodes"
    );
    Ok(keys.len() - rejected.len())
}

/// Refreshes the keys every `interval` (every 2 s while none could be fetched yet) until
/// `shutdown`, logging failures and keeping the last good set.
pub fn spawn_refresh(
    identity: Endpoint,
    verifier: Arc<JwtVerifier>,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Until the first keys arrive (identity may start after us), retry quickly.
            let wait = if verifier.kids().is_empty() {
                Duration::from_secs(2)
            } else {
                interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {
                    if let Err(error) = fetch_keys(&identity, &verifier).await {
                        tracing::warn!(error = format!("{error:#}"), "refreshing token keys failed");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
    })
}
