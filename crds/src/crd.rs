//! The CustomResourceDefinitions generated from the resource types, as checked in under
//! `crds/yaml/` (see the `crdgen` binary).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::resources::{ApiGateway, Route, UsagePlan};

/// Every CRD with the file stem it is written under.
pub fn definitions() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("apigateway", ApiGateway::crd()),
        ("route", Route::crd()),
        ("usageplan", UsagePlan::crd()),
    ]
}

/// One CRD as YAML.
pub fn render(crd: &CustomResourceDefinition) -> String {
    // Serialising a CRD built from our own types cannot fail: it is plain data.
    serde_yaml::to_string(crd).expect("a CustomResourceDefinition serialises to YAML")
}

/// Every CRD in one multi-document YAML stream (`crds/yaml/all.yaml`).
pub fn render_all() -> String {
    definitions()
        .iter()
        .map(|(_, crd)| format!("---\n{}", render(crd)))
        .collect()
}
