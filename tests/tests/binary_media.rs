//! Binary media types on a REST API, end to end (`docs/concepts.md`, "Compression and binary
//! media types"): `tollgate-proxy` in front of the Lambda Runtime Interface Emulator running
//! `tests/lambda/functions/binary.py` (payload 1.0). A request body whose `Content-Type` is a
//! binary media type reaches the function base64-encoded, any other as text; a result's base64
//! body is decoded only for a client whose first `Accept` media type is a binary media type.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does); the emulator is built and
//! cached by `tests/lambda/build`.

use std::io::Read as _;

use serde_json::{Value, json};
use tollgate_tests::client::{Client, Response};
use tollgate_tests::config::{gateway, route};
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::{Served, free_port, serve};

/// What `binary.py`'s `image` answers: every byte value, 40 times.
fn image() -> Vec<u8> {
    (0..40).flat_map(|_| 0..=255u8).collect()
}

/// The function and three REST APIs on it, each with stage `dev` and `ANY /{proxy+}`:
/// `media` (binary media types `image/png` and `application/*`, compression from 100 bytes),
/// `text` (none) and `every` (`*/*`).
struct Apis {
    _runtime: LambdaRuntime,
    proxy: Served,
    client: Client,
}

impl Apis {
    fn start() -> Self {
        let runtime = LambdaRuntime::start_example(
            "tests/lambda/functions",
            "binary.handler",
            free_port(),
            &[],
        );
        let lambda = json!({"lambda": {
            "endpoint": runtime.endpoint(),
            "functionName": "function",
            "payloadFormatVersion": "1.0",
            "maxConcurrency": 1,
        }});
        let mut media = gateway("media", json!([{"name": "dev"}]));
        media["spec"]["binaryMediaTypes"] = json!(["image/png", "application/*"]);
        media["spec"]["minimumCompressionSize"] = json!(100);
        let text = gateway("text", json!([{"name": "dev"}]));
        let mut every = gateway("every", json!([{"name": "dev"}]));
        every["spec"]["binaryMediaTypes"] = json!(["*/*"]);
        let proxy = serve(
            &[
                media,
                text,
                every,
                route("media-proxy", "media", "ANY", "/{proxy+}", lambda.clone()),
                route("text-proxy", "text", "ANY", "/{proxy+}", lambda.clone()),
                route("every-proxy", "every", "ANY", "/{proxy+}", lambda),
            ],
            &[],
        );
        Self {
            _runtime: runtime,
            proxy,
            client: Client::new(),
        }
    }

    async fn call(
        &self,
        api: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let url = self.proxy.url(&format!("/dev/{path}"));
        let host = format!("{api}.default.localhost");
        let mut all = vec![("host", host.as_str())];
        all.extend_from_slice(headers);
        self.client.request(method, &url, &all, body).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upload_reaches_the_function_base64_and_comes_back_byte_identical() {
    let apis = Apis::start();
    let upload = image();
    let r = apis
        .call(
            "media",
            "POST",
            "echo",
            &[("content-type", "image/png"), ("accept", "image/png")],
            upload.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-event-base64").as_deref(), Some("true"));
    assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        &r.body[..],
        &upload[..],
        "the upload comes back byte for byte"
    );

    // `application/*` takes `application/octet-stream`.
    let r = apis
        .call(
            "media",
            "POST",
            "echo",
            &[
                ("content-type", "application/octet-stream"),
                ("accept", "application/octet-stream"),
            ],
            upload.clone(),
        )
        .await;
    assert_eq!(r.header("x-event-base64").as_deref(), Some("true"));
    assert_eq!(&r.body[..], &upload[..]);

    // What the function saw: base64 of the bytes.
    let event: Value = apis
        .call(
            "media",
            "POST",
            "event",
            &[("content-type", "image/png")],
            vec![0, 159, 146, 150],
        )
        .await
        .json();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AJ+Slg==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_another_type_reaches_the_function_as_text() {
    let apis = Apis::start();
    let event: Value = apis
        .call(
            "media",
            "POST",
            "event",
            &[("content-type", "application/json")],
            br#"{"name":"Rex"}"#.to_vec(),
        )
        .await
        .json();
    // `application/*` would take it; JSON is not special to a REST API: base64.
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "eyJuYW1lIjoiUmV4In0=");

    let event: Value = apis
        .call(
            "media",
            "POST",
            "event",
            &[("content-type", "text/plain")],
            b"plain words".to_vec(),
        )
        .await
        .json();
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["body"], "plain words");

    // No binary media types: a PNG is text too, as on Amazon (bytes that are not UTF-8 are
    // replaced: the reason to declare the type).
    let event: Value = apis
        .call(
            "text",
            "POST",
            "event",
            &[("content-type", "image/png")],
            vec![b'P', b'N', b'G', 0xff],
        )
        .await
        .json();
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["body"], "PNG\u{fffd}");

    // `*/*`: everything is binary, a body without a content type included.
    let event: Value = apis
        .call("every", "POST", "event", &[], b"plain words".to_vec())
        .await
        .json();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "cGxhaW4gd29yZHM=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base64_result_is_decoded_only_for_a_binary_accept() {
    let apis = Apis::start();
    let bytes = image();
    let base64_text = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    };

    for accept in ["image/png", "image/png;q=0.9, text/html", "IMAGE/PNG"] {
        let r = apis
            .call("media", "GET", "image", &[("accept", accept)], Vec::new())
            .await;
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(&r.body[..], &bytes[..], "{accept}: decoded");
    }
    // Amazon honours the first media type of `Accept` only; `*/*` and no header are not
    // binary; the function's content type does not count.
    for accept in [
        Some("*/*"),
        Some("text/html, image/png"),
        Some("image/*"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let r = apis
            .call("media", "GET", "image", &headers, Vec::new())
            .await;
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.text(), base64_text, "{accept:?}: the base64 text");
        assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    }
    // An API without binary media types never decodes.
    let r = apis
        .call(
            "text",
            "GET",
            "image",
            &[("accept", "image/png")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.text(), base64_text);
    // `*/*` decodes for every client.
    let r = apis.call("every", "GET", "image", &[], Vec::new()).await;
    assert_eq!(&r.body[..], &bytes[..]);
    // The flag as the string "true" (payload 1.0 takes it) decodes the same way.
    let r = apis
        .call(
            "media",
            "GET",
            "image-string-flag",
            &[("accept", "image/png")],
            Vec::new(),
        )
        .await;
    assert_eq!(&r.body[..], &bytes[..]);
    let r = apis
        .call("media", "GET", "image-string-flag", &[], Vec::new())
        .await;
    assert_eq!(r.text(), base64_text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoded_binary_answer_is_compressed_too() {
    let apis = Apis::start();
    let r = apis
        .call(
            "media",
            "GET",
            "image",
            &[("accept", "image/png"), ("accept-encoding", "gzip")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    assert!(r.body.len() < image().len() / 4, "{} bytes", r.body.len());
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut decoded)
        .expect("valid gzip");
    assert_eq!(decoded, image());
}
