//! Golden tests for the compiler: `golden/<case>/input.yaml` compiles to
//! `golden/<case>/expected.json` (tables and diagnostics). `UPDATE_GOLDEN=1` rewrites the
//! expected files; review their diff like code.

use std::path::{Path, PathBuf};

use tollgate_crds::compile::{Resources, compile};
use tollgate_crds::load::load_str;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("crds/tests/golden exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    cases.sort();
    cases
}

fn documents(case: &Path) -> Vec<String> {
    let input = std::fs::read_to_string(case.join("input.yaml")).expect("readable input.yaml");
    input
        .split("\n---")
        .map(|d| d.trim_start_matches("---").trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Compiles documents given in this order and renders the result as the expected file holds it.
fn compile_documents(case: &Path, docs: &[String]) -> String {
    let mut resources = Resources::default();
    // Each document ends with a line break, wherever the shuffle puts it: a block scalar
    // (a PEM value) keeps its final newline only when a line break follows it.
    load_str(
        &(docs.join("\n---\n") + "\n"),
        &case.display().to_string(),
        &mut resources,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let compiled = compile(&resources);
    serde_json::to_string_pretty(&compiled).expect("compiled output serialises") + "\n"
}

#[test]
fn every_case_compiles_to_its_expected_output() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 15,
        "expected at least 15 golden cases, found {}",
        cases.len()
    );
    for case in cases {
        let actual = compile_documents(&case, &documents(&case));
        let expected_path = case.join("expected.json");
        if update {
            std::fs::write(&expected_path, &actual).expect("writable expected.json");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run UPDATE_GOLDEN=1 cargo test -p tollgate-crds",
                expected_path.display()
            )
        });
        similar_asserts::assert_eq!(expected, actual, "golden case {}", case.display());
    }
}

/// The same resources in any order give byte-identical tables, versions and diagnostics.
#[test]
fn document_order_does_not_change_the_output() {
    for case in cases() {
        let docs = documents(&case);
        let reference = compile_documents(&case, &docs);
        for seed in 1..=6u64 {
            let shuffled = shuffle(&docs, seed);
            similar_asserts::assert_eq!(
                reference,
                compile_documents(&case, &shuffled),
                "golden case {} with its documents shuffled (seed {seed})",
                case.display()
            );
        }
    }
}

/// A Fisher-Yates shuffle driven by a small linear congruential generator: repeatable per
/// seed, no dependency.
fn shuffle(docs: &[String], seed: u64) -> Vec<String> {
    let mut out = docs.to_vec();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..out.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((state >> 33) % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// Tables carry API keys only as hashes: no key value from any input appears in any output.
#[test]
fn no_api_key_value_reaches_the_output() {
    let mut checked = 0;
    for case in cases() {
        let docs = documents(&case);
        let output = compile_documents(&case, &docs);
        for doc in &docs {
            let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("valid YAML");
            if value.get("type").and_then(|t| t.as_str()) != Some("tollgate.dev/api-key") {
                continue;
            }
            if let Some(key) = value
                .get("stringData")
                .and_then(|d| d.get("key"))
                .and_then(|k| k.as_str())
            {
                assert!(
                    !output.contains(key),
                    "{}: an API key value is in the output",
                    case.display()
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} API keys were checked: the golden cases lost their keys"
    );
}

/// Diagnostics describe a bad certificate or key without quoting it: no line of any private
/// key in the inputs appears in any diagnostic.
#[test]
fn no_private_key_reaches_a_diagnostic() {
    let mut checked = 0;
    for case in cases() {
        let docs = documents(&case);
        let mut resources = Resources::default();
        load_str(&(docs.join("\n---\n") + "\n"), "input.yaml", &mut resources)
            .unwrap_or_else(|e| panic!("{e}"));
        let diagnostics =
            serde_json::to_string(&compile(&resources).diagnostics).expect("diagnostics serialise");
        for doc in &docs {
            let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("valid YAML");
            let Some(data) = value.get("stringData").and_then(|d| d.as_mapping()) else {
                continue;
            };
            for text in data.values().filter_map(|v| v.as_str()) {
                if !text.contains("PRIVATE KEY-----") {
                    continue;
                }
                for line in text
                    .lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 8)
                {
                    assert!(
                        !diagnostics.contains(line),
                        "{}: a line of a private key is in the diagnostics",
                        case.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} key lines were checked: the golden cases lost their keys"
    );
}
