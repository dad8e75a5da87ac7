//! The hand-written docs stay true to the code where a check can tell (`docs/reference.md` is
//! generated and checked by `docgen.rs`):
//! - `docs/concepts.md`, which maps Amazon API Gateway's concepts to fields, names every
//!   top-level `spec` field of the three resources: a field added without its concept, or
//!   a page saying Tollgate lacks what a field does, shows up here first;
//! - `docs/architecture.md` names every module of each crate in that crate's section.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crds/ is in the workspace")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether `text` names `name` in backticks, alone or as a path (`spec.name`, `name[]`).
fn names_field(text: &str, name: &str) -> bool {
    ["`", "`spec."].iter().any(|open| {
        text.match_indices(&format!("{open}{name}")).any(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| "`[.:".contains(c))
        })
    })
}

/// Free text that maps to no concept.
const NO_CONCEPT: &[&str] = &["description"];

#[test]
fn concepts_name_every_top_level_field() {
    let concepts = read("docs/concepts.md");
    let mut missing = Vec::new();
    for (_, crd) in tollgate_crds::crd::definitions() {
        let kind = &crd.spec.names.kind;
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a CRD with a schema");
        let spec = &schema.properties.as_ref().expect("properties")["spec"];
        for field in spec.properties.as_ref().expect("spec properties").keys() {
            if !NO_CONCEPT.contains(&field.as_str()) && !names_field(&concepts, field) {
                missing.push(format!("{kind} spec.{field}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/concepts.md does not name these fields; say what each maps to in Amazon API \
         Gateway (or how it differs): {missing:?}"
    );
}

/// The part of `page` under the `## ` heading that starts with `title`.
fn section<'a>(page: &'a str, title: &str) -> &'a str {
    let start = page
        .find(&format!("\n## {title}"))
        .unwrap_or_else(|| panic!("no section {title}"));
    let rest = &page[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// Whether `text` holds `name` not preceded by a letter, digit or `_` (`body.rs` is not
/// named by `request_body.rs`).
fn names_module(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_')
    })
}

#[test]
fn architecture_names_every_module_of_each_crate() {
    let page = read("docs/architecture.md");
    let mut missing = Vec::new();
    for (folder, title) in [
        ("crds", "`tollgate-crds`"),
        ("controller", "`tollgate-controller`"),
        ("proxy", "`tollgate-proxy`"),
        ("cli", "`tollgate-cli`"),
        ("telemetry", "`tollgate-telemetry`"),
        ("redis", "`tollgate-redis`"),
        ("vtl", "`tollgate-vtl`"),
    ] {
        let text = section(&page, title);
        let src = root().join(folder).join("src");
        for entry in std::fs::read_dir(&src).expect("src/") {
            let path = entry.expect("an entry").path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if file == "lib.rs" || file == "main.rs" {
                continue;
            }
            let name = if path.is_dir() {
                format!("{file}/")
            } else {
                file
            };
            if !names_module(text, &name) {
                missing.push(format!("{folder}/src/{name}"));
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not describe these modules in their crate's section: \
         {missing:?}"
    );
}
