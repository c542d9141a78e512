//! Verification of access tokens: EdDSA-signed JWTs whose `kid` names one of the published
//! keys. Anything else — `alg: none`, HMAC or RSA algorithms (algorithm confusion), unknown key
//! ids, bad signatures, wrong issuer or audience, expired or not-yet-valid tokens — is refused.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: i64 = 5;

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The audience of every aimesh access token.
pub const AUDIENCE: &str = "aimesh";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The username.
    pub usr: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// The account's roles when the token was issued (e.g. `admin`); absent when none. The
    /// server checks them against the account's current roles on every call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A public key as published in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id.
    pub kid: String,
    /// The raw 32-byte Ed25519 public key, base64url.
    pub x: String,
}

impl PublicJwk {
    /// Builds the JWK of a raw Ed25519 public key; the key id is its RFC 7638 thumbprint.
    pub fn from_ed25519(public_key: &[u8; 32]) -> Self {
        use sha2::{Digest, Sha256};
        let x = URL_SAFE_NO_PAD.encode(public_key);
        // RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { kid, x }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token has expired.
    #[error("access token expired")]
    Expired,
    /// The token is not valid yet.
    #[error("access token not valid yet")]
    NotYetValid,
    /// Signed with a key this verifier does not know.
    #[error("access token signed with an unknown key")]
    UnknownKey,
    /// Malformed, wrongly signed, or with wrong claims.
    #[error("invalid access token")]
    Invalid,
}

/// Verifies access tokens against a set of public keys that can be replaced at run time.
///
/// A token whose signature checked out is remembered (until it expires, for at most five
/// minutes, and until the keys change), so the signature of a client's token is verified once,
/// not on every call; expiry and not-before are still checked on every call.
pub struct JwtVerifier {
    issuer: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
    verified: moka::sync::Cache<String, Arc<Claims>, foldhash::fast::RandomState>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("kids", &self.kids())
            .finish()
    }
}

impl JwtVerifier {
    /// Creates a verifier for tokens of `issuer`, trusting no key yet.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            keys: RwLock::new(HashMap::new()),
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// Replaces the trusted keys; keys that do not decode are skipped (and returned).
    pub fn set_keys(&self, jwks: &[PublicJwk]) -> Vec<String> {
        let mut keys = HashMap::new();
        let mut rejected = Vec::new();
        for jwk in jwks {
            match DecodingKey::from_ed_components(&jwk.x) {
                Ok(key) => {
                    keys.insert(jwk.kid.clone(), key);
                }
                Err(_) => rejected.push(jwk.kid.clone()),
            }
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        // A removed key must stop vouching for the tokens it signed.
        self.verified.invalidate_all();
        rejected
    }

    /// Returns the ids of the trusted keys.
    pub fn kids(&self) -> Vec<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut kids: Vec<String> = keys.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// Returns the issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Invalid);
        }
        if let Some(claims) = self.verified.get(token) {
            let now = chrono_now();
            if claims.exp <= now - LEEWAY_SECS {
                return Err(TokenError::Expired);
            }
            if claims.nbf > now + LEEWAY_SECS {
                return Err(TokenError::NotYetValid);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_signature(token)?);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS as u64;
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            })
    }
}
