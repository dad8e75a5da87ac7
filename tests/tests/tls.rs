//! HTTPS end to end: the real `tollgate-proxy` in standalone mode with its TLS listener,
//! certificates and truststores from Secrets in the resource files, driven by real clients
//! (a rustls client that reports its handshake, curl, `openssl s_client`).
//!
//! - SNI picks the custom domain's certificate (exact, then a one-label wildcard), else the
//!   default certificate, else the handshake is refused.
//! - TLS policies: `TLS_1_3` refuses TLS 1.2; `TLS_1_2` refuses non-AEAD suites.
//! - ALPN: h2 and http/1.1; base path mappings over HTTPS.
//! - Mutual TLS: trusted client certificates pass (their fields reach the backend), untrusted
//!   ones get 403, none fails the handshake; another domain's handshake is 421; plain HTTP 403.
//! - Redirects to HTTPS; rotation of a domain's Secret and of the default certificate's files
//!   under load, with no failed request; a certificate whose key does not match leaves the
//!   other domains serving.
//!
//! Needs the binary: `cargo build --workspace --bins` before
//! `cargo test -p tollgate-tests --test tls`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client;
use tollgate_tests::config::{gateway, http, mock, route};
use tollgate_tests::proxy::{Served, free_port, serve};
use tollgate_tests::tls::{Ca, Issued, Sender, TlsClient, get, tls_secret, truststore_secret};
use tollgate_tests::wait::{eventually, eventually_async};

const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;

/// The server certificates, the client CA and the proxy serving them.
struct Site {
    ca: Ca,
    client_ca: Ca,
    api: Issued,
    shop: Issued,
    strict: Issued,
    mtls: Issued,
    default: Issued,
    backend: Backend,
    served: Served,
    tls: SocketAddr,
    /// Holds the default certificate's files.
    dir: tempfile::TempDir,
}

/// Gateway `shop` (stages `dev` and `prod`, each naming itself in `GET /whoami`) with four
/// custom domains: api.example.com (`""` -> prod, `v1/orders` -> dev), *.shop.example (dev),
/// strict.example.com (TLS_1_3, dev) and mtls.example.com (mutual TLS, dev); `ANY /echo` goes
/// to an echo backend.
fn resources(certs: &[(&str, &Issued)], client_ca: &Ca, backend: &Backend) -> Vec<Value> {
    let mut gw = gateway(
        "shop",
        json!([
            {"name": "dev", "variables": {"name": "dev"}},
            {"name": "prod", "variables": {"name": "prod"}},
        ]),
    );
    gw["spec"]["domains"] = json!([
        {"hostname": "api.example.com", "certificateSecretRef": {"name": "api"},
         "basePathMappings": [{"basePath": "", "stage": "prod"}, {"basePath": "v1/orders", "stage": "dev"}]},
        {"hostname": "*.shop.example", "certificateSecretRef": {"name": "shop"},
         "basePathMappings": [{"basePath": "", "stage": "dev"}]},
        {"hostname": "strict.example.com", "certificateSecretRef": {"name": "strict"},
         "securityPolicy": "TLS_1_3", "basePathMappings": [{"basePath": "", "stage": "dev"}]},
        {"hostname": "mtls.example.com", "certificateSecretRef": {"name": "mtls"},
         "mutualTls": {"truststoreSecretRef": {"name": "client-ca"}},
         "basePathMappings": [{"basePath": "", "stage": "dev"}]},
    ]);
    let mut out = vec![
        gw,
        route(
            "whoami",
            "shop",
            "GET",
            "/whoami",
            mock(200, r#"{"stage":"${stageVariables.name}"}"#),
        ),
        route("echo", "shop", "ANY", "/echo", http(&backend.url("/echo"))),
        truststore_secret("client-ca", &client_ca.pem),
    ];
    for (name, issued) in certs {
        out.push(tls_secret(name, issued));
    }
    out
}

impl Site {
    fn start() -> Site {
        Self::start_with(true)
    }

    fn start_with(default_certificate: bool) -> Site {
        let ca = Ca::new("Tollgate test server CA");
        let client_ca = Ca::new("Tollgate test client CA");
        let api = ca.server(&["api.example.com"]);
        let shop = ca.server(&["*.shop.example"]);
        let strict = ca.server(&["strict.example.com"]);
        let mtls = ca.server(&["mtls.example.com"]);
        let default = ca.server(&["unknown.example.net", "deep.a.shop.example", "127.0.0.1"]);
        let backend = Backend::echo();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.crt"), &default.cert_pem).unwrap();
        std::fs::write(dir.path().join("default.key"), &default.key_pem).unwrap();
        let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let certs = [
            ("api", &api),
            ("shop", &shop),
            ("strict", &strict),
            ("mtls", &mtls),
        ];
        let tls_arg = tls.to_string();
        let cert_arg = dir.path().join("default.crt").display().to_string();
        let key_arg = dir.path().join("default.key").display().to_string();
        let mut args = vec!["--tls-listen", tls_arg.as_str()];
        if default_certificate {
            args.extend([
                "--tls-default-certificate",
                cert_arg.as_str(),
                "--tls-default-key",
                key_arg.as_str(),
            ]);
        }
        let served = serve(&resources(&certs, &client_ca, &backend), &args);
        Site {
            ca,
            client_ca,
            api,
            shop,
            strict,
            mtls,
            default,
            backend,
            served,
            tls,
            dir,
        }
    }

    /// Rewrites the resource file with another Secret `api` (api.example.com's certificate).
    fn replace_api_certificate(&self, api: &Issued) {
        let certs = [
            ("api", api),
            ("shop", &self.shop),
            ("strict", &self.strict),
            ("mtls", &self.mtls),
        ];
        self.served.config.write(
            "resources.yaml",
            &resources(&certs, &self.client_ca, &self.backend),
        );
    }

    fn client(&self) -> TlsClient {
        TlsClient::trusting(&[&self.ca.pem])
    }

    fn ca_file(&self) -> String {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, &self.ca.pem).unwrap();
        path.display().to_string()
    }

    /// curl against the TLS port with `host` resolved to it; returns (exit ok, stdout).
    fn curl(&self, host: &str, path: &str, extra: &[&str]) -> (bool, String) {
        let port = self.tls.port();
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &self.ca_file()])
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
            .args(["-w", "\n%{http_code} %{http_version}"])
            .args(extra)
            .arg(format!("https://{host}:{port}{path}"))
            .output()
            .expect("running curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `openssl s_client` with SNI `server_name` and extra flags; returns (ok, output).
    fn s_client(&self, server_name: &str, extra: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &self.tls.to_string()])
            .args(["-servername", server_name, "-brief"])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && !text.contains("alert"), text)
    }
}

/// `Some` when a line contains `needle` (for `eventually`).
fn has_line(lines: &[String], needle: &str) -> Option<()> {
    lines.iter().any(|l| l.contains(needle)).then_some(())
}

#[tokio::test]
async fn sni_picks_the_domains_certificate_then_the_default() {
    let site = Site::start();
    let client = site.client();
    for (sni, expected, what) in [
        ("api.example.com", &site.api, "exact name"),
        ("a.shop.example", &site.shop, "wildcard, one label"),
        (
            "deep.a.shop.example",
            &site.default,
            "wildcard covers one label only",
        ),
        ("unknown.example.net", &site.default, "no custom domain"),
        ("strict.example.com", &site.strict, "exact name"),
    ] {
        let (_, handshake) = client.connect(site.tls, sni).await.unwrap();
        assert!(
            handshake.leaf == expected.der,
            "{sni} ({what}): wrong certificate"
        );
    }
    // No SNI at all (an IP address): the default certificate.
    let (_, handshake) = client.connect(site.tls, "127.0.0.1").await.unwrap();
    assert!(handshake.leaf == site.default.der, "no SNI");

    // Real clients agree: curl verifies the chain and name, openssl shows the subject.
    let (ok, out) = site.curl("api.example.com", "/whoami", &[]);
    assert!(ok, "curl: {out}");
    assert!(out.starts_with(r#"{"stage":"prod"}"#), "{out}");
    let (ok, out) = site.s_client("b.shop.example", &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("CN=*.shop.example") || out.contains("CN = *.shop.example"),
        "{out}"
    );
}

#[tokio::test]
async fn without_a_default_certificate_unknown_names_are_refused() {
    let site = Site::start_with(false);
    let client = site.client();
    let refused = client.connect(site.tls, "unknown.example.net").await;
    assert!(
        refused.is_err(),
        "a name no domain serves must not get a certificate"
    );
    let (_, handshake) = client.connect(site.tls, "api.example.com").await.unwrap();
    assert!(handshake.leaf == site.api.der);
    let metrics = site.served.admin_get("/metrics").text();
    assert!(
        metrics.contains("tollgate_tls_handshake_failures_total 1"),
        "{metrics}"
    );
    // Each domain's certificate expiry, for alerts (rcgen's default: the year 4096).
    for domain in ["api.example.com", "*.shop.example", "mtls.example.com"] {
        let prefix = format!(
            "tollgate_tls_certificate_expiry_timestamp_seconds{{domain=\"{domain}\",gateway=\"default/shop\"}} "
        );
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no expiry for {domain}: {metrics}"));
        let at: i64 = line[prefix.len()..].parse().unwrap();
        assert_eq!(at, 67_090_118_400, "4096-01-01T00:00:00Z: {line}");
    }
}

#[tokio::test]
async fn tls_policies_refuse_what_they_exclude() {
    let site = Site::start();
    // TLS_1_3 refuses a TLS 1.2 client; TLS_1_2 admits it.
    let tls12 = TlsClient::tls12_only(&[&site.ca.pem]);
    assert!(tls12.connect(site.tls, "strict.example.com").await.is_err());
    let (_, handshake) = tls12.connect(site.tls, "api.example.com").await.unwrap();
    assert_eq!(handshake.version, rustls::ProtocolVersion::TLSv1_2);
    let (_, handshake) = site
        .client()
        .connect(site.tls, "strict.example.com")
        .await
        .unwrap();
    assert_eq!(handshake.version, rustls::ProtocolVersion::TLSv1_3);

    // openssl, the same, and TLS 1.2 offers AEAD suites only.
    let (ok, out) = site.s_client("strict.example.com", &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 to a TLS_1_3 domain: {out}");
    let (ok, out) = site.s_client("strict.example.com", &["-tls1_3"]);
    assert!(ok, "{out}");
    let (ok, out) = site.s_client(
        "api.example.com",
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(ok, "an AEAD suite: {out}");
    for cbc in ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"] {
        let (ok, out) = site.s_client("api.example.com", &["-tls1_2", "-cipher", cbc]);
        assert!(!ok, "{cbc} is not AEAD and must be refused: {out}");
    }
    // curl, capped at TLS 1.2, cannot reach the TLS_1_3 domain.
    let (ok, out) = site.curl("strict.example.com", "/whoami", &["--tls-max", "1.2"]);
    assert!(!ok, "{out}");
}

/// A request line too long for the head limit, over HTTP/1.1 on TLS: 414 with Amazon's body,
/// as on the plain listener (hyper alone could only say 431).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_too_long_over_https_gets_414() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = Site::start();
    // HTTP/1.1 only (this client offers no h2); api.example.com asks for no certificate.
    let http1_only = TlsClient::with_client_cert(&[&site.ca.pem], &site.client_ca.client("c", "o"));
    let (mut stream, handshake) = http1_only
        .connect(site.tls, "api.example.com")
        .await
        .unwrap();
    assert_eq!(handshake.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let request = format!(
        "GET /v1/hello?q={} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let response = client::read_response(&mut answer.as_slice()).expect("an answer");
    assert_eq!(
        (response.status, response.json()),
        (414, json!({"message": "Request-URI Too Long"}))
    );
}

#[tokio::test]
async fn alpn_chooses_http2_or_http1_and_base_paths_map_to_stages() {
    let site = Site::start();
    let client = site.client();
    let (response, handshake) = client
        .get(site.tls, "api.example.com", "api.example.com", "/whoami")
        .await
        .unwrap();
    assert_eq!(handshake.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(response.text(), r#"{"stage":"prod"}"#);
    let (response, _) = client
        .get(
            site.tls,
            "api.example.com",
            "api.example.com",
            "/v1/orders/whoami",
        )
        .await
        .unwrap();
    assert_eq!(
        response.text(),
        r#"{"stage":"dev"}"#,
        "multi-level base path"
    );
    let (response, _) = client
        .get(site.tls, "x.shop.example", "x.shop.example", "/whoami")
        .await
        .unwrap();
    assert_eq!(response.text(), r#"{"stage":"dev"}"#, "wildcard domain");

    // Over HTTP/2 the backend sees the authority as the client sent it, port included.
    let authority = format!("api.example.com:{}", site.tls.port());
    let (response, handshake) = client
        .get(site.tls, "api.example.com", &authority, "/echo")
        .await
        .unwrap();
    assert_eq!(
        (response.status, handshake.alpn.as_deref()),
        (200, Some(&b"h2"[..]))
    );
    let received = site.backend.received();
    let echo = &received.last().expect("the backend got the request").echo;
    assert_eq!(echo["headers"]["x-forwarded-host"][0], authority.as_str());
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");

    let (ok, out) = site.curl("api.example.com", "/v1/orders/whoami", &["--http2"]);
    assert!(ok && out.ends_with("200 2"), "{out}");
    let (ok, out) = site.curl("api.example.com", "/whoami", &["--http1.1"]);
    assert!(ok && out.ends_with("200 1.1"), "{out}");
    // A client that offers only http/1.0 by ALPN is served too.
    let (ok, out) = site.curl("api.example.com", "/whoami", &["--http1.0"]);
    assert!(ok && out.contains("\n200 "), "{out}");
    // The default host still works over TLS with the default certificate.
    let (ok, out) = site.curl("unknown.example.net", "/dev/whoami", &[]);
    assert!(ok && out.starts_with(r#"{"stage":"dev"}"#), "{out}");
}

#[tokio::test]
async fn mutual_tls_passes_trusted_clients_and_refuses_the_rest() {
    let site = Site::start();
    let alice = site.client_ca.client("alice", "Example Corp");
    let trusted = TlsClient::with_client_cert(&[&site.ca.pem], &alice);

    // A trusted certificate: the request reaches the backend with the certificate's fields,
    // and a client's own x-client-cert-* headers are not passed on.
    let request = http::Request::get("https://mtls.example.com/echo")
        .header("host", "mtls.example.com")
        .header("x-client-cert-subject-dn", "CN=mallory")
        .body(Bytes::new())
        .unwrap();
    let (response, _) = trusted
        .request(site.tls, "mtls.example.com", request)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let received = site.backend.received();
    // The echo backend lists each header's values.
    let headers = &received.last().expect("the backend got the request").echo["headers"];
    assert_eq!(
        headers["x-client-cert-subject-dn"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        headers["x-client-cert-subject-dn"][0],
        "CN=alice,O=Example Corp"
    );
    assert_eq!(
        headers["x-client-cert-issuer-dn"][0],
        "CN=Tollgate test client CA"
    );
    let serial = headers["x-client-cert-serial-number"][0].as_str().unwrap();
    assert!(
        serial.len() >= 2 && serial.chars().all(|c| c.is_ascii_hexdigit() || c == ':'),
        "{serial}"
    );
    let not_after = headers["x-client-cert-not-after"][0].as_str().unwrap();
    assert!(not_after.ends_with(" GMT"), "{not_after}");
    let pem = headers["x-client-cert"][0].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN%20CERTIFICATE-----"), "{pem}");

    // A certificate from a CA the truststore does not hold: 403, as Amazon API Gateway.
    let rogue = Ca::new("Rogue CA").client("alice", "Example Corp");
    let untrusted = TlsClient::with_client_cert(&[&site.ca.pem], &rogue);
    let (response, _) = untrusted
        .get(site.tls, "mtls.example.com", "mtls.example.com", "/whoami")
        .await
        .unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (403, FORBIDDEN)
    );
    eventually("the refusal's reason in the access log", || {
        has_line(
            &site.served.access_log_lines(),
            "client certificate refused",
        )
    });

    // No certificate at all: the handshake (or the first read after it) fails.
    let anonymous = site.client();
    let outcome = anonymous
        .get(site.tls, "mtls.example.com", "mtls.example.com", "/whoami")
        .await;
    assert!(outcome.is_err(), "no client certificate: {outcome:?}");

    // curl with the certificate.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), &alice.cert_pem).unwrap();
    std::fs::write(dir.path().join("c.key"), &alice.key_pem).unwrap();
    let cert = dir.path().join("c.pem").display().to_string();
    let key = dir.path().join("c.key").display().to_string();
    let (ok, out) = site.curl(
        "mtls.example.com",
        "/whoami",
        &["--cert", &cert, "--key", &key],
    );
    assert!(ok && out.starts_with(r#"{"stage":"dev"}"#), "{out}");

    // Another domain's handshake cannot carry mtls.example.com's requests: 421.
    let (response, _) = site
        .client()
        .get(site.tls, "api.example.com", "mtls.example.com", "/whoami")
        .await
        .unwrap();
    assert_eq!(response.status, 421, "{}", response.text());
    // Nor can plain HTTP.
    let response = client::get(
        &format!("http://{}/whoami", site.served.addr()),
        &[("host", "mtls.example.com")],
    )
    .await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (403, FORBIDDEN)
    );
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_when_the_gateway_asks() {
    let ca = Ca::new("Tollgate test server CA");
    let cert = ca.server(&["api.example.com"]);
    let mut gw = gateway("shop", json!([{"name": "dev"}]));
    gw["spec"]["redirectToHttps"] = json!(true);
    gw["spec"]["domains"] = json!([{"hostname": "api.example.com", "certificateSecretRef": {"name": "api"},
        "basePathMappings": [{"basePath": "", "stage": "dev"}]}]);
    let tls = free_port();
    let served = serve(
        &[
            gw,
            route("hi", "shop", "ANY", "/hi", mock(200, "{}")),
            tls_secret("api", &cert),
        ],
        &[
            "--tls-listen",
            &format!("127.0.0.1:{tls}"),
            "--https-port",
            &tls.to_string(),
        ],
    );
    let url = format!("http://{}/hi?x=1", served.addr());
    let response = client::get(&url, &[("host", "api.example.com")]).await;
    assert_eq!(response.status, 301);
    assert_eq!(
        response.header("location").as_deref(),
        Some(format!("https://api.example.com:{tls}/hi?x=1").as_str())
    );
    let response = client::request("POST", &url, &[("host", "api.example.com")], "{}").await;
    assert_eq!(response.status, 308, "a POST keeps its method and body");
    // Over HTTPS the same request is served.
    let (response, _) = TlsClient::trusting(&[&ca.pem])
        .get(
            format!("127.0.0.1:{tls}").parse().unwrap(),
            "api.example.com",
            "api.example.com",
            "/hi",
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn a_disabled_default_endpoint_closes_the_way_around_mutual_tls() {
    let ca = Ca::new("Tollgate test server CA");
    let client_ca = Ca::new("Tollgate test client CA");
    let cert = ca.server(&["mtls.example.com"]);
    let mut gw = gateway("shop", json!([{"name": "dev"}]));
    gw["spec"]["disableExecuteApiEndpoint"] = json!(true);
    gw["spec"]["domains"] = json!([{"hostname": "mtls.example.com", "certificateSecretRef": {"name": "mtls"},
        "mutualTls": {"truststoreSecretRef": {"name": "client-ca"}},
        "basePathMappings": [{"basePath": "", "stage": "dev"}]}]);
    let tls = free_port();
    let served = serve(
        &[
            gw,
            route("hi", "shop", "GET", "/hi", mock(200, "{}")),
            tls_secret("mtls", &cert),
            truststore_secret("client-ca", &client_ca.pem),
        ],
        &["--tls-listen", &format!("127.0.0.1:{tls}")],
    );
    // The default host, and any host (the proxy serves one gateway): refused.
    for host in ["shop.default.localhost", "127.0.0.1"] {
        let response = client::get(&served.url("/dev/hi"), &[("host", host)]).await;
        assert_eq!(
            (response.status, response.text().as_str()),
            (403, FORBIDDEN),
            "{host}"
        );
    }
    // The custom domain, with a client certificate: served.
    let alice = client_ca.client("alice", "Example Corp");
    let (response, _) = TlsClient::with_client_cert(&[&ca.pem], &alice)
        .get(
            format!("127.0.0.1:{tls}").parse().unwrap(),
            "mtls.example.com",
            "mtls.example.com",
            "/hi",
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

/// Requests from `workers` tasks until `stop`: half keep one connection each (keep-alive),
/// half open a new connection per request. Returns (successes, failures as messages).
async fn load(
    client: TlsClient,
    addr: SocketAddr,
    host: &'static str,
    stop: Arc<AtomicBool>,
    kept_alive_after: Arc<AtomicBool>,
    kept_alive_requests: Arc<AtomicUsize>,
) -> (usize, Vec<String>) {
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let stop = stop.clone();
        let after = kept_alive_after.clone();
        let counted = kept_alive_requests.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            let keep_alive = worker % 2 == 0;
            let mut sender = if keep_alive {
                let (stream, handshake) = client.connect(addr, host).await.unwrap();
                Some(
                    Sender::over(stream, handshake.alpn.as_deref() == Some(b"h2"))
                        .await
                        .unwrap(),
                )
            } else {
                None
            };
            while !stop.load(Ordering::Relaxed) {
                let outcome = match &mut sender {
                    Some(s) => s.send(get(host, "/whoami")).await,
                    None => client
                        .get(addr, host, host, "/whoami")
                        .await
                        .map(|(r, _)| r),
                };
                match outcome {
                    Ok(r) if r.status == 200 => {
                        ok += 1;
                        if keep_alive && after.load(Ordering::Relaxed) {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(r) => failed.push(format!("status {}: {}", r.status, r.text())),
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        }));
    }
    let mut total = (0, Vec::new());
    for task in tasks {
        let (ok, failed) = task.await.unwrap();
        total.0 += ok;
        total.1.extend(failed);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_domains_secret_under_load_fails_no_request() {
    let site = Site::start();
    let client = site.client();
    let stop = Arc::new(AtomicBool::new(false));
    let rotated = Arc::new(AtomicBool::new(false));
    let kept_alive = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(load(
        client.clone(),
        site.tls,
        "api.example.com",
        stop.clone(),
        rotated.clone(),
        kept_alive.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A new certificate for api.example.com, as cert-manager would renew it.
    let renewed = site.ca.server(&["api.example.com"]);
    site.replace_api_certificate(&renewed);
    rotated.store(true, Ordering::Relaxed);
    eventually_async("new connections to get the renewed certificate", || async {
        let (_, handshake) = client.connect(site.tls, "api.example.com").await.ok()?;
        (handshake.leaf == renewed.der).then_some(())
    })
    .await;
    // Established connections go on after the swap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = running.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests");
    assert!(
        kept_alive.load(Ordering::Relaxed) > 0,
        "connections opened before the rotation kept serving after it"
    );
    println!("rotation under load: {ok} requests, 0 failed");
}

#[tokio::test]
async fn the_default_certificate_is_reread_when_its_files_change() {
    let site = Site::start();
    let client = site.client();
    let (stream, handshake) = client
        .connect(site.tls, "unknown.example.net")
        .await
        .unwrap();
    assert!(handshake.leaf == site.default.der);
    let mut established = Sender::over(stream, handshake.alpn.as_deref() == Some(b"h2"))
        .await
        .unwrap();

    // Its expiry is a metric (rcgen's default: 4096-01-01T00:00:00Z).
    let expiry = format!(
        "tollgate_tls_default_certificate_expiry_timestamp_seconds{{certificate=\"{}\"}} ",
        site.dir.path().join("default.crt").display()
    );
    let metric = |expected: i64| {
        let metrics = site.served.admin_get("/metrics").text();
        let line = metrics.lines().find(|l| l.starts_with(&expiry));
        (line == Some(&format!("{expiry}{expected}"))).then_some(())
    };
    assert_eq!(metric(67_090_118_400), Some(()), "{expiry}");

    let renewed = site
        .ca
        .server_expiring(&["unknown.example.net"], (2031, 6, 1));
    std::fs::write(site.dir.path().join("default.key"), &renewed.key_pem).unwrap();
    std::fs::write(site.dir.path().join("default.crt"), &renewed.cert_pem).unwrap();
    eventually_async("the renewed default certificate", || async {
        let (_, handshake) = client.connect(site.tls, "unknown.example.net").await.ok()?;
        (handshake.leaf == renewed.der).then_some(())
    })
    .await;
    // 2031-06-01T00:00:00Z: the metric follows the served certificate.
    assert_eq!(metric(1_938_038_400), Some(()), "{expiry}");
    let response = established
        .send(get("unknown.example.net", "/dev/whoami"))
        .await
        .unwrap();
    assert_eq!(
        response.status, 200,
        "the connection from before the change still serves"
    );
}

#[tokio::test]
async fn a_certificate_that_does_not_match_its_key_leaves_the_others_serving() {
    let site = Site::start();
    // api's certificate with shop's key: both parse, they do not belong together.
    let mismatched = Issued {
        key_pem: site.shop.key_pem.clone(),
        ..site.api.clone()
    };
    site.replace_api_certificate(&mismatched);
    eventually("the mismatched certificate to be reported", || {
        has_line(
            &site.served.stderr_lines(),
            "custom domain not served over TLS",
        )
    });
    let client = site.client();
    // api.example.com is no longer served its own certificate; the others are untouched.
    let (_, handshake) = client.connect(site.tls, "a.shop.example").await.unwrap();
    assert!(handshake.leaf == site.shop.der);
    assert!(
        client.connect(site.tls, "api.example.com").await.is_err(),
        "the default certificate does not name api.example.com"
    );
    let (response, _) = client
        .get(site.tls, "x.shop.example", "x.shop.example", "/whoami")
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}
