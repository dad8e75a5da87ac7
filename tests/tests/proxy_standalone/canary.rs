//! Canary deployments: the share of traffic, the stage variables each deployment sees, and
//! pinning with `x-tollgate-canary`.

use serde_json::json;
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, route};

use crate::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_takes_its_percent_with_its_own_stage_variables() {
    let proxy = serve(
        &[
            gateway(
                "paint",
                json!([{
                    "name": "dev",
                    "variables": {"color": "green"},
                    "canary": {
                        "percentTraffic": 25,
                        "stageVariableOverrides": {"color": "blue"},
                    },
                }]),
            ),
            route(
                "color",
                "paint",
                "GET",
                "/color",
                json!({"mock": {
                    "statusCode": 200,
                    "headers": {"Content-Type": "text/plain"},
                    "body": "${stageVariables.color}",
                }}),
            ),
        ],
        &[],
    );
    let client = Client::new();
    let url = proxy.url("/dev/color");

    const N: usize = 2000;
    const TASKS: usize = 4;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut canary = 0usize;
            for _ in 0..N / TASKS {
                let r = client.get(&url, &[]).await;
                assert_eq!(r.status, 200);
                match (
                    r.header("x-tollgate-deployment").as_deref(),
                    r.text().as_str(),
                ) {
                    (Some("canary"), "blue") => canary += 1,
                    (Some("stable"), "green") => {}
                    other => panic!("inconsistent deployment and variables: {other:?}"),
                }
            }
            canary
        }));
    }
    let mut canary = 0;
    for task in tasks {
        canary += task.await.unwrap();
    }
    // Binomial(2000, 0.25): mean 500, sigma ~19.4; allow five sigma.
    let (p, n) = (0.25, N as f64);
    let (mean, sigma) = (n * p, (n * p * (1.0 - p)).sqrt());
    assert!(
        (canary as f64 - mean).abs() <= 5.0 * sigma,
        "canary served {canary} of {N}; expected {mean} +- {:.0}",
        5.0 * sigma
    );

    // Pinned: always the deployment asked for.
    for (pin, body) in [("canary", "blue"), ("stable", "green"), ("CANARY", "blue")] {
        for _ in 0..50 {
            let r = client.get(&url, &[("x-tollgate-canary", pin)]).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.header("x-tollgate-deployment").as_deref(),
                Some(pin.to_ascii_lowercase().as_str())
            );
            assert_eq!(r.text(), body, "pinned {pin}");
        }
    }
}
