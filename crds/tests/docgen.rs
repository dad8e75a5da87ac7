//! The checked-in `docs/reference.md` must be what `docgen` generates from the CRD schemas: run
//! `cargo run -p tollgate-crds --bin docgen` (or `make docs`) after changing a resource type.

use std::path::Path;
use std::process::Command;

const REGENERATE: &str =
    "run `cargo run -p tollgate-crds --bin docgen` (or `make docs`) and commit docs/reference.md";

/// What `docgen -` prints: the page as the types describe it now.
fn fresh() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_docgen"))
        .arg("-")
        .output()
        .expect("docgen runs");
    assert!(
        output.status.success(),
        "docgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("docgen writes UTF-8")
}

#[test]
fn checked_in_reference_matches_the_crds() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let fresh = fresh();
    if on_disk == fresh {
        return;
    }
    let first = on_disk
        .lines()
        .zip(fresh.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| on_disk.lines().count().min(fresh.lines().count()));
    panic!(
        "docs/reference.md is stale: {REGENERATE}\n\
         first difference at line {}:\n  checked in: {}\n  generated:  {}",
        first + 1,
        on_disk.lines().nth(first).unwrap_or("(end of file)"),
        fresh.lines().nth(first).unwrap_or("(end of file)"),
    );
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(fresh(), fresh());
}

#[test]
fn reference_names_every_field_rule_and_kind() {
    let page = fresh();
    for needle in [
        "## ApiGateway",
        "## Route",
        "## UsagePlan",
        // Nested paths, arrays as [].
        "`spec.domains[].basePathMappings[].stage`",
        "`spec.integration.http.backends[].service.port`",
        "`spec.apiStages[].routeThrottles[].throttle.rateLimit`",
        // Defaults, enums, bounds, patterns.
        "default `HEADER`",
        "one of `Edge`, `Regional`, `Private`",
        "50 to 29,000",
        "pattern `^https?://[^\\s]+$`",
        // A CEL rule's message.
        "set exactly one of integration.http, integration.lambda or integration.mock",
    ] {
        assert!(page.contains(needle), "{needle} missing from the reference");
    }
}
