//! Who may call: API keys (routes with `apiKeyRequired` need an enabled key bound to a usage
//! plan of the stage, sent in `x-api-key`; the key is identified by its Secret's name, never
//! logged) and authorizers.

use serde_json::json;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{api_key, gateway, http, mock, route, usage_plan};

use crate::serve;

const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
// 40 characters each.
const GOOD_KEY: &str = "e2e-acme-0123456789abcdef0123456789abcde";
const DISABLED_KEY: &str = "e2e-globex-0123456789abcdef0123456789abc";
const OTHER_STAGE_KEY: &str = "e2e-initech-0123456789abcdef0123456789ab";
const WRONG_KEY: &str = "e2e-nobody-0123456789abcdef0123456789abc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_checked_and_never_logged() {
    for key in [GOOD_KEY, DISABLED_KEY, OTHER_STAGE_KEY, WRONG_KEY] {
        assert_eq!(key.len(), 40);
    }
    let mut secret_route = route(
        "secret",
        "vault",
        "GET",
        "/secret",
        mock(200, r#"{"secret":true}"#),
    );
    secret_route["spec"]["apiKeyRequired"] = json!(true);
    let proxy = serve(
        &[
            gateway("vault", json!([{"name": "dev"}, {"name": "prod"}])),
            secret_route,
            route(
                "open",
                "vault",
                "GET",
                "/open",
                mock(200, r#"{"open":true}"#),
            ),
            api_key("acme", GOOD_KEY, true),
            api_key("globex", DISABLED_KEY, false),
            api_key("initech", OTHER_STAGE_KEY, true),
            usage_plan("basic", "vault", "dev", &["acme", "globex"]),
            usage_plan("prod-only", "vault", "prod", &["initech"]),
        ],
        &[],
    );
    let client = Client::new();
    let url = proxy.url("/dev/secret");

    let open = client.get(&proxy.url("/dev/open"), &[]).await;
    assert_eq!(
        open.status, 200,
        "a route without apiKeyRequired needs no key"
    );

    for (what, headers) in [
        ("no key", vec![]),
        ("an unknown key", vec![("x-api-key", WRONG_KEY)]),
        ("a disabled key", vec![("x-api-key", DISABLED_KEY)]),
        (
            "a key of another stage",
            vec![("x-api-key", OTHER_STAGE_KEY)],
        ),
        ("a key in another header", vec![("authorization", GOOD_KEY)]),
    ] {
        let r = client.get(&url, &headers).await;
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.text(), FORBIDDEN, "{what}");
        assert_eq!(
            r.header("x-amzn-errortype").as_deref(),
            Some("ForbiddenException"),
            "{what}"
        );
    }

    let good = client.get(&url, &[("x-api-key", GOOD_KEY)]).await;
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json(), json!({"secret": true}));
    let request_id = good.header("x-amzn-requestid").unwrap();
    let line = proxy.access_log_entry(&request_id);
    assert_eq!(line["apiKeyId"], "acme");
    assert_eq!(line["status"], 200);

    // The key with prod's plan works on prod.
    let prod = client
        .get(
            &proxy.url("/prod/secret"),
            &[("x-api-key", OTHER_STAGE_KEY)],
        )
        .await;
    assert_eq!(prod.status, 200);
    assert_eq!(
        proxy.access_log_entry(&prod.header("x-amzn-requestid").unwrap())["apiKeyId"],
        "initech"
    );

    // Every request above (8) is logged; the key values appear nowhere.
    tollgate_tests::wait::eventually("every request in the access log", || {
        (proxy.access_log_lines().len() >= 8).then_some(())
    });
    let config = proxy.admin_get("/config").text();
    let metrics = proxy.admin_get("/metrics").text();
    for key in [GOOD_KEY, DISABLED_KEY, OTHER_STAGE_KEY, WRONG_KEY] {
        for line in proxy.access_log_lines() {
            assert!(!line.contains(key), "access log shows a key: {line}");
        }
        for line in proxy.stderr_lines() {
            assert!(!line.contains(key), "proxy log shows a key: {line}");
        }
        assert!(!config.contains(key), "/config shows a key");
        assert!(!metrics.contains(key), "/metrics shows a key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_a_jwt_authorizer_is_not_served_without_a_token() {
    let backend = Backend::echo();
    let mut gw = gateway("pets", json!([{"name": "dev"}]));
    gw["spec"]["authorizers"] = json!([{
        "name": "cognito",
        "type": "JWT",
        "jwt": {"issuer": "https://auth.example.com", "audiences": ["pets"]},
    }]);
    let mut guarded = route(
        "pets-list",
        "pets",
        "GET",
        "/pets",
        http(&backend.url("/pets")),
    );
    guarded["spec"]["authorizer"] = json!("cognito");
    let proxy = serve(&[gw, guarded], &[]);
    let client = Client::new();

    for (what, headers) in [
        ("no token", vec![]),
        (
            "a token that is not a JWT",
            vec![("authorization", "Bearer not-a-jwt")],
        ),
    ] {
        let r = client.get(&proxy.url("/dev/pets"), &headers).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.text(), r#"{"message":"Unauthorized"}"#, "{what}");
    }
    assert!(
        backend.received().is_empty(),
        "requests without a valid token reached the backend: {:?}",
        backend
            .received()
            .iter()
            .map(|r| r.echo["headers"].get("authorization").cloned())
            .collect::<Vec<_>>()
    );
}
