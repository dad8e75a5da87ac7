//! A real Prometheus (Debian's `prometheus` package, which `scripts/setup` installs) on a free
//! loopback port, scraping the test's own Tollgate processes and evaluating rule files, queried
//! through its HTTP API; `promtool` to check rule files; and what the tests need to read the
//! chart's PrometheusRule and Grafana dashboard: the rules of a rendered PrometheusRule as a
//! rule file, and the metric names a PromQL expression reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::blocking_get;
use crate::proxy::free_port;

/// A `prometheus` server with its own configuration and storage in a temporary folder; killed
/// when dropped.
pub struct Prometheus {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// One scrape job: a name and its targets (`host:port`), with extra target labels.
pub struct Job<'a> {
    pub name: &'a str,
    pub targets: Vec<String>,
    pub labels: Vec<(&'a str, &'a str)>,
}

impl Prometheus {
    /// Starts `prometheus` scraping `jobs` every `interval` and evaluating `rules` (rule file
    /// texts) as often; waits until it is ready.
    pub fn start(jobs: &[Job<'_>], rules: &[&str], interval: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("a folder for prometheus");
        let mut rule_files = Vec::new();
        for (i, text) in rules.iter().enumerate() {
            let path = dir.path().join(format!("rules-{i}.yaml"));
            std::fs::write(&path, text).expect("write a rule file");
            rule_files.push(path.display().to_string());
        }
        let scrape_configs: Vec<Value> = jobs
            .iter()
            .map(|job| {
                let labels: serde_json::Map<String, Value> = job
                    .labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect();
                serde_json::json!({
                    "job_name": job.name,
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": job.targets, "labels": labels}],
                })
            })
            .collect();
        let config = serde_json::json!({
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": rule_files,
            "scrape_configs": scrape_configs,
        });
        let config_path = dir.path().join("prometheus.yaml");
        std::fs::write(&config_path, serde_yaml::to_string(&config).expect("YAML"))
            .expect("write the configuration");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus: {e}"));
        let server = Prometheus { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !blocking_get(addr, "/-/ready").is_ok_and(|r| r.status == 200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// What the server wrote to its standard error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}` and its `data`; panics unless the status is `success`.
    pub fn api(&self, path: &str) -> Value {
        let answer = blocking_get(self.addr, &format!("/api/v1/{path}"))
            .unwrap_or_else(|e| panic!("prometheus /api/v1/{path}: {e}"));
        let json: Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("/api/v1/{path}: {e}: {}", answer.text()));
        assert_eq!(
            json["status"],
            "success",
            "/api/v1/{path}: {}",
            answer.text()
        );
        json["data"].clone()
    }

    /// An instant query's result (a vector or scalar); panics when the query is invalid.
    pub fn query(&self, expr: &str) -> Value {
        self.api(&format!("query?query={}", encode(expr)))
    }

    /// A range query over the last `seconds`, one step per second.
    pub fn query_range(&self, expr: &str, seconds: u64) -> Value {
        let now = jiff::Timestamp::now().as_second();
        self.api(&format!(
            "query_range?query={}&start={}&end={now}&step=1",
            encode(expr),
            now - seconds as i64
        ))
    }

    /// Whether an instant query gives at least one sample.
    pub fn has_data(&self, expr: &str) -> bool {
        let data = self.query(expr);
        match data["resultType"].as_str() {
            Some("scalar") | Some("string") => true,
            _ => data["result"].as_array().is_some_and(|r| !r.is_empty()),
        }
    }

    /// Every rule the server loaded (`/api/v1/rules`), with its health and last error.
    pub fn rules(&self) -> Vec<Value> {
        self.api("rules")["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Alerts pending or firing now.
    pub fn alerts(&self) -> Vec<Value> {
        self.api("alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The scrape targets and their health.
    pub fn targets(&self) -> Vec<Value> {
        self.api("targets")["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `prometheus` or `promtool` from the PATH; panics saying how to get them when missing.
pub fn binary(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on the PATH: run scripts/setup, which installs Debian's \
                 `prometheus` package (it ships `prometheus` and `promtool`)"
            )
        })
}

/// `promtool args...`.
pub fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new(binary("promtool"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running promtool: {e}"))
}

/// The rules of the PrometheusRule in a rendered chart, as a Prometheus rule file (`groups:`).
pub fn rule_file(rendered: &str) -> String {
    let rule = crate::helm::documents(rendered)
        .into_iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the chart rendered a PrometheusRule");
    serde_yaml::to_string(&serde_json::json!({"groups": rule["spec"]["groups"]})).expect("YAML")
}

/// Every expression of a rule file: (rule name, expression).
pub fn expressions(rule_file: &str) -> Vec<(String, String)> {
    let file: Value = serde_yaml::from_str(rule_file).expect("a rule file");
    file["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("");
            (name.to_owned(), r["expr"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// PromQL's words that are not metric names: keywords, and aggregations (which may be followed
/// by `by (...)` before their parenthesis).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// The metric names an expression reads: identifiers outside label matchers, string literals,
/// ranges and grouping clauses that do not call a function. (Enough for the chart's and the
/// dashboard's expressions, which the tests also run against a real Prometheus.)
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // Skips from an opening bracket to its match.
    let skip = |i: &mut usize, open: char, close: char| {
        let mut depth = 0;
        while *i < chars.len() {
            if chars[*i] == '"' {
                *i += 1;
                while *i < chars.len() && chars[*i] != '"' {
                    *i += if chars[*i] == '\\' { 2 } else { 1 };
                }
            } else if chars[*i] == open {
                depth += 1;
            } else if chars[*i] == close {
                depth -= 1;
                if depth == 0 {
                    *i += 1;
                    return;
                }
            }
            *i += 1;
        }
    };
    let mut previous_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            skip(&mut i, '{', '}');
        } else if c == '[' {
            skip(&mut i, '[', ']');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '(' && GROUPING.contains(&previous_word.as_str()) {
            skip(&mut i, '(', ')');
            previous_word.clear();
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let calls = next < chars.len() && chars[next] == '(';
            let lower = word.to_ascii_lowercase();
            if !calls && !KEYWORDS.contains(&lower.as_str()) && !names.contains(&word) {
                names.push(word.clone());
            }
            previous_word = lower;
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (`86400`, `5m`, `0.99`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            if !c.is_whitespace() {
                previous_word.clear();
            }
            i += 1;
        }
    }
    names
}

/// Words followed by a list of label names, not an expression.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Percent-encodes a query parameter.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skips_functions_labels_and_grouping() {
        assert_eq!(
            metric_names(
                r#"histogram_quantile(0.99, sum by (api_name, le) (rate(apigateway_latency_seconds_bucket{stage=~"a|b"}[5m]))) > 2.5"#
            ),
            ["apigateway_latency_seconds_bucket"]
        );
        assert_eq!(
            metric_names(
                "sum by (gateway) (tollgate_controller_connected_proxies) - on (gateway) sum by (gateway) (tollgate_controller_current_proxies) > 0"
            ),
            [
                "tollgate_controller_connected_proxies",
                "tollgate_controller_current_proxies"
            ]
        );
        assert_eq!(
            metric_names("count by (gateway, version) (tollgate_table_info)"),
            ["tollgate_table_info"]
        );
        assert_eq!(
            metric_names(r#"absent(up{job="x"} == 1) or min(a:b:rate5m) - time() < 14 * 86400"#),
            ["up", "a:b:rate5m"]
        );
    }
}
