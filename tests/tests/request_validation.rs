//! Request validation (REST APIs) end to end, through a standalone `tollgate-proxy` and a real
//! HTTP backend: required parameters, bodies against JSON Schema (draft 4) models that refer
//! to each other by Amazon's model URL, Amazon's 400 bodies, the 415 for a content type
//! without a model, and a route whose model is not valid left unserved while the others serve.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{dev_gateway, http, route};
use tollgate_tests::proxy::serve;

fn gateway_with_models() -> Value {
    let mut gw = dev_gateway("pets");
    gw["spec"]["models"] = json!({
        "Pet": {
            "contentType": "application/json",
            "schema": {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "required": ["name", "price"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "price": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                    "owner": {"$ref": "https://apigateway.amazonaws.com/restapis/a1b2c3/models/Owner"}
                }
            }
        },
        "Owner": {"schema": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}},
        "Broken": {"schema": {"type": "object", "properties": {"id": {"type": "string", "pattern": "(["}}}}
    });
    gw["spec"]["requestValidators"] = json!({
        "all": {"validateRequestBody": true, "validateRequestParameters": true},
        "params-only": {"validateRequestParameters": true}
    });
    gw
}

fn with(mut route: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        route["spec"][k] = v.clone();
    }
    route
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_parameters_are_checked_before_the_backend_is_called() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            gateway_with_models(),
            with(
                route(
                    "list",
                    "pets",
                    "GET",
                    "/owners/{ownerId}/pets",
                    http(&backend.url("/pets")),
                ),
                json!({
                    "requestValidator": "params-only",
                    "requestParameters": {
                        "method.request.querystring.limit": true,
                        "method.request.header.x-tenant": true,
                        "method.request.querystring.cursor": false,
                        "method.request.path.ownerId": true
                    }
                }),
            ),
        ],
        &[],
    );
    let client = Client::new();

    // Both missing: named as Amazon lists them (by key: header before querystring).
    let missing = client.get(&proxy.url("/dev/owners/7/pets"), &[]).await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.text(),
        r#"{"message":"Missing required request parameters: [x-tenant, limit]"}"#
    );
    assert_eq!(
        missing.header("x-amzn-errortype").as_deref(),
        Some("BadRequestException")
    );

    // Blank counts as missing; an optional parameter is never asked for.
    let blank = client
        .get(
            &proxy.url("/dev/owners/7/pets?limit="),
            &[("x-tenant", " ")],
        )
        .await;
    assert_eq!(
        blank.text(),
        r#"{"message":"Missing required request parameters: [x-tenant, limit]"}"#
    );
    assert!(
        backend.received().is_empty(),
        "refused requests reached the backend"
    );

    let ok = client
        .get(
            &proxy.url("/dev/owners/7/pets?limit=10"),
            &[("x-tenant", "acme")],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(backend.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_checked_against_the_model_of_their_content_type() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            gateway_with_models(),
            with(
                route(
                    "create",
                    "pets",
                    "POST",
                    "/pets",
                    http(&backend.url("/pets")),
                ),
                json!({"requestValidator": "all", "requestModels": {"application/json": "Pet"}}),
            ),
        ],
        &[],
    );
    let client = Client::new();
    let url = proxy.url("/dev/pets");
    let json_type = [("content-type", "application/json; charset=utf-8")];

    for (body, why) in [
        (r#"{"name":"rex"}"#, "a required property is missing"),
        (
            r#"{"name":"rex","price":0}"#,
            "exclusiveMinimum (draft 4's boolean form)",
        ),
        (
            r#"{"name":"rex","price":"5"}"#,
            "a string where a number is due",
        ),
        (
            r#"{"name":"rex","price":5,"owner":{}}"#,
            "the referenced Owner model's required email",
        ),
        (r#"{"name":"rex","#, "not JSON"),
        ("", "an empty body is checked as {}"),
    ] {
        let refused = client
            .request("POST", &url, &json_type, body.to_owned())
            .await;
        assert_eq!(refused.status, 400, "{why}: {}", refused.text());
        assert_eq!(
            refused.text(),
            r#"{"message":"Invalid request body"}"#,
            "{why}"
        );
        assert_eq!(
            refused.header("x-amzn-errortype").as_deref(),
            Some("BadRequestException")
        );
    }
    assert!(
        backend.received().is_empty(),
        "invalid bodies reached the backend"
    );

    // No content type is application/json, as on Amazon; the body reaches the backend intact.
    let valid = r#"{"name":"rex","price":5.5,"owner":{"email":"a@b.c"}}"#;
    let created = client.request("POST", &url, &[], valid.to_owned()).await;
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["body"], valid);

    // A content type without a model (and no $default) cannot skip the check: 415.
    let plain = client
        .request(
            "POST",
            &url,
            &[("content-type", "text/plain")],
            "anything".to_owned(),
        )
        .await;
    assert_eq!(plain.status, 415, "{}", plain.text());
    assert_eq!(plain.text(), r#"{"message":"Unsupported Media Type"}"#);
    assert_eq!(backend.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_whose_model_is_not_valid_is_not_served_and_the_others_are() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            gateway_with_models(),
            with(
                route(
                    "broken",
                    "pets",
                    "POST",
                    "/broken",
                    http(&backend.url("/broken")),
                ),
                json!({"requestValidator": "all", "requestModels": {"application/json": "Broken"}}),
            ),
            with(
                route(
                    "create",
                    "pets",
                    "POST",
                    "/pets",
                    http(&backend.url("/pets")),
                ),
                json!({"requestValidator": "all", "requestModels": {"$default": "Pet"}}),
            ),
        ],
        &[],
    );
    let client = Client::new();
    let broken = client
        .request(
            "POST",
            &proxy.url("/dev/broken"),
            &[],
            r#"{"id":"x"}"#.to_owned(),
        )
        .await;
    assert_eq!(broken.status, 403, "{}", broken.text());
    assert_eq!(
        broken.text(),
        r#"{"message":"Missing Authentication Token"}"#
    );

    // `$default` takes any content type.
    let created = client
        .request(
            "POST",
            &proxy.url("/dev/pets"),
            &[("content-type", "application/vnd.pet+json")],
            r#"{"name":"rex","price":1}"#.to_owned(),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text());
}
