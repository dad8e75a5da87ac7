//! Mapping templates and integration responses (Amazon's non-proxy integrations) end to end,
//! through a standalone `tollgate-proxy`: a real HTTP backend that echoes what it received, and
//! a real Python function under the Lambda Runtime Interface Emulator behind a custom Lambda
//! integration.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use serde_json::{Value, json};
use tollgate_tests::backend::{Backend, BackendOptions};
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, route};
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::{free_port, serve};

const REQUEST_TEMPLATE: &str = r##"#set($pet = $input.path('$'))
{
  "name": "$util.escapeJavaScript($pet.name)",
  "tags": [#foreach($tag in $pet.tags)"$tag"#if($foreach.hasNext), #end#end],
  "tenant": "$input.params('x-tenant')",
  "petId": "$input.params('petId')",
  "stage": "$context.stage",
  "env": "$stageVariables.env",
  "requestId": "$context.requestId"
}
#set($context.requestOverride.header.X-Mapped = "yes")
#set($context.requestOverride.querystring.source = "template")"##;

/// What the echo backend received, reshaped: the mapped body parsed back.
const RESPONSE_TEMPLATE: &str = r#"#set($sent = $util.parseJson($input.path('$.body')))
{"sent": $input.json('$.body'), "name": "$util.escapeJavaScript($sent.name)", "query": "$input.path('$.query')", "mapped": "$input.path('$.headers')['x-mapped'][0]"}"#;

fn pets_gateway() -> Value {
    gateway(
        "pets",
        json!([{"name": "prod", "variables": {"env": "production"}}]),
    )
}

fn http_route(name: &str, method: &str, path: &str, http: Value) -> Value {
    route(name, "pets", method, path, json!({ "http": http }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_integration_reshapes_the_request_and_the_answer() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            pets_gateway(),
            http_route(
                "create",
                "POST",
                "/owners/{petId}/pets",
                json!({
                    "url": backend.url("/pets"),
                    "requestTemplates": {"application/json": REQUEST_TEMPLATE},
                    "passthroughBehavior": "NEVER",
                    "integrationResponses": [{
                        "statusCode": 201,
                        "responseParameters": {
                            "method.response.header.X-Backend-Path": "integration.response.body.path",
                            "method.response.header.X-Fixed": "'1'"
                        },
                        "responseTemplates": {"application/json": RESPONSE_TEMPLATE}
                    }]
                }),
            ),
        ],
        &[],
    );
    let client = Client::new();
    let url = proxy.url("/prod/owners/7/pets?keep=1");
    let body = r#"{"name": "Rex \"the dog\"", "tags": ["good", "boy"], "ignored": true}"#;
    let created = client
        .request(
            "POST",
            &url,
            &[("content-type", "application/json"), ("x-tenant", "acme")],
            body.to_owned(),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("x-backend-path").as_deref(), Some("/pets"));
    assert_eq!(created.header("x-fixed").as_deref(), Some("1"));
    assert_eq!(
        created.header("content-type").as_deref(),
        Some("application/json")
    );
    let answer = created.json();
    // The backend got the template's output, not the client's body.
    let sent: Value = serde_json::from_str(answer["sent"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["name"], "Rex \"the dog\"",
        "escapeJavaScript keeps the JSON valid"
    );
    assert_eq!(sent["tags"], json!(["good", "boy"]));
    assert_eq!(sent["tenant"], "acme");
    assert_eq!(sent["petId"], "7");
    assert_eq!(sent["stage"], "prod");
    assert_eq!(sent["env"], "production");
    assert_eq!(
        sent["requestId"].as_str(),
        created.header("x-amzn-requestid").as_deref()
    );
    assert!(sent.get("ignored").is_none());
    // The overrides reached the backend; the response template read its answer.
    assert_eq!(answer["query"], "keep=1&source=template");
    assert_eq!(answer["mapped"], "yes");
    assert_eq!(
        answer["name"], "Rex \"the dog\"",
        "parseJson read the mapped body back"
    );

    // NEVER: a content type without a template is refused, and nothing reaches the backend.
    let received = backend.received().len();
    let refused = client
        .request(
            "POST",
            &url,
            &[("content-type", "text/plain")],
            "x".to_owned(),
        )
        .await;
    assert_eq!(refused.status, 415, "{}", refused.text());
    assert_eq!(refused.text(), r#"{"message":"Unsupported Media Type"}"#);
    assert_eq!(backend.received().len(), received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_responses_are_selected_by_the_backends_status() {
    let missing = Backend::start(BackendOptions {
        status: 404,
        ..BackendOptions::default()
    });
    let failing = Backend::start(BackendOptions {
        status: 503,
        ..BackendOptions::default()
    });
    let responses = json!([
        {
            "selectionPattern": "4\\d{2}",
            "statusCode": 400,
            "responseTemplates": {
                "application/json": "{\"error\": \"upstream said $input.path('$.method') $input.path('$.path') was not found\"}",
                "text/plain": "not found"
            }
        },
        {"selectionPattern": "5\\d{2}", "statusCode": 502},
        {"statusCode": 200}
    ]);
    let proxy = serve(
        &[
            pets_gateway(),
            http_route(
                "missing",
                "GET",
                "/missing",
                json!({"url": missing.url("/gone"), "integrationResponses": responses}),
            ),
            http_route(
                "failing",
                "GET",
                "/failing",
                json!({"url": failing.url("/"), "integrationResponses": responses}),
            ),
            http_route(
                "no-default",
                "GET",
                "/no-default",
                json!({"url": failing.url("/"), "integrationResponses": [{"selectionPattern": "2\\d{2}", "statusCode": 200}]}),
            ),
        ],
        &[],
    );
    let client = Client::new();

    let not_found = client.get(&proxy.url("/prod/missing"), &[]).await;
    assert_eq!(not_found.status, 400);
    assert_eq!(
        not_found.json(),
        json!({"error": "upstream said GET /gone was not found"})
    );
    let as_text = client
        .get(&proxy.url("/prod/missing"), &[("accept", "text/plain")])
        .await;
    assert_eq!(as_text.text(), "not found");
    assert_eq!(
        as_text.header("content-type").as_deref(),
        Some("text/plain")
    );

    // No template: the body passes through, with the response's status; backend headers
    // (its content-type among them) are not passed on.
    let failed = client.get(&proxy.url("/prod/failing"), &[]).await;
    assert_eq!(failed.status, 502);
    assert_eq!(failed.json()["path"], "/");

    // Nothing selects a 503 and there is no default: Amazon's configuration error.
    let unselected = client.get(&proxy.url("/prod/no-default"), &[]).await;
    assert_eq!(unselected.status, 500);
    assert_eq!(unselected.text(), r#"{"message":"Internal server error"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_lambda_integration_gets_the_templates_output_and_errors_select_responses() {
    let runtime =
        LambdaRuntime::start_example("tests/lambda/functions", "custom.handler", free_port(), &[]);
    let lambda = json!({"lambda": {
        "endpoint": runtime.endpoint(),
        "functionName": "function",
        "maxConcurrency": 1,
        "requestTemplates": {
            "application/json": "{\"petId\": \"$input.params('petId')\", \"verbose\": $input.json('$.verbose')}"
        },
        "integrationResponses": [
            {
                "selectionPattern": "NotFound:.*",
                "statusCode": 404,
                "responseTemplates": {"application/json": "{\"message\": \"$input.path('$.errorMessage')\"}"}
            },
            {
                "statusCode": 200,
                "responseTemplates": {"application/json": "{\"pet\": \"$input.path('$.received.petId')\", \"verbose\": $input.json('$.received.verbose')}"}
            }
        ]
    }});
    let proxy = serve(
        &[
            pets_gateway(),
            route("pet", "pets", "POST", "/pets/{petId}", lambda),
        ],
        &[],
    );
    let client = Client::new();

    let found = client
        .request(
            "POST",
            &proxy.url("/prod/pets/7"),
            &[],
            r#"{"verbose": true}"#.to_owned(),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.text());
    assert_eq!(found.json(), json!({"pet": "7", "verbose": true}));

    let missing = client
        .request(
            "POST",
            &proxy.url("/prod/pets/missing"),
            &[],
            r#"{"verbose": false}"#.to_owned(),
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(
        missing.json(),
        json!({"message": "NotFound: no pet missing"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_does_not_parse_leaves_its_route_unserved_and_the_others_served() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            pets_gateway(),
            http_route(
                "broken",
                "POST",
                "/broken",
                json!({"url": backend.url("/"), "requestTemplates": {"application/json": "{\n#if($input.body\n}"}}),
            ),
            http_route("fine", "GET", "/fine", json!({"url": backend.url("/")})),
        ],
        &[],
    );
    let client = Client::new();
    let broken = client
        .request("POST", &proxy.url("/prod/broken"), &[], "{}".to_owned())
        .await;
    assert_eq!(broken.status, 403);
    let fine = client.get(&proxy.url("/prod/fine"), &[]).await;
    assert_eq!(fine.status, 200);
}
