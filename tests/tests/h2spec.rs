//! HTTP/2 conformance of the proxy's TLS listener: h2spec (built and cached by
//! `tests/h2spec/build`) runs its 146 default test cases (generic, HTTP/2 and HPACK; no
//! `--strict`) over TLS against a standalone `tollgate-proxy` serving a gateway whose `ANY /`
//! route is a mock answering 200. The JUnit report is read back: every failure must be in
//! [`KNOWN_FAILURES`] with the reason it is accepted, so a new failure fails the test.
//!
//! Needs the binary: `cargo build --workspace --bins` before
//! `cargo test -p tollgate-tests --test h2spec -- --nocapture` (the counts and failures are
//! printed).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tollgate_tests::config::{dev_gateway, mock, route};
use tollgate_tests::proxy::{free_port, serve};
use tollgate_tests::wait::eventually;

/// Test cases h2spec fails against the proxy, by id (`{group}/{section}/{case}`, as h2spec's
/// own command line names them), each with why the failure is accepted. None: the listener
/// (hyper and h2 under rustls) passed all 146 when this test was written.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// h2spec's default test cases (without `--strict`), as `h2spec --dryrun` lists them.
const TOTAL: usize = 146;
/// At least this many must pass: every case not in [`KNOWN_FAILURES`].
const MIN_PASSED: usize = TOTAL - KNOWN_FAILURES.len();

/// The h2spec binary `tests/h2spec/build` prints (building it the first time).
fn h2spec_binary() -> PathBuf {
    tollgate_tests::built_by("tests/h2spec/build")
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, as `cert.pem` and `key.pem` in
/// `dir`.
fn write_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("certificate params");
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("writing cert.pem");
    std::fs::write(&key_path, key.serialize_pem()).expect("writing key.pem");
    (cert_path, key_path)
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Passed,
    Failed(String),
    Skipped,
}

/// One test case of the report.
#[derive(Debug)]
struct Case {
    /// `http2/6.5.3/2`.
    id: String,
    /// What it does (`Sends a SETTINGS frame ...`).
    desc: String,
    outcome: Outcome,
}

/// The test cases of h2spec's JUnit report. h2spec writes `<testsuite package="http2/6.5.3">`
/// per section with one `<testcase classname="{description}">` per case, in order (the case
/// number is the position), holding `<skipped>`, `<failure>` or `<error>` (h2spec reports
/// its failed expectations as `<error>`: `Expect`ed frames, then the actual one), whose text
/// it writes raw (innerxml), so it is read up to its closing tag.
fn parse_report(xml: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<testsuite ") {
        rest = &rest[start..];
        let end = rest.find("</testsuite>").unwrap_or(rest.len());
        let suite = &rest[..end];
        let head_end = suite.find('>').expect("a testsuite tag ends");
        let package = attribute(&suite[..head_end], "package").expect("testsuite package");
        let mut body = &suite[head_end + 1..];
        let mut number = 0;
        while let Some(tc) = body.find("<testcase ") {
            body = &body[tc..];
            number += 1;
            let tag_end = body.find('>').expect("a testcase tag ends");
            let tag = &body[..tag_end];
            let desc = attribute(tag, "classname").unwrap_or_default();
            let (inner, next) = if tag.ends_with('/') {
                ("", tag_end + 1)
            } else {
                let close = body.find("</testcase>").expect("a testcase closes");
                (&body[tag_end + 1..close], close + "</testcase>".len())
            };
            let outcome = if inner.contains("<skipped") {
                Outcome::Skipped
            } else if let Some(text) = element_text(inner, "error") {
                Outcome::Failed(text)
            } else if let Some(text) = element_text(inner, "failure") {
                Outcome::Failed(text)
            } else {
                Outcome::Passed
            };
            cases.push(Case {
                id: format!("{package}/{number}"),
                desc,
                outcome,
            });
            body = &body[next..];
        }
        rest = &rest[end..];
    }
    cases
}

/// The value of `name="..."` in a start tag, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// The text of `<name>...</name>` (or an empty `<name/>`) in `xml`.
fn element_text(xml: &str, name: &str) -> Option<String> {
    let open = xml.find(&format!("<{name}"))?;
    let after = &xml[open..];
    let tag_end = after.find('>')?;
    if after[..tag_end].ends_with('/') {
        return Some(String::new());
    }
    let close = after.find(&format!("</{name}>"))?;
    Some(after[tag_end + 1..close].trim().to_string())
}

/// XML's character references and predefined entities, as Go's encoder writes them.
fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x9;", "\t")
        .replace("&#xA;", "\n")
        .replace("&#xD;", "\r")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn h2spec_passes_on_the_tls_listener() {
    let h2spec = h2spec_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = write_certificate(dir.path());
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let proxy = serve(
        &[
            dev_gateway("h2"),
            route("any", "h2", "ANY", "/", mock(200, r#"{"ok":true}"#)),
        ],
        &[
            "--tls-listen",
            &tls_addr,
            "--tls-default-certificate",
            cert.to_str().unwrap(),
            "--tls-default-key",
            key.to_str().unwrap(),
            "--access-log",
            "off",
        ],
    );
    eventually("the TLS listener accepts connections", || {
        TcpStream::connect_timeout(&tls_addr.parse().unwrap(), Duration::from_millis(200)).ok()
    });

    let report = dir.path().join("report.xml");
    let port = tls_addr.rsplit(':').next().unwrap();
    let run = Command::new(&h2spec)
        // TLS without verification; the mock's path; 5 s per case (2 by default), for a
        // loaded machine.
        .args(["-t", "-k", "-h", "127.0.0.1", "-p", port])
        .args(["-P", "/dev/", "-o", "5"])
        .arg("-j")
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", h2spec.display()));
    // h2spec exits non-zero when any case fails; the report says which.
    let xml = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "h2spec wrote no report ({e}); it exited with {}:\n{}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        )
    });
    assert!(proxy.is_ready(), "the proxy is still serving after h2spec");

    let cases = parse_report(&xml);
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let passed = count(|o| *o == Outcome::Passed);
    let skipped = count(|o| *o == Outcome::Skipped);
    let failures: Vec<&Case> = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .collect();
    println!(
        "h2spec: {} cases, {passed} passed, {} failed, {skipped} skipped",
        cases.len(),
        failures.len()
    );
    for case in &failures {
        let Outcome::Failed(message) = &case.outcome else {
            unreachable!()
        };
        let known = KNOWN_FAILURES
            .iter()
            .find(|(id, _)| *id == case.id)
            .map_or("NEW", |_| "known");
        // h2spec's message: the frames it expected, one a line, then what it got.
        let (expected, actual) = message.rsplit_once('\n').unwrap_or(("", message));
        println!(
            "  [{known}] {} {}\n    expected: {}\n    actual:   {actual}",
            case.id,
            case.desc,
            expected.replace('\n', " | "),
        );
    }

    let new: Vec<&str> = failures
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !KNOWN_FAILURES.iter().any(|(known, _)| known == id))
        .collect();
    assert!(
        new.is_empty(),
        "h2spec cases failed that KNOWN_FAILURES does not list: {new:?}"
    );
    assert_eq!(
        cases.len(),
        TOTAL,
        "h2spec ran another number of cases than its default set"
    );
    assert!(
        passed >= MIN_PASSED,
        "{passed} h2spec cases passed, fewer than {MIN_PASSED}"
    );
}

#[test]
fn the_report_parser_reads_h2spec_junit() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="5.1. Stream States" package="http2/5.1" id="5.1" tests="2" skipped="0" failures="0" errors="1">
    <testcase package="http2/5.1" classname="idle: Sends a DATA frame" time="0.0010"></testcase>
    <testcase package="http2/5.1" classname="idle: Sends a &#34;RST_STREAM&#34; frame" time="2.0010">
      <error>Expect:
GOAWAY Frame (Error Code: PROTOCOL_ERROR)
Actual:
Timeout</error>
    </testcase>
  </testsuite>
  <testsuite name="1. Starting HTTP/2" package="generic/1" id="1" tests="1" skipped="1" failures="0" errors="0">
    <testcase package="generic/1" classname="Sends a client connection preface" time="0.0000">
      <skipped></skipped>
    </testcase>
  </testsuite>
</testsuites>"#;
    let cases = parse_report(xml);
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[0].id, "http2/5.1/1");
    assert_eq!(cases[0].outcome, Outcome::Passed);
    assert_eq!(cases[1].id, "http2/5.1/2");
    assert_eq!(cases[1].desc, r#"idle: Sends a "RST_STREAM" frame"#);
    assert_eq!(
        cases[1].outcome,
        Outcome::Failed(
            "Expect:\nGOAWAY Frame (Error Code: PROTOCOL_ERROR)\nActual:\nTimeout".into()
        )
    );
    assert_eq!(cases[2].id, "generic/1/1");
    assert_eq!(cases[2].outcome, Outcome::Skipped);
}
