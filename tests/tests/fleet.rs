//! Fleet mode end to end: the real `tollgate-proxy` binary subscribed to an in-process fake
//! controller that speaks the snapshot protocol (`tollgate_crds::snapshot`) and pushes real
//! compiled tables. Each test starts its own controller, proxies and folders.
//!
//! Needs the binary: `cargo build --workspace --bins` before `cargo test -p tollgate-tests`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tollgate_crds::table::GatewayTable;
use tollgate_tests::client::Client;
use tollgate_tests::config::{dev_gateway, mock, route};
use tollgate_tests::fake_controller::{FakeController, table_of};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::{eventually, eventually_async};

const TOKEN: &str = "proxy-sa-token";
const GATEWAY: &str = "app";
const GATEWAY_ARG: &str = "default/app";

/// A gateway `app` with stage `dev` and one mock route per `(path, body)`.
fn table(routes: &[(&str, &str)]) -> GatewayTable {
    let mut resources: Vec<Value> = vec![dev_gateway(GATEWAY)];
    for (i, (path, body)) in routes.iter().enumerate() {
        resources.push(route(
            &format!("route-{i}"),
            GATEWAY,
            "GET",
            path,
            mock(200, body),
        ));
    }
    table_of(&resources, GATEWAY)
}

/// A temporary folder holding the state directory and the token file.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new(token: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-fleet-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let folder = Self { dir };
        folder.set_token(token);
        folder
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    /// Replaces the token, as the kubelet rotates it (write, then rename).
    fn set_token(&self, token: &str) {
        let staging = self.dir.path().join(".token.tmp");
        std::fs::write(&staging, token).unwrap();
        std::fs::rename(&staging, self.token_file()).unwrap();
    }

    fn persisted(&self) -> Option<GatewayTable> {
        let bytes = std::fs::read(self.state_dir().join("table.json")).ok()?;
        Some(serde_json::from_slice(&bytes).expect("table.json is a table"))
    }
}

fn start_proxy(controller_url: &str, folder: &Folder) -> Proxy {
    Proxy::start_fleet(
        controller_url,
        GATEWAY_ARG,
        &folder.state_dir(),
        &folder.token_file(),
        &[],
    )
}

/// GETs `path` until it answers 200 with `body`; returns how long that took from `since`.
async fn until_served(client: &Client, proxy: &Proxy, path: &str, body: &str) -> Duration {
    eventually_async(&format!("{path} to answer 200 {body}"), || async {
        let r = client.send("GET", &proxy.url(path), &[], "").await.ok()?;
        (r.status == 200 && r.text() == body).then_some(())
    })
    .await;
    proxy.started_at().elapsed()
}

/// Waits for the controller to receive an answer about `version` from `proxy_id` (any proxy
/// if `None`).
fn until_answered(
    controller: &FakeController,
    version: &str,
    proxy_id: Option<&str>,
) -> tollgate_crds::snapshot::Ack {
    eventually(&format!("an ACK or NACK of version {version}"), || {
        controller
            .acks()
            .into_iter()
            .find(|a| a.version == version && proxy_id.is_none_or(|id| a.proxy_id == id))
    })
}

fn stderr_has(proxy: &Proxy, needle: &str) -> bool {
    proxy.stderr_lines().iter().any(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_received_served_acked_and_persisted() {
    let controller = FakeController::start(TOKEN, GATEWAY);
    let t1 = table(&[("/a", r#"{"route":"a"}"#)]);
    controller.push(t1.clone(), 3);
    let folder = Folder::new(TOKEN);
    let proxy = start_proxy(&controller.url(), &folder);
    let client = Client::new();

    until_served(&client, &proxy, "/dev/a", r#"{"route":"a"}"#).await;
    let ack = until_answered(&controller, &t1.version, None);
    assert!(ack.accepted, "{ack:?}");
    assert_eq!(ack.reason, None);
    assert_eq!(ack.gateway.to_string(), GATEWAY_ARG);
    assert_eq!(controller.subscribers(), vec![ack.proxy_id.clone()]);
    assert_eq!(folder.persisted().as_ref(), Some(&t1));

    assert_eq!(proxy.admin_get("/readyz").status, 200);
    let report = proxy.config_report();
    assert_eq!(report["source"], controller.url());
    assert_eq!(report["gateways"][0]["gateway"], GATEWAY_ARG);
    assert_eq!(report["gateways"][0]["version"], t1.version.as_str());
    assert!(report.get("lastError").is_none(), "{report}");
    let missing = client.get(&proxy.url("/dev/nope"), &[]).await;
    assert_eq!(missing.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_table_is_nacked_and_the_previous_one_keeps_serving() {
    let controller = FakeController::start(TOKEN, GATEWAY);
    let t1 = table(&[("/a", r#"{"route":"a"}"#)]);
    controller.push(t1.clone(), 1);
    let folder = Folder::new(TOKEN);
    let proxy = start_proxy(&controller.url(), &folder);
    let client = Client::new();
    until_served(&client, &proxy, "/dev/a", r#"{"route":"a"}"#).await;
    assert!(until_answered(&controller, &t1.version, None).accepted);

    // Sealed, then altered: the version no longer matches the content.
    let mut altered = table(&[("/a", r#"{"route":"a"}"#), ("/b", r#"{"route":"b"}"#)]);
    altered.stages[0].name = "prod".into();
    controller.push(altered.clone(), 1);
    let nack = until_answered(&controller, &altered.version, None);
    assert!(!nack.accepted, "{nack:?}");
    let reason = nack.reason.expect("a NACK says why");
    assert!(reason.contains("does not match its content"), "{reason}");

    let a = client.get(&proxy.url("/dev/a"), &[]).await;
    assert_eq!((a.status, a.text()), (200, r#"{"route":"a"}"#.to_string()));
    let prod = client.get(&proxy.url("/prod/b"), &[]).await;
    assert_eq!(prod.status, 403, "the altered table is not served");
    let report = proxy.config_report();
    assert_eq!(report["gateways"][0]["version"], t1.version.as_str());
    let last_error = report["lastError"].as_str().unwrap_or_default();
    assert!(last_error.contains("does not match"), "{report}");
    assert_eq!(
        folder.persisted().as_ref(),
        Some(&t1),
        "table.json keeps the good table"
    );
    assert!(stderr_has(&proxy, "table refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_table_is_swapped_in_without_dropping_requests() {
    let controller = FakeController::start(TOKEN, GATEWAY);
    let t1 = table(&[("/a", r#"{"route":"a"}"#)]);
    controller.push(t1.clone(), 1);
    let folder = Folder::new(TOKEN);
    let proxy = start_proxy(&controller.url(), &folder);
    let client = Client::new();
    until_served(&client, &proxy, "/dev/a", r#"{"route":"a"}"#).await;

    // Traffic on /dev/a, which both tables serve, all through the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (url, stop, sent, failed) = (
            proxy.url("/dev/a"),
            stop.clone(),
            sent.clone(),
            failed.clone(),
        );
        let client = client.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let ok = client
                    .send("GET", &url, &[], "")
                    .await
                    .is_ok_and(|r| r.status == 200 && r.text() == r#"{"route":"a"}"#);
                sent.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t2 = table(&[("/a", r#"{"route":"a"}"#), ("/b", r#"{"route":"b"}"#)]);
    controller.push(t2.clone(), 2);
    until_served(&client, &proxy, "/dev/b", r#"{"route":"b"}"#).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    let (sent, failed) = (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(sent > 10, "only {sent} requests were sent");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the swap"
    );
    assert!(until_answered(&controller, &t2.version, None).accepted);
    assert_eq!(folder.persisted().as_ref(), Some(&t2));
    assert_eq!(
        proxy.config_report()["gateways"][0]["version"],
        t2.version.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_stability_then_reconnection() {
    let controller = FakeController::start(TOKEN, GATEWAY);
    let addr = controller.addr();
    let url = controller.url();
    let t1 = table(&[("/a", r#"{"route":"a"}"#)]);
    controller.push(t1.clone(), 2);
    let folder = Folder::new(TOKEN);
    let first = start_proxy(&url, &folder);
    let client = Client::new();
    until_served(&client, &first, "/dev/a", r#"{"route":"a"}"#).await;
    until_answered(&controller, &t1.version, None);

    // The controller dies: the proxy notices, and keeps serving.
    controller.stop();
    eventually("the proxy to notice the controller is gone", || {
        (stderr_has(&first, "subscription failed") || stderr_has(&first, "ended the subscription"))
            .then_some(())
    });
    for _ in 0..20 {
        let a = client.get(&first.url("/dev/a"), &[]).await;
        assert_eq!(
            a.status, 200,
            "the proxy stopped serving without its controller"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A new proxy on the same state directory serves the last-known-good table, controller
    // still down.
    let second = start_proxy(&url, &folder);
    let took = until_served(&client, &second, "/dev/a", r#"{"route":"a"}"#).await;
    println!(
        "a new proxy served the last-known-good table {took:?} after it was spawned, controller down (the issue asks for within 5 s)"
    );
    assert!(stderr_has(
        &second,
        &format!("serving last-known-good table version {}", t1.version)
    ));
    assert_eq!(second.admin_get("/readyz").status, 200);

    // The controller comes back on its port, with a newer table: both proxies reconnect (with
    // backoff) and take it.
    let controller = FakeController::start_on(addr, TOKEN, GATEWAY);
    let t2 = table(&[("/a", r#"{"route":"a"}"#), ("/b", r#"{"route":"b"}"#)]);
    controller.push(t2.clone(), 2);
    until_served(&client, &first, "/dev/b", r#"{"route":"b"}"#).await;
    until_served(&client, &second, "/dev/b", r#"{"route":"b"}"#).await;
    let acks = eventually("both proxies to ACK the new table", || {
        let acks: Vec<_> = controller
            .acks()
            .into_iter()
            .filter(|a| a.version == t2.version)
            .collect();
        (acks.len() >= 2).then_some(acks)
    });
    assert!(acks.iter().all(|a| a.accepted), "{acks:?}");
    assert_ne!(acks[0].proxy_id, acks[1].proxy_id, "one ACK per proxy");
    assert_eq!(folder.persisted().as_ref(), Some(&t2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_retried_until_it_is_right() {
    let controller = FakeController::start(TOKEN, GATEWAY);
    let t1 = table(&[("/a", r#"{"route":"a"}"#)]);
    controller.push(t1.clone(), 1);
    let folder = Folder::new("not-the-token");
    let proxy = start_proxy(&controller.url(), &folder);

    eventually("three refused subscriptions", || {
        (controller.refused().len() >= 3).then_some(())
    });
    assert!(
        controller.refused().iter().all(|s| *s == 401),
        "{:?}",
        controller.refused()
    );
    assert!(controller.acks().is_empty());
    eventually("the proxy to log the refusal", || {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("subscription refused") && l.contains("401"))
            .then_some(())
    });
    assert_eq!(proxy.admin_get("/healthz").status, 200, "still running");
    assert_eq!(
        proxy.admin_get("/readyz").status,
        503,
        "nothing to serve yet"
    );
    let report = proxy.config_report();
    let last_error = report["lastError"].as_str().unwrap_or_default();
    assert!(last_error.contains("401"), "{report}");

    // The token is read again on every connection: a rotated (here: corrected) token works.
    folder.set_token(TOKEN);
    let ack = until_answered(&controller, &t1.version, None);
    assert!(ack.accepted, "{ack:?}");
    let client = Client::new();
    until_served(&client, &proxy, "/dev/a", r#"{"route":"a"}"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_and_http2_trusting_the_ca_file() {
    let controller = FakeController::start_tls(TOKEN, GATEWAY);
    let t1 = table(&[("/a", r#"{"route":"a"}"#)]);
    controller.push(t1.clone(), 1);
    let folder = Folder::new(TOKEN);
    let ca_file = controller.ca_file();
    let proxy = Proxy::start_fleet(
        &controller.url(),
        GATEWAY_ARG,
        &folder.state_dir(),
        &folder.token_file(),
        &["--ca-file", ca_file.to_str().unwrap()],
    );
    let client = Client::new();
    until_served(&client, &proxy, "/dev/a", r#"{"route":"a"}"#).await;
    assert!(until_answered(&controller, &t1.version, None).accepted);
    let subscriptions = controller.subscriptions();
    assert_eq!(
        subscriptions[0].1,
        http::Version::HTTP_2,
        "{subscriptions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_controller_certificate_is_refused_and_retried() {
    let controller = FakeController::start_tls(TOKEN, GATEWAY);
    controller.push(table(&[("/a", r#"{"route":"a"}"#)]), 1);
    let folder = Folder::new(TOKEN);
    // No --ca-file: the throwaway CA is not among the Mozilla roots.
    let proxy = start_proxy(&controller.url(), &folder);
    eventually("the proxy to log the certificate failure twice", || {
        let failures = proxy
            .stderr_lines()
            .iter()
            .filter(|l| l.contains("subscription failed") && l.contains("certificate"))
            .count();
        (failures >= 2).then_some(())
    });
    assert!(controller.subscribers().is_empty());
    assert_eq!(proxy.admin_get("/readyz").status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_outlives_the_controller_going_away_and_a_new_table() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};
    use tollgate_tests::config::http;
    use tollgate_tests::websocket::EchoServer;

    let echo = EchoServer::start().await;
    let chat = |extra: &[(&str, &str)]| {
        let mut resources = vec![
            dev_gateway(GATEWAY),
            route("chat", GATEWAY, "GET", "/chat", http(&echo.url("/ws"))),
        ];
        for (i, (path, body)) in extra.iter().enumerate() {
            resources.push(route(
                &format!("more-{i}"),
                GATEWAY,
                "GET",
                path,
                mock(200, body),
            ));
        }
        table_of(&resources, GATEWAY)
    };
    let controller = FakeController::start(TOKEN, GATEWAY);
    let (addr, url) = (controller.addr(), controller.url());
    controller.push(chat(&[]), 1);
    let folder = Folder::new(TOKEN);
    let proxy = start_proxy(&url, &folder);
    let client = Client::new();
    eventually_async("the chat route to be served", || async {
        let r = client.get(&proxy.url("/dev/chat"), &[]).await;
        (r.status != 403).then_some(())
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/dev/chat", proxy.addr()))
        .await
        .expect("the handshake through the fleet proxy");
    async fn echoes<S>(ws: &mut S, text: &'static str)
    where
        S: SinkExt<Message> + StreamExt<Item = Result<Message, WsError>> + Unpin,
        <S as futures::Sink<Message>>::Error: std::fmt::Debug,
    {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    echoes(&mut ws, "before").await;

    // The controller goes away: the proxy notices; the WebSocket carries on.
    controller.stop();
    eventually("the proxy to notice the controller is gone", || {
        (stderr_has(&proxy, "subscription failed") || stderr_has(&proxy, "ended the subscription"))
            .then_some(())
    });
    echoes(&mut ws, "controller down").await;

    // It comes back with a new table: swapped in under the open connection.
    let controller = FakeController::start_on(addr, TOKEN, GATEWAY);
    let newer = chat(&[("/more", r#"{"more":true}"#)]);
    controller.push(newer.clone(), 1);
    until_served(&client, &proxy, "/dev/more", r#"{"more":true}"#).await;
    until_answered(&controller, &newer.version, None);
    echoes(&mut ws, "new table").await;
    assert_eq!(
        echo.handshakes.lock().unwrap().len(),
        1,
        "one handshake, never redone"
    );
}
