//! TLS for the gRPC listener and for calls between services.
//!
//! TLS from browsers and clients ends at the edge (Envoy). Behind it, services speak plain
//! HTTP/2 on a private network by default; with a certificate they serve TLS instead, and with a
//! client CA they require the caller's certificate too (mutual TLS: Envoy, and services calling
//! each other, present one). A process calling another service over an `https://` URL (e.g.
//! `AIMESH_IDENTITY_URL` for the token keys) trusts the public web roots plus `AIMESH_TLS_CA`,
//! and presents its own certificate when it has one.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The process's certificate and the authorities it trusts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsConfig {
    /// PEM certificate chain the gRPC listener serves TLS with (needs `AIMESH_TLS_KEY`); also
    /// presented as the client certificate when this process calls another service over
    /// `https://`. Without it the listener speaks plain HTTP/2.
    #[arg(long = "tls-cert", env = "AIMESH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `AIMESH_TLS_CERT`.
    #[arg(long = "tls-key", env = "AIMESH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM certificate(s) of the authority whose client certificates the listener requires
    /// (mutual TLS); a caller without one is refused during the handshake. Needs
    /// `AIMESH_TLS_CERT`.
    #[arg(
        long = "tls-client-ca",
        env = "AIMESH_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM certificate(s) of an authority trusted, besides the public web roots, when this
    /// process calls another service over `https://` (a private CA).
    #[arg(long = "tls-ca", env = "AIMESH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

fn read(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{setting}: cannot read {}", path.display()))?;
    anyhow::ensure!(
        String::from_utf8_lossy(&bytes).contains("-----BEGIN "),
        "{setting}: {} is not a PEM file",
        path.display()
    );
    Ok(bytes)
}

impl TlsConfig {
    /// The process's own certificate and key, if configured.
    fn identity(&self) -> anyhow::Result<Option<Identity>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(Identity::from_pem(
                read(cert, "AIMESH_TLS_CERT")?,
                read(key, "AIMESH_TLS_KEY")?,
            ))),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("AIMESH_TLS_CERT is set without AIMESH_TLS_KEY"),
            (None, Some(_)) => anyhow::bail!("AIMESH_TLS_KEY is set without AIMESH_TLS_CERT"),
        }
    }

    /// The listener's TLS settings: `None` (plain HTTP/2) without a certificate.
    pub fn server(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        let Some(identity) = self.identity()? else {
            anyhow::ensure!(
                self.tls_client_ca.is_none(),
                "AIMESH_TLS_CLIENT_CA needs AIMESH_TLS_CERT and AIMESH_TLS_KEY: mutual TLS is \
                 served over TLS"
            );
            return Ok(None);
        };
        let mut config = ServerTlsConfig::new()
            .identity(identity)
            .timeout(std::time::Duration::from_secs(10));
        if let Some(ca) = &self.tls_client_ca {
            config =
                config.client_ca_root(Certificate::from_pem(read(ca, "AIMESH_TLS_CLIENT_CA")?));
        }
        Ok(Some(config))
    }

    /// Whether the listener requires client certificates.
    pub fn mutual(&self) -> bool {
        self.tls_cert.is_some() && self.tls_client_ca.is_some()
    }

    /// An endpoint for calling the service at `url`: over TLS for `https://` URLs (trusting the
    /// web roots and `AIMESH_TLS_CA`, presenting this process's certificate if it has one),
    /// plain HTTP/2 for `http://`.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        self.endpoint_named(url, None)
    }

    /// [`Self::endpoint`], verifying the server's certificate for `server_name` instead of the
    /// URL's host (e.g. `localhost` for a probe that dials 127.0.0.1).
    pub fn endpoint_named(&self, url: &str, server_name: Option<&str>) -> anyhow::Result<Endpoint> {
        let endpoint =
            Endpoint::from_shared(url.to_owned()).with_context(|| format!("{url} is not a URL"))?;
        match endpoint.uri().scheme_str() {
            Some("http") => Ok(endpoint),
            Some("https") => {
                let mut tls = ClientTlsConfig::new().with_webpki_roots();
                if let Some(ca) = &self.tls_ca {
                    tls = tls.ca_certificate(Certificate::from_pem(read(ca, "AIMESH_TLS_CA")?));
                }
                if let Some(identity) = self.identity()? {
                    tls = tls.identity(identity);
                }
                if let Some(name) = server_name {
                    tls = tls.domain_name(name);
                }
                endpoint
                    .tls_config(tls)
                    .with_context(|| format!("TLS settings for {url}"))
            }
            _ => anyhow::bail!("{url}: the scheme must be http:// or https://"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_means_plain_http2() {
        let config = TlsConfig::default();
        assert!(config.server().unwrap().is_none());
        assert!(!config.mutual());
        assert!(config.endpoint("http://identity:50051").is_ok());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        let only_ca = TlsConfig {
            tls_client_ca: Some("ca.pem".into()),
            ..TlsConfig::default()
        };
        let error = only_ca.server().unwrap_err().to_string();
        assert!(error.contains("AIMESH_TLS_CLIENT_CA"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("cert.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let bad = TlsConfig {
            tls_cert: Some(not_pem.clone()),
            tls_key: Some(not_pem),
            ..TlsConfig::default()
        };
        let error = bad.server().unwrap_err().to_string();
        assert!(
            error.contains("AIMESH_TLS_CERT") && error.contains("PEM"),
            "{error}"
        );

        let missing = TlsConfig {
            tls_ca: Some(dir.path().join("missing.pem")),
            ..TlsConfig::default()
        };
        let error = format!(
            "{:#}",
            missing.endpoint("https://identity:50051").unwrap_err()
        );
        assert!(error.contains("AIMESH_TLS_CA"), "{error}");
        let error = TlsConfig::default()
            .endpoint("ftp://x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("http:// or https://"), "{error}");
    }
}
