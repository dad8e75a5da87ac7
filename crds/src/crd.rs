//! The CustomResourceDefinitions generated from the resource types, as checked in under
//! `crds/yaml/` (see the `crdgen` binary).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::resources::{ApiGateway, Route, UsagePlan};

/// Every CRD with the file stem it is written under.
pub fn definitions() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("apigateway", reflow(ApiGateway::crd())),
        ("route", reflow(Route::crd())),
        ("usageplan", reflow(UsagePlan::crd())),
    ]
}

/// Joins the line breaks that doc comments put inside a paragraph, so `kubectl explain` wraps
/// descriptions to the terminal instead of breaking them mid-sentence; blank lines between
/// paragraphs stay.
fn reflow(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match v {
                        serde_json::Value::String(s) if key == "description" => {
                            *s = s
                                .split("\n\n")
                                .map(|paragraph| {
                                    paragraph
                                        .split('\n')
                                        .map(str::trim)
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .collect::<Vec<_>>()
                                .join("\n\n");
                        }
                        _ => walk(v),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serialises");
    walk(&mut value);
    serde_json::from_value(value).expect("reflowing descriptions keeps a valid CRD")
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
