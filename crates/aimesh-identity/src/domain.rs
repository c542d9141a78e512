//! Accounts and the rules for their fields.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Shortest accepted password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 10;
/// Longest accepted password, in characters (argon2 works on any length; this bounds the cost).
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Longest email address (RFC 5321 path limit).
pub const EMAIL_MAX_LEN: usize = 254;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Identifier.
    pub id: Uuid,
    /// Username as registered.
    pub username: String,
    /// Email, lowercased.
    pub email: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Authenticated calls made.
    pub api_calls: i64,
    /// Whether the account is an administrator.
    pub admin: bool,
    /// When an administrator disabled the account, while it is disabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl User {
    /// Returns the roles the account holds (`admin`).
    pub fn roles(&self) -> Vec<String> {
        if self.admin {
            vec![aimesh_kit::auth::scope::ROLE_ADMIN.to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// Longest API token name, in characters.
pub const API_TOKEN_NAME_MAX_CHARS: usize = 100;
/// API tokens one account may hold (live or not; revoke and delete to make room).
pub const MAX_API_TOKENS_PER_USER: i64 = 100;

/// A personal API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Identifier.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The owner's name for it.
    pub name: String,
    /// What it may call.
    pub scope: aimesh_kit::auth::scope::TokenScope,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working by itself, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (to the second or so: uses are recorded in batches).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new API token, validated.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: aimesh_kit::auth::scope::TokenScope,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Checks an API token's name: 1 to 100 characters, no control characters.
pub fn validate_token_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > API_TOKEN_NAME_MAX_CHARS {
        return Err(format!(
            "must be at most {API_TOKEN_NAME_MAX_CHARS} characters"
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// A page of accounts (administration).
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The accounts, by id (oldest first).
    pub users: Vec<User>,
    /// The cursor of the next page, when there is one.
    pub next: Option<Uuid>,
}

/// A query of accounts (administration).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Page size.
    pub page_size: u32,
    /// Accounts after this id.
    pub after: Option<Uuid>,
    /// Only accounts whose username or email contains this (case-insensitively).
    pub search: Option<String>,
}

/// Tokens handed out at login and refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The signed access token.
    pub access: String,
    /// When it expires.
    pub access_expires_at: DateTime<Utc>,
    /// The opaque refresh token.
    pub refresh: String,
    /// When it expires.
    pub refresh_expires_at: DateTime<Utc>,
}

pub use aimesh_kit::db::now;

/// Checks a username: 3 to 32 of `A-Z a-z 0-9 . _ -`.
pub fn validate_username(username: &str) -> Result<String, String> {
    let len = username.chars().count();
    if !(3..=32).contains(&len) {
        return Err("must be 3 to 32 characters".into());
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("may contain only letters, digits, '.', '_' and '-'".into());
    }
    Ok(username.to_owned())
}

/// Checks an email address's shape and returns it lowercased.
pub fn validate_email(email: &str) -> Result<String, String> {
    const HINT: &str = "must be an email address such as name@example.com";
    if email.is_empty() {
        return Err("must not be empty".into());
    }
    if email.len() > EMAIL_MAX_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(HINT.into());
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(HINT.into());
    };
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return Err(HINT.into());
    }
    Ok(email.to_lowercase())
}

/// Checks a new password against the policy: 10 to 128 characters; at least two of
/// lowercase, uppercase, digits and other characters; not containing the username or the
/// email's local part.
pub fn validate_password(password: &str, username: &str, email: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < PASSWORD_MIN_CHARS {
        return Err(format!("must be at least {PASSWORD_MIN_CHARS} characters"));
    }
    if len > PASSWORD_MAX_CHARS {
        return Err(format!("must be at most {PASSWORD_MAX_CHARS} characters"));
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|&&present| present)
    .count();
    if classes < 2 {
        return Err(
            "must mix at least two of lowercase letters, uppercase letters, digits and symbols"
                .into(),
        );
    }
    let lowered = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    for part in [username.to_lowercase(), local] {
        if part.chars().count() >= 3 && lowered.contains(&part) {
            return Err("must not contain the username or email".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            validate_email("Test@Example.COM").unwrap(),
            "test@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@x.com",
            "a b@x.com",
            "a@-x.com",
            "a@x..com",
            "a@@x.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert!(validate_password("Correct-Horse-42", "testuser", "test@example.com").is_ok());
        assert!(validate_password("testpass123", "someone", "jane@example.com").is_ok());
        // The seed's example contains the email's name, "test".
        assert!(validate_password("testpass123", "testuser", "test@example.com").is_err());
        assert!(validate_password("short1", "u", "e@x.io").is_err());
        assert!(validate_password("alllowercaseletters", "u", "e@x.io").is_err());
        assert!(validate_password("xXtestuserXx1", "testuser", "e@x.io").is_err());
        assert!(validate_password("jane.doe-2024!", "someone", "jane.doe@x.io").is_err());
        assert!(validate_password(&"aA1".repeat(50), "u", "e@x.io").is_err());
    }

    #[test]
    fn usernames() {
        assert!(validate_username("jane_doe-1.x").is_ok());
        for bad in ["ab", "a b c", "x'; DROP", &"a".repeat(33)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }
}
