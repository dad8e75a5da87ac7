//! The WebSocket side of `bench/websocket.sh`, built on tungstenite (the client and server the
//! tests use), one thread each:
//!
//!   ws_bench echo ADDR                     a WebSocket server echoing every message
//!   ws_bench load URL CONNECTIONS SECONDS  each connection sends a 64-byte text message and
//!                                          waits for its echo, again and again; prints
//!                                          "MESSAGES_PER_SECOND P99_MS ROUND_TRIPS"
//!   ws_bench idle URL CONNECTIONS          opens the connections, prints "open", holds them
//!                                          until standard input closes
//!   ws_bench deliver ENDPOINT URLS CLIENTS MESSAGES KEY SECRET
//!                                          opens CLIENTS connections to a WebSocket API,
//!                                          spread over URLS (comma-separated), then MESSAGES
//!                                          times posts 64 bytes to one of them through the
//!                                          `@connections` API at ENDPOINT (a stage's URL,
//!                                          signed with KEY and SECRET) and waits for it to
//!                                          arrive, one at a time; prints "P50_MS P99_MS
//!                                          MESSAGES" of POST-to-delivery
//!
//! URL is `ws://host:port/path`; a `Host` other than the address can follow it as
//! `ws://addr/path@host`.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("echo") => runtime.block_on(echo(&args[1])),
        Some("load") => runtime.block_on(load(
            &args[1],
            args[2].parse().expect("connections"),
            args[3].parse().expect("seconds"),
        )),
        Some("idle") => runtime.block_on(idle(&args[1], args[2].parse().expect("connections"))),
        Some("deliver") => runtime.block_on(deliver(
            &args[1],
            &args[2],
            args[3].parse().expect("clients"),
            args[4].parse().expect("messages"),
            (&args[5], &args[6]),
        )),
        _ => {
            eprintln!(
                "usage: ws_bench echo ADDR | load URL CONNECTIONS SECONDS | idle URL N \
                 | deliver ENDPOINT URLS CLIENTS MESSAGES KEY SECRET"
            );
            std::process::exit(2);
        }
    }
}

async fn echo(addr: &str) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    return;
                }
                if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(url: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (url, host) = match url.rsplit_once('@') {
        Some((url, host)) => (url, Some(host)),
        None => (url, None),
    };
    let mut request = url.into_client_request().expect("URL");
    if let Some(host) = host {
        request
            .headers_mut()
            .insert("host", host.parse().expect("host"));
    }
    let authority = request
        .uri()
        .authority()
        .expect("host")
        .as_str()
        .to_string();
    let stream = TcpStream::connect(authority).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    ws
}

async fn load(url: &str, connections: usize, seconds: u64) {
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(connect(url).await);
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let payload = "x".repeat(64);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut rtts = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    ws.send(Message::text(payload.clone())).await.expect("send");
                    match ws.next().await {
                        Some(Ok(_)) => rtts.push(sent.elapsed().as_micros() as u32),
                        other => panic!("no echo: {other:?}"),
                    }
                }
                let _ = ws.close(None).await;
                rtts
            })
        })
        .collect();
    let started = Instant::now();
    let mut rtts = Vec::new();
    for task in tasks {
        rtts.extend(task.await.expect("a connection"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    rtts.sort_unstable();
    let p99 = rtts.get(rtts.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "{:.1} {:.3} {}",
        rtts.len() as f64 / elapsed,
        f64::from(p99) / 1000.0,
        rtts.len()
    );
}

async fn idle(url: &str, connections: usize) {
    let mut held = Vec::with_capacity(connections);
    for _ in 0..connections {
        held.push(connect(url).await);
    }
    println!("open");
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    drop(held);
}

/// POST-to-delivery through the `@connections` API: each client learns its id from the
/// gateway's answer to a message no route takes (`{"message": "Forbidden", "connectionId":
/// …}`), then each post goes to the next client in turn.
async fn deliver(endpoint: &str, urls: &str, clients: usize, messages: usize, keys: (&str, &str)) {
    let urls: Vec<&str> = urls.split(',').collect();
    let mut sockets = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut ws = connect(urls[i % urls.len()]).await;
        ws.send(Message::text(r#"{"action":"who-am-i"}"#))
            .await
            .expect("send");
        let id = loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let error: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                    break error["connectionId"].as_str().expect("an id").to_string();
                }
                Some(Ok(_)) => continue,
                other => panic!("no answer: {other:?}"),
            }
        };
        sockets.push((ws, id));
    }
    let uri: http::Uri = endpoint.parse().expect("endpoint URL");
    let host = uri.authority().expect("a host").to_string();
    let client = tollgate_tests::client::Client::new();
    let payload = vec![b'x'; 64];
    let mut latencies = Vec::with_capacity(messages);
    for n in 0..messages {
        let (ws, id) = &mut sockets[n % clients];
        let path = format!("{}/@connections/{id}", uri.path().trim_end_matches('/'));
        let (date, authorization) = tollgate_tests::sigv4::sign(
            "POST",
            &host,
            &path,
            &payload,
            keys,
            "us-east-1",
            std::time::SystemTime::now(),
        );
        let url = format!("http://{host}{path}");
        let headers = [
            ("x-amz-date", date.as_str()),
            ("authorization", authorization.as_str()),
        ];
        let sent = Instant::now();
        let response = client
            .request("POST", &url, &headers, payload.clone())
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        match ws.next().await {
            Some(Ok(Message::Text(_))) => latencies.push(sent.elapsed().as_micros() as u32),
            other => panic!("no delivery: {other:?}"),
        }
    }
    latencies.sort_unstable();
    let at = |p: usize| f64::from(latencies[latencies.len() * p / 100]) / 1000.0;
    println!("{:.3} {:.3} {}", at(50), at(99), latencies.len());
}
