//! Trace context on HTTP headers: W3C Trace Context (`traceparent`, `tracestate`) and
//! Amazon's `X-Amzn-Trace-Id` (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`).
//!
//! Reading is strict and never fails a request: a header that is not well formed is ignored,
//! and the request starts a trace of its own, as the W3C recommendation asks. `traceparent`
//! wins over `X-Amzn-Trace-Id` when both are valid.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// `tracestate` longer than this is dropped rather than carried on (the W3C limit is 32
/// members; 512 bytes is what the recommendation says a vendor may truncate to).
const TRACESTATE_MAX: usize = 512;

/// What a caller said about its trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: TraceId,
    /// The caller's span, when it named one.
    pub parent: Option<SpanId>,
    /// The caller's sampling decision, when it made one (`Sampled=?` in X-Ray defers it).
    pub sampled: Option<bool>,
    /// W3C vendor state, carried on unchanged.
    pub tracestate: Option<HeaderValue>,
}

/// The caller's trace context, if its headers carry a valid one.
pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
    if let Some((trace_id, parent, sampled)) = headers
        .get(TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()))
    {
        let tracestate = headers
            .get(TRACESTATE)
            .filter(|v| v.len() <= TRACESTATE_MAX && !v.is_empty())
            .cloned();
        return Some(Incoming {
            trace_id,
            parent: Some(parent),
            sampled: Some(sampled),
            tracestate,
        });
    }
    let amzn = headers.get(AMZN_TRACE_ID)?.to_str().ok()?;
    parse_amzn_trace_id(amzn)
}

/// `traceparent`: `{version}-{trace id}-{parent id}-{flags}`, lowercase hex.
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut fields = text.split('-');
    let version = fields.next()?;
    let trace = fields.next()?;
    let parent = fields.next()?;
    let flags = fields.next()?;
    if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 has exactly four fields; a later version may add more after them.
    if version == "00" && fields.next().is_some() {
        return None;
    }
    if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !is_lower_hex(trace) || !is_lower_hex(parent) || !is_lower_hex(flags) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags & 1 == 1))
}

/// `X-Amzn-Trace-Id`: `Root=1-{8 hex}-{24 hex}`, optionally `Parent={16 hex}` and
/// `Sampled=0|1|?`, in any order, with other fields (`Self=`, `Lineage=`) ignored.
pub fn parse_amzn_trace_id(value: &str) -> Option<Incoming> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = None;
    for field in value.split(';') {
        let (key, val) = field.trim().split_once('=')?;
        match key {
            "Root" => root = Some(parse_xray_root(val)?),
            "Parent" => {
                parent =
                    Some(SpanId::from_hex(val).ok().filter(|_| {
                        val.len() == 16 && val.bytes().all(|b| b.is_ascii_hexdigit())
                    })?)
            }
            "Sampled" => {
                sampled = match val {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let trace_id = root?;
    Some(Incoming {
        trace_id,
        parent: parent.filter(|p| *p != SpanId::INVALID),
        sampled,
        tracestate: None,
    })
}

fn parse_xray_root(root: &str) -> Option<TraceId> {
    let rest = root.strip_prefix("1-")?;
    let (time, random) = rest.split_once('-')?;
    if time.len() != 8 || random.len() != 24 {
        return None;
    }
    let hex = format!("{time}{random}");
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    TraceId::from_hex(&hex.to_ascii_lowercase())
        .ok()
        .filter(|id| *id != TraceId::INVALID)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `traceparent` for a call made from `span`.
pub fn traceparent(trace_id: TraceId, span: SpanId, sampled: bool) -> HeaderValue {
    // Written into a fixed layout: this runs for every call of a traced request.
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut text[3..35], &trace_id.to_bytes());
    hex_into(&mut text[36..52], &span.to_bytes());
    if sampled {
        text[54] = b'1';
    }
    HeaderValue::from_bytes(&text).expect("hex is a valid header value")
}

/// The trace id in X-Ray's form, `1-{first 8 hex}-{other 24}`.
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let mut text = *b"1-00000000-000000000000000000000000";
    xray_root_into(&mut text, trace_id);
    String::from_utf8_lossy(&text).into_owned()
}

fn xray_root_into(out: &mut [u8; 35], trace_id: TraceId) {
    let bytes = trace_id.to_bytes();
    hex_into(&mut out[2..10], &bytes[..4]);
    hex_into(&mut out[11..35], &bytes[4..]);
}

/// `X-Amzn-Trace-Id` for a call made from `span` (or, on a response, without a parent).
pub fn amzn_trace_id(trace_id: TraceId, span: Option<SpanId>, sampled: bool) -> HeaderValue {
    const ROOT: usize = "Root=".len();
    const PARENT: usize = ROOT + 35 + ";Parent=".len();
    let mut text = *b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
    let mut root = [0u8; 35];
    root.copy_from_slice(&text[ROOT..ROOT + 35]);
    xray_root_into(&mut root, trace_id);
    text[ROOT..ROOT + 35].copy_from_slice(&root);
    let digit = if sampled { b'1' } else { b'0' };
    let text: &[u8] = match span {
        Some(span) => {
            hex_into(&mut text[PARENT..PARENT + 16], &span.to_bytes());
            let last = text.len() - 1;
            text[last] = digit;
            &text[..]
        }
        None => {
            // `Root=…;Sampled=d`: the parent field cut out.
            let mut short = [0u8; ROOT + 35 + 10];
            short[..ROOT + 35].copy_from_slice(&text[..ROOT + 35]);
            short[ROOT + 35..].copy_from_slice(b";Sampled=0");
            short[short.len() - 1] = digit;
            return HeaderValue::from_bytes(&short).expect("hex is a valid header value");
        }
    };
    HeaderValue::from_bytes(text).expect("hex is a valid header value")
}

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

/// Puts the context of a call made from `span` on its headers, replacing what the client
/// sent: `traceparent`, the caller's `tracestate` and `X-Amzn-Trace-Id`.
pub fn inject(
    headers: &mut HeaderMap,
    trace_id: TraceId,
    span: SpanId,
    sampled: bool,
    tracestate: Option<&HeaderValue>,
) {
    headers.insert(TRACEPARENT, traceparent(trace_id, span, sampled));
    match tracestate {
        Some(state) => headers.insert(TRACESTATE, state.clone()),
        None => headers.remove(TRACESTATE),
    };
    headers.insert(AMZN_TRACE_ID, amzn_trace_id(trace_id, Some(span), sampled));
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn a_w3c_traceparent_is_read() {
        let (trace, span, sampled) =
            parse_traceparent(format!("00-{TRACE}-{SPAN}-01").as_bytes()).unwrap();
        assert_eq!(trace.to_string(), TRACE);
        assert_eq!(span.to_string(), SPAN);
        assert!(sampled);
        let (_, _, sampled) =
            parse_traceparent(format!("00-{TRACE}-{SPAN}-00").as_bytes()).unwrap();
        assert!(!sampled);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{TRACE}x-{SPAN}-01"),
            "garbage".to_string(),
            String::new(),
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
        // A later version may add fields.
        assert!(parse_traceparent(format!("01-{TRACE}-{SPAN}-01-what").as_bytes()).is_some());
    }

    #[test]
    fn an_xray_header_is_read_and_written_back_the_same() {
        let incoming = parse_amzn_trace_id(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(
            incoming.trace_id.to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(incoming.parent.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(incoming.sampled, Some(true));
        assert_eq!(
            amzn_trace_id(incoming.trace_id, None, false),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"
        );
        assert_eq!(
            xray_trace_id(incoming.trace_id),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        let written = amzn_trace_id(incoming.trace_id, incoming.parent, true);
        assert_eq!(
            written,
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        // Root alone, a deferred decision, and fields we do not know.
        let root_only =
            parse_amzn_trace_id("Self=1-abc;Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?")
                .unwrap();
        assert_eq!(root_only.parent, None);
        assert_eq!(root_only.sampled, None);
        for bad in [
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Parent=53995c3f42cd8ad8",
            "Root=1-5759e98g-bd862e3fe1be46a994272793",
        ] {
            assert!(parse_amzn_trace_id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn traceparent_wins_and_tracestate_rides_along() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AMZN_TRACE_ID,
            HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"),
        );
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_str(&format!("00-{TRACE}-{SPAN}-01")).unwrap(),
        );
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=opaque"));
        let incoming = extract(&headers).unwrap();
        assert_eq!(incoming.trace_id.to_string(), TRACE);
        assert_eq!(incoming.sampled, Some(true));
        assert_eq!(incoming.tracestate.unwrap(), "vendor=opaque");
        headers.remove(TRACEPARENT);
        let amzn = extract(&headers).unwrap();
        assert_eq!(amzn.sampled, Some(false));
        assert_eq!(amzn.tracestate, None);
    }

    #[test]
    fn injected_headers_name_the_calling_span() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACESTATE, HeaderValue::from_static("stale=1"));
        let trace = TraceId::from_hex(TRACE).unwrap();
        let span = SpanId::from_hex(SPAN).unwrap();
        inject(&mut headers, trace, span, true, None);
        assert_eq!(headers[TRACEPARENT], format!("00-{TRACE}-{SPAN}-01"));
        assert!(headers.get(TRACESTATE).is_none());
        assert_eq!(
            headers[AMZN_TRACE_ID],
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
        );
    }
}
