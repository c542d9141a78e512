//! Signed URLs: a token naming one stored file (the service that keeps it, its owner, the
//! object and which of its files) and an expiry, authenticated with HMAC-SHA256.
//!
//! A token is `<payload>.<mac>`, both base64url without padding; the payload is
//! `1.<kind>.<variant>.<expires unix seconds>.<object>.<owner>` (every part from
//! `[A-Za-z0-9_-]`), the MAC is HMAC-SHA256 under the signing key over a domain tag and the
//! payload. Verification recomputes the MAC and compares it in constant time before reading
//! anything else, so an altered token (another object, owner or expiry) is refused as invalid.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separates the MAC input from other uses of the key.
const DOMAIN: &[u8] = b"aimesh.files.v1 signed url\n";

/// The version of the payload format.
const VERSION: &str = "1";

/// The shortest signing key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The longest a signed URL may live.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The path signed URLs are served under (the edge maps it to `FilesService/GetSignedFile`).
pub const URL_PATH: &str = "/api/v1/files/";

/// One stored file a URL opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The service keeping it, as its reader is registered (`gallery`, `processing`).
    pub kind: String,
    /// The owner (a user id).
    pub owner: String,
    /// The object (an image's, a document's id).
    pub id: String,
    /// Which of the object's files (`original`, `thumbnail256`, `audio`).
    pub variant: String,
}

impl FileRef {
    /// Names `owner`'s file `variant` of object `id` in service `kind`.
    pub fn new(
        kind: impl Into<String>,
        owner: impl Into<String>,
        id: impl Into<String>,
        variant: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            owner: owner.into(),
            id: id.into(),
            variant: variant.into(),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, or signed with another key, or altered.
    #[error("the signed URL is not valid (altered, truncated, or signed with another key)")]
    Invalid,
    /// Valid but past its expiry.
    #[error("the signed URL expired at {0}; ask the owning service for a new one")]
    Expired(DateTime<Utc>),
}

/// Why a URL could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A part of the file's name has characters a token cannot carry.
    #[error("a signed URL cannot name {0:?}")]
    BadName(String),
    /// The requested lifetime is longer than allowed.
    #[error("must be at most {max} seconds (AIMESH_SIGNED_URL_TTL_SECS)")]
    TtlTooLong {
        /// The longest allowed, in seconds.
        max: u64,
    },
}

/// A key signed URLs are made and checked with.
pub struct SigningKey(SecretBox<[u8]>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// A key of these bytes; at least [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "a signing key must have at least {MIN_KEY_BYTES} bytes, this one has {}",
                bytes.len()
            ));
        }
        Ok(Self(SecretBox::new(bytes.to_vec().into_boxed_slice())))
    }

    /// Parses a key written as hex or as base64 (standard or URL-safe, padded or not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = decode_hex(text)
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text)
                    .ok()
            })
            .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
            .ok_or("a signing key must be hex or base64")?;
        Self::from_bytes(&bytes)
    }

    /// A new random key of 32 bytes.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; MIN_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(SecretBox::new(bytes.to_vec().into_boxed_slice()))
    }

    /// Returns the key as hex (to store it).
    pub fn to_hex(&self) -> String {
        self.0
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length.
        let mut mac = HmacSha256::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(DOMAIN);
        mac.update(payload);
        mac
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A URL to one file, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// `/api/v1/files/<token>`, or absolute under the public URL when one is configured.
    pub url: String,
    /// The token alone.
    pub token: String,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// Signs and verifies file URLs.
#[derive(Debug, Clone)]
pub struct UrlSigner {
    key: std::sync::Arc<SigningKey>,
    public_url: Option<String>,
    default_ttl: Duration,
}

impl UrlSigner {
    /// Signs with `key`; URLs live `default_ttl` unless a request asks for less (at most
    /// [`MAX_TTL`]) and are absolute under `public_url` when given (e.g.
    /// `https://aimesh.example.com`), relative otherwise.
    pub fn new(key: SigningKey, public_url: Option<String>, default_ttl: Duration) -> Self {
        Self {
            key: std::sync::Arc::new(key),
            public_url: public_url
                .map(|url| url.trim().trim_end_matches('/').to_owned())
                .filter(|url| !url.is_empty()),
            default_ttl: default_ttl.clamp(Duration::from_secs(1), MAX_TTL),
        }
    }

    /// A signer with a random key (tests, a service used on its own).
    pub fn ephemeral() -> Self {
        Self::new(SigningKey::generate(), None, Duration::from_secs(900))
    }

    /// Returns how long URLs live by default (also the longest a request may ask for).
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// Returns the lifetime for a request's `ttl_seconds`: the default when 0, else that many
    /// seconds, refused beyond the default.
    pub fn ttl(&self, ttl_seconds: u64) -> Result<Duration, SignError> {
        match ttl_seconds {
            0 => Ok(self.default_ttl),
            secs if secs > self.default_ttl.as_secs() => Err(SignError::TtlTooLong {
                max: self.default_ttl.as_secs(),
            }),
            secs => Ok(Duration::from_secs(secs)),
        }
    }

    /// Signs a URL to `file` living `ttl` from now.
    pub fn sign(&self, file: &FileRef, ttl: Duration) -> Result<SignedUrl, SignError> {
        self.sign_at(file, ttl, Utc::now())
    }

    /// Signs a URL to `file` living `ttl` from `now`.
    pub fn sign_at(
        &self,
        file: &FileRef,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<SignedUrl, SignError> {
        for part in [&file.kind, &file.variant, &file.id, &file.owner] {
            if !safe(part) {
                return Err(SignError::BadName(part.clone()));
            }
        }
        let ttl = ttl.min(MAX_TTL).max(Duration::from_secs(1));
        let expires = now.timestamp().saturating_add(ttl.as_secs() as i64);
        let expires_at = DateTime::from_timestamp(expires, 0).unwrap_or(now);
        let payload = format!(
            "{VERSION}.{}.{}.{expires}.{}.{}",
            file.kind, file.variant, file.id, file.owner
        );
        let mac = self.key.mac(payload.as_bytes()).finalize().into_bytes();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(mac)
        );
        let url = format!(
            "{}{URL_PATH}{token}",
            self.public_url.as_deref().unwrap_or("")
        );
        Ok(SignedUrl {
            url,
            token,
            expires_at,
        })
    }

    /// Returns the file a token names, if its MAC is right and it has not expired.
    pub fn verify(&self, token: &str) -> Result<FileRef, TokenError> {
        self.verify_at(token, Utc::now())
    }

    /// Returns the file a token names, if its MAC is right and it had not expired at `now`.
    pub fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Result<FileRef, TokenError> {
        self.verify_expiring(token, now).map(|(file, _)| file)
    }

    /// Returns the file a token names and when the token expires, if its MAC is right and it
    /// had not expired at `now`.
    pub fn verify_expiring(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(FileRef, DateTime<Utc>), TokenError> {
        if token.len() > 1024 {
            return Err(TokenError::Invalid);
        }
        let (payload, mac) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Invalid)?;
        self.key
            .mac(&payload)
            .verify_slice(&mac)
            .map_err(|_| TokenError::Invalid)?;
        // Signed by this key: the payload is one this signer wrote.
        let payload = std::str::from_utf8(&payload).map_err(|_| TokenError::Invalid)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let [version, kind, variant, expires, id, owner] = parts[..] else {
            return Err(TokenError::Invalid);
        };
        if version != VERSION {
            return Err(TokenError::Invalid);
        }
        let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        let expires_at = DateTime::from_timestamp(expires, 0).unwrap_or(now);
        if now.timestamp() >= expires {
            return Err(TokenError::Expired(expires_at));
        }
        Ok((FileRef::new(kind, owner, id, variant), expires_at))
    }
}

/// Whether a part of a file's name can go in a token: `[A-Za-z0-9_-]{1,128}`.
fn safe(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 128
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file() -> FileRef {
        FileRef::new(
            "gallery",
            "3f1c0f8e-2b7a-4d55-9a51-7d3c1c1e9b10",
            "0b6f2f5c-8f4e-4f0a-b7a4-5a0d4b0c9e21",
            "thumbnail256",
        )
    }

    #[test]
    fn a_signed_url_round_trips_until_it_expires() {
        let signer = UrlSigner::new(
            SigningKey::parse(&"ab".repeat(32)).unwrap(),
            Some("https://aimesh.example.com/".into()),
            Duration::from_secs(900),
        );
        let now = Utc::now();
        let signed = signer
            .sign_at(&file(), Duration::from_secs(60), now)
            .unwrap();
        assert_eq!(
            signed.url,
            format!("https://aimesh.example.com/api/v1/files/{}", signed.token)
        );
        assert_eq!(signed.expires_at.timestamp(), now.timestamp() + 60);
        assert!(
            signed
                .token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        assert_eq!(signer.verify_at(&signed.token, now).unwrap(), file());
        let later = now + chrono::Duration::seconds(59);
        assert_eq!(signer.verify_at(&signed.token, later).unwrap(), file());
        let expired = now + chrono::Duration::seconds(60);
        assert!(matches!(
            signer.verify_at(&signed.token, expired),
            Err(TokenError::Expired(_))
        ));
    }

    #[test]
    fn altered_or_foreign_tokens_are_invalid() {
        let signer = UrlSigner::ephemeral();
        let signed = signer.sign(&file(), Duration::from_secs(60)).unwrap();
        let (payload, mac) = signed.token.split_once('.').unwrap();
        // Another object (the payload re-encoded with the old MAC).
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for altered in [
            text.replace("thumbnail256", "original"),
            text.replace("gallery", "reports"),
            text.replace("3f1c", "4f1c"),
            {
                // A later expiry.
                let parts: Vec<&str> = text.split('.').collect();
                let later = parts[3].parse::<i64>().unwrap() + 3600;
                text.replace(parts[3], &later.to_string())
            },
        ] {
            let token = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(altered));
            assert_eq!(signer.verify(&token), Err(TokenError::Invalid));
        }
        // Signed with another key.
        let other = UrlSigner::ephemeral();
        let foreign = other.sign(&file(), Duration::from_secs(60)).unwrap();
        assert_eq!(signer.verify(&foreign.token), Err(TokenError::Invalid));
        for junk in [
            "",
            ".",
            "abc",
            "a.b",
            &format!("{payload}."),
            &"x".repeat(5000),
        ] {
            assert_eq!(signer.verify(junk), Err(TokenError::Invalid));
        }
        // A flipped bit of the MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(mac).unwrap();
        bytes[0] ^= 1;
        let token = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(signer.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn keys_ttls_and_names_are_checked() {
        assert!(SigningKey::parse("abcd").is_err());
        assert!(SigningKey::parse(&"0f".repeat(32)).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 48]);
        assert!(SigningKey::parse(&b64).is_ok());
        assert!(SigningKey::parse("not a key at all, not even close!!!!!").is_err());
        let signer = UrlSigner::ephemeral();
        assert_eq!(signer.ttl(0).unwrap(), Duration::from_secs(900));
        assert_eq!(signer.ttl(5).unwrap(), Duration::from_secs(5));
        assert_eq!(signer.ttl(901), Err(SignError::TtlTooLong { max: 900 }));
        let mut bad = file();
        bad.id = "../x".into();
        assert!(signer.sign(&bad, Duration::from_secs(1)).is_err());
        assert!(
            signer
                .sign(&file(), Duration::from_secs(1))
                .unwrap()
                .url
                .starts_with(URL_PATH)
        );
        assert_eq!(
            format!("{:?}", SigningKey::generate()),
            "SigningKey([redacted])"
        );
    }
}
