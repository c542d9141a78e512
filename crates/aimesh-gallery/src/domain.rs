//! The gallery domain: what an image, a listing and an edit are, their limits and the rules
//! their fields follow.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use aimesh_kit::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, validate_page_size};

/// Longest title, in characters.
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest prompt, in characters.
pub const PROMPT_MAX_CHARS: usize = 2000;
/// Longest tag, in characters.
pub const TAG_MAX_CHARS: usize = 50;
/// Most tags on one image.
pub const MAX_TAGS: usize = 20;
/// Sizes of the square boxes the thumbnails fit in, in pixels.
pub const THUMBNAIL_SIZES: [u32; 2] = [256, 1024];
/// Smallest and largest side of a generated image, in pixels.
pub const GENERATE_SIDE: (u32, u32) = (64, 2048);
/// Side of a generated image when the caller asks for none.
pub const DEFAULT_GENERATE_SIDE: u32 = 512;
/// Largest upscaling factor.
pub const MAX_UPSCALE_FACTOR: u32 = 4;

/// How an image came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Uploaded by its owner.
    Uploaded,
    /// Generated from a prompt.
    Generated,
    /// Made from another image by an edit.
    Derived,
}

impl Origin {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Uploaded => "UPLOADED",
            Origin::Generated => "GENERATED",
            Origin::Derived => "DERIVED",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "UPLOADED" => Origin::Uploaded,
            "GENERATED" => Origin::Generated,
            "DERIVED" => Origin::Derived,
            _ => return None,
        })
    }
}

/// Which stored file of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The original.
    Original,
    /// The thumbnail fitting in 256 px.
    Thumbnail256,
    /// The thumbnail fitting in 1024 px.
    Thumbnail1024,
}

/// A stored file: its blob's digest, media type and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// SHA-256 of the bytes, lowercase hex: the blob's name.
    pub sha256: String,
    /// Media type.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
}

/// An image as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Title.
    pub title: String,
    /// Prompt.
    pub prompt: String,
    /// Tags, in the order given.
    pub tags: Vec<String>,
    /// How it came to be.
    pub origin: Origin,
    /// The image it was derived from.
    pub source_id: Option<Uuid>,
    /// What made it (empty for uploads).
    pub operation: String,
    /// Stored format: `png`, `jpeg` or `webp`.
    pub format: String,
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// The original.
    pub original: StoredFile,
    /// The 256 px thumbnail.
    pub thumbnail_256: StoredFile,
    /// The 1024 px thumbnail.
    pub thumbnail_1024: StoredFile,
    /// Perceptual hash, base64.
    pub perceptual_hash: String,
    /// Whether the original keeps the uploaded metadata.
    pub metadata_kept: bool,
    /// The job that produced it.
    pub job_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it went to the trash.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Image {
    /// Returns a stored file of the image.
    pub fn file(&self, variant: Variant) -> &StoredFile {
        match variant {
            Variant::Original => &self.original,
            Variant::Thumbnail256 => &self.thumbnail_256,
            Variant::Thumbnail1024 => &self.thumbnail_1024,
        }
    }

    /// Every stored file's digest.
    pub fn digests(&self) -> [&str; 3] {
        [
            &self.original.sha256,
            &self.thumbnail_256.sha256,
            &self.thumbnail_1024.sha256,
        ]
    }

    /// Bytes the image takes in storage (original and thumbnails).
    pub fn stored_bytes(&self) -> i64 {
        self.original.size_bytes + self.thumbnail_256.size_bytes + self.thumbnail_1024.size_bytes
    }
}

/// Caller-editable metadata given with a new image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Title.
    pub title: String,
    /// Prompt.
    pub prompt: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// A validated upload.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The file's bytes.
    pub data: bytes::Bytes,
    /// Title, prompt and tags.
    pub metadata: Metadata,
    /// Whether to store the file as uploaded, metadata and all.
    pub keep_metadata: bool,
}

/// A validated metadata change: the fields to set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// A new title.
    pub title: Option<String>,
    /// A new prompt.
    pub prompt: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
}

/// A validated ListImages query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Images per page.
    pub page_size: u32,
    /// Only images older than this one (the page token's cursor).
    pub after: Option<Uuid>,
    /// Only images with this tag.
    pub tag: Option<String>,
    /// Only images of this origin.
    pub origin: Option<Origin>,
    /// Only images created at or after this.
    pub created_after: Option<DateTime<Utc>>,
    /// Only images created before this.
    pub created_before: Option<DateTime<Utc>>,
}

impl ListQuery {
    /// The filters a page token is bound to.
    pub fn filter_key(&self) -> String {
        format!(
            "tag={}\u{0}origin={}\u{0}after={}\u{0}before={}",
            self.tag.as_deref().unwrap_or_default(),
            self.origin.map(Origin::as_str).unwrap_or_default(),
            self.created_after
                .map(|t| t.timestamp_micros().to_string())
                .unwrap_or_default(),
            self.created_before
                .map(|t| t.timestamp_micros().to_string())
                .unwrap_or_default(),
        )
    }
}

/// A page of images.
#[derive(Debug, Clone)]
pub struct ImagePage {
    /// The images.
    pub images: Vec<Image>,
    /// The cursor of the next page, if any.
    pub next_after: Option<Uuid>,
}

/// A named style filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// Luminance only.
    Grayscale,
    /// The sepia colour matrix.
    Sepia,
    /// Four levels per channel.
    Posterize,
    /// Colour dodge of the grey image with its blurred negative.
    PencilSketch,
    /// Bilateral filter plus Canny edges.
    Cartoon,
    /// An emboss kernel.
    Emboss,
    /// A median filter.
    Painting,
}

impl Style {
    /// The style's name in operations (`style:<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Grayscale => "grayscale",
            Style::Sepia => "sepia",
            Style::Posterize => "posterize",
            Style::PencilSketch => "pencil_sketch",
            Style::Cartoon => "cartoon",
            Style::Emboss => "emboss",
            Style::Painting => "painting",
        }
    }
}

/// An edit or generation, as a job carries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// Contrast stretch and unsharp mask.
    Enhance {
        /// Unsharp mask strength.
        sharpen_amount: f32,
    },
    /// A style filter.
    Style {
        /// The style.
        style: Style,
    },
    /// Upscaling by an engine.
    Upscale {
        /// The factor.
        factor: u32,
    },
    /// Background removal by an engine.
    RemoveBackground,
    /// Generation from a prompt by an engine.
    Generate {
        /// The prompt.
        prompt: String,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Seed.
        seed: u64,
        /// Title and tags of the new image.
        title: String,
        /// Tags of the new image.
        tags: Vec<String>,
    },
}

impl Operation {
    /// The edit a request in words asks for ("make it black and white", "upscale this 4x",
    /// "remove the background"), by the words it uses; enhancement when it names none.
    pub fn from_instruction(instruction: &str) -> Self {
        let text = instruction.to_lowercase();
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '&' || c == '×'))
            .filter(|word| !word.is_empty())
            .collect();
        let has = |wanted: &[&str]| words.iter().any(|word| wanted.contains(word));
        let says = |phrases: &[&str]| phrases.iter().any(|phrase| text.contains(phrase));
        if has(&["background", "backdrop"])
            && has(&[
                "remove",
                "delete",
                "erase",
                "without",
                "cut",
                "transparent",
                "no",
            ])
        {
            return Operation::RemoveBackground;
        }
        if has(&[
            "upscale",
            "enlarge",
            "bigger",
            "larger",
            "upsize",
            "resolution",
            "superres",
        ]) || says(&["super-resolution", "super resolution"])
        {
            let four = has(&["4x", "4×", "x4", "four", "quadruple"]);
            return Operation::Upscale {
                factor: if four { 4 } else { 2 },
            };
        }
        let styles: [(&[&str], Style); 7] = [
            (
                &[
                    "grayscale",
                    "greyscale",
                    "monochrome",
                    "b&w",
                    "gray",
                    "grey",
                ],
                Style::Grayscale,
            ),
            (&["sepia", "vintage", "antique"], Style::Sepia),
            (
                &["posterize", "posterise", "poster", "posterized"],
                Style::Posterize,
            ),
            (
                &["sketch", "pencil", "drawing", "drawn"],
                Style::PencilSketch,
            ),
            (&["cartoon", "comic", "cartoonish", "toon"], Style::Cartoon),
            (&["emboss", "embossed", "relief"], Style::Emboss),
            (
                &[
                    "painting",
                    "paint",
                    "painted",
                    "oil",
                    "watercolor",
                    "watercolour",
                ],
                Style::Painting,
            ),
        ];
        if says(&["black and white", "black-and-white"]) {
            return Operation::Style {
                style: Style::Grayscale,
            };
        }
        for (names, style) in styles {
            if has(names) {
                return Operation::Style { style };
            }
        }
        Operation::Enhance {
            sharpen_amount: 1.0,
        }
    }

    /// The operation's name on the images it makes.
    pub fn name(&self) -> String {
        match self {
            Operation::Enhance { .. } => "enhance".into(),
            Operation::Style { style } => format!("style:{}", style.as_str()),
            Operation::Upscale { factor } => format!("upscale:{factor}x"),
            Operation::RemoveBackground => "remove_background".into(),
            Operation::Generate { .. } => "generate".into(),
        }
    }
}

/// The payload of a gallery operation job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationJob {
    /// The source image (none for a generation).
    pub source_id: Option<Uuid>,
    /// What to do.
    pub operation: Operation,
}

/// Checks a title: at most 200 characters, no control characters.
pub fn validate_title(title: &str) -> Result<String, String> {
    let title = title.trim();
    if title.chars().count() > TITLE_MAX_CHARS {
        return Err(format!("must be at most {TITLE_MAX_CHARS} characters"));
    }
    if title.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(title.to_owned())
}

/// Checks a prompt: at most 2000 characters, no control characters but newlines and tabs.
pub fn validate_prompt(prompt: &str) -> Result<String, String> {
    let prompt = prompt.trim();
    if prompt.chars().count() > PROMPT_MAX_CHARS {
        return Err(format!("must be at most {PROMPT_MAX_CHARS} characters"));
    }
    if prompt
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(prompt.to_owned())
}

/// Checks one tag: 1 to 50 characters of letters, digits, spaces, `-` and `_`; returns it
/// trimmed and lowercased.
pub fn validate_tag(tag: &str) -> Result<String, String> {
    let tag = tag.trim().to_lowercase();
    if tag.is_empty() {
        return Err("a tag must not be empty".into());
    }
    if tag.chars().count() > TAG_MAX_CHARS {
        return Err(format!("a tag must be at most {TAG_MAX_CHARS} characters"));
    }
    if !tag
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
    {
        return Err("a tag may hold only letters, digits, spaces, '-' and '_'".into());
    }
    Ok(tag)
}

/// Checks a tag list: at most 20, each valid; duplicates are dropped, order kept.
pub fn validate_tags(tags: &[String]) -> Result<Vec<String>, String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("must hold at most {MAX_TAGS} tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = validate_tag(tag)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// Checks a generation side (0 means the default).
pub fn validate_side(side: i32) -> Result<u32, String> {
    let (min, max) = GENERATE_SIDE;
    match u32::try_from(side) {
        Ok(0) => Ok(DEFAULT_GENERATE_SIDE),
        Ok(side) if (min..=max).contains(&side) && side % 8 == 0 => Ok(side),
        _ => Err(format!("must be 0 or a multiple of 8 from {min} to {max}")),
    }
}

/// Checks an upscaling factor (0 means 2).
pub fn validate_factor(factor: i32) -> Result<u32, String> {
    match u32::try_from(factor) {
        Ok(0) => Ok(2),
        Ok(factor) if (2..=MAX_UPSCALE_FACTOR).contains(&factor) => Ok(factor),
        _ => Err(format!("must be 0 or from 2 to {MAX_UPSCALE_FACTOR}")),
    }
}

/// Checks an unsharp-mask strength (0 means 1).
pub fn validate_sharpen_amount(amount: f32) -> Result<f32, String> {
    if amount == 0.0 {
        Ok(1.0)
    } else if amount.is_finite() && amount > 0.0 && amount <= 5.0 {
        Ok(amount)
    } else {
        Err("must be from 0 to 5".into())
    }
}

/// Returns the current time at the database's precision (microseconds).
pub fn now() -> DateTime<Utc> {
    aimesh_kit::db::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_in_words_names_its_operation() {
        let style = |style| Operation::Style { style };
        for (words, expected) in [
            ("Make it black and white", style(Style::Grayscale)),
            ("turn this photo grayscale please", style(Style::Grayscale)),
            ("give it a vintage sepia look", style(Style::Sepia)),
            (
                "Make this photo look like a pencil sketch",
                style(Style::PencilSketch),
            ),
            ("can you cartoon-ify my picture", style(Style::Cartoon)),
            ("emboss it", style(Style::Emboss)),
            ("make it look like an oil painting", style(Style::Painting)),
            ("posterise the colours", style(Style::Posterize)),
            ("Upscale this image", Operation::Upscale { factor: 2 }),
            ("make it 4x bigger", Operation::Upscale { factor: 4 }),
            (
                "increase the resolution four times",
                Operation::Upscale { factor: 4 },
            ),
            ("remove the background", Operation::RemoveBackground),
            ("I want it without background", Operation::RemoveBackground),
            (
                "enhance my last photo",
                Operation::Enhance {
                    sharpen_amount: 1.0,
                },
            ),
            (
                "make it look better",
                Operation::Enhance {
                    sharpen_amount: 1.0,
                },
            ),
        ] {
            assert_eq!(Operation::from_instruction(words), expected, "{words}");
        }
    }

    #[test]
    fn tags_are_normalised_and_checked() {
        assert_eq!(
            validate_tags(&[" Beach ".into(), "beach".into(), "sun-set".into()]),
            Ok(vec!["beach".to_owned(), "sun-set".to_owned()])
        );
        for bad in ["", "a/b", "x\u{0}", &"x".repeat(51)] {
            assert!(validate_tags(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
        assert!(validate_tags(&vec!["a".to_owned(); 21]).is_err());
    }

    #[test]
    fn sides_and_factors_have_defaults_and_bounds() {
        assert_eq!(validate_side(0), Ok(512));
        assert_eq!(validate_side(64), Ok(64));
        assert!(validate_side(65).is_err() && validate_side(4096).is_err());
        assert_eq!(validate_factor(0), Ok(2));
        assert!(validate_factor(5).is_err() && validate_factor(-1).is_err());
        assert_eq!(validate_sharpen_amount(0.0), Ok(1.0));
        assert!(validate_sharpen_amount(f32::NAN).is_err());
    }

    #[test]
    fn operations_round_trip_as_json() {
        let job = OperationJob {
            source_id: Some(Uuid::now_v7()),
            operation: Operation::Style {
                style: Style::PencilSketch,
            },
        };
        let json = serde_json::to_string(&job).unwrap_or_default();
        assert!(json.contains("pencil_sketch"), "{json}");
        let back: OperationJob = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, job);
        assert_eq!(job.operation.name(), "style:pencil_sketch");
    }
}
