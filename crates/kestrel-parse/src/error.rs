//! Errors for inputs that cannot be parsed at all.

/// Why a whole request body was rejected: nothing in it could be salvaged. The server answers
/// `400` with this message and dead-letters the body with
/// [`dead_letter_for_body`](crate::dead_letter_for_body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is empty or only whitespace.
    #[error("empty body")]
    Empty,
    /// The body is not valid UTF-8 and holds no complete item.
    #[error("body is not valid UTF-8: {reason}")]
    InvalidUtf8 {
        /// Where the first invalid byte is.
        reason: String,
    },
    /// The body is not JSON, or is cut before its first complete item.
    #[error("body is not valid JSON: {reason}")]
    InvalidJson {
        /// The parser's message, with line and column.
        reason: String,
    },
    /// The body is JSON but neither an `EventList`, an array of events nor an event.
    #[error("body is not an audit EventList, an array of events or an event: {reason}")]
    NotEventList {
        /// What was found instead.
        reason: String,
    },
}

impl BodyError {
    /// The dead letter `kind` for this error: `empty`, `invalid_utf8`, `invalid_json` or `schema`.
    pub fn kind(&self) -> &'static str {
        match self {
            BodyError::Empty => "empty",
            BodyError::InvalidUtf8 { .. } => "invalid_utf8",
            BodyError::InvalidJson { .. } => "invalid_json",
            BodyError::NotEventList { .. } => "schema",
        }
    }
}
