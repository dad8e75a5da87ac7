//! Tollgate's resources on a real Kubernetes API server: the CRDs in `crds/yaml/all.yaml`
//! installed on etcd + kube-apiserver + kube-controller-manager
//! ([`tollgate_tests::control_plane`]), driven with `kubectl` as a user would. One control
//! plane is shared by the tests of this file, each test in a namespace of its own.
//!
//! The first run builds the control-plane binaries from source (minutes; cached after, see
//! `tests/control-plane/README.md`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;
use tollgate_tests::control_plane::{ControlPlane, Namespace, output_text};
use tollgate_tests::workspace_root;

fn cp() -> &'static ControlPlane {
    ControlPlane::shared()
}

/// The YAML documents of `text` that are Kubernetes objects (have `apiVersion` and `kind`).
fn objects(text: &str, origin: &Path) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", origin.display()))
        })
        .filter(|v| v.get("apiVersion").is_some() && v.get("kind").is_some())
        .collect()
}

/// `objects` as one YAML stream, each placed in `namespace`.
fn in_namespace(objects: &[serde_yaml::Value], namespace: &str) -> String {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o["metadata"]["namespace"] = namespace.into();
            serde_yaml::to_string(&o).expect("YAML serializes")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn apply(ns: &Namespace, yaml: &str) -> String {
    let out = ns.kubectl_with_input(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed for\n{yaml}\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get_json(ns: &Namespace, what: &str) -> Value {
    let text = ns.kubectl_ok(&["get", what, "-o", "json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl get {what}: {e}\n{text}"))
}

/// Every manifest under `deploy/examples/` is accepted. The examples say `namespace: default`;
/// each example folder is applied, as `kubectl apply -f <folder>` would, into a namespace of
/// its own instead.
#[test]
fn examples_are_accepted() {
    let root = workspace_root().join("deploy/examples");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let mut by_folder: BTreeMap<PathBuf, Vec<serde_yaml::Value>> = BTreeMap::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable example");
        let found = objects(&text, file);
        if found.is_empty() {
            println!("skipped {} (no Kubernetes object)", file.display());
            continue;
        }
        by_folder
            .entry(file.parent().expect("a folder").to_path_buf())
            .or_default()
            .extend(found);
    }
    assert!(
        by_folder.len() >= 2,
        "expected the quickstart and lambda examples under {}, found {by_folder:?}",
        root.display()
    );

    let mut total = 0;
    for (folder, objects) in &by_folder {
        let name = folder.strip_prefix(&root).unwrap_or(folder).display();
        let ns = cp().namespace(&format!("example-{name}"));
        let applied = apply(&ns, &in_namespace(objects, ns.name()));
        for object in objects {
            let kind = object["kind"].as_str().expect("kind").to_lowercase();
            let group = object["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/'))
                .map_or(String::new(), |(group, _)| format!(".{group}"));
            let name = object["metadata"]["name"].as_str().expect("a name");
            let reference = format!("{kind}{group}/{name}");
            assert!(
                applied.contains(&format!("{reference} created")),
                "{reference} from {} not created:\n{applied}",
                folder.display()
            );
            ns.kubectl_ok(&["get", &reference]);
            total += 1;
        }
        println!("{}: {} objects accepted", folder.display(), objects.len());
    }
    assert!(total >= 3, "only {total} example objects found");
}

/// A case of `tests/resources/invalid/`: a resource and what the API server must answer.
struct InvalidCase {
    name: String,
    yaml: PathBuf,
    /// Each line must appear in kubectl's standard error.
    expected: Vec<String>,
}

fn invalid_cases() -> Vec<InvalidCase> {
    let dir = workspace_root().join("tests/resources/invalid");
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    files
        .into_iter()
        .map(|yaml| {
            let name = yaml
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let expected_path = yaml.with_extension("expected");
            let expected: Vec<String> = fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            assert!(!expected.is_empty(), "{} is empty", expected_path.display());
            let text = fs::read_to_string(&yaml).expect("readable case");
            assert_eq!(
                objects(&text, &yaml).len(),
                1,
                "{} must hold exactly one object",
                yaml.display()
            );
            InvalidCase {
                name,
                yaml,
                expected,
            }
        })
        .collect()
}

/// Every resource in `tests/resources/invalid/` is refused by the API server with the schema
/// or CEL message in its `.expected` file, and nothing is created.
#[test]
fn invalid_resources_are_refused_with_their_message() {
    let cases = invalid_cases();
    assert!(
        cases.len() >= 20,
        "expected at least 20 invalid cases, found {}",
        cases.len()
    );
    let ns = cp().namespace("invalid");

    // kubectl is mostly start-up time: a few cases at once.
    let workers = 4;
    let mut results: Vec<(usize, Result<String, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (cases, ns) = (&cases, &ns);
                scope.spawn(move || {
                    (w..cases.len())
                        .step_by(workers)
                        .map(|i| (i, check_refused(ns, &cases[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);

    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(0);
    println!("{:width$}  message shown by kubectl apply", "case");
    let mut failures = Vec::new();
    for (i, result) in &results {
        let case = &cases[*i];
        match result {
            Ok(message) => println!("{:width$}  {message}", case.name),
            Err(why) => {
                println!("{:width$}  FAILED", case.name);
                failures.push(format!("{} ({}): {why}", case.name, case.yaml.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );

    let left = ns.kubectl_ok(&["get", "apigateways,routes,usageplans", "-o", "name"]);
    assert!(left.trim().is_empty(), "refused resources exist:\n{left}");
}

/// Applies one invalid case; the error message on success of the check.
fn check_refused(ns: &Namespace, case: &InvalidCase) -> Result<String, String> {
    let path = case.yaml.display().to_string();
    let out = ns.kubectl(&["apply", "-f", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Err(format!("accepted:\n{}", output_text(&out)));
    }
    let missing: Vec<&String> = case
        .expected
        .iter()
        .filter(|e| !stderr.contains(e.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("refused, but without {missing:?}:\n{stderr}"));
    }
    // The message a user reads: what follows `is invalid:`, or the error line itself.
    let shown = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("some validation rules were not checked"))
        .map(|l| l.split_once("is invalid:").map_or(l, |(_, m)| m.trim()))
        .map(|l| l.trim_start_matches("* "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    Ok(shown)
}

/// One table printed by `kubectl get`.
#[derive(Debug)]
struct Table {
    headers: Vec<String>,
    /// Header to cell, per row.
    rows: Vec<BTreeMap<String, String>>,
}

/// The tables printed by `kubectl get`, one per resource type in the output. Cells are cut at
/// the header's columns, so empty cells stay empty.
fn tables(output: &str) -> Vec<Table> {
    output
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines = block.lines().filter(|l| !l.trim().is_empty());
            let header = lines.next().expect("a header line");
            let mut starts = Vec::new();
            let mut names = Vec::new();
            let mut previous = ' ';
            for (i, c) in header.char_indices() {
                if c != ' ' && previous == ' ' {
                    starts.push(i);
                }
                previous = c;
            }
            for (n, start) in starts.iter().enumerate() {
                let end = starts.get(n + 1).copied().unwrap_or(header.len());
                names.push(header[*start..end].trim().to_owned());
            }
            let rows = lines
                .map(|line| {
                    names
                        .iter()
                        .enumerate()
                        .map(|(n, name)| {
                            let start = starts[n].min(line.len());
                            let end = starts
                                .get(n + 1)
                                .copied()
                                .unwrap_or(line.len())
                                .min(line.len());
                            (name.clone(), line[start..end].trim().to_owned())
                        })
                        .collect()
                })
                .collect();
            Table {
                headers: names,
                rows,
            }
        })
        .collect()
}

/// `kubectl get agw,rt,up` shows the printer columns, filled from spec and status.
#[test]
fn printer_columns() {
    let ns = cp().namespace("columns");
    let quickstart = workspace_root().join("deploy/examples/quickstart/hello.yaml");
    let text = fs::read_to_string(&quickstart).expect("quickstart");
    apply(&ns, &in_namespace(&objects(&text, &quickstart), ns.name()));
    apply(
        &ns,
        r#"
apiVersion: tollgate.dev/v1alpha1
kind: UsagePlan
metadata:
  name: basic
spec:
  apiStages:
    - gatewayRef:
        name: hello
      stage: dev
  throttle:
    rateLimit: 10
    burstLimit: 20
  quota:
    limit: 1000
    period: MONTH
"#,
    );

    // Before any controller: the status columns are empty.
    let before = tables(&ns.kubectl_ok(&["get", "agw,rt,up"]));
    assert_eq!(before.len(), 3, "three tables expected: {before:?}");
    assert_eq!(before[0].rows[0]["URL"], "");
    assert_eq!(before[0].rows[0]["READY"], "");

    // What a controller would write.
    let condition = |kind: &str| {
        serde_json::json!({"status": {"conditions": [{
            "type": kind, "status": "True", "reason": "Test", "message": "",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        }]}})
    };
    let mut gateway_status = condition("Ready");
    gateway_status["status"]["invokeUrl"] = "http://hello.example.com/dev".into();
    let patches = [
        ("apigateway/hello", gateway_status),
        ("route/hello-root", condition("Accepted")),
        ("route/hello-states", condition("Accepted")),
        (
            "usageplan/basic",
            serde_json::json!({"status": {"keysBound": 3}}),
        ),
    ];
    for (object, patch) in &patches {
        ns.kubectl_ok(&[
            "patch",
            object,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    let output = ns.kubectl_ok(&["get", "agw,rt,up"]);
    println!("{output}");
    let tables = tables(&output);
    let headers: Vec<Vec<String>> = tables.iter().map(|t| t.headers.clone()).collect();
    let expect = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        headers,
        vec![
            expect(&["NAME", "TYPE", "URL", "READY", "AGE"]),
            expect(&[
                "NAME", "GATEWAY", "METHOD", "PATH", "KEY", "ACCEPTED", "AGE"
            ]),
            expect(&["NAME", "RATE", "BURST", "QUOTA", "PERIOD", "KEYS", "AGE"]),
        ],
        "{output}"
    );

    let row = |table: usize, name: &str| -> BTreeMap<String, String> {
        tables[table]
            .rows
            .iter()
            .find(|r| r["NAME"] == name)
            .unwrap_or_else(|| panic!("no row {name} in\n{output}"))
            .clone()
    };
    let cells = |row: &BTreeMap<String, String>, columns: &[&str]| -> Vec<String> {
        columns.iter().map(|c| row[*c].clone()).collect()
    };

    let gateway = row(0, "apigateway.tollgate.dev/hello");
    assert_eq!(
        cells(&gateway, &["TYPE", "URL", "READY"]),
        expect(&["Regional", "http://hello.example.com/dev", "True"])
    );
    let root = row(1, "route.tollgate.dev/hello-root");
    assert_eq!(
        cells(&root, &["GATEWAY", "METHOD", "PATH", "ACCEPTED"]),
        expect(&["hello", "GET", "/", "True"])
    );
    let states = row(1, "route.tollgate.dev/hello-states");
    assert_eq!(
        cells(&states, &["GATEWAY", "METHOD", "PATH", "ACCEPTED"]),
        expect(&["hello", "GET", "/states", "True"])
    );
    let plan = row(2, "usageplan.tollgate.dev/basic");
    assert_eq!(
        cells(&plan, &["RATE", "BURST", "QUOTA", "PERIOD", "KEYS"]),
        expect(&["10", "20", "1000", "MONTH", "3"])
    );
    for r in [&gateway, &root, &states, &plan] {
        assert!(!r["AGE"].is_empty(), "AGE column empty in {r:?}\n{output}");
    }
}

/// `kubectl explain` shows the doc comments of `crds/src/resources/*.rs`.
#[test]
fn explain_shows_the_field_documentation() {
    let cp = cp();
    let explain = |path: &str| -> String {
        // kubectl wraps the text to its width: compare with whitespace collapsed.
        cp.kubectl_ok(&["explain", path])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cases = [
        (
            "apigateway",
            vec![
                "An API, as Amazon API Gateway's REST API: stages, domains, authorizers and a proxy fleet.",
            ],
        ),
        (
            "apigateway.spec",
            vec![
                "Where the API is reachable from. `Regional`: a Deployment behind a LoadBalancer Service.",
                "The stages (deployments) of the API. The stage is the first segment of the request path: `https://{host}/{stage}/{resource}`.",
                "Where the proxy reads API keys from. `HEADER`: the `x-api-key` request header.",
                "enum: Edge, Regional, Private",
            ],
        ),
        (
            "route.spec.integration",
            vec![
                "What answers the request: exactly one of `http`, `lambda` or `mock`.",
                "Forward the request to an HTTP backend.",
                "How long the proxy waits for the backend, in milliseconds (50 to 29,000); then it answers 504 `Endpoint request timed out`.",
            ],
        ),
        (
            "usageplan.spec.quota",
            vec![
                "How many requests each API key may make per period.",
                "`DAY`, `WEEK` or `MONTH`, counted over UTC calendar periods.",
            ],
        ),
    ];
    for (path, sentences) in cases {
        let text = explain(path);
        for sentence in sentences {
            assert!(
                text.contains(sentence),
                "kubectl explain {path} lacks {sentence:?}:\n{text}"
            );
        }
    }
}

/// Status is written only through the status subresource: on the main resource it is
/// dropped, and through the subresource the spec is.
#[test]
fn status_only_through_the_subresource() {
    let ns = cp().namespace("status");
    let jsonpath =
        |path: &str| ns.kubectl_ok(&["get", "agw/api", "-o", &format!("jsonpath={path}")]);

    apply(
        &ns,
        r#"
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: api
spec:
  stages:
    - name: dev
status:
  invokeUrl: http://from-apply
"#,
    );
    assert_eq!(jsonpath("{.status}"), "", "status from kubectl apply kept");

    let out = ns.kubectl_ok(&[
        "patch",
        "agw/api",
        "--type=merge",
        "-p",
        r#"{"status":{"invokeUrl":"http://from-patch"}}"#,
    ]);
    println!("patch of the main resource: {}", out.trim());
    assert_eq!(jsonpath("{.status}"), "", "status from kubectl patch kept");

    ns.kubectl_ok(&[
        "patch",
        "agw/api",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"invokeUrl":"http://x"},"spec":{"description":"from the status subresource"}}"#,
    ]);
    assert_eq!(jsonpath("{.status.invokeUrl}"), "http://x");
    assert_eq!(
        jsonpath("{.spec.description}"),
        "",
        "spec changed through the status subresource"
    );
    assert_eq!(
        jsonpath("{.metadata.generation}"),
        "1",
        "a status write changed the generation"
    );

    // Applying again (status in the manifest) leaves the subresource's status alone.
    apply(
        &ns,
        r#"
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: api
spec:
  description: second apply
  stages:
    - name: dev
status:
  invokeUrl: http://from-apply
"#,
    );
    assert_eq!(jsonpath("{.status.invokeUrl}"), "http://x");
    assert_eq!(jsonpath("{.spec.description}"), "second apply");
    assert_eq!(jsonpath("{.metadata.generation}"), "2");
}

/// Omitted fields get their defaults from the API server's structural schema.
#[test]
fn defaults_are_applied_by_the_api_server() {
    let ns = cp().namespace("defaults");
    apply(
        &ns,
        r#"
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: minimal
spec:
  stages:
    - name: dev
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: minimal
spec:
  gatewayRef:
    name: minimal
  method: GET
  path: /
  integration:
    mock: {}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: weighted
spec:
  gatewayRef:
    name: minimal
  method: ANY
  path: /{proxy+}
  integration:
    http:
      backends:
        - url: http://blue.example.com
"#,
    );

    let gateway = get_json(&ns, "apigateway/minimal");
    assert_eq!(gateway["spec"]["endpointType"], "Regional", "{gateway:#}");
    assert_eq!(gateway["spec"]["apiKeySource"], "HEADER", "{gateway:#}");

    let route = get_json(&ns, "route/minimal");
    let integration = &route["spec"]["integration"];
    assert_eq!(integration["timeoutMillis"], 29000, "{route:#}");
    assert_eq!(integration["mock"]["statusCode"], 200, "{route:#}");
    assert_eq!(route["spec"]["apiKeyRequired"], false, "{route:#}");

    let weighted = get_json(&ns, "route/weighted");
    let integration = &weighted["spec"]["integration"];
    assert_eq!(integration["timeoutMillis"], 29000, "{weighted:#}");
    assert_eq!(
        integration["http"]["backends"][0]["weight"], 1,
        "{weighted:#}"
    );
}

/// `tollgate import` writes resources the API server takes as they are (schema and CEL rules
/// included), and `tollgate export --cluster` reads them back from it: importing that export
/// gives the resources first imported.
#[test]
fn an_imported_api_applies_and_exports_from_the_cluster_unchanged() {
    let ns = cp().namespace("openapi");
    let tollgate = |args: &[&str]| {
        let out = std::process::Command::new(tollgate_tests::proxy::binary_named("tollgate"))
            .args(args)
            .env("KUBECONFIG", cp().kubeconfig_path())
            .output()
            .expect("running tollgate");
        assert!(
            out.status.success(),
            "tollgate {args:?}: {}",
            output_text(&out)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let fixture = workspace_root().join("cli/tests/openapi/http-api.yaml");
    let imported = tollgate(&[
        "import",
        fixture.to_str().unwrap(),
        "--namespace",
        ns.name(),
    ]);
    ns.apply(&imported);

    let exported = tollgate(&["export", "--cluster", "--namespace", ns.name()]);
    let document: Value = serde_yaml::from_str(&exported).expect("the export is YAML");
    assert_eq!(document["x-amazon-apigateway-importexport-version"], "1.0");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("exported.yaml");
    fs::write(&file, &exported).unwrap();
    let again = tollgate(&["import", file.to_str().unwrap(), "--namespace", ns.name()]);
    assert_eq!(imported, again);
}
