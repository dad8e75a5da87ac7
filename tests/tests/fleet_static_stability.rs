//! The data plane does not need the control plane once it has a table: with the real control
//! plane, controller and proxies in fleet mode, routes are edited under load without a failed
//! request; the controller stops and the proxies keep serving; a proxy restarted meanwhile
//! serves from its state folder; the controller comes back and everyone converges.
//!
//! One controller, owned by the test (its own test binary, so no other controller shares the
//! control plane). Needs `cargo build --workspace --bins` (as `make test` does).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_tests::client::Client;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{Controller, ca_pem, hello_mock_route, service_account_token};
use tollgate_tests::proxy::{Proxy, free_port};

struct Files {
    ca: PathBuf,
    token: PathBuf,
    dir: tempfile::TempDir,
}

impl Files {
    fn state(&self, i: usize) -> PathBuf {
        let state = self.dir.path().join(format!("state-{i}"));
        std::fs::create_dir_all(&state).expect("a state folder");
        state
    }
}

fn start_proxy(controller_url: &str, ns: &Namespace, files: &Files, state: &Path) -> Proxy {
    Proxy::start_fleet(
        controller_url,
        &format!("{}/hello", ns.name()),
        state,
        &files.token,
        &["--ca-file", files.ca.to_str().expect("UTF-8 path")],
    )
}

/// Polls until `path` answers 200 with a body containing `expected` on the proxy; returns how
/// long it took.
async fn until_served(client: &Client, proxy: &Proxy, path: &str, expected: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.send("GET", &proxy.url(path), &[], Vec::new()).await
            && r.status == 200
            && r.text().contains(expected)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{path} never served {expected:?} on {}",
            proxy.url(path)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_serve_through_edits_and_without_the_controller() {
    let cp = ControlPlane::shared();
    let port = free_port();
    let controller = Controller::start_on(cp, port, &[]);
    let url = controller.snapshot_url();
    let ns = cp.namespace("stable");
    ns.apply(&ns.quickstart());

    let dir = tempfile::tempdir().expect("a temporary folder");
    let files = Files {
        ca: dir.path().join("ca.crt"),
        token: dir.path().join("token"),
        dir,
    };
    std::fs::write(&files.ca, ca_pem(cp)).expect("write the CA");
    std::fs::write(
        &files.token,
        service_account_token(cp, ns.name(), "tollgate-proxy-hello"),
    )
    .expect("write the token");
    let mut proxies = vec![
        start_proxy(&url, &ns, &files, &files.state(0)),
        start_proxy(&url, &ns, &files, &files.state(1)),
    ];
    let client = Client::new();
    for proxy in &proxies {
        until_served(&client, proxy, "/dev/states", "Washington").await;
    }

    // Edit a route ten times while clients keep requesting it through both proxies.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = tokio::task::JoinSet::new();
    for i in 0..8 {
        let target = proxies[i % 2].url("/dev/");
        let (stop, ok, failed, client) = (stop.clone(), ok.clone(), failed.clone(), client.clone());
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.send("GET", &target, &[], Vec::new()).await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.lock().unwrap().push(e.to_string()),
                }
            }
        });
    }
    for version in 1..=10 {
        ns.apply(&hello_mock_route(
            "hello-root",
            "/",
            &format!("edit {version}"),
        ));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for proxy in &proxies {
        until_served(&client, proxy, "/dev/", "edit 10").await;
    }
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let failures = failed.lock().unwrap().clone();
    println!(
        "requests during 10 route edits: {} answered 200, {} failed",
        ok.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "requests failed while routes were edited: {failures:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);

    // The controller goes away: both proxies keep serving.
    drop(controller);
    for _ in 0..10 {
        for proxy in &proxies {
            let r = client.get(&proxy.url("/dev/states"), &[]).await;
            assert_eq!(
                r.status, 200,
                "a proxy stopped serving without its controller"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A proxy restarted while the controller is down serves its last-known-good table.
    let state = files.state(0);
    drop(proxies.remove(0));
    let restarted = start_proxy(&url, &ns, &files, &state);
    let took = until_served(&client, &restarted, "/dev/", "edit 10").await;
    println!("a proxy restarted with the controller down served its saved table after {took:?}");
    proxies.insert(0, restarted);

    // A change made meanwhile reaches everyone once the controller is back where it was.
    ns.apply(&hello_mock_route(
        "while-away",
        "/while-away",
        "made while the controller was down",
    ));
    let _controller = Controller::start_on(cp, port, &[]);
    for proxy in &proxies {
        until_served(
            &client,
            proxy,
            "/dev/while-away",
            "made while the controller was down",
        )
        .await;
    }
}
