//! Apertium, a rule-based machine translation system, run as a subprocess (`apertium -u
//! <mode>`). The installed modes (`apertium -l`) are read once, at start.

use std::{process::Stdio, time::Duration};

use futures::future::BoxFuture;
use tokio::{io::AsyncWriteExt, process::Command};

use super::{LanguagePair, TranslateError, Translator};

/// How long one segment may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// ISO 639-3 codes Apertium uses, with their BCP-47 (ISO 639-1) equivalents.
const LANGUAGES: &[(&str, &str)] = &[
    ("afr", "af"),
    ("arg", "an"),
    ("ast", "ast"),
    ("bel", "be"),
    ("bre", "br"),
    ("cat", "ca"),
    ("cym", "cy"),
    ("dan", "da"),
    ("deu", "de"),
    ("eng", "en"),
    ("epo", "eo"),
    ("eus", "eu"),
    ("fra", "fr"),
    ("glg", "gl"),
    ("ita", "it"),
    ("nld", "nl"),
    ("nno", "nn"),
    ("nob", "nb"),
    ("oci", "oc"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rus", "ru"),
    ("spa", "es"),
    ("swe", "sv"),
    ("ukr", "uk"),
];

/// The Apertium engine.
#[derive(Debug, Clone)]
pub struct Apertium {
    program: String,
    /// Installed pairs and the mode name of each.
    modes: Vec<(LanguagePair, String)>,
    pairs: Vec<LanguagePair>,
}

impl Apertium {
    /// Lists the installed modes with `program -l`. Returns `None` when Apertium is not
    /// installed or offers no pair this engine can name.
    pub async fn discover(program: &str) -> Option<Self> {
        let output = Command::new(program)
            .arg("-l")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(Duration::from_secs(10), output).await {
            Ok(Ok(output)) if output.status.success() => output,
            _ => {
                tracing::info!(program, "apertium not available");
                return None;
            }
        };
        let modes: Vec<(LanguagePair, String)> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|mode| Some((mode_pair(mode)?, mode.to_owned())))
            .collect();
        if modes.is_empty() {
            return None;
        }
        let pairs = modes.iter().map(|(pair, _)| pair.clone()).collect();
        tracing::info!(program, modes = modes.len(), "apertium loaded");
        Some(Self {
            program: program.to_owned(),
            modes,
            pairs,
        })
    }
}

/// `eng-spa` -> en -> es; `spa-eng_US` -> es -> en-US.
fn mode_pair(mode: &str) -> Option<LanguagePair> {
    let (source, target) = mode.split_once('-')?;
    Some(LanguagePair {
        source: tag(source)?,
        target: tag(target)?,
    })
}

fn tag(apertium: &str) -> Option<String> {
    let (language, region) = match apertium.split_once('_') {
        Some((language, region)) => (language, Some(region)),
        None => (apertium, None),
    };
    let primary = LANGUAGES
        .iter()
        .find(|(code, _)| *code == language)
        .map(|(_, tag)| *tag)?;
    Some(match region {
        Some(region) if region.len() == 2 && region.chars().all(|c| c.is_ascii_alphabetic()) => {
            format!("{primary}-{}", region.to_ascii_uppercase())
        }
        Some(_) => return None,
        None => primary.to_owned(),
    })
}

impl Translator for Apertium {
    fn name(&self) -> &'static str {
        "apertium"
    }

    fn pairs(&self) -> &[LanguagePair] {
        &self.pairs
    }

    fn translate<'a>(
        &'a self,
        pair: &'a LanguagePair,
        text: &'a str,
    ) -> BoxFuture<'a, Result<String, TranslateError>> {
        Box::pin(async move {
            let Some((_, mode)) = self.modes.iter().find(|(p, _)| p == pair) else {
                return Err(TranslateError::UnsupportedPair {
                    engine: "apertium",
                    source_language: pair.source.clone(),
                    target_language: pair.target.clone(),
                });
            };
            let failed = |message: String| TranslateError::Engine {
                engine: "apertium",
                message,
            };
            let mut child = Command::new(&self.program)
                .args(["-u", mode])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| failed(format!("could not start: {e}")))?;
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| failed("no stdin".into()))?;
            let input = text.to_owned();
            let writer = tokio::spawn(async move {
                let _ = stdin.write_all(input.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
            let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
                .await
                .map_err(|_| failed(format!("timed out after {} s", TIMEOUT.as_secs())))?
                .map_err(|e| failed(e.to_string()))?;
            let _ = writer.await;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(failed(format!(
                    "exited with {}: {}",
                    output.status,
                    stderr.trim().chars().take(200).collect::<String>()
                )));
            }
            let translated = String::from_utf8(output.stdout)
                .map_err(|_| failed("output is not UTF-8".into()))?;
            Ok(translated.trim_end().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_bcp47_pairs() {
        assert_eq!(
            mode_pair("eng-spa"),
            Some(LanguagePair {
                source: "en".into(),
                target: "es".into()
            })
        );
        assert_eq!(mode_pair("spa-eng_US").unwrap().target, "en-US");
        assert_eq!(mode_pair("eng-xyz"), None);
        assert_eq!(mode_pair("eng"), None);
    }
}
