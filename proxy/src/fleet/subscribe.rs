//! The wire side of fleet mode: the subscription request, newline-delimited frames read as
//! they arrive, and ACKs (see `tollgate_crds::snapshot` for the contract).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode};
use tollgate_crds::snapshot::{
    ACK_PATH, Ack, CONTENT_TYPE as NDJSON, PROXY_ID_HEADER, SUBSCRIBE_PATH,
};
use tollgate_crds::table::ObjectKey;

use crate::body::full;
use crate::client::HttpClient;
use crate::errors::error_chain;

/// How long the controller has to answer a subscription's head or an ACK.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// A frame longer than this is refused (a table of 10,000 routes is a few MB).
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// Why a subscription ended.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The controller answered with an error status (401 bad token, 403 another gateway's
    /// token, 404 unknown gateway, ...).
    #[error("the controller refused the subscription: {status} {message}")]
    Refused { status: StatusCode, message: String },
    #[error("{0}")]
    Failed(String),
}

impl SubscribeError {
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Refused { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }
}

/// One proxy's connection settings; the token is read on every [`Channel::connect`].
#[derive(Clone)]
pub struct Channel {
    pub client: HttpClient,
    pub controller: String,
    pub gateway: ObjectKey,
    pub proxy_id: String,
    pub token_file: Option<std::path::PathBuf>,
}

/// An open subscription: the frames' body, and the credentials it was opened with (ACKs use
/// the same).
pub struct Subscription {
    body: hyper::body::Incoming,
    lines: LineBuffer,
    authorization: Option<HeaderValue>,
}

impl Channel {
    /// Opens `GET /v1/subscribe?gateway=ns/name`; an answer other than 200 is an error.
    pub async fn connect(&self) -> Result<Subscription, SubscribeError> {
        let authorization = match &self.token_file {
            Some(path) => Some(bearer(path).await.map_err(SubscribeError::Failed)?),
            None => None,
        };
        let uri = format!(
            "{}{SUBSCRIBE_PATH}?gateway={}/{}",
            self.controller, self.gateway.namespace, self.gateway.name
        );
        let request = self
            .request(Method::GET, &uri, authorization.as_ref())
            .header(ACCEPT, NDJSON)
            .body(full(Bytes::new()))
            .map_err(|e| SubscribeError::Failed(format!("building the request: {e}")))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                SubscribeError::Failed(format!("{uri}: no answer within {ANSWER_TIMEOUT:?}"))
            })?
            .map_err(|e| SubscribeError::Failed(format!("{uri}: {}", error_chain(&e))))?;
        let status = response.status();
        if status != StatusCode::OK {
            let message = read_message(response.into_body()).await;
            return Err(SubscribeError::Refused { status, message });
        }
        Ok(Subscription {
            body: response.into_body(),
            lines: LineBuffer::default(),
            authorization,
        })
    }

    /// POSTs an ACK or NACK; 2xx is success.
    pub async fn ack(&self, subscription: &Subscription, ack: &Ack) -> Result<(), String> {
        let uri = format!("{}{ACK_PATH}", self.controller);
        self.post_json(&uri, subscription.authorization.as_ref(), ack)
            .await
    }

    /// POSTs `body` as JSON; 2xx is success.
    async fn post_json(
        &self,
        uri: &str,
        authorization: Option<&HeaderValue>,
        body: &impl serde::Serialize,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let request = self
            .request(Method::POST, uri, authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(full(body))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("{uri}: no answer within {ANSWER_TIMEOUT:?}"))?
            .map_err(|e| format!("{uri}: {}", error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            // Drain the (empty) body so the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            Ok(())
        } else {
            Err(format!(
                "{status} {}",
                read_message(response.into_body()).await
            ))
        }
    }

    /// POSTs this proxy's usage counts (`tollgate_crds::usage::REPORT_PATH`), with a token read
    /// now; 2xx is success.
    pub async fn report_usage(
        &self,
        report: &tollgate_crds::usage::UsageReport,
    ) -> Result<(), String> {
        let authorization = match &self.token_file {
            Some(path) => Some(bearer(path).await?),
            None => None,
        };
        let uri = format!("{}{}", self.controller, tollgate_crds::usage::REPORT_PATH);
        self.post_json(&uri, authorization.as_ref(), report).await
    }

    fn request(
        &self,
        method: Method,
        uri: &str,
        authorization: Option<&HeaderValue>,
    ) -> http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(PROXY_ID_HEADER, self.proxy_id.as_str());
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value.clone());
        }
        builder
    }
}

impl Subscription {
    /// The next complete line of the stream; `None` when the controller ends it.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, SubscribeError> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(Some(line));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(SubscribeError::Failed(format!(
                        "reading the subscription: {}",
                        error_chain(&e)
                    )));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.lines.push(&data).map_err(SubscribeError::Failed)?;
                    }
                }
            }
        }
    }
}

/// `Bearer <token>`, the token read from its file now (ServiceAccount tokens rotate).
async fn bearer(path: &Path) -> Result<HeaderValue, String> {
    let token = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("reading the token {}: {e}", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        format!(
            "the token in {} is not a valid header value",
            path.display()
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The `message` of an error answer's JSON body, or its text.
async fn read_message(body: hyper::body::Incoming) -> String {
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    let bytes = match tokio::time::timeout(Duration::from_secs(5), limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => return String::new(),
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string())
}

/// Splits a byte stream into lines (without their `\n`), however the chunks fall.
#[derive(Default, Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Where to resume looking for `\n` (everything before has none).
    scanned: usize,
}

impl LineBuffer {
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > MAX_FRAME_BYTES && !self.buf[self.scanned..].contains(&b'\n') {
            return Err(format!(
                "a frame longer than {MAX_FRAME_BYTES} bytes; the stream is dropped"
            ));
        }
        Ok(())
    }

    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        let at = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
        match at {
            Some(i) => {
                let end = self.scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                Some(line)
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_however_the_chunks_fall() {
        let stream = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\"";
        for size in 1..stream.len() {
            let mut lines = LineBuffer::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                lines.push(chunk).unwrap();
                while let Some(l) = lines.next_line() {
                    got.push(String::from_utf8(l).unwrap());
                }
            }
            assert_eq!(got, vec!["{\"a\":1}", "", "{\"b\":2}"], "chunks of {size}");
        }
    }
}
