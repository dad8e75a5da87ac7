//! Paths a backend would resolve elsewhere: dot-segments, encoded separators and backslashes,
//! plain or encoded, in a greedy or single parameter, are refused with 400 before anything is
//! forwarded, so `/files/{proxy+}` -> `/public/{proxy}` never serves outside `public/`.

use serde_json::json;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::raw_exchange;
use tollgate_tests::config::{dev_gateway, http, route};
use tollgate_tests::wait::eventually;

use crate::serve;

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: files.default.localhost\r\nConnection: close\r\n\r\n")
}

#[test]
fn dot_segments_and_encoded_slashes_never_reach_the_backend() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("files"),
            route(
                "files",
                "files",
                "GET",
                "/files/{proxy+}",
                http(&backend.url("/public/{proxy}")),
            ),
            route(
                "doc",
                "files",
                "GET",
                "/docs/{name}",
                http(&backend.url("/public/docs/{name}")),
            ),
        ],
        &[],
    );

    // What the route is for: files under public/.
    let served = raw_exchange(proxy.addr(), get("/dev/files/reports/q3.v2.pdf").as_bytes());
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.json()["path"], "/public/reports/q3.v2.pdf");
    let dotted_name = raw_exchange(proxy.addr(), get("/dev/docs/.profile").as_bytes());
    assert_eq!(
        dotted_name.status, 200,
        "a name that starts with a dot is no dot-segment"
    );

    for (path, message) in [
        ("/dev/files/../secret", "dot-segments"),
        ("/dev/files/a/../../secret", "dot-segments"),
        ("/dev/files/%2e%2e/secret", "dot-segments"),
        ("/dev/files/.%2E/secret", "dot-segments"),
        ("/dev/files/./secret", "dot-segments"),
        ("/dev/files/%252e%252e/secret", "dot-segments"),
        ("/dev/docs/..", "dot-segments"),
        ("/dev/files/..%2fsecret", "encoded '/'"),
        ("/dev/files/..%2F..%2Fsecret", "encoded '/'"),
        ("/dev/files/..%5csecret", "encoded '/'"),
        ("/dev/docs/..%2fsecret", "encoded '/'"),
        ("/dev/files/..\\secret", "'\\' is not allowed"),
    ] {
        let response = raw_exchange(proxy.addr(), get(path).as_bytes());
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        let body = response.json();
        let text = body["message"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("Invalid request path") && text.contains(message),
            "{path}: {body}"
        );
        assert_eq!(
            response.header("x-amzn-errortype").as_deref(),
            Some("BadRequestException")
        );
    }
    let forwarded: Vec<_> = backend
        .received()
        .iter()
        .map(|r| r.echo["path"].clone())
        .collect();
    assert_eq!(
        forwarded,
        vec![
            json!("/public/reports/q3.v2.pdf"),
            json!("/public/docs/.profile")
        ],
        "only the two clean paths reach the backend"
    );

    eventually("every refusal in the access log", || {
        let refused = proxy
            .access_log()
            .iter()
            .filter(|line| line["status"] == 400)
            .count();
        (refused == 12).then_some(())
    });
}
