//! Amazon's WebSocket chat app (`deploy/examples/websocket-chat`) on three standalone proxies
//! sharing a real Redis as their `@connections` bus. Each proxy has its own copy of the
//! Python function under the Lambda Runtime Interface Emulator (as Lambda runs many), all
//! sharing one connections table; each copy calls back through its own proxy with boto3's
//! `apigatewaymanagementapi` client, signing with the example's keys. Clients are spread
//! over the proxies, so most calls are for a connection another proxy holds.

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tollgate_tests::config::ConfigDir;
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::{Proxy, free_port};
use tollgate_tests::redis::{RedisCluster, RedisServer};
use tollgate_tests::workspace_root;

use super::{ACCESS_KEY, SECRET_KEY, Ws, boto3_post, close_code, connect, next_text, refused};

pub const EXAMPLE: &str = "deploy/examples/websocket-chat";

/// The example's `gateway.yaml` and `routes.yaml` with the bus on the Redis at `redis` and the
/// function at `lambda` (an Invoke API base URL).
pub fn example_files(redis: &str, lambda: &str) -> (String, String) {
    example_files_with_bus(&format!("redisUrl: {redis}"), lambda)
}

/// The example's files with `bus` (a field of `spec.websocket`, one YAML line) naming the
/// bus's Redis.
pub fn example_files_with_bus(bus: &str, lambda: &str) -> (String, String) {
    let read = |name: &str| {
        std::fs::read_to_string(workspace_root().join(EXAMPLE).join(name))
            .unwrap_or_else(|e| panic!("{EXAMPLE}/{name}: {e}"))
    };
    let gateway = read("gateway.yaml").replace(
        "    routeSelectionExpression: $request.body.action\n",
        &format!("    routeSelectionExpression: $request.body.action\n    {bus}\n"),
    );
    assert!(gateway.contains(bus), "the example's gateway changed shape");
    let routes = read("routes.yaml").replace("http://127.0.0.1:9001", lambda);
    (gateway, routes)
}

/// The example as one proxy serves it: its function at `lambda_port`.
fn example_config(lambda_port: u16, bus: &str) -> ConfigDir {
    let (gateway, routes) = example_files_with_bus(bus, &format!("http://127.0.0.1:{lambda_port}"));
    let config = ConfigDir::new();
    config.write_raw("gateway.yaml", &gateway);
    config.write_raw("routes.yaml", &routes);
    config
}

pub async fn say(ws: &mut Ws, action: Value) {
    ws.send(Message::text(action.to_string())).await.unwrap();
}

/// What `GET @connections` says of the connection, through the example's two-way `whoami`
/// route.
pub async fn whoami(ws: &mut Ws) -> Value {
    say(ws, json!({"action": "whoami"})).await;
    next_json(ws).await
}

/// The connection's id, as `whoami` tells it.
pub async fn id_of(ws: &mut Ws) -> String {
    whoami(ws).await["connectionId"]
        .as_str()
        .expect("whoami names the connection")
        .to_string()
}

pub async fn next_json(ws: &mut Ws) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_app_runs_on_three_proxies_with_python_functions_calling_back_through_boto3() {
    let redis = RedisServer::start();
    chat_on_three_proxies(&format!("redisUrl: {}", redis.url())).await;
}

/// The bus on a Redis Cluster: each proxy's channel is sharded, in its own slot, and
/// `SPUBLISH` still says when nobody holds a connection (410).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_app_runs_on_three_proxies_whose_bus_is_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let bus = json!({"cluster": {"nodes": cluster.nodes()}});
    chat_on_three_proxies(&format!("redis: {bus}")).await;
}

/// The example on three standalone proxies with the bus `bus`: three clients, messages to all
/// through any proxy, `GET`, `DELETE` and `POST` on connections another proxy holds, 410 for
/// a closed one.
async fn chat_on_three_proxies(bus: &str) {
    let table = tempfile::tempdir().unwrap();
    let db = table.path().join("connections.sqlite3");
    let lambda_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<ConfigDir> = lambda_ports
        .iter()
        .map(|port| example_config(*port, bus))
        .collect();
    let proxies: Vec<Proxy> = configs
        .iter()
        .map(|c| Proxy::start_standalone(c.path(), &[]))
        .collect();
    let _functions: Vec<LambdaRuntime> = lambda_ports
        .iter()
        .zip(&proxies)
        .map(|(port, proxy)| {
            let endpoint = proxy.url("/production");
            LambdaRuntime::start_example(
                EXAMPLE,
                "chat.handler",
                *port,
                &[
                    ("MANAGEMENT_ENDPOINT", endpoint.as_str()),
                    ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                    ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                    ("AWS_DEFAULT_REGION", "us-east-1"),
                    ("CONNECTIONS_DB", db.to_str().unwrap()),
                ],
            )
        })
        .collect();
    let url = |i: usize, query: &str| format!("ws://{}/production{query}", proxies[i].addr());

    // $connect's function refuses a client that does not say its name.
    let (status, body) = refused(&url(0, "")).await;
    assert_eq!(status, 401);
    assert!(body.contains("say your name"), "{body}");

    let mut alice = connect(&url(0, "?name=alice")).await;
    let mut bob = connect(&url(1, "?name=bob")).await;
    let mut carol = connect(&url(2, "?name=carol")).await;

    // Alice's message goes to everyone: the function behind proxy 0 posts to each connection
    // through proxy 0, which carries the calls for Bob's and Carol's to proxies 1 and 2.
    say(
        &mut alice,
        json!({"action": "sendmessage", "data": "hello"}),
    )
    .await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(
            next_json(ws).await,
            json!({"from": "alice", "data": "hello"})
        );
    }
    // And Bob's, from the function behind proxy 1.
    say(&mut bob, json!({"action": "sendmessage", "data": "hi all"})).await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(
            next_json(ws).await,
            json!({"from": "bob", "data": "hi all"})
        );
    }

    // A two-way route: the function asks GET @connections about the caller.
    let me = whoami(&mut carol).await;
    assert_eq!(me["sourceIp"], "127.0.0.1");
    let carol_id = me["connectionId"].as_str().unwrap().to_string();
    assert!(
        me["connectedAt"]
            .as_str()
            .is_some_and(|t| t.starts_with("20"))
    );

    // Anything else takes $default.
    say(&mut carol, json!({"action": "dance"})).await;
    assert!(next_text(&mut carol).await.contains("sendmessage"));

    // Alice kicks Carol: DELETE @connections through proxy 0 for a connection proxy 2 holds.
    say(&mut alice, json!({"action": "kick", "name": "carol"})).await;
    assert_eq!(
        close_code(&mut carol, std::time::Duration::from_secs(15)).await,
        1000
    );
    // Gone now: 410 GoneException to boto3, from any proxy.
    for proxy in &proxies {
        assert_eq!(
            boto3_post(&proxy.url("/production"), &carol_id),
            "GoneException"
        );
    }
    // A live connection held by another proxy takes boto3's post.
    let bob_id = id_of(&mut bob).await;
    assert_eq!(boto3_post(&proxies[2].url("/production"), &bob_id), "sent");
    assert_eq!(next_text(&mut bob).await, "hello?");

    // The others go on without Carol.
    say(&mut alice, json!({"action": "sendmessage", "data": "bye"})).await;
    for ws in [&mut alice, &mut bob] {
        assert_eq!(next_json(ws).await, json!({"from": "alice", "data": "bye"}));
    }
}
