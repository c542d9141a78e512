//! What the admin service works with: audit entries, the actor of an action, and the rules
//! for reasons and searches.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use aimesh_kit::db::now;

/// Longest reason an administrator may give, in characters.
pub const REASON_MAX_CHARS: usize = 500;
/// Longest account search, in characters.
pub const SEARCH_MAX_CHARS: usize = 254;

/// Who did an administrative action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The administrator's user id (`cli` for the command line).
    pub id: String,
    /// Their username.
    pub username: String,
}

impl Actor {
    /// The command line, run by whoever has the database's credentials.
    pub fn cli() -> Self {
        Self {
            id: "cli".into(),
            username: "cli".into(),
        }
    }
}

/// An administrator's action, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What (`user.disable`...).
    pub action: String,
    /// To what.
    pub target: String,
    /// The reason or other detail.
    pub detail: String,
}

/// A page of the audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page.
    pub next: Option<Uuid>,
}

/// An account with its storage use.
#[derive(Debug, Clone)]
pub struct UserSummary {
    /// The account.
    pub user: aimesh_identity::domain::User,
    /// Bytes it stores.
    pub storage_bytes: i64,
}

/// Checks a reason: at most [`REASON_MAX_CHARS`] characters, no control characters but
/// newlines and tabs.
pub fn validate_reason(reason: &str) -> Result<String, String> {
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(format!("must be at most {REASON_MAX_CHARS} characters"));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(reason.trim().to_owned())
}

/// Checks an account search: at most [`SEARCH_MAX_CHARS`] characters, no control characters.
pub fn validate_search(search: &str) -> Result<Option<String>, String> {
    if search.chars().count() > SEARCH_MAX_CHARS {
        return Err(format!("must be at most {SEARCH_MAX_CHARS} characters"));
    }
    if search.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let search = search.trim();
    Ok((!search.is_empty()).then(|| search.to_owned()))
}
