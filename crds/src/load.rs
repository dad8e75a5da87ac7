//! Reading resources from multi-document YAML, as `kubectl apply -f` would take them: the
//! golden tests and standalone mode use it. Pure: text in, resources out.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::compile::{Resources, object_key};
use crate::table::ObjectKey;

/// Why a YAML source could not be loaded. Names the source, the document and the object.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin}: document {document}: not valid YAML: {source}")]
    Yaml {
        origin: String,
        document: usize,
        source: serde_yaml::Error,
    },
    #[error("{origin}: document {document}: {kind} {name}: {source}")]
    Invalid {
        origin: String,
        document: usize,
        kind: String,
        name: String,
        source: serde_yaml::Error,
    },
    #[error("{origin}: document {document}: {what}")]
    Shape {
        origin: String,
        document: usize,
        what: String,
    },
    #[error("{origin}: document {document}: {kind} {key} is defined twice")]
    Duplicate {
        origin: String,
        document: usize,
        kind: String,
        key: ObjectKey,
    },
}

/// What a call to [`load_str`] read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Objects added to the resources.
    pub objects: usize,
    /// Documents of other kinds, passed over.
    pub ignored: usize,
}

/// Adds every ApiGateway, Route, UsagePlan, Secret, Service and ConfigMap in `source` to
/// `resources`.
/// Empty documents and objects of other kinds are passed over; an object defined twice (here
/// or in an earlier call) is an error. `origin` names the source in errors (a file path).
pub fn load_str(
    source: &str,
    origin: &str,
    resources: &mut Resources,
) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for (i, document) in serde_yaml::Deserializer::from_str(source).enumerate() {
        let document_no = i + 1;
        let value = Value::deserialize(document).map_err(|source| LoadError::Yaml {
            origin: origin.to_string(),
            document: document_no,
            source,
        })?;
        if value.is_null() {
            continue;
        }
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(String::from);
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(LoadError::Shape {
                origin: origin.to_string(),
                document: document_no,
                what: "a Kubernetes object needs apiVersion and kind".into(),
            });
        };
        let ctx = Ctx {
            origin,
            document: document_no,
            kind: &kind,
        };
        match (api_version.as_str(), kind.as_str()) {
            ("tollgate.dev/v1alpha1", "ApiGateway") => {
                ctx.add(value, &mut resources.gateways, |o| &o.metadata)?
            }
            ("tollgate.dev/v1alpha1", "Route") => {
                ctx.add(value, &mut resources.routes, |o| &o.metadata)?
            }
            ("tollgate.dev/v1alpha1", "UsagePlan") => {
                ctx.add(value, &mut resources.usage_plans, |o| &o.metadata)?
            }
            ("v1", "Secret") => ctx.add(value, &mut resources.secrets, |o| &o.metadata)?,
            ("v1", "Service") => ctx.add(value, &mut resources.services, |o| &o.metadata)?,
            ("v1", "ConfigMap") => ctx.add(value, &mut resources.config_maps, |o| &o.metadata)?,
            (v, _) if v.starts_with("tollgate.dev/") => {
                return Err(LoadError::Shape {
                    origin: origin.to_string(),
                    document: document_no,
                    what: format!(
                        "{v} {kind} is not a Tollgate resource (kinds: ApiGateway, Route, UsagePlan in tollgate.dev/v1alpha1)"
                    ),
                });
            }
            _ => {
                loaded.ignored += 1;
                continue;
            }
        }
        loaded.objects += 1;
    }
    Ok(loaded)
}

struct Ctx<'a> {
    origin: &'a str,
    document: usize,
    kind: &'a str,
}

impl Ctx<'_> {
    fn add<T: DeserializeOwned>(
        &self,
        value: Value,
        into: &mut std::collections::BTreeMap<ObjectKey, T>,
        meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Result<(), LoadError> {
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        let object: T = serde_yaml::from_value(value).map_err(|source| LoadError::Invalid {
            origin: self.origin.to_string(),
            document: self.document,
            kind: self.kind.to_string(),
            name: name.clone(),
            source,
        })?;
        let key = object_key(meta(&object));
        if key.name.is_empty() {
            return Err(LoadError::Shape {
                origin: self.origin.to_string(),
                document: self.document,
                what: format!("{} has no metadata.name", self.kind),
            });
        }
        if into.contains_key(&key) {
            return Err(LoadError::Duplicate {
                origin: self.origin.to_string(),
                document: self.document,
                kind: self.kind.to_string(),
                key,
            });
        }
        into.insert(key, object);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY: &str = "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec:\n  stages: [{name: dev}]\n";

    #[test]
    fn loads_objects_into_the_default_namespace_and_passes_over_other_kinds() {
        let mut r = Resources::default();
        let source =
            format!("{GATEWAY}---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: x}}\n");
        let loaded = load_str(&source, "test.yaml", &mut r).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                objects: 1,
                ignored: 1
            }
        );
        assert!(r.gateways.contains_key(&ObjectKey::new("default", "hello")));
    }

    #[test]
    fn loads_config_maps() {
        let mut r = Resources::default();
        let source = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cas, namespace: shop}\ndata: {ca.crt: x}\n";
        let loaded = load_str(source, "cas.yaml", &mut r).unwrap();
        assert_eq!(loaded.objects, 1);
        assert!(r.config_maps.contains_key(&ObjectKey::new("shop", "cas")));
    }

    #[test]
    fn errors_name_the_origin_document_and_object() {
        let mut r = Resources::default();
        let bad = format!(
            "{GATEWAY}---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {{name: r1}}\nspec: {{method: FETCH}}\n"
        );
        let err = load_str(&bad, "api.yaml", &mut r).unwrap_err().to_string();
        assert!(err.starts_with("api.yaml: document 2: Route r1:"), "{err}");

        let twice = format!("{GATEWAY}---\n{GATEWAY}");
        let err = load_str(&twice, "api.yaml", &mut Resources::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ApiGateway default/hello is defined twice"),
            "{err}"
        );

        let err = load_str("kind: Route\n", "a.yaml", &mut Resources::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs apiVersion and kind"), "{err}");
    }
}
