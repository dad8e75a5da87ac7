//! Reading resources from multi-document YAML, as `kubectl apply -f` would take them: the
//! golden tests and standalone mode use it. Pure: text in, resources out.
//!
//! What a document holds that nothing will read is reported, as `kubectl apply`'s field
//! validation warns about it: a field the CRD schema does not have (`spec.methd`), and a
//! document of a kind that is passed over (see [`Unread`]).

use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::compile::{Resources, object_key};
use crate::table::ObjectKey;

/// Why a YAML source could not be loaded. Names the source, the document and the object.
/// The parser's error is part of the message, not a separate cause: printed as a chain, it
/// would be said twice.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin}: document {document}: not valid YAML: {error}")]
    Yaml {
        origin: String,
        document: usize,
        error: serde_yaml::Error,
    },
    #[error("{origin}: document {document}: {kind} {name}: {error}{}", unknown_hint(.unknown))]
    Invalid {
        origin: String,
        document: usize,
        kind: String,
        name: String,
        error: serde_yaml::Error,
        /// Fields the schema does not have: often the misspelling of the field missing.
        unknown: Vec<String>,
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

fn unknown_hint(unknown: &[String]) -> String {
    if unknown.is_empty() {
        String::new()
    } else {
        format!(" (unknown fields: {})", unknown.join(", "))
    }
}

/// What a call to [`load_str`] read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Objects added to the resources.
    pub objects: usize,
    /// Documents of other kinds, passed over.
    pub ignored: usize,
    /// What the documents hold that nothing reads, in document order.
    pub unread: Vec<Unread>,
}

/// Something a document holds that nothing reads: probably a typo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unread {
    /// A field the resource's schema does not have, as `spec.methd` (list items are
    /// numbered: `spec.stages[0].nam`).
    #[error("document {document}: {kind} {name}: unknown field \"{field}\"")]
    UnknownField {
        document: usize,
        kind: String,
        name: String,
        field: String,
    },
    /// A document of a kind that is passed over.
    #[error(
        "document {document}: {api_version} {kind} is passed over: the kinds read are \
         ApiGateway, Route and UsagePlan (tollgate.dev/v1alpha1), Secret, Service and ConfigMap (v1)"
    )]
    OtherKind {
        document: usize,
        api_version: String,
        kind: String,
    },
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
        let value = Value::deserialize(document).map_err(|error| LoadError::Yaml {
            origin: origin.to_string(),
            document: document_no,
            error,
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
                let unknown = unknown_fields(&SCHEMAS.gateway, &value);
                ctx.add(value, unknown, &mut resources.gateways, &mut loaded, |o| {
                    &o.metadata
                })?
            }
            ("tollgate.dev/v1alpha1", "Route") => {
                let unknown = unknown_fields(&SCHEMAS.route, &value);
                if let Some(missing) = route_match_missing(&value) {
                    return Err(LoadError::Shape {
                        origin: origin.to_string(),
                        document: document_no,
                        what: format!(
                            "Route {}: {missing}{}",
                            object_name(&value),
                            unknown_hint(&unknown)
                        ),
                    });
                }
                ctx.add(value, unknown, &mut resources.routes, &mut loaded, |o| {
                    &o.metadata
                })?
            }
            ("tollgate.dev/v1alpha1", "UsagePlan") => {
                let unknown = unknown_fields(&SCHEMAS.usage_plan, &value);
                ctx.add(
                    value,
                    unknown,
                    &mut resources.usage_plans,
                    &mut loaded,
                    |o| &o.metadata,
                )?
            }
            // Core kinds are checked by their types only: their schemas are not at hand.
            ("v1", "Secret") => {
                ctx.add(value, vec![], &mut resources.secrets, &mut loaded, |o| {
                    &o.metadata
                })?
            }
            ("v1", "Service") => {
                ctx.add(value, vec![], &mut resources.services, &mut loaded, |o| {
                    &o.metadata
                })?
            }
            ("v1", "ConfigMap") => ctx.add(
                value,
                vec![],
                &mut resources.config_maps,
                &mut loaded,
                |o| &o.metadata,
            )?,
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
                loaded.unread.push(Unread::OtherKind {
                    document: document_no,
                    api_version,
                    kind,
                });
                continue;
            }
        }
        loaded.objects += 1;
    }
    Ok(loaded)
}

/// What a Route lacks to match anything: a REST API's method and path, or a WebSocket API's
/// route key. The CRD's CEL rule says the same to the API server; read here, a file cut in
/// the middle of a route is refused as a whole instead of serving a route that matches nothing.
fn route_match_missing(value: &Value) -> Option<&'static str> {
    let spec = value.get("spec")?;
    let has = |field: &str| spec.get(field).is_some_and(|v| !v.is_null());
    if has("routeKey") || (has("method") && has("path")) {
        return None;
    }
    Some(match (has("method"), has("path")) {
        (false, false) => {
            "missing spec.method and spec.path (REST API) or spec.routeKey (WebSocket API)"
        }
        (false, true) => "missing field `method`",
        (true, _) => "missing field `path`",
    })
}

fn object_name(value: &Value) -> String {
    value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string()
}

struct Ctx<'a> {
    origin: &'a str,
    document: usize,
    kind: &'a str,
}

impl Ctx<'_> {
    /// Adds the object in `value` to `into`; `unknown` are the fields its schema does not
    /// have, recorded in `loaded` once the object is read.
    fn add<T: DeserializeOwned>(
        &self,
        value: Value,
        unknown: Vec<String>,
        into: &mut std::collections::BTreeMap<ObjectKey, T>,
        loaded: &mut Loaded,
        meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Result<(), LoadError> {
        let name = object_name(&value);
        let object: T = match serde_yaml::from_value(value) {
            Ok(object) => object,
            Err(error) => {
                return Err(LoadError::Invalid {
                    origin: self.origin.to_string(),
                    document: self.document,
                    kind: self.kind.to_string(),
                    name,
                    error,
                    unknown,
                });
            }
        };
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
        loaded
            .unread
            .extend(unknown.into_iter().map(|field| Unread::UnknownField {
                document: self.document,
                kind: self.kind.to_string(),
                name: name.clone(),
                field,
            }));
        Ok(())
    }
}

/// The `openAPIV3Schema` of each Tollgate CRD, built once.
struct Schemas {
    gateway: JSONSchemaProps,
    route: JSONSchemaProps,
    usage_plan: JSONSchemaProps,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    let schema = |stem: &str| {
        crate::crd::definitions()
            .into_iter()
            .find(|(s, _)| *s == stem)
            .and_then(|(_, crd)| crd.spec.versions.into_iter().next())
            .and_then(|v| v.schema)
            .and_then(|s| s.open_api_v3_schema)
            .unwrap_or_default()
    };
    Schemas {
        gateway: schema("apigateway"),
        route: schema("route"),
        usage_plan: schema("usageplan"),
    }
});

/// The fields of `metadata` (Kubernetes' `ObjectMeta`), which the CRD schema leaves open.
const METADATA_FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// The paths of the fields in `value` that `schema` does not have, in document order.
/// `apiVersion`, `kind` and `metadata` are the API machinery's, which the schema leaves out:
/// `metadata`'s own fields are checked against `ObjectMeta`'s (`metadata.namspace` would
/// otherwise put the object in `default`).
fn unknown_fields(schema: &JSONSchemaProps, value: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Value::Mapping(map) = value {
        for (key, v) in map {
            let Some(key) = key.as_str() else { continue };
            match schema.properties.as_ref().and_then(|p| p.get(key)) {
                _ if key == "metadata" => unknown.extend(
                    v.as_mapping()
                        .into_iter()
                        .flat_map(|m| m.keys())
                        .filter_map(Value::as_str)
                        .filter(|k| !METADATA_FIELDS.contains(k))
                        .map(|k| format!("metadata.{k}")),
                ),
                _ if key == "apiVersion" || key == "kind" => {}
                Some(s) => walk(s, v, key, &mut unknown),
                None => unknown.push(key.to_string()),
            }
        }
    }
    unknown
}

fn walk(schema: &JSONSchemaProps, value: &Value, path: &str, unknown: &mut Vec<String>) {
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    match value {
        Value::Mapping(map) => {
            for (key, v) in map {
                let Some(key) = key.as_str() else { continue };
                let field = format!("{path}.{key}");
                if let Some(props) = &schema.properties {
                    match props.get(key) {
                        Some(s) => walk(s, v, &field, unknown),
                        None => unknown.push(field),
                    }
                } else if let Some(JSONSchemaPropsOrBool::Schema(s)) = &schema.additional_properties
                {
                    walk(s, v, &field, unknown);
                }
            }
        }
        Value::Sequence(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(s)) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    walk(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
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
        assert_eq!((loaded.objects, loaded.ignored), (1, 1));
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

    #[test]
    fn a_missing_field_is_said_once() {
        let source = "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec: {}\n";
        let err = load_str(source, "hello.yaml", &mut Resources::default()).unwrap_err();
        let chain = format!("{:#}", anyhow_like(&err));
        assert_eq!(
            chain.matches("missing field `stages`").count(),
            1,
            "{chain}"
        );
        assert!(std::error::Error::source(&err).is_none());
    }

    /// The error and its causes joined with ": ", as `anyhow`'s `{:#}` prints them.
    fn anyhow_like(err: &dyn std::error::Error) -> String {
        let mut out = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            out.push_str(&format!(": {s}"));
            source = s.source();
        }
        out
    }

    #[test]
    fn unknown_fields_are_named_by_path_with_their_document() {
        let source = format!(
            "{GATEWAY}---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {{name: r1, namspace: shop, labels: {{a: b}}}}\n\
             spec:\n  gatewayRef: {{name: hello}}\n  method: GET\n  methd: POST\n  path: /\n  \
             integration:\n    mock: {{statusCode: 200, headers: {{X-A: b}}, bdy: x}}\n"
        );
        let loaded = load_str(&source, "api.yaml", &mut Resources::default()).unwrap();
        let said: Vec<String> = loaded.unread.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "document 2: Route r1: unknown field \"metadata.namspace\"",
                "document 2: Route r1: unknown field \"spec.methd\"",
                "document 2: Route r1: unknown field \"spec.integration.mock.bdy\""
            ]
        );
    }

    #[test]
    fn unknown_fields_in_list_items_are_numbered() {
        let source = "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\n\
                      spec:\n  stages: [{name: dev}, {name: prod, varables: {a: b}}]\n";
        let loaded = load_str(source, "gw.yaml", &mut Resources::default()).unwrap();
        assert_eq!(
            loaded.unread,
            [Unread::UnknownField {
                document: 1,
                kind: "ApiGateway".into(),
                name: "hello".into(),
                field: "spec.stages[1].varables".into(),
            }]
        );
    }

    #[test]
    fn a_required_field_misspelt_names_the_unknown_one_in_the_error() {
        let source = format!(
            "{GATEWAY}---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {{name: r1}}\n\
             spec: {{gatewayRef: {{name: hello}}, methd: POST, path: /, integration: {{mock: {{statusCode: 200}}}}}}\n"
        );
        let err = load_str(&source, "api.yaml", &mut Resources::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `method`"), "{err}");
        assert!(err.ends_with("(unknown fields: spec.methd)"), "{err}");
    }

    #[test]
    fn documents_of_kinds_passed_over_are_reported() {
        let source =
            format!("{GATEWAY}---\napiVersion: v1\nkind: Secrets\nmetadata: {{name: x}}\n");
        let loaded = load_str(&source, "api.yaml", &mut Resources::default()).unwrap();
        assert_eq!(loaded.ignored, 1);
        let said = loaded.unread[0].to_string();
        assert!(
            said.starts_with("document 2: v1 Secrets is passed over: the kinds read are"),
            "{said}"
        );
    }

    #[test]
    fn the_examples_hold_no_unknown_field() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        for dir in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "yaml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let loaded = load_str(&text, "example", &mut Resources::default()).unwrap();
                assert_eq!(loaded.unread, [], "{}", path.display());
            }
        }
    }
}
