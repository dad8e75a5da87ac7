//! The checked-in CRD YAML must be what the Rust types generate: run
//! `cargo run -p tollgate-crds --bin crdgen` after changing a resource type.

use std::path::Path;

use tollgate_crds::crd::{definitions, render, render_all};

#[test]
fn checked_in_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let stale = "is stale: run `cargo run -p tollgate-crds --bin crdgen` and commit crds/yaml";
    for (stem, crd) in definitions() {
        let path = dir.join(format!("{stem}.yaml"));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == render(&crd), "{} {stale}", path.display());
    }
    let all = std::fs::read_to_string(dir.join("all.yaml")).unwrap_or_default();
    assert!(all == render_all(), "crds/yaml/all.yaml {stale}");
}

#[test]
fn crds_carry_short_names_printer_columns_and_status() {
    for (_, crd) in definitions() {
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 4)
        );
    }
}
