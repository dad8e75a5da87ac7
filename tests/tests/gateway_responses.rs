//! Gateway responses (REST APIs) end to end, through a standalone `tollgate-proxy`: a type's own
//! customisation (status, headers from literals, the request and the context, a template body),
//! `DEFAULT_4XX` and `DEFAULT_5XX` for types without one, templates chosen by `Accept`,
//! `$context.error.validationErrorString`, and the defaults untouched where nothing is
//! customised.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, http, mock, route};
use tollgate_tests::proxy::serve;

fn customised_gateway() -> Value {
    let mut gw = gateway(
        "pets",
        json!([{"name": "prod", "variables": {"env": "production"}}]),
    );
    gw["spec"]["gatewayResponses"] = json!({
        "MISSING_AUTHENTICATION_TOKEN": {
            "statusCode": 404,
            "responseParameters": {
                "gatewayresponse.header.X-Request": "context.requestId",
                "gatewayresponse.header.X-Asked-For": "method.request.header.X-Tenant"
            },
            "responseTemplates": {
                "application/json": "{\"error\": \"no such resource\", \"path\": \"$context.path\", \"type\": \"$context.error.responseType\"}"
            }
        },
        "THROTTLED": {
            "statusCode": 503,
            "responseParameters": {"gatewayresponse.header.Retry-After": "'10'"}
        },
        "BAD_REQUEST_BODY": {
            "responseTemplates": {
                "application/json": "{\"message\": $context.error.messageString, \"errors\": \"$util.escapeJavaScript($context.error.validationErrorString)\"}"
            }
        },
        "DEFAULT_4XX": {
            "responseParameters": {
                "gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
                "gatewayresponse.header.X-Stage": "stageVariables.env"
            },
            "responseTemplates": {
                "application/json": "{\"message\": $context.error.messageString, \"stage\": \"$stageVariables.env\"}"
            }
        },
        "DEFAULT_5XX": {
            "responseTemplates": {
                "application/json": "{\"fault\": \"ours\", \"requestId\": \"$context.requestId\"}",
                "application/xml": "<fault requestId=\"$context.requestId\">$context.error.message</fault>"
            }
        }
    });
    gw["spec"]["models"] = json!({"Pet": {"schema": {"type": "object", "required": ["name"]}}});
    gw["spec"]["requestValidators"] = json!({"body": {"validateRequestBody": true}});
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_api_answers_refusals_and_failures_in_its_own_format() {
    let backend = Backend::echo();
    let mut keyed = route("keyed", "pets", "GET", "/keyed", http(&backend.url("/")));
    keyed["spec"]["apiKeyRequired"] = json!(true);
    let mut closed = route("closed", "pets", "GET", "/closed", mock(200, "{}"));
    closed["spec"]["throttle"] = json!({"rateLimit": 0, "burstLimit": 0});
    let mut create = route("create", "pets", "POST", "/pets", mock(201, "{}"));
    create["spec"]["requestValidator"] = json!("body");
    create["spec"]["requestModels"] = json!({"application/json": "Pet"});
    let proxy = serve(
        &[
            customised_gateway(),
            keyed,
            closed,
            create,
            route("down", "pets", "GET", "/down", http("http://127.0.0.1:1/")),
        ],
        &[],
    );
    let client = Client::new();

    // The type's own: status, headers from the context and the request, the template.
    let missing = client
        .get(&proxy.url("/prod/nothing"), &[("x-tenant", "acme")])
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(
        missing.json(),
        json!({"error": "no such resource", "path": "/prod/nothing", "type": "MISSING_AUTHENTICATION_TOKEN"})
    );
    assert_eq!(
        missing.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        missing.header("x-request"),
        missing.header("x-amzn-requestid")
    );
    assert_eq!(missing.header("x-asked-for").as_deref(), Some("acme"));
    assert_eq!(
        missing.header("x-amzn-errortype").as_deref(),
        Some("MissingAuthenticationTokenException")
    );

    // A type without its own takes DEFAULT_4XX (INVALID_API_KEY here).
    let no_key = client.get(&proxy.url("/prod/keyed"), &[]).await;
    assert_eq!(no_key.status, 403);
    assert_eq!(
        no_key.json(),
        json!({"message": "Forbidden", "stage": "production"})
    );
    assert_eq!(
        no_key.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(no_key.header("x-stage").as_deref(), Some("production"));

    // Status and a header only: the default body stays.
    let throttled = client.get(&proxy.url("/prod/closed"), &[]).await;
    assert_eq!(throttled.status, 503);
    assert_eq!(throttled.header("retry-after").as_deref(), Some("10"));
    assert_eq!(throttled.json(), json!({"message": "Too Many Requests"}));

    // What validation found reaches the template.
    let invalid = client
        .request(
            "POST",
            &proxy.url("/prod/pets"),
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(invalid.status, 400);
    let body = invalid.json();
    assert_eq!(body["message"], "Invalid request body");
    assert!(
        body["errors"].as_str().unwrap().contains("name"),
        "validationErrorString names the missing property: {body}"
    );

    // DEFAULT_5XX, its template chosen by Accept.
    let down = client
        .get(
            &proxy.url("/prod/down"),
            &[("accept", "text/html, application/xml;q=0.9")],
        )
        .await;
    assert_eq!(down.status, 504);
    assert_eq!(
        down.header("content-type").as_deref(),
        Some("application/xml")
    );
    let request_id = down.header("x-amzn-requestid").unwrap();
    assert_eq!(
        down.text(),
        format!("<fault requestId=\"{request_id}\">Internal server error</fault>")
    );
    let down_json = client.get(&proxy.url("/prod/down"), &[]).await;
    assert_eq!(down_json.json()["fault"], "ours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_customisations_keeps_amazons_defaults() {
    let proxy = serve(&[gateway("plain", json!([{"name": "prod"}]))], &[]);
    let missing = Client::new().get(&proxy.url("/prod/nothing"), &[]).await;
    assert_eq!(missing.status, 403);
    assert_eq!(
        missing.text(),
        r#"{"message":"Missing Authentication Token"}"#
    );
}
