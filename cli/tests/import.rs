//! `tollgate import` on Amazon-style exports: the resources it writes (golden files: the
//! YAML on standard output and the report on standard error), compiled by Tollgate's own
//! compiler with every resource accepted; and the round trip: what `tollgate export` writes of
//! the imported resources imports to the same resources. `UPDATE_GOLDEN=1` rewrites the
//! expected files.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn run_import(fixture: &Path) -> (String, String) {
    run_import_with(fixture, &[])
}

/// Runs `tollgate import FIXTURE ARGS…`: its standard output and standard error.
fn run_import_with(fixture: &Path, args: &[&str]) -> (String, String) {
    tollgate(&[OsStr::new("import"), fixture.as_os_str()], args)
}

/// Runs `tollgate {command} {path}`: its standard output and standard error.
fn run(command: &str, path: &Path) -> (String, String) {
    tollgate(&[OsStr::new(command), path.as_os_str()], &[])
}

/// Runs `tollgate` with `args` then `more`, which must succeed: its standard output and
/// standard error.
fn tollgate(args: &[&OsStr], more: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .args(more)
        .output()
        .expect("running tollgate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8(output.stdout).expect("UTF-8 YAML"),
        String::from_utf8(output.stderr).expect("UTF-8 report"),
    )
}

/// Imports `fixture`, exports what it gave (which must export whole) and imports that: the
/// first import's YAML, the exported document and the second import's YAML.
fn round_trip(fixture: &str) -> (String, serde_json::Value, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let work = tempfile::tempdir().expect("a temporary folder");
    let (first, _) = run_import(&dir.join(fixture));
    let imported = work.path().join("imported.yaml");
    std::fs::write(&imported, &first).unwrap();

    let (exported, report) = run("export", &imported);
    assert!(
        report.is_empty(),
        "the imported resources export whole:\n{report}"
    );
    let document: serde_json::Value = serde_yaml::from_str(&exported).expect("YAML");
    let again = work.path().join("exported.yaml");
    std::fs::write(&again, &exported).unwrap();
    let (second, report) = run_import(&again);
    assert!(report.is_empty(), "the export imports whole:\n{report}");
    (first, document, second)
}

fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(path, actual).expect("writable golden file");
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn the_petstore_export_imports_to_resources_tollgate_accepts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let (yaml, report) = run_import(&dir.join("petstore.yaml"));
    check_golden(&dir.join("petstore.expected.yaml"), &yaml);
    check_golden(&dir.join("petstore.report.txt"), &report);

    let compiled = tollgate_crds::compile::compile_str(&yaml, "imported").expect("the YAML loads");
    for diagnostic in &compiled.diagnostics {
        assert!(diagnostic.accepted, "{diagnostic:?}");
    }
    let table = compiled.tables.values().next().expect("one gateway");
    let routes: Vec<&str> = table.stages[0]
        .routes
        .iter()
        .map(|r| r.route_key.as_str())
        .collect();
    assert_eq!(
        routes,
        [
            "GET /",
            "GET /pets",
            "POST /pets",
            "GET /pets/{petId}",
            "GET /stats"
        ]
    );
    // What is left out is named by its pointer.
    let pointer = "/paths/~1legacy/get/x-amazon-apigateway-integration/type";
    assert!(
        report.contains(&format!("{pointer}: ")),
        "{pointer} not reported:\n{report}"
    );
}

#[test]
fn import_then_export_then_import_gives_the_same_resources() {
    let (first, document, second) = round_trip("petstore.yaml");
    assert_eq!(document["openapi"], "3.0.1");
    assert_eq!(
        document["paths"]["/pets/{petId}"]["get"]["x-amazon-apigateway-integration"]["uri"],
        "http://petstore.execute-api.us-east-1.amazonaws.com/petstore/pets/{petId}"
    );
    assert_eq!(first, second);
}

/// Compiles imported YAML: every resource must be accepted; the one table.
fn accepted(yaml: &str) -> tollgate_crds::table::GatewayTable {
    let compiled = tollgate_crds::compile::compile_str(yaml, "imported").expect("the YAML loads");
    for diagnostic in &compiled.diagnostics {
        assert!(
            diagnostic.accepted && diagnostic.problems.is_empty(),
            "{diagnostic:?}"
        );
    }
    compiled.tables.into_values().next().expect("one gateway")
}

#[test]
fn a_rest_api_with_validation_templates_and_gateway_responses_imports_whole() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let (yaml, report) = run_import(&dir.join("rest-transformations.yaml"));
    check_golden(&dir.join("rest-transformations.expected.yaml"), &yaml);
    check_golden(&dir.join("rest-transformations.report.txt"), &report);

    let table = accepted(&yaml);
    let models: Vec<&str> = table.models.keys().map(String::as_str).collect();
    assert_eq!(models, ["Empty", "Error", "NewPet", "Owner", "Pets"]);
    let responses: Vec<&str> = table
        .gateway_responses
        .iter()
        .map(|r| r.response_type.as_str())
        .collect();
    assert_eq!(
        responses,
        [
            "BAD_REQUEST_BODY",
            "DEFAULT_4XX",
            "MISSING_AUTHENTICATION_TOKEN"
        ]
    );
    let routes = &table.stages[0].routes;
    let keys: Vec<&str> = routes.iter().map(|r| r.route_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "GET /pets",
            "POST /pets",
            "GET /pets/{petId}",
            "DELETE /pets/{petId}"
        ]
    );
    // Every route validates (the document's default validator, or its own).
    assert!(routes.iter().all(|r| r.validation.is_some()));
    let post = routes.iter().find(|r| r.route_key == "POST /pets").unwrap();
    let validation = post.validation.as_deref().unwrap();
    assert!(validation.validate_body);
    assert_eq!(validation.body_models["application/json"], "NewPet");
    // Non-proxy integrations: HTTP and Lambda with their templates; the proxy one without.
    let json = serde_json::to_value(routes).unwrap();
    let templated: Vec<bool> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| !r["integration"]["templates"].is_null())
        .collect();
    assert_eq!(templated, [true, true, true, false], "{json:#}");

    for pointer in [
        "/paths/~1orders/post/x-amazon-apigateway-integration/type",
        "/paths/~1pets/post/x-amazon-apigateway-integration/contentHandling",
        "/paths/~1pets/post/x-amazon-apigateway-integration/requestParameters/integration.request.header.x-pet-name",
        "/paths/~1pets~1{petId}/get/x-amazon-apigateway-integration/credentials",
        "/paths/~1pets~1{petId}/get/x-amazon-apigateway-integration/requestParameters/integration.request.header.X-Amz-Invocation-Type",
    ] {
        assert!(
            report.contains(&format!("{pointer}: ")),
            "{pointer} not reported:\n{report}"
        );
    }
}

#[test]
fn a_rest_api_with_validation_templates_and_gateway_responses_round_trips() {
    let (first, document, second) = round_trip("rest-transformations.yaml");
    let pets = &document["paths"]["/pets"];
    assert_eq!(
        document["components"]["schemas"]["NewPet"]["properties"]["owner"]["$ref"],
        "#/components/schemas/Owner"
    );
    assert_eq!(
        document["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"]["statusCode"],
        422
    );
    assert_eq!(
        document["x-amazon-apigateway-request-validators"]["all"]["validateRequestBody"],
        true
    );
    assert_eq!(pets["post"]["x-amazon-apigateway-request-validator"], "all");
    assert_eq!(
        pets["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewPet"
    );
    let integration = &pets["get"]["x-amazon-apigateway-integration"];
    assert_eq!(integration["type"], "http");
    assert_eq!(integration["passthroughBehavior"], "when_no_match");
    assert_eq!(integration["responses"]["4\\d{2}"]["statusCode"], "400");
    // Each status code an integration response gives is a method response, with its headers.
    let responses = &pets["get"]["responses"];
    for status in ["200", "400", "502"] {
        assert!(responses[status].is_object(), "{status}: {responses}");
    }
    assert!(responses["200"]["headers"]["x-total"].is_object());
    let lambda = &document["paths"]["/pets/{petId}"]["get"]["x-amazon-apigateway-integration"];
    assert_eq!(lambda["type"], "aws");
    assert_eq!(lambda["responses"][".*NotFound.*"]["statusCode"], "404");
    assert_eq!(first, second);
}

/// A Swagger 2 document with what Tollgate's compiler refuses: a model that is no valid
/// schema (and the route that validates against it), a template that does not parse, a
/// gateway response of no known type, a header name no request has.
const SWAGGER_REFUSED: &str = r##"
swagger: "2.0"
info: {title: refused}
basePath: /v1
consumes: [application/json]
x-amazon-apigateway-request-validators:
  body: {validateRequestBody: true, validateRequestParameters: false}
x-amazon-apigateway-gateway-responses:
  NOT_A_TYPE: {statusCode: 400}
  THROTTLED: {statusCode: "503"}
definitions:
  Tag: {type: object, properties: {name: {type: string}}}
  Pet: {type: object, properties: {tag: {$ref: "#/definitions/Tag"}}}
  Broken: {type: object, properties: {code: {type: string, pattern: "(["}}}
paths:
  /pets:
    post:
      x-amazon-apigateway-request-validator: body
      parameters:
        - {in: body, name: Pet, schema: {$ref: "#/definitions/Pet"}}
        - {in: header, name: "bad header", required: true, type: string}
      x-amazon-apigateway-integration:
        type: http
        httpMethod: POST
        uri: http://pets.example/pets
        responses: {default: {statusCode: "201"}}
  /broken:
    post:
      x-amazon-apigateway-request-validator: body
      parameters:
        - {in: body, name: Broken, schema: {$ref: "#/definitions/Broken"}}
      x-amazon-apigateway-integration:
        type: http
        httpMethod: POST
        uri: http://pets.example/broken
  /template:
    get:
      x-amazon-apigateway-integration:
        type: http
        httpMethod: GET
        uri: http://pets.example/template
        requestTemplates: {application/json: "#if($input.body"}
"##;

#[test]
fn what_tollgate_refuses_of_a_swagger_export_is_reported_and_the_rest_compiles() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let file = work.path().join("refused.yaml");
    std::fs::write(&file, SWAGGER_REFUSED).unwrap();
    let (yaml, report) = run_import(&file);
    let table = accepted(&yaml);
    // Swagger's definitions are models, referring to each other by Amazon's model URL.
    assert!(yaml.contains("$ref: https://apigateway.amazonaws.com/restapis/refused/models/Tag"));
    let models: Vec<&str> = table.models.keys().map(String::as_str).collect();
    assert_eq!(models, ["Pet", "Tag"]);
    let keys: Vec<&str> = table.stages[0]
        .routes
        .iter()
        .map(|r| r.route_key.as_str())
        .collect();
    assert_eq!(keys, ["POST /pets"]);
    let pets = &table.stages[0].routes[0];
    assert_eq!(
        pets.validation.as_deref().unwrap().body_models["application/json"],
        "Pet"
    );
    for pointer in [
        "/definitions/Broken",
        "/paths/~1broken/post",
        "/paths/~1template/get/x-amazon-apigateway-integration",
        "/x-amazon-apigateway-gateway-responses/NOT_A_TYPE",
        "/paths/~1pets/post/parameters",
    ] {
        assert!(
            report.contains(&format!("{pointer}: Tollgate refuses")),
            "{pointer} not reported:\n{report}"
        );
    }
}

#[test]
fn what_an_export_cannot_say_is_reported() {
    let tenancy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/tenancy");
    let (document, report) = run("export", &tenancy);
    let document: serde_json::Value = serde_yaml::from_str(&document).expect("YAML");
    assert!(document["paths"].as_object().is_some_and(|p| !p.is_empty()));
    for said in ["mock.headers: not exported", "usage plans are not part of"] {
        assert!(report.contains(said), "{said:?} not in:\n{report}");
    }
}

const INVENTORY_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: inventory
  namespace: default
spec:
  ports:
    - port: 8080
";

#[test]
fn an_http_api_export_imports_as_an_http_api_with_its_authorizers_mappings_and_cors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let (yaml, report) = run_import_with(
        &dir.join("http-api.yaml"),
        &["--vpc-link", "vl1234=inventory:8080"],
    );
    check_golden(&dir.join("http-api.expected.yaml"), &yaml);
    check_golden(&dir.join("http-api.report.txt"), &report);

    // Tollgate's compiler accepts every resource (the VPC link's Service exists in a cluster).
    let compiled =
        tollgate_crds::compile::compile_str(&format!("{yaml}---\n{INVENTORY_SERVICE}"), "imported")
            .expect("the YAML loads");
    for diagnostic in &compiled.diagnostics {
        assert!(diagnostic.accepted, "{diagnostic:?}");
    }
    let table = compiled.tables.values().next().expect("one gateway");
    assert!(table.http_api);
    assert_eq!(table.stages[0].name, "$default");
    let names: Vec<&str> = table.authorizers.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["jwt-authorizer", "lambda-authorizer"]);
    let keys: Vec<&str> = table.stages[0]
        .routes
        .iter()
        .map(|r| r.route_key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "$default",
            "ANY /admin/{proxy+}",
            "GET /inventory",
            "GET /pets",
            "POST /pets",
            "GET /pets/{petId}"
        ]
    );
    let post = table.stages[0]
        .routes
        .iter()
        .find(|r| r.route_key == "POST /pets")
        .unwrap();
    assert_eq!(post.authorizer.as_deref(), Some("jwt-authorizer"));
    assert_eq!(post.authorization_scopes, ["pets:write"]);
    assert!(table.cors.is_some());

    // Without the VPC link's Service, its route is left out and said.
    let (_, report) = run_import(&dir.join("http-api.yaml"));
    assert!(
        report.contains("/paths/~1inventory/get/x-amazon-apigateway-integration/connectionId: VPC link \"vl1234\""),
        "{report}"
    );
}

#[test]
fn an_http_api_survives_import_export_import() {
    // The VPC link's route is left out of the first import (no --vpc-link); the rest survives.
    let (first, document, second) = round_trip("http-api.yaml");
    assert_eq!(document["x-amazon-apigateway-importexport-version"], "1.0");
    assert_eq!(
        document["paths"]["/$default"]["x-amazon-apigateway-any-method"]["isDefaultRoute"],
        true
    );
    assert_eq!(
        document["components"]["securitySchemes"]["jwt-authorizer"]["x-amazon-apigateway-authorizer"]
            ["type"],
        "jwt"
    );
    assert_eq!(first, second);
}

#[test]
fn a_bad_document_fails_naming_the_place_and_writes_nothing() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let cases = [
        (
            "not-yaml.yaml",
            "openapi: [3.0\n  paths: {",
            "is not YAML or JSON",
        ),
        (
            "no-paths.yaml",
            "openapi: 3.0.1\ninfo: {title: x}\n",
            "/paths: missing",
        ),
        (
            "no-type.yaml",
            "swagger: '2.0'\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration: {uri: 'http://x'}\n",
            "/paths/~1a/get/x-amazon-apigateway-integration/type: missing",
        ),
        (
            "not-openapi.json",
            r#"{"info": {"title": "x"}}"#,
            "not an OpenAPI document",
        ),
    ];
    for (name, text, said) in cases {
        let file = work.path().join(name);
        std::fs::write(&file, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("import")
            .arg(&file)
            .output()
            .expect("running tollgate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} imported");
        assert!(stderr.contains(said), "{name}: {said:?} not in {stderr}");
        assert!(output.stdout.is_empty(), "{name}: resources written");
    }
    // --strict: a document that imports with constructs left out is an error.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let strict = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["import", "--strict"])
        .arg(dir.join("petstore.yaml"))
        .output()
        .expect("running tollgate");
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("--strict"));
}
