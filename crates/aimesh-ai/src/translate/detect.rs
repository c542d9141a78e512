//! Language identification (`whatlang`: trigram and script statistics, no model), for
//! translations whose source language is not given.

/// ISO 639-3 codes whatlang answers with, and their BCP-47 (ISO 639-1) tags; a language
/// missing here keeps its three-letter code, which BCP-47 also accepts.
const TAGS: &[(&str, &str)] = &[
    ("afr", "af"),
    ("aka", "ak"),
    ("amh", "am"),
    ("ara", "ar"),
    ("aze", "az"),
    ("bel", "be"),
    ("ben", "bn"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("cmn", "zh"),
    ("cym", "cy"),
    ("dan", "da"),
    ("deu", "de"),
    ("ell", "el"),
    ("eng", "en"),
    ("epo", "eo"),
    ("est", "et"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("guj", "gu"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ind", "id"),
    ("ita", "it"),
    ("jav", "jv"),
    ("jpn", "ja"),
    ("kan", "kn"),
    ("kat", "ka"),
    ("khm", "km"),
    ("kor", "ko"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("mkd", "mk"),
    ("mya", "my"),
    ("nep", "ne"),
    ("nld", "nl"),
    ("nob", "nb"),
    ("ori", "or"),
    ("pan", "pa"),
    ("pes", "fa"),
    ("pol", "pl"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rus", "ru"),
    ("sin", "si"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("sna", "sn"),
    ("spa", "es"),
    ("srp", "sr"),
    ("swe", "sv"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tuk", "tk"),
    ("tur", "tr"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("uzb", "uz"),
    ("vie", "vi"),
    ("yid", "yi"),
    ("zul", "zu"),
];

/// The name of the detector, for results that say how a language was found.
pub const ENGINE: &str = "whatlang";

/// A detected language.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// BCP-47 tag, e.g. `en`.
    pub tag: String,
    /// The detector's confidence, 0 to 1.
    pub confidence: f64,
    /// Whether the detector deems the guess reliable.
    pub reliable: bool,
}

/// Identifies the language of `text` (its first 10,000 characters), or `None` when the text
/// gives too little to go on.
pub fn detect_language(text: &str) -> Option<Detected> {
    let sample: String = text.chars().take(10_000).collect();
    let info = whatlang::detect(&sample)?;
    let code = info.lang().code();
    let tag = TAGS
        .iter()
        .find(|(three, _)| *three == code)
        .map_or(code, |(_, two)| *two);
    Some(Detected {
        tag: tag.to_owned(),
        confidence: info.confidence(),
        reliable: info.is_reliable(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_languages_are_told_apart() {
        let english = detect_language(
            "The weather is nice today, and the children are playing in the garden.",
        )
        .unwrap();
        assert_eq!(english.tag, "en");
        let spanish = detect_language(
            "El tiempo es bueno hoy, y los niños están jugando en el jardín de la casa.",
        )
        .unwrap();
        assert_eq!(spanish.tag, "es");
        let french = detect_language(
            "Il fait beau aujourd'hui et les enfants jouent dans le jardin de la maison.",
        )
        .unwrap();
        assert_eq!(french.tag, "fr");
        assert!(detect_language("").is_none());
    }
}
