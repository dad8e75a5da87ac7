//! One line per request, on standard output or in a rotated file: the proxy's own JSON line
//! with Amazon API Gateway `$context`-style field names, or the stage's `accessLogSettings`
//! format ([`format`]). Lines go through a bounded queue to a writer task: a slow destination
//! drops lines (counted in `tollgate_access_log_dropped_total`) rather than slowing requests.

pub mod file;
pub mod format;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Uri, Version};
use prometheus::IntCounter;
use serde::{Serialize, Serializer};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tollgate_crds::table::AccessLogFormatTable;
use uuid::Uuid;

use crate::auth::Identity;
pub use file::FileSettings;

const QUEUE: usize = 16 * 1024;

/// What the access log says of one request. Fields are kept as the request path has them
/// (addresses, methods, ids, shared names) and turned into text only when a line is written,
/// so a proxy with `--access-log off` formats nothing.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AccessRecord {
    #[serde(serialize_with = "display")]
    pub request_id: Uuid,
    #[serde(serialize_with = "display")]
    pub request_time: jiff::Timestamp,
    pub source_ip: IpAddr,
    #[serde(serialize_with = "display")]
    pub http_method: Method,
    #[serde(serialize_with = "uri_path")]
    pub path: Uri,
    #[serde(serialize_with = "protocol")]
    pub protocol: Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "shared_str")]
    pub gateway: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "shared_str")]
    pub stage: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "shared_str")]
    pub route_key: Option<Arc<str>>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_latency: Option<u64>,
    pub response_latency: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<&'static str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "header_text"
    )]
    pub user_agent: Option<HeaderValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// A connection that switched protocols (a WebSocket), when it has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgraded: Option<Upgraded>,
    /// The request's W3C trace id, when it is traced (`traceId`, 32 hex digits).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "trace_id")]
    pub trace_id: Option<[u8; 16]>,
    /// The stage's format; none: the JSON line above. Set only when the log is on.
    #[serde(skip)]
    pub format: Option<Arc<AccessLogFormatTable>>,
    /// The caller's identity, for a format's `$context.authorizer.*` and `identity.*`: set
    /// only when the stage has a format.
    #[serde(skip)]
    pub identity: Option<Arc<Identity>>,
    /// The status the integration answered (`$context.integrationStatus`).
    #[serde(skip)]
    pub integration_status: Option<u16>,
    /// A refusal's gateway response type (`$context.error.responseType`).
    #[serde(skip)]
    pub error_type: Option<&'static str>,
    /// A refusal's message as its answer says it (`$context.error.message`): set only when
    /// the stage has a format.
    #[serde(skip)]
    pub gateway_message: Option<String>,
    /// A WebSocket API's connection (`$context.connectionId`) and event (`eventType`).
    #[serde(skip)]
    pub connection_id: Option<Box<str>>,
    #[serde(skip)]
    pub event_type: Option<&'static str>,
}

/// What an upgraded connection carried, for its access-log line.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Upgraded {
    /// From the 101 to the end of the connection.
    pub duration_ms: u64,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
}

impl AccessRecord {
    /// A request as it arrives: nothing known yet past its head.
    pub fn arrived(
        request_id: Uuid,
        request_time: jiff::Timestamp,
        peer: IpAddr,
        parts: &http::request::Parts,
    ) -> Self {
        let mut record = Self::new(
            request_id,
            request_time,
            peer,
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
        );
        record.user_agent = parts.headers.get(http::header::USER_AGENT).cloned();
        record
    }

    /// A request known by its first line alone.
    pub fn new(
        request_id: Uuid,
        request_time: jiff::Timestamp,
        source_ip: IpAddr,
        http_method: Method,
        path: Uri,
        protocol: Version,
    ) -> Self {
        Self {
            request_id,
            request_time,
            source_ip,
            http_method,
            path,
            protocol,
            domain_name: None,
            gateway: None,
            stage: None,
            route_key: None,
            status: 0,
            response_length: None,
            integration_latency: None,
            response_latency: 0,
            api_key_id: None,
            deployment: None,
            user_agent: None,
            error_message: None,
            upgraded: None,
            trace_id: None,
            format: None,
            identity: None,
            integration_status: None,
            error_type: None,
            gateway_message: None,
            connection_id: None,
            event_type: None,
        }
    }

    /// Keeps the caller's identity for the stage's format, if it has one that may read it.
    pub fn set_identity(&mut self, identity: &Arc<Identity>) {
        if self.format.is_some() {
            self.identity = Some(identity.clone());
        }
    }
}

fn trace_id<S: Serializer>(value: &Option<[u8; 16]>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(id) => {
            let mut hex = String::with_capacity(32);
            format::hex_into(&mut hex, id);
            s.serialize_str(&hex)
        }
        None => s.serialize_none(),
    }
}

fn display<S: Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn uri_path<S: Serializer>(uri: &Uri, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(uri.path())
}

fn protocol<S: Serializer>(version: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{version:?}"))
}

fn shared_str<S: Serializer>(value: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(v),
        None => s.serialize_none(),
    }
}

fn header_text<S: Serializer>(value: &Option<HeaderValue>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(&String::from_utf8_lossy(v.as_bytes())),
        None => s.serialize_none(),
    }
}

pub(crate) enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written and flushed.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<Message>>,
    dropped: IntCounter,
}

impl AccessLog {
    /// Writes to standard output from a task of its own.
    pub fn stdout(dropped: IntCounter) -> Self {
        Self::spawn(
            Sink::Stdout(tokio::io::BufWriter::new(tokio::io::stdout())),
            dropped,
        )
    }

    /// Writes to a file, rotated by size, from a task of its own; fails when the file cannot
    /// be opened for appending.
    pub fn file(settings: FileSettings, dropped: IntCounter) -> std::io::Result<Self> {
        let file = file::RotatingFile::open(settings)?;
        Ok(Self::spawn(Sink::File(file), dropped))
    }

    fn spawn(mut sink: Sink, dropped: IntCounter) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        tokio::spawn(async move {
            let mut waiting = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut ok = true;
                let mut next = Some(first);
                while let Some(message) = next.take().or_else(|| rx.try_recv().ok()) {
                    match message {
                        Message::Line(line) => ok &= sink.write_line(&line).await.is_ok(),
                        Message::Flush(done) => waiting.push(done),
                    }
                }
                if !ok || sink.flush().await.is_err() {
                    tracing::warn!("cannot write the access log to {}", sink.name());
                }
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self {
            tx: Some(tx),
            dropped,
        }
    }

    /// Hands each line to the returned receiver instead of writing it: what the in-process
    /// tests of the request path read.
    #[cfg(test)]
    pub(crate) fn captured(dropped: IntCounter) -> (Self, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                tx: Some(tx),
                dropped,
            },
            rx,
        )
    }

    pub fn off(dropped: IntCounter) -> Self {
        Self { tx: None, dropped }
    }

    /// Whether lines are written at all: fields only the log reads need not be filled when not.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn write(&self, record: &AccessRecord) {
        let Some(tx) = &self.tx else {
            return;
        };
        let mut line = match &record.format {
            Some(format) => {
                let mut line = Vec::with_capacity(512);
                format::render(format, record, &mut line);
                line
            }
            None => match serde_json::to_vec(record) {
                Ok(line) => line,
                Err(_) => return,
            },
        };
        line.push(b'\n');
        if tx.try_send(Message::Line(line)).is_err() {
            self.dropped.inc();
        }
    }

    /// Waits until every line logged so far is written out (at shutdown).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Where the writer task puts lines.
enum Sink {
    Stdout(tokio::io::BufWriter<tokio::io::Stdout>),
    File(file::RotatingFile),
}

impl Sink {
    async fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.write_all(line).await,
            Self::File(file) => file.write_line(line).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush().await,
            Self::File(file) => file.flush().await,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "standard output",
            Self::File(_) => "its file",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord::new(
            Uuid::nil(),
            jiff::Timestamp::UNIX_EPOCH,
            "127.0.0.1".parse().unwrap(),
            Method::GET,
            Uri::from_static("/dev/ok"),
            Version::HTTP_11,
        )
    }

    /// The default line is unchanged without a trace id, and names it when there is one.
    #[test]
    fn the_json_line_has_a_trace_id_only_when_traced() {
        let mut r = record();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"requestId":"00000000-0000-0000-0000-000000000000","requestTime":"1970-01-01T00:00:00Z","sourceIp":"127.0.0.1","httpMethod":"GET","path":"/dev/ok","protocol":"HTTP/1.1","status":0,"responseLatency":0}"#
        );
        r.trace_id = Some([0xab; 16]);
        let line = serde_json::to_value(&r).unwrap();
        assert_eq!(line["traceId"], "ab".repeat(16));
    }
}
