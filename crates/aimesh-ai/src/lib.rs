//! aimesh's inference engines, each behind a small trait so services depend on capabilities,
//! not on an implementation. Engines are loaded once, from verified model files (see
//! [`models`]), and run on dedicated threads fed by bounded queues (see [`engine`]).

pub mod analysis;
mod attention;
pub mod chat;
pub mod embed;
pub mod engine;
pub mod image;
pub mod models;
mod ops;
mod quant;
pub mod speech;
pub mod translate;
