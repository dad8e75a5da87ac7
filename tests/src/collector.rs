//! A real OpenTelemetry Collector (`tests/otelcol`: the upstream collector with its OTLP
//! receiver and file exporter), started on free ports in a folder of its own. The tests send
//! it spans over OTLP as a deployment would, and read back what it received, as the JSON
//! lines its file exporter writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::proxy::free_port;
use crate::wait::eventually;

pub struct Collector {
    child: Child,
    dir: tempfile::TempDir,
    grpc_port: u16,
    http_port: u16,
}

/// One span as the collector received it.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// "" for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's numbers: 1 internal, 2 server, 3 client.
    pub kind: u64,
    pub attributes: BTreeMap<String, Value>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    pub start_nanos: u128,
    pub end_nanos: u128,
}

impl ReceivedSpan {
    /// An attribute's value as text (strings as they are, numbers printed).
    pub fn attribute(&self, key: &str) -> Option<String> {
        let value = self.attributes.get(key)?;
        Some(match value {
            Value::String(s) => s.clone(),
            other => other.to_string().trim_matches('"').to_string(),
        })
    }
}

impl Collector {
    /// Starts the collector (building it the first time, see `tests/otelcol/README.md`).
    pub fn start() -> Collector {
        let binary = crate::built_by("tests/otelcol/build");
        let dir = tempfile::tempdir().expect("temp dir");
        let (grpc_port, http_port) = (free_port(), free_port());
        let config = format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
      http:
        endpoint: 127.0.0.1:{http_port}
exporters:
  file:
    path: {spans}
    flush_interval: 50ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
",
            spans = dir.path().join("spans.jsonl").display()
        );
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).expect("collector config");
        let log = std::fs::File::create(dir.path().join("collector.log")).expect("log file");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting the collector");
        let collector = Collector {
            child,
            dir,
            grpc_port,
            http_port,
        };
        eventually("the collector to listen", || {
            let up = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            (up(grpc_port) && up(http_port)).then_some(())
        });
        collector
    }

    /// The OTLP/gRPC endpoint.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The OTLP/HTTP endpoint (the collector's base URL).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("collector.log")).unwrap_or_default()
    }

    fn spans_file(&self) -> PathBuf {
        self.dir.path().join("spans.jsonl")
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let text = std::fs::read_to_string(self.spans_file()).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(batch) = serde_json::from_str::<Value>(line) else {
                continue; // a line being written
            };
            for resource in batch["resourceSpans"].as_array().into_iter().flatten() {
                let service = attributes(&resource["resource"]["attributes"])
                    .get("service.name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        out.push(ReceivedSpan {
                            service: service.clone(),
                            trace_id: text_of(&span["traceId"]),
                            span_id: text_of(&span["spanId"]),
                            parent_span_id: text_of(&span["parentSpanId"]),
                            name: text_of(&span["name"]),
                            kind: span["kind"].as_u64().unwrap_or(0),
                            attributes: attributes(&span["attributes"]),
                            status_code: span["status"]["code"].as_u64().unwrap_or(0),
                            start_nanos: nanos(&span["startTimeUnixNano"]),
                            end_nanos: nanos(&span["endTimeUnixNano"]),
                        });
                    }
                }
            }
        }
        out
    }

    /// The spans of one trace, once at least `count` have arrived.
    pub fn trace(&self, trace_id: &str, count: usize) -> Vec<ReceivedSpan> {
        eventually(&format!("{count} spans of trace {trace_id}"), || {
            let spans: Vec<_> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            (spans.len() >= count).then_some(spans)
        })
    }

    /// Spans that arrive within `wait`, for a test that expects none of a trace.
    pub fn spans_after(&self, wait: Duration) -> Vec<ReceivedSpan> {
        std::thread::sleep(wait);
        self.spans()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn nanos(value: &Value) -> u128 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().map(u128::from).unwrap_or(0),
        _ => 0,
    }
}

/// OTLP JSON's `[{"key": k, "value": {"stringValue": v}}]` as a map of plain values.
fn attributes(list: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for kv in list.as_array().into_iter().flatten() {
        let key = text_of(&kv["key"]);
        let value = &kv["value"];
        let plain = value
            .get("stringValue")
            .cloned()
            .or_else(|| value.get("intValue").cloned())
            .or_else(|| value.get("boolValue").cloned())
            .or_else(|| value.get("doubleValue").cloned())
            .unwrap_or(Value::Null);
        out.insert(key, plain);
    }
    out
}
