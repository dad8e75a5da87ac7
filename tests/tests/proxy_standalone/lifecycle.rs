//! Shutting down: SIGTERM under load drains in-flight requests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Client, ClientError};
use tollgate_tests::config::{dev_gateway, http, route};
use tollgate_tests::wait::eventually_async;

use crate::serve;

const CLIENTS: usize = 20;
const DELAY: Duration = Duration::from_millis(300);
/// Bounds each client's loop whatever happens.
const MAX_REQUESTS_PER_CLIENT: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_in_flight_requests() {
    let backend = Backend::delayed(DELAY);
    let mut proxy = serve(
        &[
            dev_gateway("busy"),
            route(
                "work",
                "busy",
                "ANY",
                "/{proxy+}",
                http(&backend.url("/{proxy}")),
            ),
        ],
        &["--drain-seconds", "10"],
    );

    // 20 clients, each on its own connection, sending requests back to back until one fails.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = Client::new();
        let url = proxy.url("");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes: Vec<(String, Instant, Result<u16, ClientError>)> = Vec::new();
            for i in 0..MAX_REQUESTS_PER_CLIENT {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let path = format!("/work/{c}/{i}");
                let sent_at = Instant::now();
                let outcome = client
                    .send("GET", &format!("{url}/dev{path}"), &[], "")
                    .await
                    .map(|r| r.status);
                let failed = outcome.is_err();
                outcomes.push((path, sent_at, outcome));
                if failed {
                    break;
                }
            }
            outcomes
        }));
    }

    // Under load for about a second: three rounds of 20 requests have reached the backend.
    eventually_async("the backend to see load", || async {
        (backend.received().len() >= 3 * CLIENTS).then_some(())
    })
    .await;
    let signalled_at = Instant::now();
    proxy.terminate();
    let status = tokio::task::block_in_place(|| proxy.wait_exit(Duration::from_secs(30)));
    stop.store(true, Ordering::SeqCst);

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("client task"));
    }
    let received = backend.received();
    let at_backend: HashSet<String> = received
        .iter()
        .map(|r| r.echo["path"].as_str().unwrap().to_string())
        .collect();
    // At the backend when the signal came: arrived, and still waiting out the delay.
    let in_flight: HashSet<String> = received
        .iter()
        .filter(|r| r.at < signalled_at && r.at + DELAY > signalled_at)
        .map(|r| r.echo["path"].as_str().unwrap().to_string())
        .collect();
    let by_path: HashMap<&str, &Result<u16, ClientError>> =
        outcomes.iter().map(|(p, _, o)| (p.as_str(), o)).collect();

    let completed = outcomes.iter().filter(|(_, _, o)| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|(_, _, o)| matches!(o, Err(ClientError::Connect(_))))
        .count();
    let failed_after_send: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, o)| matches!(o, Err(ClientError::AfterSend(_) | ClientError::Timeout)))
        .collect();
    println!(
        "SIGTERM under load: {completed} requests completed, {} in flight at the backend at \
         the signal, {refused} new requests refused, {} failed after sending",
        in_flight.len(),
        failed_after_send.len()
    );

    // Every response is a success: no 5xx from requests cut short.
    for (path, _, outcome) in &outcomes {
        if let Ok(status) = outcome {
            assert_eq!(*status, 200, "{path} answered {status}");
        }
    }
    // Every request that reached the backend got its answer back to the client, in
    // particular every one in flight when the signal came.
    assert!(!in_flight.is_empty(), "no request was in flight at SIGTERM");
    for path in &at_backend {
        match by_path.get(path.as_str()) {
            Some(Ok(200)) => {}
            other => panic!(
                "{path} reached the backend{} but the client got {other:?}",
                if in_flight.contains(path) {
                    " before SIGTERM"
                } else {
                    ""
                }
            ),
        }
    }
    // A request that failed after being sent never reached the backend and was sent after
    // the signal (its connection closed under it).
    for (path, sent_at, outcome) in &failed_after_send {
        assert!(
            *sent_at >= signalled_at,
            "{path}, sent before SIGTERM, failed: {outcome:?}"
        );
    }

    assert!(status.success(), "the proxy exited with {status}");
    let stderr = proxy.stderr_lines();
    assert!(
        stderr.iter().any(|l| l.contains("all connections drained")),
        "the drain did not finish before its deadline:\n{}",
        stderr.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_drained_at_shutdown_are_in_the_access_log() {
    // Lines lost at exit depend on timing, so the shutdown is done a few times.
    for round in 0..5 {
        drain_round(round).await;
    }
}

/// 50 requests held by the backend; SIGTERM; once the proxy drains, the backend answers them
/// together and the proxy exits: each of them must be in the access log.
async fn drain_round(round: usize) {
    const IN_FLIGHT: usize = 50;
    let backend = Backend::gated();
    let mut proxy = serve(
        &[
            dev_gateway("busy"),
            route(
                "work",
                "busy",
                "ANY",
                "/{proxy+}",
                http(&backend.url("/{proxy}")),
            ),
        ],
        &["--drain-seconds", "10"],
    );
    let mut tasks = Vec::new();
    for i in 0..IN_FLIGHT {
        let url = proxy.url(&format!("/dev/drained/{i}"));
        tasks.push(tokio::spawn(async move {
            Client::new()
                .send("GET", &url, &[], "")
                .await
                .map(|r| r.status)
        }));
    }
    eventually_async("every request to reach the backend", || async {
        (backend.received().len() == IN_FLIGHT).then_some(())
    })
    .await;
    proxy.terminate();
    eventually_async("the proxy to start draining", || async {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("draining in-flight requests"))
            .then_some(())
    })
    .await;
    backend.release();
    for task in tasks {
        let status = task
            .await
            .unwrap()
            .expect("a drained request gets its response");
        assert_eq!(status, 200);
    }
    let status = tokio::task::block_in_place(|| proxy.wait_exit(Duration::from_secs(30)));
    assert!(status.success(), "the proxy exited with {status}");

    let logged = proxy.access_log_lines();
    let drained = logged
        .iter()
        .filter(|l| l.contains("/dev/drained/"))
        .count();
    assert_eq!(
        drained,
        IN_FLIGHT,
        "round {round}: {IN_FLIGHT} requests answered during the drain, only {drained} of them \
         in the access log; proxy log:\n{}",
        proxy.stderr_lines().join("\n")
    );
}
