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
    // Every construct left out is named by its pointer.
    for pointer in [
        "/x-amazon-apigateway-binary-media-types",
        "/paths/~1pets~1{petId}/get/x-amazon-apigateway-integration/responses",
        "/paths/~1legacy/get/x-amazon-apigateway-integration/type",
    ] {
        assert!(
            report.contains(&format!("{pointer}: ")),
            "{pointer} not reported:\n{report}"
        );
    }
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
