//! aimesh's inference engines, each behind a small trait so services depend on capabilities,
//! not on an implementation. Engines are discovered and loaded once, at worker start.

pub mod translate;
