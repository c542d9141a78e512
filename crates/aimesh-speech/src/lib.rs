//! The speech service: recordings uploaded and transcribed as jobs into stored, exportable
//! transcripts (text, SRT, WebVTT), and text synthesised into stored audio (WAV, MP3, Ogg Opus)
//! behind a per-owner request cache bounded in size, the least recently used audio evicted
//! first. Recordings are deleted after a retention period; transcripts stay.
//!
//! Layers, outermost first: [`api`] (the tonic `SpeechService`, a pure adapter) with
//! [`convert`] (proto <-> domain, request validation), [`service`] (domain logic: quota,
//! ownership, the synthesis cache, retention), [`store`] (SQL on SQLite or PostgreSQL);
//! [`transcribe`] holds the job handlers, [`audio`] the streamed window-by-window decoder,
//! [`encode`] the audio encoders and [`export`] the subtitle formats.

pub mod api;
pub mod audio;
pub mod convert;
pub mod domain;
pub mod encode;
pub mod error;
pub mod export;
pub mod files;
pub mod service;
pub mod store;
pub mod transcribe;

pub use api::SpeechApi;
pub use error::{SpeechError, SpeechResult};
pub use service::{Speech, SpeechConfig};
pub use store::{MIGRATIONS, SpeechStore};
