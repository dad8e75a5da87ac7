//! Checks a request path before it is routed: a path that a backend would resolve to another
//! resource than the one Tollgate routed and authorised is refused with 400.
//!
//! Refused, in any segment (the route's literal part, a `{param}` or a `{proxy+}` value):
//! - a dot-segment, `.` or `..`, written plainly or percent-encoded (`%2e%2e`, `.%2E`);
//! - an encoded separator, `%2F` (`/`) or `%5C` (`\`), which a backend that decodes before it
//!   normalises turns into a path step (`..%2f`);
//! - a percent sign that still encodes one of those after one round of decoding (`%252e`), for
//!   backends that decode twice;
//! - a backslash as is (`..\secret`): hyper passes it through, and backends that read URLs as
//!   browsers do (WHATWG URL parsers) or run on Windows take it for `/`. Browsers never send
//!   one: they turn `\` in an http(s) URL into `/`.
//!
//! Refusing rather than resolving keeps what the client sent and what the backend receives
//! the same bytes; a client that means `/a/../b` can send `/b`.

use percent_encoding::percent_decode_str;

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum PathError {
    DotSegment,
    EncodedSeparator,
    Backslash,
}

impl PathError {
    /// The `message` of the 400 answer.
    pub fn message(self) -> &'static str {
        match self {
            Self::DotSegment => "Invalid request path: dot-segments ('.' and '..') are not allowed",
            Self::EncodedSeparator => "Invalid request path: an encoded '/' or '\\' is not allowed",
            Self::Backslash => "Invalid request path: '\\' is not allowed",
        }
    }
}

/// Checks a path (the whole path, or the part after the stage: the same rules hold).
pub fn check(path: &str) -> Result<(), PathError> {
    // Most paths have no dot, percent sign or backslash: nothing to decode or compare.
    if !path.bytes().any(|b| b == b'.' || b == b'%' || b == b'\\') {
        return Ok(());
    }
    path.split('/').try_for_each(check_segment)
}

fn check_segment(segment: &str) -> Result<(), PathError> {
    if segment.contains('\\') {
        return Err(PathError::Backslash);
    }
    if !segment.contains('%') {
        return if is_dot_segment(segment.as_bytes()) {
            Err(PathError::DotSegment)
        } else {
            Ok(())
        };
    }
    let decoded: Vec<u8> = percent_decode_str(segment).collect();
    if decoded.iter().any(|&b| b == b'/' || b == b'\\') {
        return Err(PathError::EncodedSeparator);
    }
    if is_dot_segment(&decoded) {
        return Err(PathError::DotSegment);
    }
    // Encoded twice: what a second decoding would turn into a dot or a separator.
    let lower = decoded.to_ascii_lowercase();
    let twice = |needle: &[u8]| lower.windows(3).any(|w| w == needle);
    if twice(b"%2f") || twice(b"%5c") {
        return Err(PathError::EncodedSeparator);
    }
    if twice(b"%2e") {
        let again: Vec<u8> = percent_decode_str(&String::from_utf8_lossy(&decoded)).collect();
        if is_dot_segment(&again) || again.iter().any(|&b| b == b'/' || b == b'\\') {
            return Err(PathError::DotSegment);
        }
    }
    Ok(())
}

fn is_dot_segment(segment: &[u8]) -> bool {
    segment == b"." || segment == b".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_dots_inside_names_pass() {
        for path in [
            "/",
            "/pets/42",
            "/files/report.v2.pdf",
            "/files/.hidden",
            "/files/...",
            "/files/a..b",
            "/search/caf%C3%A9",
            "/files/100%25",
            "/files/%2e%2e%2e",
        ] {
            assert_eq!(check(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn dot_segments_are_refused_plain_or_encoded() {
        for path in [
            "/files/../secret",
            "/files/..",
            "/files/./a",
            "/../x",
            "/files/%2e%2e/secret",
            "/files/%2E%2E/secret",
            "/files/.%2e/secret",
            "/files/%2e./secret",
            "/files/%2e/secret",
            "/files/%252e%252e/secret",
        ] {
            assert_eq!(check(path), Err(PathError::DotSegment), "{path}");
        }
    }

    #[test]
    fn encoded_separators_are_refused() {
        for path in [
            "/files/..%2fsecret",
            "/files/..%2Fsecret",
            "/files/a%2fb",
            "/files/..%5csecret",
            "/files/%2e%2e%2fsecret",
            "/files/..%252fsecret",
        ] {
            assert_eq!(check(path), Err(PathError::EncodedSeparator), "{path}");
        }
    }

    /// Found by `fuzz/fuzz_targets/request_head.rs` (minimised to the one byte `\`): a raw
    /// backslash passed, so `/files/..\secret` reached a backend that reads `\` as `/`.
    #[test]
    fn backslashes_are_refused() {
        for path in [
            "\\",
            "/files/..\\secret",
            "/files/a\\b",
            "/files/%41\\b",
            "/\\..\\x",
        ] {
            assert_eq!(check(path), Err(PathError::Backslash), "{path}");
        }
    }
}
