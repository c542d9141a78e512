//! The notes domain: what a note is, and the rules its fields follow.

use chrono::{DateTime, Utc};
use oxilangtag::LanguageTag;
use uuid::Uuid;

/// Longest title, in characters.
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest text, in characters.
pub const TEXT_MAX_CHARS: usize = 100_000;
/// Longest list query, in characters.
pub const QUERY_MAX_CHARS: usize = 200;
/// Longest language tag accepted, in bytes.
pub const LANGUAGE_MAX_LEN: usize = 64;

pub use aimesh_kit::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, validate_page_size};

/// A stored note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Title.
    pub title: String,
    /// The text as written.
    pub original_text: String,
    /// BCP-47 tag of the text's language, normalised.
    pub original_language: String,
    /// Translations, ordered by target language.
    pub translations: Vec<Translation>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last change (including a new translation).
    pub updated_at: DateTime<Utc>,
    /// Starts at 1 and increases with every change.
    pub version: i64,
}

/// A translation of a note's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// BCP-47 tag of the target language.
    pub target_language: String,
    /// Translated text.
    pub text: String,
    /// Engine that produced it.
    pub engine: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A validated note to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNote {
    /// Title.
    pub title: String,
    /// Text.
    pub original_text: String,
    /// Normalised BCP-47 tag.
    pub original_language: String,
}

/// A validated change to a note: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotePatch {
    /// New title.
    pub title: Option<String>,
    /// New text.
    pub original_text: Option<String>,
    /// New language.
    pub original_language: Option<String>,
    /// When set, the change applies only at this version.
    pub expected_version: Option<i64>,
}

impl NotePatch {
    /// Returns whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.original_text.is_none() && self.original_language.is_none()
    }
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Notes per page.
    pub page_size: u32,
    /// Return notes older than this id (the previous page's last).
    pub after: Option<Uuid>,
    /// Only this original language.
    pub language: Option<String>,
    /// Only notes whose title or text contains this (case-insensitive).
    pub text: Option<String>,
}

impl ListQuery {
    /// Returns the filters as a string, to bind page tokens to them.
    pub fn filter_key(&self) -> String {
        format!(
            "language={}\u{0}text={}",
            self.language.as_deref().unwrap_or(""),
            self.text.as_deref().unwrap_or("")
        )
    }
}

/// A validated request to translate a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateRequest {
    /// The note.
    pub note_id: Uuid,
    /// Normalised BCP-47 tag to translate into.
    pub target_language: String,
    /// The text's language, when the caller says it (else the note's).
    pub source_language: Option<String>,
    /// The engine to use, when the caller names one.
    pub engine: Option<String>,
    /// Deduplicates submissions of the same caller.
    pub idempotency_key: Option<String>,
}

/// What a `notes.translate` job carries: the note and the language pair and engine resolved
/// when it was submitted. Stored as the job's payload (JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TranslationJob {
    /// The note.
    pub note_id: Uuid,
    /// The text's language.
    pub source_language: String,
    /// The language to translate into.
    pub target_language: String,
    /// The engine chosen at submission.
    pub engine: String,
}

/// One page of notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotePage {
    /// Notes, newest first.
    pub notes: Vec<Note>,
    /// The cursor for the next page, if there is one.
    pub next_after: Option<Uuid>,
}

/// A count per language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageCount {
    /// BCP-47 tag.
    pub language: String,
    /// How many.
    pub count: i64,
}

/// Aggregates over one owner's notes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoteStats {
    /// Notes.
    pub total_notes: i64,
    /// Translations on those notes.
    pub total_translations: i64,
    /// Notes by original language, largest first.
    pub notes_by_language: Vec<LanguageCount>,
    /// Translations by target language, largest first.
    pub translations_by_language: Vec<LanguageCount>,
    /// Latest change among the notes.
    pub last_activity: Option<DateTime<Utc>>,
}

pub use aimesh_kit::db::now;

/// Checks a title: not blank, at most [`TITLE_MAX_CHARS`].
pub fn validate_title(title: &str) -> Result<String, String> {
    validate_text_field(title, TITLE_MAX_CHARS)
}

/// Checks a note's text: not blank, at most [`TEXT_MAX_CHARS`].
pub fn validate_text(text: &str) -> Result<String, String> {
    validate_text_field(text, TEXT_MAX_CHARS)
}

fn validate_text_field(value: &str, max_chars: usize) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if value.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(value.to_owned())
}

/// Checks a BCP-47 language tag and returns it in canonical case (`pt-br` -> `pt-BR`).
pub fn validate_language(tag: &str) -> Result<String, String> {
    const HINT: &str = "must be a BCP-47 language tag such as \"en\" or \"pt-BR\"";
    if tag.is_empty() {
        return Err("must not be empty".into());
    }
    if tag.len() > LANGUAGE_MAX_LEN {
        return Err(HINT.into());
    }
    LanguageTag::parse_and_normalize(tag)
        .map(LanguageTag::into_inner)
        .map_err(|_| HINT.into())
}

/// Checks a list text query (empty means no filter).
pub fn validate_query(query: &str) -> Result<Option<String>, String> {
    if query.chars().count() > QUERY_MAX_CHARS {
        return Err(format!("must be at most {QUERY_MAX_CHARS} characters"));
    }
    if query.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok((!query.trim().is_empty()).then(|| query.to_owned()))
}

/// Checks a client-supplied version (0 means "any").
pub fn validate_version(version: i64) -> Result<Option<i64>, String> {
    match version {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v)),
        _ => Err("must not be negative".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_are_validated_and_normalised() {
        assert_eq!(validate_language("en").unwrap(), "en");
        assert_eq!(validate_language("pt-br").unwrap(), "pt-BR");
        assert_eq!(validate_language("zh-hant-tw").unwrap(), "zh-Hant-TW");
        for bad in ["", "english!", "e", "en--us", "123", &"a".repeat(100)] {
            assert!(validate_language(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn titles_and_texts_have_bounds() {
        assert!(validate_title("   ").is_err());
        assert!(validate_title(&"x".repeat(TITLE_MAX_CHARS)).is_ok());
        assert!(validate_title(&"é".repeat(TITLE_MAX_CHARS + 1)).is_err());
        assert!(validate_text("a\0b").is_err());
    }

    #[test]
    fn page_sizes_have_bounds() {
        assert_eq!(validate_page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(validate_page_size(100), Ok(100));
        assert!(validate_page_size(101).is_err());
        assert!(validate_page_size(-1).is_err());
    }
}
