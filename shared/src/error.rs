//! The one error type of the use cases. `crate::http::error` turns it into a status and JSON,
//! in exactly one place; nothing from a dependency reaches a client.

use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    InvalidRequest { field: String, message: String },
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("wrong code")]
    WrongCode { attempts_left: u32 },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    /// No route for this method and path (a 404 like `NotFound`, with its own message).
    #[error("no such route: check the method and the path")]
    NoRoute,
    #[error("this link has expired")]
    Expired,
    #[error("this share was revoked by the practice")]
    Revoked,
    #[error("this code has expired; ask for a new one")]
    ExpiredCode,
    #[error("too many wrong answers; ask the practice for a new code")]
    Locked,
    #[error("{message}")]
    RateLimited { retry_after_secs: u64, message: &'static str },
    #[error("the request is too large")]
    PayloadTooLarge,
    /// A failure of storage or a provider. Logged with its detail; clients get a plain 500.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest { field: field.into(), message: message.into() }
    }
}

impl From<PortError> for Error {
    fn from(e: PortError) -> Self {
        Self::Internal(e.to_string())
    }
}
