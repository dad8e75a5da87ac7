//! Stage access-log formats (`accessLogSettings`): Amazon's console presets and custom formats
//! over `$context` variables, written by the real proxy for real requests to a real backend;
//! values a client controls cannot forge lines; the file destination rotates without splitting
//! or losing a line; a format that would log the API key refuses its gateway, not the others.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};
use tollgate_tests::backend::{Backend, RawBackend, read_head};
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, gateway, http, mock, route};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::eventually;

use crate::serve;

/// The access-log line holding `request_id`, once it is written.
fn line_of(proxy: &Proxy, request_id: &str) -> String {
    eventually(&format!("the access log line of {request_id}"), || {
        proxy
            .access_log_lines()
            .into_iter()
            .find(|l| l.contains(request_id))
    })
}

fn stage(name: &str, settings: Value) -> Value {
    json!({"name": name, "accessLogSettings": settings})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_preset_writes_amazons_line() {
    let backend = Backend::echo();
    let mut http_api = gateway("hapi", json!([stage("$default", json!({"preset": "CLF"}))]));
    http_api["spec"]["protocol"] = json!("HTTP");
    let proxy = serve(
        &[
            gateway(
                "pets",
                json!([
                    stage("clf", json!({"preset": "CLF"})),
                    stage("json", json!({"preset": "JSON"})),
                    stage("xml", json!({"preset": "XML"})),
                    stage("csv", json!({"preset": "CSV"})),
                ]),
            ),
            route(
                "pet",
                "pets",
                "GET",
                "/pets/{id}",
                http(&backend.url("/pets/{id}")),
            ),
            http_api,
            route(
                "hpet",
                "hapi",
                "GET",
                "/pets/{id}",
                http(&backend.url("/pets/{id}")),
            ),
        ],
        &[],
    );
    let client = Client::new();
    let get = |stage: &str| {
        let url = proxy.url(&format!("/{stage}/pets/42"));
        let client = &client;
        async move {
            let r = client
                .get(
                    &url,
                    &[
                        ("Host", "pets.default.localhost"),
                        ("User-Agent", "e2e/1.0"),
                    ],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            (r.header("x-amzn-requestid").unwrap(), r.body.len())
        }
    };

    // CLF: `ip caller user [time]"method resourcePath protocol" status length id extendedId`.
    let (id, len) = get("clf").await;
    let line = line_of(&proxy, &id);
    let (head, rest) = line.split_once(" [").unwrap();
    assert_eq!(head, "127.0.0.1 - -", "{line}");
    let (time, rest) = rest.split_once(']').unwrap();
    assert!(time.len() == 26 && time.ends_with(" +0000"), "{line}");
    assert_eq!(
        rest,
        format!("\"GET /pets/{{id}} HTTP/1.1\" 200 {len} {id} {id}"),
        "{line}"
    );

    let (id, len) = get("json").await;
    let json: Value = serde_json::from_str(&line_of(&proxy, &id)).unwrap();
    assert_eq!(json["requestId"], id.as_str());
    assert_eq!(json["extendedRequestId"], id.as_str());
    assert_eq!(json["ip"], "127.0.0.1");
    assert_eq!(json["caller"], "-");
    assert_eq!(json["user"], "-");
    assert_eq!(json["httpMethod"], "GET");
    assert_eq!(json["resourcePath"], "/pets/{id}");
    assert_eq!(json["status"], "200");
    assert_eq!(json["protocol"], "HTTP/1.1");
    assert_eq!(json["responseLength"], len.to_string());

    let (id, len) = get("xml").await;
    let line = line_of(&proxy, &id);
    assert!(
        line.starts_with(&format!("<request id=\"{id}\"> ")),
        "{line}"
    );
    for part in [
        "<ip>127.0.0.1</ip>".to_string(),
        "<httpMethod>GET</httpMethod>".into(),
        "<resourcePath>/pets/{id}</resourcePath>".into(),
        "<status>200</status>".into(),
        format!("<responseLength>{len}</responseLength>"),
    ] {
        assert!(line.contains(&part), "{part} in {line}");
    }
    assert!(line.ends_with("</request>"), "{line}");

    let (id, len) = get("csv").await;
    let line = line_of(&proxy, &id);
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields.len(), 11, "{line}");
    assert_eq!(
        (fields[0], fields[4], fields[5], fields[7], fields[9]),
        ("127.0.0.1", "GET", "/pets/{id}", "200", id.as_str()),
        "{line}"
    );
    assert_eq!(fields[8], len.to_string());

    // An HTTP API's preset names the route key.
    let r = client
        .get(&proxy.url("/pets/7"), &[("Host", "hapi.default.localhost")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-amzn-requestid").unwrap();
    let line = line_of(&proxy, &id);
    assert!(
        line.starts_with("127.0.0.1 - - [")
            && line.ends_with(&format!(
                "] \"GET GET /pets/{{id}} HTTP/1.1\" 200 {} {id}",
                r.body.len()
            )),
        "{line}"
    );
}

/// A User-Agent full of quotes, tags, commas and a tab is escaped for each kind of format: the
/// request's line stays one line, with the structure the format gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_agent_cannot_forge_log_structure() {
    let proxy = serve(
        &[
            gateway(
                "esc",
                json!([
                    stage(
                        "json",
                        json!({"format": r#"{"id":"$context.requestId","ua":"$context.identity.userAgent","s":$context.status}"#})
                    ),
                    stage(
                        "xml",
                        json!({"format": r#"<r id="$context.requestId"><ua a="$context.identity.userAgent">$context.identity.userAgent</ua></r>"#})
                    ),
                    stage(
                        "csv",
                        json!({"format": "$context.requestId,$context.identity.userAgent,$context.status"})
                    ),
                    stage(
                        "clf",
                        json!({"format": r#"$context.requestId "$context.identity.userAgent" $context.status"#})
                    ),
                ]),
            ),
            route("ok", "esc", "GET", "/ok", mock(200, "{}")),
        ],
        &[],
    );
    let attack = "x\", \"admin\":true, \"</ua><ip>6.6.6.6</ip>,evil,\"\t\\ \"end";
    let client = Client::new();
    let mut ids = Vec::new();
    for stage in ["json", "xml", "csv", "clf"] {
        let r = client
            .get(
                &proxy.url(&format!("/{stage}/ok")),
                &[("User-Agent", attack)],
            )
            .await;
        assert_eq!(r.status, 200);
        ids.push(r.header("x-amzn-requestid").unwrap());
    }

    let json: Value = serde_json::from_str(&line_of(&proxy, &ids[0])).unwrap();
    assert_eq!(json, json!({"id": ids[0], "ua": attack, "s": 200}));

    let xml = line_of(&proxy, &ids[1]);
    assert_eq!(xml.matches('<').count(), 4, "{xml}");
    assert_eq!(xml.matches('"').count(), 4, "{xml}");
    assert!(
        xml.contains("&lt;/ua&gt;&lt;ip&gt;6.6.6.6&lt;/ip&gt;"),
        "{xml}"
    );

    let csv = line_of(&proxy, &ids[2]);
    let fields = csv_fields(&csv);
    assert_eq!(fields.len(), 3, "{csv}");
    assert_eq!(fields[1], attack.replace('\t', "\\t"), "{csv}");
    assert_eq!(fields[2], "200");

    let clf = line_of(&proxy, &ids[3]);
    assert_eq!(
        clf,
        format!(
            "{} \"{}\" 200",
            ids[3],
            attack
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\t', "\\t")
        )
    );

    // One line per request, no more.
    let lines = eventually("four lines", || {
        let lines = proxy.access_log_lines();
        (lines.len() >= 4).then_some(lines)
    });
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

/// Splits a CSV line as a reader would: quoted fields with doubled quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// An authorizer on 127.0.0.1 that allows every request as `user-7` of tenant `acme`.
fn allowing_authorizer() -> RawBackend {
    RawBackend::start(|mut stream| {
        let Ok((head, mut body)) = read_head(&mut stream) else {
            return;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut chunk = [0u8; 4096];
        while body.len() < length {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let answer = json!({
            "principalId": "user-7",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}
            ]},
            "context": {"tenant": "acme", "n": 3},
        })
        .to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_format_logs_the_authorizers_values() {
    let backend = Backend::echo();
    let auth = allowing_authorizer();
    let format = r#"{"requestId":"$context.requestId","principal":"$context.authorizer.principalId","tenant":"$context.authorizer.tenant","n":"$context.authorizer.n","status":$context.status,"integrationStatus":$context.integrationStatus,"errorType":"$context.error.responseType","error":$context.error.messageString,"resourcePath":"$context.resourcePath","apiId":"$context.apiId","stage":"$context.stage","traceId":"$context.traceId"}"#;
    let mut gw = gateway("authz", json!([stage("dev", json!({"format": format}))]));
    gw["spec"]["authorizers"] = json!([{
        "name": "tokens",
        "type": "TOKEN",
        "identitySource": ["$request.header.Authorization"],
        "http": {"url": auth.url("/authorize")},
        "resultTtlSeconds": 0,
    }]);
    let mut guarded = route(
        "pet",
        "authz",
        "GET",
        "/pets/{id}",
        http(&backend.url("/pets/{id}")),
    );
    guarded["spec"]["authorizer"] = json!("tokens");
    let proxy = serve(&[gw, guarded], &[]);
    let client = Client::new();

    let r = client
        .get(
            &proxy.url("/dev/pets/1"),
            &[("Authorization", "Bearer secret-token-value")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-amzn-requestid").unwrap();
    let json: Value = serde_json::from_str(&line_of(&proxy, &id)).unwrap();
    assert_eq!(
        json,
        json!({"requestId": id, "principal": "user-7", "tenant": "acme", "n": "3",
               "status": 200, "integrationStatus": 200, "errorType": "-", "error": "-",
               "resourcePath": "/pets/{id}", "apiId": "default/authz", "stage": "dev",
               "traceId": "-"})
    );

    // Refused before the authorizer: no identity, the gateway response's type and message.
    let r = client.get(&proxy.url("/dev/pets/1"), &[]).await;
    assert_eq!(r.status, 401);
    let id = r.header("x-amzn-requestid").unwrap();
    let json: Value = serde_json::from_str(&line_of(&proxy, &id)).unwrap();
    assert_eq!(json["principal"], "-");
    assert_eq!(json["status"], 401);
    assert_eq!(json["integrationStatus"], "-");
    assert_eq!(json["errorType"], "UNAUTHORIZED");
    assert_eq!(json["error"], "Unauthorized");

    // The token itself is never in the access log.
    assert!(
        proxy
            .access_log_lines()
            .iter()
            .all(|l| !l.contains("secret-token-value"))
    );
}

/// `--access-log file`: lines go to the file, rotated by size; each file holds whole lines,
/// the kept ones are the newest in order, and the oldest file is dropped past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_destination_rotates_whole_lines() {
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("access.log");
    let path_arg = path.to_str().unwrap().to_string();
    let proxy = serve(
        &[
            gateway("rot", json!([stage("dev", json!({"preset": "CLF"}))])),
            route("ok", "rot", "GET", "/ok", mock(200, "{}")),
        ],
        &[
            "--access-log",
            "file",
            "--access-log-file",
            &path_arg,
            "--access-log-max-bytes",
            "1000",
            "--access-log-max-files",
            "3",
        ],
    );
    let client = Client::new();
    let mut ids = Vec::new();
    for _ in 0..60 {
        let r = client.get(&proxy.url("/dev/ok"), &[]).await;
        assert_eq!(r.status, 200);
        ids.push(r.header("x-amzn-requestid").unwrap());
    }
    let last = ids.last().unwrap().clone();
    eventually("the last line in the file", || {
        std::fs::read_to_string(&path)
            .ok()?
            .contains(&last)
            .then_some(())
    });
    assert!(proxy.access_log_lines().is_empty(), "nothing on stdout");

    let numbered = |n: u32| logs.path().join(format!("access.log.{n}"));
    assert!(!numbered(4).exists(), "three rotated files at most");
    let mut kept = Vec::new();
    for file in [numbered(3), numbered(2), numbered(1), path.clone()] {
        let text = read(&file);
        assert!(
            text.len() <= 1000,
            "{} has {} bytes",
            file.display(),
            text.len()
        );
        assert!(text.ends_with('\n'), "{} ends mid-line", file.display());
        for line in text.lines() {
            // A whole CLF line: `127.0.0.1 - - [...]"GET /ok HTTP/1.1" 200 2 id id`.
            let fields: Vec<&str> = line.split(' ').collect();
            assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
            assert_eq!(fields.len(), 11, "{line}");
            assert_eq!(fields[9], fields[10], "{line}");
            kept.push(fields[9].to_string());
        }
    }
    // The newest lines, in order, none missing: the dropped ones are the oldest file's.
    assert!(
        kept.len() > 10 && kept.len() < ids.len(),
        "{} kept",
        kept.len()
    );
    assert_eq!(kept, ids[ids.len() - kept.len()..]);
    let metrics = proxy.admin_get("/metrics").text();
    assert!(
        metrics.contains("tollgate_access_log_dropped_total 0"),
        "no line was dropped on the way"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A format that would log the API key refuses its stage (and so a gateway with no other),
/// with a condition that says why; the other gateways keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_logging_the_api_key_refuses_only_its_gateway() {
    let dir = ConfigDir::with(
        "resources.yaml",
        &[
            gateway("good", json!([stage("dev", json!({"preset": "JSON"}))])),
            route("good-ok", "good", "GET", "/ok", mock(200, "{}")),
            // Two gateways served, so hosts are told apart (one alone answers any host).
            gateway("other", json!([{"name": "dev"}])),
            route("other-ok", "other", "GET", "/ok", mock(200, "{}")),
            gateway(
                "leaky",
                json!([stage(
                    "dev",
                    json!({"format": "$context.requestId $context.identity.apiKey"})
                )]),
            ),
            route("leaky-ok", "leaky", "GET", "/ok", mock(200, "{}")),
        ],
    );
    let proxy = Proxy::start_standalone(dir.path(), &[]);
    let client = Client::new();

    let good = client
        .get(&proxy.url("/dev/ok"), &[("Host", "good.default.localhost")])
        .await;
    assert_eq!(good.status, 200);
    let other = client
        .get(
            &proxy.url("/dev/ok"),
            &[("Host", "other.default.localhost")],
        )
        .await;
    assert_eq!(other.status, 200);
    let leaky = client
        .get(
            &proxy.url("/dev/ok"),
            &[("Host", "leaky.default.localhost")],
        )
        .await;
    assert_eq!(leaky.status, 403, "the refused gateway is not served");

    let report = proxy.config_report();
    let diagnostic = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["resource"]["kind"] == "ApiGateway" && d["resource"]["name"] == "leaky")
        .cloned()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(diagnostic["accepted"], false, "{diagnostic}");
    let problem = diagnostic["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == "spec.stages[0].accessLogSettings.format")
        .unwrap_or_else(|| panic!("{diagnostic}"));
    assert_eq!(problem["reason"], "InvalidStage");
    let message = problem["message"].as_str().unwrap();
    assert!(
        message.contains("would log the API key") && message.contains("$context.identity.apiKeyId"),
        "{message}"
    );
    // The proxy's own log says it too.
    eventually("the refusal in the proxy's log", || {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("accessLogSettings.format") && l.contains("apiKeyId"))
            .then_some(())
    });
}
