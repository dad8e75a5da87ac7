//! `$util`'s string functions, with the Java behaviour Amazon's implementations have.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt::Write;

/// `$util.escapeJavaScript`: Apache Commons Lang's `escapeJavaScript`. Quotes (both), the
/// backslash and `/` get a backslash, control characters their short or `\u00XX` escape,
/// and every character beyond ASCII a `\uXXXX` escape (UTF-16, upper-case hex). `'` becomes
/// `\'`, which is not valid JSON: Amazon documents it and suggests
/// `.replaceAll("\\'","'")`.
pub(crate) fn escape_javascript(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Java's `URLEncoder.encode(s, "UTF-8")`: letters, digits and `.-*_` stay, a space is `+`,
/// everything else is `%XX` of its UTF-8 bytes.
pub(crate) fn url_encode(s: &str) -> String {
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'-')
        .remove(b'*')
        .remove(b'_')
        .remove(b' ');
    utf8_percent_encode(s, KEEP).to_string().replace(' ', "+")
}

/// Java's `URLDecoder.decode(s, "UTF-8")`: `+` is a space, `%XX` a byte; a malformed escape
/// is an error, as Java's `IllegalArgumentException`.
pub(crate) fn url_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("urlDecode: malformed escape at byte {i} of {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Standard base64 (with padding) of the UTF-8 bytes.
pub(crate) fn base64_encode(s: &str) -> String {
    STANDARD.encode(s.as_bytes())
}

/// Standard base64 to bytes, read as UTF-8 (invalid sequences become U+FFFD, as Java's
/// `new String(bytes, UTF_8)`).
pub(crate) fn base64_decode(s: &str) -> Result<String, String> {
    let bytes = STANDARD
        .decode(s.trim())
        .map_err(|e| format!("base64Decode: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_javascript_matches_commons_lang() {
        assert_eq!(
            escape_javascript(r#"He said "it's""#),
            r#"He said \"it\'s\""#
        );
        assert_eq!(escape_javascript("a/b\\c"), "a\\/b\\\\c");
        assert_eq!(escape_javascript("l1\nl2\tx\r"), "l1\\nl2\\tx\\r");
        assert_eq!(escape_javascript("\u{1}"), "\\u0001");
        assert_eq!(escape_javascript("é€"), "\\u00E9\\u20AC");
        assert_eq!(escape_javascript("😀"), "\\uD83D\\uDE00");
    }

    #[test]
    fn url_encoding_is_javas_form_encoding() {
        assert_eq!(url_encode("a b&c=d/é*~"), "a+b%26c%3Dd%2F%C3%A9*%7E");
        assert_eq!(url_decode("a+b%26c%3Dd%2F%C3%A9").unwrap(), "a b&c=d/é");
        assert!(url_decode("100%").is_err());
        assert!(url_decode("%zz").is_err());
    }

    #[test]
    fn base64_round_trips_text() {
        assert_eq!(base64_encode("héllo"), "aMOpbGxv");
        assert_eq!(base64_decode("aMOpbGxv").unwrap(), "héllo");
        assert!(base64_decode("not base64!").is_err());
    }
}
