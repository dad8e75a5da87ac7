//! One JSON line per request on standard output, with Amazon API Gateway `$context`-style
//! field names. Lines go through a bounded queue to a writer task: a slow stdout drops lines
//! (counted in `tollgate_access_log_dropped_total`) rather than slowing requests.

use prometheus::IntCounter;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 16 * 1024;

/// What the access log says of one request.
#[derive(Serialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AccessRecord {
    pub request_id: String,
    pub request_time: String,
    pub source_ip: String,
    pub http_method: String,
    pub path: String,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_key: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

enum Message {
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
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
            let mut waiting = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut ok = true;
                let mut next = Some(first);
                while let Some(message) = next.take().or_else(|| rx.try_recv().ok()) {
                    match message {
                        Message::Line(line) => ok &= out.write_all(&line).await.is_ok(),
                        Message::Flush(done) => waiting.push(done),
                    }
                }
                if !ok || out.flush().await.is_err() {
                    tracing::warn!("cannot write the access log to standard output");
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

    pub fn off(dropped: IntCounter) -> Self {
        Self { tx: None, dropped }
    }

    pub fn write(&self, record: &AccessRecord) {
        let Some(tx) = &self.tx else {
            return;
        };
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
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
