//! The crate's one error type.

use crate::signing::Rejection;

/// Everything that can go wrong building, signing, verifying or delivering a notification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given by the caller is not acceptable (says which and how to fix it).
    #[error("{0}")]
    InvalidInput(String),
    /// A signing or verification secret is unusable.
    #[error("invalid secret: {0}")]
    InvalidSecret(String),
    /// A delivery did not verify; the [`Rejection`] says why.
    #[error("{0}")]
    Rejected(Rejection),
    /// The replay store could not be read or written.
    #[error("seen-id store {path}: {source}")]
    SeenIds {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A delivery failed for good; `detail` says what the endpoint answered (or that it did not).
    #[error("{destination}: {detail}")]
    Delivery {
        destination: String,
        kind: crate::deliver::FailureKind,
        attempts: u32,
        detail: String,
    },
    /// The destination answered, but not with what its documentation promises.
    #[error("{destination} answered unexpectedly: {detail}")]
    UnexpectedResponse { destination: String, detail: String },
}

impl Error {
    /// The verification rejection, when this is one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected(r) => Some(r),
            _ => None,
        }
    }
}
