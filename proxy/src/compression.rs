//! Compressed answers, as Amazon API Gateway's `minimumCompressionSize` (REST APIs).
//!
//! [`compress`] runs last on an answer, after everything else that changes it (the
//! integration, mapping templates, the stage cache, the response headers, CORS), on gateways
//! whose table has a minimum: a gateway without one never reaches this module. An answer is
//! compressed when:
//!
//! - the client's `Accept-Encoding` allows a coding we have ([`negotiate`]): `br`, `gzip` (or
//!   `x-gzip`) or `deflate`, the highest `q` winning, ties going to `br`, then `gzip`, then
//!   `deflate`; `*` stands for `gzip` and `deflate` (Amazon's codings), `br` only when named;
//!   `q=0` refuses a coding; an `identity` with a higher `q` than every coding keeps the answer
//!   as it is; no header, or an empty one, is identity (Amazon: "if the header is not set ...
//!   API Gateway does not compress the payload");
//! - the answer may be compressed: not to a `HEAD`, not a 1xx, 204, 206 or 304, no
//!   `Content-Encoding` of its own (Amazon: "the integration response payload is already
//!   compressed"), no `Content-Range`, no `Cache-Control: no-transform`;
//! - its body is at least the minimum: its `Content-Length`, else its exact size when the
//!   proxy made it (mocks, Lambda results, templates), else the first bytes are read, up to
//!   the minimum and no further, before the head is sent: what ends below it is sent as it
//!   is, with its length.
//!
//! A compressed answer gets `Content-Encoding`, loses `Content-Length` (and
//! `Accept-Ranges`; a strong `ETag` becomes weak, as the bytes are not the backend's); every
//! answer big enough to be compressed gets `Vary: Accept-Encoding`, compressed or not, so a
//! shared cache never hands one client's coding to another. The body is compressed as it
//! streams ([`Compressed`]): at most 64 KiB of input per step, what the encoder holds flushed
//! whenever the backend has nothing more to give for now, so a slow stream reaches the client
//! as it comes; nothing is held whole. The access log counts the bytes sent, compressed.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper::Response;
use hyper::body::{Body as HttpBody, Frame};

use crate::body::{Body, BoxError, Replay};

/// Most input compressed in one step of the body: a 10 MB answer made in one piece (a Lambda
/// result) is compressed a slice at a time, never in one long poll.
const STEP: usize = 64 * 1024;
/// gzip and deflate level: zlib's default, the ratio clients expect at a moderate cost.
const DEFLATE_LEVEL: u32 = 6;
/// Brotli quality 5 and a 4 MiB window (lgwin 22): better than gzip 6 at a similar speed, the
/// range servers use for answers compressed on the fly.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;

/// A content coding the proxy can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Deflate,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    /// Tie-break order: lower wins.
    fn rank(self) -> u8 {
        match self {
            Coding::Brotli => 0,
            Coding::Gzip => 1,
            Coding::Deflate => 2,
        }
    }
}

/// The coding to answer a request with, from its `Accept-Encoding` headers (RFC 9110 §12.5.3);
/// `None` for identity. Never fails: an entry it cannot read is left out.
pub fn negotiate(headers: &HeaderMap) -> Option<Coding> {
    // q-values in thousandths, for what the client named.
    let (mut br, mut gzip, mut deflate, mut identity, mut any) = (None, None, None, None, None);
    let mut seen = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            if coding.is_empty() {
                continue;
            }
            let Some(q) = quality(parts) else {
                continue;
            };
            seen = true;
            let slot = if coding.eq_ignore_ascii_case("br") {
                &mut br
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if coding.eq_ignore_ascii_case("deflate") {
                &mut deflate
            } else if coding.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if coding == "*" {
                &mut any
            } else {
                continue;
            };
            // Named twice: the first says it, as most servers read it.
            slot.get_or_insert(q);
        }
    }
    if !seen {
        return None;
    }
    let candidates = [
        (Coding::Brotli, br),
        (Coding::Gzip, gzip.or(any)),
        (Coding::Deflate, deflate.or(any)),
    ];
    let (coding, q) = candidates
        .into_iter()
        .filter_map(|(c, q)| Some((c, q?)))
        .filter(|&(_, q)| q > 0)
        .min_by_key(|&(c, q)| (std::cmp::Reverse(q), c.rank()))?;
    match identity {
        Some(identity_q) if identity_q > q => None,
        _ => Some(coding),
    }
}

/// The `q` parameter of an entry in thousandths (1000 when absent); `None` when it is not a
/// q-value (RFC 9110: `0` to `1` with up to three decimals).
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths: u16 = 0;
        for (i, b) in fraction.bytes().enumerate() {
            thousandths += u16::from(b - b'0') * [100, 10, 1][i];
        }
        return match whole {
            "0" => Some(thousandths),
            "1" if thousandths == 0 => Some(1000),
            _ => None,
        };
    }
    Some(1000)
}

/// The answer, compressed for this request if it should be (module documentation).
pub async fn compress(
    minimum: u32,
    method: &Method,
    request: &HeaderMap,
    response: Response<Body>,
) -> Response<Body> {
    if !compressible(method, &response) {
        return response;
    }
    let coding = negotiate(request);
    let minimum = u64::from(minimum);
    let known = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact());
    match (known, coding) {
        (Some(size), _) if size < minimum => response,
        (Some(_), None) => varied(response),
        (Some(_), Some(coding)) => encoded(coding, response, Vec::new()),
        // The size is unknown: a client that takes no coding gets the answer as it is (it may
        // have been big enough for others to get it compressed).
        (None, None) => varied(response),
        (None, Some(coding)) if minimum == 0 => encoded(coding, response, Vec::new()),
        (None, Some(coding)) => {
            let (parts, mut body) = response.into_parts();
            let mut read: Vec<Frame<Bytes>> = Vec::new();
            let mut size: u64 = 0;
            let ended = loop {
                if size >= minimum {
                    break false;
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            size += data.len() as u64;
                        }
                        let trailers = frame.is_trailers();
                        read.push(frame);
                        if trailers {
                            break true;
                        }
                    }
                    // The error is the body's to say, after what it gave: sent as it is.
                    Some(Err(e)) => {
                        let replay = Replay::new(read, Some(body), Some(e));
                        return Response::from_parts(parts, replay.boxed());
                    }
                    None => break true,
                }
            };
            if ended && size < minimum {
                // The whole body is here, below the minimum: sent as it is, with its length.
                let mut whole = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
                let mut trailers = None;
                for frame in read {
                    match frame.into_data() {
                        Ok(data) => whole.extend_from_slice(&data),
                        Err(frame) => trailers = frame.into_trailers().ok(),
                    }
                }
                let frames = std::iter::once(Frame::data(whole.freeze()))
                    .chain(trailers.map(Frame::trailers))
                    .collect();
                let body = Replay::new(frames, None, None);
                return Response::from_parts(parts, body.boxed());
            }
            let rest = if ended {
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed()
            } else {
                body
            };
            encoded(coding, Response::from_parts(parts, rest), read)
        }
    }
}

/// Whether the answer may be compressed at all, whatever its size and the client.
fn compressible(method: &Method, response: &Response<Body>) -> bool {
    let status = response.status();
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return false;
    }
    let headers = response.headers();
    if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) {
        return false;
    }
    !headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    })
}

/// `Vary: Accept-Encoding` added, unless the answer already varies by it (or by everything).
fn varied(mut response: Response<Body>) -> Response<Body> {
    add_vary(response.headers_mut());
    response
}

fn add_vary(headers: &mut HeaderMap) {
    let already = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|name| {
                let name = name.trim();
                name == "*" || name.eq_ignore_ascii_case("accept-encoding")
            })
        })
    });
    if !already {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The answer with its body compressed, `read` (frames already taken from it) first.
fn encoded(coding: Coding, response: Response<Body>, read: Vec<Frame<Bytes>>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let headers = &mut parts.headers;
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_RANGES);
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.name()));
    add_vary(headers);
    if let Some(etag) = headers.get(ETAG)
        && !etag.as_bytes().starts_with(b"W/")
    {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            headers.insert(ETAG, weak);
        }
    }
    let body = Compressed {
        inner: body,
        read: read.into_iter(),
        input: Bytes::new(),
        encoder: Some(Encoder::new(coding)),
        unflushed: false,
        trailers: None,
    };
    Response::from_parts(parts, body.boxed())
}

/// One coding's streaming encoder, writing into a buffer that each step empties.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(coding: Coding) -> Self {
        let level = flate2::Compression::new(DEFLATE_LEVEL);
        match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            // HTTP's `deflate` is the zlib format (RFC 9110 §8.4.1.2), not a raw stream.
            Coding::Deflate => Encoder::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Deflate(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
        }
    }

    /// Compresses `data`; what is ready comes out.
    fn write(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.write_all(data)?,
            Encoder::Deflate(e) => e.write_all(data)?,
            Encoder::Brotli(e) => e.write_all(data)?,
        }
        Ok(self.take())
    }

    /// Everything written so far, out (a sync flush: the stream goes on after it).
    fn flush(&mut self) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.flush()?,
            Encoder::Deflate(e) => e.flush()?,
            Encoder::Brotli(e) => e.flush()?,
        }
        Ok(self.take())
    }

    /// The end of the stream (and gzip's trailer).
    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Deflate(e) => e.finish()?,
            Encoder::Brotli(e) => e.into_inner(),
        };
        Ok(Bytes::from(out))
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(self.output()))
    }
}

/// A body compressed as it streams.
struct Compressed {
    inner: Body,
    /// Frames read before the head was sent, compressed first.
    read: std::vec::IntoIter<Frame<Bytes>>,
    /// Input not yet given to the encoder (what is left of a frame over [`STEP`]).
    input: Bytes,
    /// `None` once the stream is finished.
    encoder: Option<Encoder>,
    /// Input went in since the last output: a flush would give something.
    unflushed: bool,
    /// The body's trailers, sent after the compressed stream ends.
    trailers: Option<HeaderMap>,
}

impl Compressed {
    /// The end of the compressed stream; the trailers, if any, come next.
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(encoder) = self.encoder.take() else {
            return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
        };
        match encoder.finish() {
            Ok(out) if !out.is_empty() => Poll::Ready(Some(Ok(Frame::data(out)))),
            Ok(_) => Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }
}

impl HttpBody for Compressed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return this.finish();
            };
            if !this.input.is_empty() {
                let step = this.input.split_to(this.input.len().min(STEP));
                match encoder.write(&step) {
                    Ok(out) if out.is_empty() => {
                        this.unflushed = true;
                        continue;
                    }
                    Ok(out) => {
                        this.unflushed = true;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                }
            }
            if this.trailers.is_some() {
                return this.finish();
            }
            // The next input: a frame read before the head, else the body's.
            let polled = match this.read.next() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => Pin::new(&mut this.inner).poll_frame(cx),
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.input = data,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return this.finish(),
                Poll::Pending => {
                    // Nothing more for now: what the encoder holds goes out, so a slow
                    // stream is not held back waiting for a full block.
                    if this.unflushed {
                        this.unflushed = false;
                        match encoder.flush() {
                            Ok(out) if !out.is_empty() => {
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                            Ok(_) => {}
                            Err(e) => return Poll::Ready(Some(Err(e.into()))),
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::body::full;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn negotiation_follows_q_values_and_our_preference() {
        let cases: &[(&str, Option<Coding>)] = &[
            ("", None),
            ("identity", None),
            ("gzip", Some(Coding::Gzip)),
            ("x-gzip", Some(Coding::Gzip)),
            ("deflate", Some(Coding::Deflate)),
            ("gzip, deflate, br", Some(Coding::Brotli)),
            ("deflate, gzip", Some(Coding::Gzip)),
            ("br;q=0.5, gzip", Some(Coding::Gzip)),
            ("gzip;q=0", None),
            ("gzip;q=0, deflate", Some(Coding::Deflate)),
            ("GZIP;Q=0.001", Some(Coding::Gzip)),
            ("*", Some(Coding::Gzip)),
            ("*;q=0", None),
            ("*, gzip;q=0", Some(Coding::Deflate)),
            ("br;q=0.2, *;q=0.5", Some(Coding::Gzip)),
            ("gzip;q=0.5, identity", None),
            ("gzip;q=1.0,identity;q=0.5,*;q=0", Some(Coding::Gzip)),
            ("deflate;q=0.5,gzip;q=1.0", Some(Coding::Gzip)),
            ("zstd", None),
            ("zstd, deflate;q=0.1", Some(Coding::Deflate)),
            ("gzip;q=2", None),
            ("gzip;q=0.1234", None),
            ("gzip;q=abc, deflate", Some(Coding::Deflate)),
            (" , ;, gzip ; q=0.9 ", Some(Coding::Gzip)),
        ];
        for (header, expected) in cases {
            assert_eq!(negotiate(&accept(header)), *expected, "{header:?}");
        }
        assert_eq!(negotiate(&HeaderMap::new()), None, "no header");
    }

    #[test]
    fn q_values() {
        let q = |s: &str| quality(s.split(';'));
        assert_eq!(q("q=1"), Some(1000));
        assert_eq!(q("q=0.5"), Some(500));
        assert_eq!(q("q=0.05"), Some(50));
        assert_eq!(q("q=0.005"), Some(5));
        assert_eq!(q("q=1.000"), Some(1000));
        assert_eq!(q("q=1.001"), None);
        assert_eq!(q("q=0."), Some(0));
        assert_eq!(q("q="), None);
        assert_eq!(q("q=-0"), None);
        assert_eq!(q("level=1"), Some(1000));
    }

    fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            "gzip" => {
                flate2::read::GzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            "deflate" => {
                flate2::read::ZlibDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            "br" => {
                brotli::Decompressor::new(bytes, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            other => panic!("{other}"),
        }
        out
    }

    fn answer(body: Body) -> Response<Body> {
        let mut r = Response::new(body);
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        r
    }

    #[tokio::test]
    async fn each_coding_round_trips_a_big_body_made_whole() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for (header, name) in [("br", "br"), ("gzip", "gzip"), ("deflate", "deflate")] {
            let r = compress(1, &Method::GET, &accept(header), answer(full(text.clone()))).await;
            assert_eq!(r.headers()[CONTENT_ENCODING], name);
            assert_eq!(r.headers()[VARY], "Accept-Encoding");
            assert!(r.headers().get(CONTENT_LENGTH).is_none());
            let bytes = r.into_body().collect().await.unwrap().to_bytes();
            assert!(bytes.len() < text.len() / 3, "{name}: {}", bytes.len());
            assert_eq!(decode(name, &bytes), text, "{name}");
        }
    }

    #[tokio::test]
    async fn below_the_minimum_or_excluded_answers_are_left_alone() {
        let small = compress(
            100,
            &Method::GET,
            &accept("gzip"),
            answer(full("x".repeat(99))),
        )
        .await;
        assert!(small.headers().get(CONTENT_ENCODING).is_none());
        assert!(small.headers().get(VARY).is_none());

        let head = compress(
            0,
            &Method::HEAD,
            &accept("gzip"),
            answer(full("x".repeat(99))),
        )
        .await;
        assert!(head.headers().get(CONTENT_ENCODING).is_none());

        let mut encoded = answer(full("already"));
        encoded
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let r = compress(0, &Method::GET, &accept("br"), encoded).await;
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "already");

        let mut no_content = answer(full(""));
        *no_content.status_mut() = StatusCode::NO_CONTENT;
        let r = compress(0, &Method::GET, &accept("gzip"), no_content).await;
        assert!(r.headers().get(CONTENT_ENCODING).is_none());

        let mut no_transform = answer(full("x".repeat(10)));
        no_transform.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("max-age=1, No-Transform"),
        );
        let r = compress(0, &Method::GET, &accept("gzip"), no_transform).await;
        assert!(r.headers().get(CONTENT_ENCODING).is_none());

        // Big enough, but the client takes no coding: identity, and it varies.
        let r = compress(
            1,
            &Method::GET,
            &HeaderMap::new(),
            answer(full("x".repeat(10))),
        )
        .await;
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(r.headers()[VARY], "Accept-Encoding");
    }

    #[tokio::test]
    async fn a_strong_etag_becomes_weak_and_vary_is_added_to() {
        let mut r = answer(full("x".repeat(10)));
        r.headers_mut()
            .insert(ETAG, HeaderValue::from_static("\"abc\""));
        r.headers_mut()
            .insert(VARY, HeaderValue::from_static("Origin"));
        let r = compress(0, &Method::GET, &accept("gzip"), r).await;
        assert_eq!(r.headers()[ETAG], "W/\"abc\"");
        let vary: Vec<_> = r.headers().get_all(VARY).iter().collect();
        assert_eq!(vary, ["Origin", "Accept-Encoding"]);
    }

    /// A streamed body of unknown length: read up to the minimum before the head is sent.
    fn streamed(chunks: Vec<Result<&'static str, &'static str>>) -> Body {
        let stream = futures::stream::iter(chunks.into_iter().map(|c| match c {
            Ok(data) => Ok(Frame::data(Bytes::from_static(data.as_bytes()))),
            Err(e) => Err(BoxError::from(e)),
        }));
        http_body_util::StreamBody::new(stream).boxed()
    }

    #[tokio::test]
    async fn a_stream_of_unknown_length_is_measured_up_to_the_minimum() {
        let body = streamed(vec![Ok("aaaa"), Ok("bbbb"), Ok("cccc")]);
        let r = compress(10, &Method::GET, &accept("gzip"), answer(body)).await;
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(decode("gzip", &bytes), b"aaaabbbbcccc");

        let body = streamed(vec![Ok("aaaa"), Ok("bbbb")]);
        let r = compress(10, &Method::GET, &accept("gzip"), answer(body)).await;
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(r.body().size_hint().exact(), Some(8));
        assert_eq!(
            r.into_body().collect().await.unwrap().to_bytes(),
            "aaaabbbb"
        );
    }

    #[tokio::test]
    async fn a_body_error_is_passed_on() {
        // While measuring: what came, then the error, uncompressed.
        let body = streamed(vec![Ok("aaaa"), Err("backend gone")]);
        let r = compress(10, &Method::GET, &accept("gzip"), answer(body)).await;
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "aaaa");
        assert!(body.frame().await.unwrap().is_err());

        // While compressing.
        let body = streamed(vec![Ok("aaaaaaaaaaaa"), Err("backend gone")]);
        let r = compress(10, &Method::GET, &accept("br"), answer(body)).await;
        assert_eq!(r.headers()[CONTENT_ENCODING], "br");
        assert!(r.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn trailers_follow_the_compressed_stream() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("1"));
        let frames = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"hello hello hello"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed();
        let r = compress(0, &Method::GET, &accept("deflate"), answer(body)).await;
        let collected = r.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(
            decode("deflate", &collected.to_bytes()),
            b"hello hello hello"
        );
    }
}
