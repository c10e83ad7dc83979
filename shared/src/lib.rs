//! Sealpost: sensitive documents from practices to patients, without attachments.
//!
//! # Layout
//! - [`domain`]: shares, documents, codes, policy and events — pure types and rules.
//! - `ports`: the narrow traits the use cases need (stores, blobs, SMS, mail, clock).
//! - `secrets`: the pepper and the keys derived from it (code HMACs, tokens, signed URLs).
//! - `service`: the use cases (create, verify, request a code, …) over the ports.
//! - `http`: one axum router for every runtime shape, and the one place errors become JSON.
//! - `embedded`: SQLite, a folder of blobs with signed local URLs, and the outbox.
//! - `messages`: email and SMS texts in de, fr, it, en, from templates.

pub mod domain;
pub mod error;
pub mod ports;
pub mod poster;
pub mod secrets;
pub use error::{Error, Result};
pub mod admin;
#[cfg(feature = "aws")]
pub mod aws;
pub mod embedded;
pub mod feedback;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod messages;
pub mod server;
pub mod service;
pub mod telemetry;
