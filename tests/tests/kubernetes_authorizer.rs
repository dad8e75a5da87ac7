//! `KUBERNETES` authorizers end to end: ServiceAccount tokens issued by a real kube-apiserver
//! (`kubectl create token --audience`) call a standalone `tollgate-proxy`, which verifies them
//! against the API server's service account issuer keys (OIDC discovery, `/openid/v1/jwks`,
//! fetched once and cached) and admits the ServiceAccounts the route, or else the authorizer,
//! allows. The caller reaches the backend as `x-authorizer-claim-*` headers.
//!
//! The first run builds the control-plane binaries (see `tests/control-plane/README.md`);
//! needs `cargo build --workspace --bins`.

use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, http, route};
use tollgate_tests::control_plane::ControlPlane;
use tollgate_tests::controller::service_account_token_for;
use tollgate_tests::proxy::serve;

const AUDIENCE: &str = "shop.tollgate.dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_from_the_api_server_are_verified_and_allowed_by_name() {
    let cp = ControlPlane::shared();
    // The issuer's keys are public, as Kubernetes documents for OIDC federation.
    cp.allow_oidc_discovery();
    let billing = cp.namespace("billing");
    let ops = cp.namespace("ops");
    let backend = Backend::echo();
    let mut gw = gateway("shop", json!([{"name": "prod"}]));
    gw["spec"]["authorizers"] = json!([{
        "name": "cluster",
        "type": "KUBERNETES",
        "kubernetes": {
            "audiences": [AUDIENCE],
            "jwksUri": format!("{}/openid/v1/jwks", cp.api_url()),
            "allow": [format!("{}/*", billing.name())],
        },
    }]);
    let guarded = |name: &str, path: &str, accounts: Option<Vec<String>>| {
        let mut r = route(name, "shop", "GET", path, http(&backend.url(path)));
        r["spec"]["authorizer"] = json!("cluster");
        if let Some(accounts) = accounts {
            r["spec"]["serviceAccounts"] = json!(accounts);
        }
        r
    };
    let apiserver_ca = cp.dir().join("certs/apiserver.crt");
    let proxy = serve(
        &[
            gw,
            guarded("orders", "/orders", None),
            guarded(
                "admin",
                "/admin",
                Some(vec![format!("{}/admin", ops.name())]),
            ),
        ],
        &["--upstream-ca-file", apiserver_ca.to_str().unwrap()],
    );
    let client = Client::new();
    let call = |path: &str, token: Option<&str>| {
        let url = proxy.url(path);
        let bearer = token.map(|t| format!("Bearer {t}"));
        let client = &client;
        async move {
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| vec![("authorization", b)])
                .unwrap_or_default();
            client.get(&url, &headers).await
        }
    };

    let worker = service_account_token_for(cp, billing.name(), "worker", AUDIENCE);
    let admin = service_account_token_for(cp, ops.name(), "admin", AUDIENCE);

    // A ServiceAccount of the allowed namespace; the backend learns which.
    let orders = call("/prod/orders", Some(&worker)).await;
    assert_eq!(orders.status, 200, "{}", orders.text());
    assert_eq!(
        orders.json()["headers"]["x-authorizer-claim-sub"],
        json!([format!("system:serviceaccount:{}:worker", billing.name())])
    );
    // Another namespace's account is refused there, and admitted where the route names it.
    let refused = call("/prod/orders", Some(&admin)).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    let message = refused.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "User: system:serviceaccount:{}:admin is not authorized to perform: execute-api:Invoke",
            ops.name()
        )),
        "{message}"
    );
    assert_eq!(call("/prod/admin", Some(&admin)).await.status, 200);
    assert_eq!(call("/prod/admin", Some(&worker)).await.status, 403);

    // A token for another audience, a forged one, and none: 401.
    let other = service_account_token_for(cp, billing.name(), "worker", "somebody-else");
    assert_eq!(call("/prod/orders", Some(&other)).await.status, 401);
    let mut forged: Vec<String> = worker.split('.').map(str::to_string).collect();
    forged[2] = forged[2].chars().rev().collect();
    assert_eq!(
        call("/prod/orders", Some(&forged.join("."))).await.status,
        401
    );
    let none: Value = call("/prod/orders", None).await.json();
    assert_eq!(none, json!({"message": "Unauthorized"}));
}
