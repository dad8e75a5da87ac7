//! The two error types: a template that does not parse, and a render that fails.

use thiserror::Error;

/// A template that is not valid VTL. `line` and `column` are 1-based and point at the
/// construct that is wrong (for an unclosed block, at the directive that opened it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A render that could not complete. Amazon answers these with an error status (a body that
/// is not JSON: 400; a failing function: 500); the caller decides.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    /// The body starts like JSON (`{` or `[`) but does not parse, and the template asked for
    /// `$input.json`/`$input.path`.
    #[error("the body is not valid JSON: {0}")]
    InvalidJsonBody(String),
    /// A function or method failed (a bad JSONPath, `$util.base64Decode` of something that is
    /// not base64, `substring` out of range, an invalid regular expression, ...).
    #[error("line {line}, column {column}: {message}")]
    Evaluation {
        line: usize,
        column: usize,
        message: String,
    },
    /// One of the [`Limits`](crate::Limits) was reached.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}
