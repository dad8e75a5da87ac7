//! The real `tollgate-controller` binary against a real control plane
//! ([`tollgate_tests::control_plane`]): resources applied with `kubectl`, their status
//! conditions, invoke URLs and table versions read back as a user would. One controller
//! (watching every namespace) is shared by the tests of this file, each test in a namespace of
//! its own.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::Controller;
use tollgate_tests::workspace_root;

/// How long the controller may take to bring a status in line.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// The controller shared by this file's tests ([`tollgate_tests::controller`]): it stops when
/// the test process exits.
fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| Controller::start(ControlPlane::shared(), &[]))
}

/// A namespace of its own, with the shared controller running.
fn namespace(hint: &str) -> Namespace<'static> {
    controller();
    ControlPlane::shared().namespace(hint)
}

fn mock_route(name: &str, gateway: &str, method: &str, path: &str) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: {name}
spec:
  gatewayRef:
    name: {gateway}
  method: {method}
  path: "{path}"
  integration:
    mock:
      statusCode: 200
      body: "{name}"
"#
    )
}

/// A condition of an object: `(status, reason, message)`.
fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("reason"), s("message"))
        })
}

fn condition_status(obj: &Value, type_: &str) -> Option<String> {
    condition(obj, type_).map(|(status, _, _)| status)
}

/// Every condition of `obj` was set for its current generation.
fn conditions_current(obj: &Value) -> bool {
    let generation = &obj["metadata"]["generation"];
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        !cs.is_empty() && cs.iter().all(|c| &c["observedGeneration"] == generation)
    }) && &obj["status"]["observedGeneration"] == generation
}

/// Polls `check` on `kubectl get {what} -o json` until it holds; panics with the last object
/// and the controller's log.
fn wait_for(
    ns: &Namespace,
    what: &str,
    description: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let obj = ns.get_json(what);
        if check(&obj) {
            return obj;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what} in {}: timed out after {DEADLINE:?} waiting for {description}; last seen:\n{}\ncontroller log:\n{}",
                ns.name(),
                serde_json::to_string_pretty(&obj["status"]).unwrap_or_default(),
                controller().log_tail(40)
            );
        }
        std::thread::sleep(POLL);
    }
}

fn wait_accepted(ns: &Namespace, what: &str) -> Value {
    wait_for(ns, what, "Accepted=True", |o| {
        condition_status(o, "Accepted").as_deref() == Some("True") && conditions_current(o)
    })
}

fn resource_version(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned()
}

#[test]
fn quickstart_is_accepted_and_programmed() {
    let ns = namespace("controller-quickstart");
    ns.apply(&ns.quickstart());
    wait_accepted(&ns, "route/hello-root");
    wait_accepted(&ns, "route/hello-states");
    let gw = wait_for(
        &ns,
        "apigateway/hello",
        "Accepted, Programmed and Ready",
        |o| {
            ["Accepted", "Programmed", "Ready"]
                .iter()
                .all(|t| condition_status(o, t).as_deref() == Some("True"))
                && conditions_current(o)
        },
    );
    let status = &gw["status"];
    let url = format!("http://hello.{}.localhost/dev", ns.name());
    assert_eq!(status["invokeUrl"], url.as_str(), "{status:#}");
    assert_eq!(status["stages"][0]["name"], "dev", "{status:#}");
    assert_eq!(status["stages"][0]["invokeUrl"], url.as_str(), "{status:#}");
    let version = status["tableVersion"].as_str().unwrap_or_default();
    assert!(
        version.len() == 16 && version.chars().all(|c| c.is_ascii_hexdigit()),
        "tableVersion {version:?}"
    );
    assert_eq!(status["observedGeneration"], gw["metadata"]["generation"]);
    let route = ns.get_json("route/hello-root");
    assert_eq!(
        condition_status(&route, "ResolvedRefs").as_deref(),
        Some("True")
    );
    assert_eq!(
        condition_status(&route, "Conflicted").as_deref(),
        Some("False")
    );

    let table = ns.kubectl_ok(&["get", "agw", "hello"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| row.get(i).copied())
            .unwrap_or_else(|| panic!("no {name} column in\n{table}"))
    };
    assert_eq!(column("URL"), url, "{table}");
    assert_eq!(column("READY"), "True", "{table}");
}

#[test]
fn a_stage_variable_no_stage_defines_is_a_condition_on_the_route() {
    let ns = namespace("controller-stage-variable");
    // The quickstart with its root route's variable misspelt.
    let quickstart = ns.quickstart();
    assert!(quickstart.contains("${stageVariables.greeting}"));
    ns.apply(&quickstart.replace("${stageVariables.greeting}", "${stageVariables.greting}"));
    let route = wait_for(&ns, "route/hello-root", "ResolvedRefs=False", |o| {
        condition_status(o, "ResolvedRefs").as_deref() == Some("False") && conditions_current(o)
    });
    let (_, reason, message) = condition(&route, "ResolvedRefs").expect("ResolvedRefs");
    assert_eq!(reason, "StageVariableNotFound");
    assert!(
        message.starts_with(
            "spec.integration.mock.body: ${stageVariables.greting} is defined in no stage"
        ),
        "{message}"
    );
    // Still served as written: accepted, and the other route untouched.
    assert_eq!(
        condition_status(&route, "Accepted").as_deref(),
        Some("True")
    );
    let other = wait_accepted(&ns, "route/hello-states");
    assert_eq!(
        condition_status(&other, "ResolvedRefs").as_deref(),
        Some("True")
    );
}

#[test]
fn a_duplicate_path_parameter_is_rejected_and_the_others_stay() {
    let ns = namespace("controller-invalid-path");
    ns.apply(&ns.quickstart());
    wait_accepted(&ns, "route/hello-root");
    ns.apply(&mock_route("dup", "hello", "GET", "/pets/{id}/{id}"));
    let bad = wait_for(&ns, "route/dup", "Accepted=False", |o| {
        condition_status(o, "Accepted").as_deref() == Some("False")
    });
    let (_, reason, message) = condition(&bad, "Accepted").expect("Accepted");
    assert_eq!(reason, "InvalidPath", "{message}");
    assert!(message.contains("spec.path"), "{message}");
    for good in ["route/hello-root", "route/hello-states"] {
        let obj = ns.get_json(good);
        assert_eq!(
            condition_status(&obj, "Accepted").as_deref(),
            Some("True"),
            "{good}"
        );
    }
    let gw = ns.get_json("apigateway/hello");
    assert_eq!(condition_status(&gw, "Ready").as_deref(), Some("True"));

    // The rejection is also a Warning event on the Route.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let events = ns.get_json("events");
        let found = events["items"].as_array().is_some_and(|items| {
            items.iter().any(|e| {
                e["involvedObject"]["name"] == "dup"
                    && e["type"] == "Warning"
                    && e["reason"] == "InvalidPath"
            })
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Warning InvalidPath event for route/dup; events:\n{events:#}\ncontroller log:\n{}",
            controller().log_tail(40)
        );
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_missing_gateway_is_reported_until_it_exists() {
    let ns = namespace("controller-missing-gateway");
    ns.apply(&mock_route("orphan", "later", "GET", "/orphan"));
    let orphan = wait_for(&ns, "route/orphan", "Accepted=False", |o| {
        condition_status(o, "Accepted").as_deref() == Some("False")
    });
    let (_, reason, _) = condition(&orphan, "Accepted").expect("Accepted");
    assert_eq!(reason, "GatewayNotFound");
    let (resolved, resolved_reason, _) = condition(&orphan, "ResolvedRefs").expect("ResolvedRefs");
    assert_eq!(
        (resolved.as_str(), resolved_reason.as_str()),
        ("False", "GatewayNotFound")
    );

    ns.apply("apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata:\n  name: later\nspec:\n  stages:\n    - name: prod\n",
    );
    let orphan = wait_accepted(&ns, "route/orphan");
    assert_eq!(
        condition_status(&orphan, "ResolvedRefs").as_deref(),
        Some("True")
    );
    let gw = wait_for(&ns, "apigateway/later", "Ready=True", |o| {
        condition_status(o, "Ready").as_deref() == Some("True")
    });
    assert_eq!(
        gw["status"]["invokeUrl"],
        format!("http://later.{}.localhost/prod", ns.name()).as_str()
    );
}

#[test]
fn an_unchanged_status_is_not_written_again() {
    let ns = namespace("controller-no-loop");
    ns.apply(&ns.quickstart());
    ns.apply(&mock_route("dup", "hello", "GET", "/pets/{id}/{id}"));
    let objects = [
        "apigateway/hello",
        "route/hello-root",
        "route/hello-states",
        "route/dup",
    ];
    wait_for(&ns, "apigateway/hello", "Ready=True", |o| {
        condition_status(o, "Ready").as_deref() == Some("True")
    });
    for what in &objects[1..3] {
        wait_accepted(&ns, what);
    }
    wait_for(&ns, "route/dup", "Accepted=False", |o| {
        condition_status(o, "Accepted").as_deref() == Some("False")
    });
    let before: Vec<String> = objects
        .iter()
        .map(|w| resource_version(&ns.get_json(w)))
        .collect();
    // Nudge the controller: a change elsewhere makes it compile everything again.
    ns.apply(&mock_route("other", "hello", "GET", "/other"));
    wait_accepted(&ns, "route/other");
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<String> = objects
        .iter()
        .map(|w| resource_version(&ns.get_json(w)))
        .collect();
    // The gateway's table changed with the new route, so its status may be rewritten once;
    // the routes' statuses did not change, so they are not written.
    assert_eq!(before[1..], after[1..], "route statuses were rewritten");
    let gw = ns.get_json("apigateway/hello");
    let settled = resource_version(&gw);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        settled,
        resource_version(&ns.get_json("apigateway/hello")),
        "the gateway's status keeps being rewritten"
    );
}

#[test]
fn the_older_of_two_conflicting_routes_wins() {
    let ns = namespace("controller-conflict");
    ns.apply(&ns.quickstart());
    // Named so that the first also sorts first when both were created in the same second.
    ns.apply(&mock_route("pets-1-first", "hello", "GET", "/pets"));
    wait_accepted(&ns, "route/pets-1-first");
    ns.apply(&mock_route("pets-2-second", "hello", "GET", "/pets"));
    let second = wait_for(&ns, "route/pets-2-second", "Conflicted=True", |o| {
        condition_status(o, "Conflicted").as_deref() == Some("True") && conditions_current(o)
    });
    let (_, reason, message) = condition(&second, "Conflicted").expect("Conflicted");
    assert_eq!(reason, "RouteConflict");
    assert!(message.contains("pets-1-first"), "{message}");
    let first = ns.get_json("route/pets-1-first");
    assert_eq!(
        condition_status(&first, "Conflicted").as_deref(),
        Some("False")
    );
    assert_eq!(
        condition_status(&first, "Accepted").as_deref(),
        Some("True")
    );
}

/// A test-only PEM file of `crds/tests/testdata` (throwaway certificates and key).
fn test_pem(file: &str) -> String {
    let path = workspace_root().join("crds/tests/testdata").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Secret of `type_` with `data` as string data, as JSON (which kubectl applies too).
fn secret(name: &str, type_: &str, data: &[(&str, String)]) -> String {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": type_,
        "stringData": data,
    })
    .to_string()
}

/// A gateway whose domain `api.example.com` serves `api-tls` and asks for client certificates
/// from `truststore` (a YAML mapping such as `truststoreSecretRef: {name: x}`).
fn mtls_gateway(truststore: &str) -> String {
    format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata:\n  name: mtls\nspec:\n  stages:\n    - name: prod\n  domains:\n    - hostname: api.example.com\n      certificateSecretRef:\n        name: api-tls\n      mutualTls:\n        {truststore}\n      basePathMappings:\n        - stage: prod\n"
    )
}

fn resolved_refs(ns: &Namespace, description: &str, status: &str, reason: &str) -> Value {
    wait_for(ns, "apigateway/mtls", description, |o| {
        condition(o, "ResolvedRefs").is_some_and(|(s, r, _)| s == status && r == reason)
    })
}

/// The controller sees a truststore ConfigMap once it carries the label
/// `tollgate.dev/truststore`, and a truststore Secret of type `tollgate.dev/truststore` but
/// never an Opaque one (it watches Secrets by type, never all of them). Each change starts a
/// pass. A certificate Secret whose key is bad leaves the domain out, said in `Accepted`.
#[test]
fn truststores_are_seen_by_label_and_by_type() {
    let ns = namespace("controller-truststores");
    let (cert, key, ca) = (
        test_pem("test-only.crt"),
        test_pem("test-only.key"),
        test_pem("test-only-client-ca.crt"),
    );
    let tls = |key: &str| {
        secret(
            "api-tls",
            "kubernetes.io/tls",
            &[("tls.crt", cert.clone()), ("tls.key", key.to_owned())],
        )
    };
    ns.apply(&tls(&key));
    ns.apply(&mtls_gateway("truststoreConfigMapRef: {name: client-cas}"));
    let gw = resolved_refs(&ns, "ConfigMapNotFound", "False", "ConfigMapNotFound");
    let (_, _, message) = condition(&gw, "ResolvedRefs").expect("ResolvedRefs");
    assert!(
        message.contains("spec.domains[0].mutualTls.truststoreConfigMapRef.name")
            && message.contains("lacks the label tollgate.dev/truststore"),
        "{message}"
    );

    // Unlabelled, the ConfigMap is not watched; labelled, it is.
    let config_map = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "client-cas"},
        "data": {"ca.crt": ca},
    });
    ns.apply(&config_map.to_string());
    ns.kubectl_ok(&[
        "label",
        "configmap",
        "client-cas",
        "tollgate.dev/truststore=true",
    ]);
    resolved_refs(&ns, "the labelled ConfigMap", "True", "ResolvedRefs");

    // An Opaque Secret is never seen: to the controller it does not exist.
    ns.apply(&secret("opaque-cas", "Opaque", &[("ca.crt", ca.clone())]));
    ns.apply(&mtls_gateway("truststoreSecretRef: {name: opaque-cas}"));
    let gw = resolved_refs(&ns, "SecretNotFound", "False", "SecretNotFound");
    let (_, _, message) = condition(&gw, "ResolvedRefs").expect("ResolvedRefs");
    assert!(
        message.contains("is not of type tollgate.dev/truststore"),
        "{message}"
    );

    ns.apply(&mtls_gateway("truststoreSecretRef: {name: client-cas}"));
    ns.apply(&secret(
        "client-cas",
        "tollgate.dev/truststore",
        &[("ca.crt", ca.clone())],
    ));
    let gw = resolved_refs(
        &ns,
        "the tollgate.dev/truststore Secret",
        "True",
        "ResolvedRefs",
    );
    assert_eq!(
        condition(&gw, "Accepted").map(|(s, _, m)| (s, m)),
        Some(("True".into(), "the resource is valid and compiled".into()))
    );

    // A certificate Secret edited to hold no key: the domain is left out, and said so.
    ns.apply(&tls(&cert));
    let gw = wait_for(&ns, "apigateway/mtls", "the bad key in Accepted", |o| {
        condition(o, "Accepted").is_some_and(|(s, _, m)| {
            s == "True" && m.contains("Secret") && m.contains("key tls.key holds no private key")
        })
    });
    let (_, _, message) = condition(&gw, "Accepted").expect("Accepted");
    assert!(
        message.contains("spec.domains[0].certificateSecretRef.name")
            && !message.contains(key.lines().nth(1).expect("a key line")),
        "{message}"
    );
}

/// Against an API server that does not answer, the controller stops at once with one line
/// that names it and says what to check (not four causes and a backtrace).
#[test]
fn an_unreachable_api_server_stops_the_controller_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\"}}\n\
             users:\n- name: u\n  user: {{token: x}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let output =
        std::process::Command::new(tollgate_tests::proxy::binary_named("tollgate-controller"))
            .args([
                "--metrics-listen",
                "127.0.0.1:0",
                "--snapshot-listen",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LOG")
            .output()
            .expect("running tollgate-controller");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!(
            "cannot reach the Kubernetes API server at https://127.0.0.1:{port}/: check"
        )),
        "{stderr}"
    );
    assert!(errors[0].contains("KUBECONFIG"), "{stderr}");
    assert_eq!(
        errors[0].matches("client error (Connect)").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
    assert!(stderr.lines().count() <= 3, "{stderr}");
}
