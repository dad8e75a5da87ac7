//! A REST API's request validation: the document's schemas (`definitions` in Swagger 2,
//! `components.schemas` in OpenAPI 3) as the gateway's `models`, with `$ref`s between them in
//! Amazon's model URL form; `x-amazon-apigateway-request-validators` as its
//! `requestValidators`; and per operation, the validator (`x-amazon-apigateway-request-validator`,
//! else the document's), the method request parameters (`parameters` of the path item and the
//! operation, query strings and headers with `required`; a path's parameters are required by
//! the path itself and left implied) and the body's models (`requestBody.content.*.schema.$ref`,
//! a Swagger body parameter's `schema.$ref` for each type it `consumes`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Unsupported, escape, unsupported};

/// Amazon's model URL, which Tollgate's compiler reads as a reference to another model.
pub(crate) const AMAZON_MODELS: &str = "https://apigateway.amazonaws.com/restapis/";

/// What every operation reads of the document.
pub(super) struct Document<'a> {
    /// Where schemas are referred to from: `#/definitions/` or `#/components/schemas/`.
    prefix: &'static str,
    /// The model names.
    models: Vec<String>,
    /// `x-amazon-apigateway-request-validator` of the document.
    default_validator: Option<&'a str>,
    /// Swagger 2's document-wide `consumes`.
    consumes: Option<&'a Value>,
}

impl<'a> Document<'a> {
    pub(super) fn of(root: &'a Map<String, Value>) -> Self {
        let swagger = root.contains_key("swagger");
        let (schemas, prefix) = schemas_of(root, swagger);
        Document {
            prefix,
            models: schemas
                .map(|s| s.keys().cloned().collect())
                .unwrap_or_default(),
            default_validator: root
                .get("x-amazon-apigateway-request-validator")
                .and_then(Value::as_str),
            consumes: root.get("consumes"),
        }
    }
}

fn schemas_of(
    root: &Map<String, Value>,
    swagger: bool,
) -> (Option<&Map<String, Value>>, &'static str) {
    if swagger {
        (
            root.get("definitions").and_then(Value::as_object),
            "#/definitions/",
        )
    } else {
        (
            root.get("components")
                .and_then(|c| c.get("schemas"))
                .and_then(Value::as_object),
            "#/components/schemas/",
        )
    }
}

/// The gateway's `models` and `requestValidators`, added to its `spec`.
pub(super) fn gateway(
    root: &Map<String, Value>,
    api: &str,
    spec: &mut Map<String, Value>,
    report: &mut Vec<Unsupported>,
) {
    let swagger = root.contains_key("swagger");
    let (schemas, prefix) = schemas_of(root, swagger);
    let names: Vec<String> = schemas
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    let mut models = Map::new();
    for (name, schema) in schemas.into_iter().flatten() {
        let mut schema = schema.clone();
        to_model_urls(&mut schema, prefix, &names, api);
        models.insert(name.clone(), json!({ "schema": schema }));
    }
    if !models.is_empty() {
        spec.insert("models".into(), Value::Object(models));
    }

    let base = "/x-amazon-apigateway-request-validators";
    let mut validators = Map::new();
    for (name, validator) in root
        .get("x-amazon-apigateway-request-validators")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let pointer = format!("{base}/{}", escape(name));
        let mut out = Map::new();
        for (key, value) in validator.as_object().into_iter().flatten() {
            match (key.as_str(), value.as_bool()) {
                ("validateRequestBody" | "validateRequestParameters", Some(on)) => {
                    out.insert(key.clone(), json!(on));
                }
                _ => report.push(unsupported(
                    &format!("{pointer}/{}", escape(key)),
                    "a request validator has validateRequestBody and validateRequestParameters (true or false)",
                )),
            }
        }
        validators.insert(name.clone(), Value::Object(out));
    }
    if !validators.is_empty() {
        spec.insert("requestValidators".into(), Value::Object(validators));
    }
}

/// `$ref`s to the document's schemas (`#/components/schemas/Pet`, `…/Pet/properties/x`) as
/// Amazon's model URLs (`https://apigateway.amazonaws.com/restapis/{api}/models/Pet`,
/// `…/models/Pet#/properties/x`). Other references are left as they are.
fn to_model_urls(schema: &mut Value, prefix: &str, names: &[String], api: &str) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(rest) = target.strip_prefix(prefix)
            {
                let (name, inner) = rest.split_once('/').unwrap_or((rest, ""));
                let name = name.replace("~1", "/").replace("~0", "~");
                if names.contains(&name) {
                    let fragment = if inner.is_empty() {
                        String::new()
                    } else {
                        format!("#/{inner}")
                    };
                    *target = format!("{AMAZON_MODELS}{api}/models/{name}{fragment}");
                }
            }
            map.values_mut()
                .for_each(|v| to_model_urls(v, prefix, names, api));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| to_model_urls(v, prefix, names, api)),
        _ => {}
    }
}

/// The operation's `requestValidator`, `requestParameters` and `requestModels`, added to the
/// route's `spec`.
pub(super) fn route(
    doc: &Document<'_>,
    path_item: &Map<String, Value>,
    item_pointer: &str,
    op: &Map<String, Value>,
    pointer: &str,
    spec: &mut Map<String, Value>,
    report: &mut Vec<Unsupported>,
) {
    let validator = op
        .get("x-amazon-apigateway-request-validator")
        .and_then(Value::as_str)
        .or(doc.default_validator);
    if let Some(validator) = validator {
        spec.insert("requestValidator".into(), json!(validator));
    }

    let mut parameters = BTreeMap::new();
    let mut models = BTreeMap::new();
    for (list, at) in [
        (
            path_item.get("parameters"),
            format!("{item_pointer}/parameters"),
        ),
        (op.get("parameters"), format!("{pointer}/parameters")),
    ] {
        for (i, parameter) in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{at}/{i}");
            let location = parameter.get("in").and_then(Value::as_str).unwrap_or("");
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
            let required = parameter.get("required").and_then(Value::as_bool) == Some(true);
            match location {
                // Required by the route's path itself.
                "path" => {}
                "query" | "header" if !name.is_empty() => {
                    let location = if location == "query" {
                        "querystring"
                    } else {
                        "header"
                    };
                    parameters.insert(format!("method.request.{location}.{name}"), required);
                }
                "body" => {
                    let consumes = op.get("consumes").or(doc.consumes);
                    let types: Vec<&str> = consumes
                        .and_then(Value::as_array)
                        .map(|c| c.iter().filter_map(Value::as_str).collect())
                        .filter(|c: &Vec<&str>| !c.is_empty())
                        .unwrap_or_else(|| vec!["application/json"]);
                    if let Some(model) = body_model(doc, parameter.get("schema"), &format!("{at}/schema"), report) {
                        for media in types {
                            models.insert(media.to_string(), model.clone());
                        }
                    }
                }
                _ if parameter.get("$ref").is_some() => report.push(unsupported(
                    &at,
                    "a parameter by $ref: write it in the operation to carry it over",
                )),
                other => report.push(unsupported(
                    &at,
                    &format!("a parameter in {other:?}: Tollgate's method request parameters are in the path, the query string and headers"),
                )),
            }
        }
    }
    if let Some(body) = op.get("requestBody") {
        let at = format!("{pointer}/requestBody");
        if body.get("$ref").is_some() {
            report.push(unsupported(
                &at,
                "a request body by $ref: write it in the operation to carry its models over",
            ));
        }
        for (media, content) in body
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let at = format!("{at}/content/{}/schema", escape(media));
            if let Some(model) = body_model(doc, content.get("schema"), &at, report) {
                models.insert(media.clone(), model);
            }
        }
    }
    if !parameters.is_empty() {
        spec.insert("requestParameters".into(), json!(parameters));
    }
    if !models.is_empty() {
        spec.insert("requestModels".into(), json!(models));
    }
}

/// The model a body's schema names, or `None` (an inline schema, reported).
fn body_model(
    doc: &Document<'_>,
    schema: Option<&Value>,
    pointer: &str,
    report: &mut Vec<Unsupported>,
) -> Option<String> {
    let target = schema?.get("$ref").and_then(Value::as_str);
    let name = target.and_then(|t| {
        t.strip_prefix(doc.prefix)
            .or_else(|| t.split_once("/models/").map(|(_, name)| name))
    });
    match name {
        Some(name) if doc.models.iter().any(|m| m == name) => Some(name.to_string()),
        Some(name) => {
            report.push(unsupported(
                pointer,
                &format!("{name:?} is not a schema of the document: the body is not validated"),
            ));
            None
        }
        None => {
            report.push(unsupported(
                pointer,
                &format!("an inline schema: give it a name in {}… and refer to it, to validate the body against it", doc.prefix.trim_start_matches("#/")),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_between_schemas_become_amazon_model_urls() {
        let mut schema = json!({"properties": {
            "owner": {"$ref": "#/components/schemas/Owner"},
            "tag": {"$ref": "#/components/schemas/Owner/properties/tag"},
            "local": {"$ref": "#/definitions/x"},
            "elsewhere": {"$ref": "#/components/schemas/Missing"},
        }});
        to_model_urls(
            &mut schema,
            "#/components/schemas/",
            &["Owner".into()],
            "shop",
        );
        assert_eq!(
            schema,
            json!({"properties": {
                "owner": {"$ref": "https://apigateway.amazonaws.com/restapis/shop/models/Owner"},
                "tag": {"$ref": "https://apigateway.amazonaws.com/restapis/shop/models/Owner#/properties/tag"},
                "local": {"$ref": "#/definitions/x"},
                "elsewhere": {"$ref": "#/components/schemas/Missing"},
            }})
        );
    }

    #[test]
    fn swagger_body_parameters_name_a_model_per_consumed_type() {
        let root = json!({"swagger": "2.0", "definitions": {"Pet": {"type": "object"}},
            "consumes": ["application/json", "application/x-pet"],
            "x-amazon-apigateway-request-validator": "all"});
        let root = root.as_object().unwrap();
        let doc = Document::of(root);
        let op = json!({"parameters": [
            {"in": "body", "name": "Pet", "schema": {"$ref": "#/definitions/Pet"}},
            {"in": "query", "name": "dry", "required": true},
            {"in": "formData", "name": "f"},
        ]});
        let item = json!({"parameters": [{"in": "header", "name": "x-tenant"}, {"in": "path", "name": "id", "required": true}]});
        let mut spec = Map::new();
        let mut report = Vec::new();
        route(
            &doc,
            item.as_object().unwrap(),
            "/paths/~1pets",
            op.as_object().unwrap(),
            "/paths/~1pets/post",
            &mut spec,
            &mut report,
        );
        assert_eq!(
            Value::Object(spec),
            json!({
                "requestValidator": "all",
                "requestParameters": {"method.request.header.x-tenant": false, "method.request.querystring.dry": true},
                "requestModels": {"application/json": "Pet", "application/x-pet": "Pet"},
            })
        );
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].pointer, "/paths/~1pets/post/parameters/2");
    }
}
