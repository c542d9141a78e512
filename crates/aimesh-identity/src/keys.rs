//! The keys that sign access tokens.
//!
//! One Ed25519 private key signs new tokens; its public key, plus any extra public keys kept
//! from before a rotation, verify them and are published as the JWKS. In the embedded default
//! the private key is generated into the data directory on first start (mode 0600).

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use aimesh_kit::auth::jwt::{AUDIENCE, Claims, JwtVerifier, PublicJwk};
use chrono::{DateTime, Utc};
use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Errors loading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("failed to access key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable key.
    #[error("{path} is not a PEM-encoded Ed25519 key")]
    Format {
        /// The file.
        path: PathBuf,
    },
}

/// The signing key and the published verification keys.
pub struct SigningKeys {
    kid: String,
    encoding: EncodingKey,
    published: Vec<PublicJwk>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("kid", &self.kid)
            .field("published", &self.published.len())
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Loads the private key at `path`, creating it when the file does not exist, and the
    /// extra public keys.
    pub fn load_or_create(path: &Path, extra_public: &[PathBuf]) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| KeyError::Format {
                        path: path.to_path_buf(),
                    })?;
                write_private(path, pem.as_bytes()).map_err(io)?;
                tracing::info!("generated a new token signing key");
                pem.to_string()
            }
            Err(error) => return Err(io(error)),
        };
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
        })?;
        let mut extra = Vec::new();
        for file in extra_public {
            let pem = std::fs::read_to_string(file).map_err(|source| KeyError::Io {
                path: file.clone(),
                source,
            })?;
            let public = VerifyingKey::from_public_key_pem(&pem)
                .map_err(|_| KeyError::Format { path: file.clone() })?;
            extra.push(public);
        }
        Self::from_keys(&key, &extra).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
        })
    }

    /// Builds the key set from a signing key and older public keys.
    pub fn from_keys(
        key: &SigningKey,
        extra_public: &[VerifyingKey],
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let der = key
            .to_pkcs8_der()
            .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey)?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let active = PublicJwk::from_ed25519(key.verifying_key().as_bytes());
        let mut published = vec![active.clone()];
        for public in extra_public {
            let jwk = PublicJwk::from_ed25519(public.as_bytes());
            if !published.contains(&jwk) {
                published.push(jwk);
            }
        }
        Ok(Self {
            kid: active.kid,
            encoding,
            published,
        })
    }

    /// Returns the published keys, the signing one first.
    pub fn published(&self) -> &[PublicJwk] {
        &self.published
    }

    /// Returns a verifier trusting the published keys.
    pub fn verifier(&self, issuer: &str) -> Arc<JwtVerifier> {
        let verifier = JwtVerifier::new(issuer);
        verifier.set_keys(&self.published);
        Arc::new(verifier)
    }

    /// Signs an access token for a user, valid from `now` until `expires_at`.
    pub fn sign(
        &self,
        issuer: &str,
        user_id: &str,
        username: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_with_roles(issuer, user_id, username, &[], now, expires_at)
    }

    /// Signs an access token for a user holding `roles` (e.g. `admin`).
    pub fn sign_with_roles(
        &self,
        issuer: &str,
        user_id: &str,
        username: &str,
        roles: &[String],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            roles: roles.to_vec(),
            sub: user_id.to_owned(),
            usr: username.to_owned(),
            iss: issuer.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_reloaded_and_signs_verifiable_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.pem");
        let first = SigningKeys::load_or_create(&path, &[]).unwrap();
        let again = SigningKeys::load_or_create(&path, &[]).unwrap();
        assert_eq!(first.published(), again.published());

        let now = Utc::now();
        let token = first
            .sign(
                "aimesh",
                "u1",
                "jane",
                now,
                now + chrono::Duration::minutes(5),
            )
            .unwrap();
        let claims = again.verifier("aimesh").verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.usr.as_str()), ("u1", "jane"));
        assert!(again.verifier("someone-else").verify(&token).is_err());
    }

    #[test]
    fn garbage_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            SigningKeys::load_or_create(&path, &[]),
            Err(KeyError::Format { .. })
        ));
    }
}
