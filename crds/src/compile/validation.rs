//! Request validation: a REST API's models checked as JSON Schema draft 4 (the one function
//! that builds validators, [`build_validators`], is also what the proxy runs once per table),
//! and each route's `requestValidator`, `requestParameters` and `requestModels` resolved into
//! its [`ValidationTable`].

use std::collections::{BTreeMap, BTreeSet};

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;

use super::diagnostics::{Diagnostic, Reason};
use super::validate;
use crate::resources::{ApiGateway, Model, Route};
use crate::table::{
    DEFAULT_MODEL_KEY, MODEL_URI_BASE, ParameterLocation, RequiredParameter, ValidationTable,
    model_uri,
};

/// Amazon API Gateway's model names: letters and digits.
fn valid_model_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The gateway's models that compile, with `$ref`s to each other in the table's form. A model
/// that does not (not a valid schema, a bad pattern, a `$ref` to nothing) is skipped and named;
/// so is one that refers to it.
pub(super) fn models(
    models: &BTreeMap<String, Model>,
    rest_api: bool,
    diag: &mut Diagnostic,
) -> BTreeMap<String, Value> {
    if models.is_empty() {
        return BTreeMap::new();
    }
    if !rest_api {
        diag.skip(
            Reason::ProtocolMismatch,
            "spec.models",
            "models validate REST API requests; this API's requests are not validated: remove spec.models",
        );
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for (name, model) in models {
        if !valid_model_name(name) {
            diag.skip(
                Reason::InvalidModel,
                format!("spec.models.{name}"),
                "a model name is 1 to 128 letters and digits",
            );
            continue;
        }
        let mut schema = model.schema.clone();
        rewrite_model_refs(&mut schema);
        out.insert(name.clone(), schema);
    }
    // A model that fails takes those that refer to it down with it: repeat until all build.
    loop {
        let failed: Vec<(String, String)> = build_validators(&out)
            .into_iter()
            .filter_map(|(name, built)| built.err().map(|e| (name, e)))
            .collect();
        if failed.is_empty() {
            return out;
        }
        let failed_names: BTreeSet<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        let messages: Vec<(String, String)> = failed
            .iter()
            .map(|(name, error)| {
                let broken_ref = referenced_models(&out[name])
                    .into_iter()
                    .find(|r| r != name && failed_names.contains(r.as_str()));
                let why = match broken_ref {
                    Some(other) => format!("it refers to model {other:?}, which is not valid"),
                    None => format!("not a valid JSON Schema (draft 4): {error}"),
                };
                (name.clone(), why)
            })
            .collect();
        for (name, why) in messages {
            out.remove(&name);
            diag.skip(
                Reason::InvalidModel,
                format!("spec.models.{name}.schema"),
                format!("{why}; routes that validate against it are not served"),
            );
        }
    }
}

/// One validator per model, each able to follow `$ref`s to the models it refers to (offline:
/// nothing is fetched). The error of a model that does not build is its text; a model that
/// refers to a model not in `models` does not build.
pub fn build_validators(
    models: &BTreeMap<String, Value>,
) -> BTreeMap<String, Result<Validator, String>> {
    models
        .iter()
        .map(|(name, schema)| (name.clone(), build_one(name, schema, models)))
        .collect()
}

fn build_one(
    name: &str,
    schema: &Value,
    models: &BTreeMap<String, Value>,
) -> Result<Validator, String> {
    // The models it reaches through `$ref`s, itself included.
    let mut reached = BTreeSet::from([name.to_owned()]);
    let mut pending = vec![schema];
    while let Some(next) = pending.pop() {
        for target in referenced_models(next) {
            let Some(target_schema) = models.get(&target) else {
                return Err(format!(
                    "$ref to model {target:?}, which is not a model of the gateway"
                ));
            };
            if reached.insert(target) {
                pending.push(target_schema);
            }
        }
    }
    let resources = reached.iter().map(|n| {
        (
            model_uri(n),
            Draft::Draft4.create_resource(models[n].clone()),
        )
    });
    let registry = Registry::new()
        .extend(resources)
        .and_then(|r| r.prepare())
        .map_err(|e| e.to_string())?;
    // The regex crate's engine for `pattern` (linear time, whatever the input): a request body
    // cannot make a model's pattern backtrack for ever. Look-around and back-references, which
    // only a backtracking engine runs, make the model invalid.
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .offline()
        .with_registry(&registry)
        .with_base_uri(model_uri(name))
        .build(schema)
        .map_err(|e| e.to_string())
}

/// The names of the models a schema's `$ref`s point at (by the table's model URI).
fn referenced_models(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![schema];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref")
                    && let Some(rest) = target.strip_prefix(MODEL_URI_BASE)
                {
                    let name = rest.split('#').next().unwrap_or(rest);
                    out.push(name.to_owned());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// `$ref`s to another model by Amazon's model URL
/// (`https://apigateway.amazonaws.com/restapis/{api}/models/{name}`) become the table's model
/// URI, so models imported from Amazon keep referring to each other.
fn rewrite_model_refs(schema: &mut Value) {
    const AMAZON: &str = "://apigateway.amazonaws.com/restapis/";
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(at) = target.find(AMAZON)
                && let Some((_, rest)) = target[at + AMAZON.len()..].split_once("/models/")
            {
                let (name, fragment) = rest.split_once('#').unwrap_or((rest, ""));
                let fragment = if fragment.is_empty() {
                    String::new()
                } else {
                    format!("#{fragment}")
                };
                *target = format!("{}{fragment}", model_uri(name));
            }
            map.values_mut().for_each(rewrite_model_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_model_refs),
        _ => {}
    }
}

/// A route's validation: its validator's settings with the parameters and models it names
/// checked against the gateway and the route's path. `None` without a validator.
pub(super) fn route(
    rt: &Route,
    gw: Option<&ApiGateway>,
    models: &BTreeMap<String, Value>,
    rest_api: bool,
    path_params: &BTreeSet<&str>,
    diag: &mut Diagnostic,
) -> Option<Box<ValidationTable>> {
    let spec = &rt.spec;
    if !rest_api {
        for (set, field) in [
            (
                !spec.request_parameters.is_empty(),
                "spec.requestParameters",
            ),
            (!spec.request_models.is_empty(), "spec.requestModels"),
            (spec.request_validator.is_some(), "spec.requestValidator"),
        ] {
            if set {
                diag.reject(
                    Reason::ProtocolMismatch,
                    field,
                    "request validation is for REST APIs: remove it from this route",
                );
            }
        }
        return None;
    }

    let parameters = required_parameters(&spec.request_parameters, path_params, diag);
    for (content_type, model) in &spec.request_models {
        if models.contains_key(model) {
            continue;
        }
        let defined = gw.is_some_and(|g| g.spec.models.contains_key(model));
        let message = if defined {
            format!("model {model:?} of the gateway is not valid (see the ApiGateway's status)")
        } else {
            format!("the gateway has no model {model:?} in spec.models")
        };
        diag.reject(
            Reason::ModelNotFound,
            format!("spec.requestModels.{content_type}"),
            message,
        );
    }

    let name = spec.request_validator.as_ref()?;
    let Some(validator) = gw.and_then(|g| g.spec.request_validators.get(name)) else {
        diag.reject(
            Reason::RequestValidatorNotFound,
            "spec.requestValidator",
            format!("the gateway has no request validator {name:?} in spec.requestValidators"),
        );
        return None;
    };
    let required_parameters = if validator.validate_request_parameters {
        parameters
    } else {
        Vec::new()
    };
    let body_models = if validator.validate_request_body {
        spec.request_models
            .iter()
            .map(|(media, model)| {
                let media = if media == DEFAULT_MODEL_KEY {
                    media.clone()
                } else {
                    media.to_ascii_lowercase()
                };
                (media, model.clone())
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    Some(Box::new(ValidationTable {
        required_parameters,
        validate_body: validator.validate_request_body,
        body_models,
    }))
}

/// The required ones of `method.request.{path|querystring|header}.NAME`, sorted as Amazon
/// lists missing ones (by key); a malformed key, or a path parameter the route's path lacks,
/// rejects the route.
fn required_parameters(
    parameters: &BTreeMap<String, bool>,
    path_params: &BTreeSet<&str>,
    diag: &mut Diagnostic,
) -> Vec<RequiredParameter> {
    let mut out = Vec::new();
    for (key, required) in parameters {
        let field = format!("spec.requestParameters.{key}");
        let Some((location, name)) = key
            .strip_prefix("method.request.")
            .and_then(|rest| rest.split_once('.'))
        else {
            diag.reject(
                Reason::InvalidRequestParameter,
                field,
                "a request parameter is method.request.path.NAME, method.request.querystring.NAME or method.request.header.NAME",
            );
            continue;
        };
        let location = match location {
            "path" => ParameterLocation::Path,
            "querystring" => ParameterLocation::Querystring,
            "header" => ParameterLocation::Header,
            other => {
                diag.reject(
                    Reason::InvalidRequestParameter,
                    field,
                    format!("unknown location {other:?}: use path, querystring or header"),
                );
                continue;
            }
        };
        let valid_name = !name.is_empty()
            && match location {
                ParameterLocation::Header => validate::header_name(name).is_ok(),
                _ => !name
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()),
            };
        if !valid_name {
            diag.reject(
                Reason::InvalidRequestParameter,
                field,
                format!("{name:?} is not a valid {location:?} parameter name"),
            );
            continue;
        }
        if location == ParameterLocation::Path && !path_params.contains(name) {
            diag.reject(
                Reason::InvalidRequestParameter,
                field,
                format!("the route's path has no parameter {{{name}}}"),
            );
            continue;
        }
        if *required {
            out.push(RequiredParameter {
                location,
                name: name.to_owned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn models_refer_to_each_other_by_amazon_url_and_validate() {
        let mut models = BTreeMap::from([
            (
                "Pet".to_owned(),
                json!({"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "owner": {"$ref": "https://apigateway.amazonaws.com/restapis/abc123/models/Owner"}
                }}),
            ),
            (
                "Owner".to_owned(),
                json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}),
            ),
        ]);
        models.values_mut().for_each(rewrite_model_refs);
        let built = build_validators(&models);
        let pet = built["Pet"].as_ref().unwrap();
        assert!(pet.is_valid(&json!({"name": "rex", "owner": {"age": 3}})));
        assert!(!pet.is_valid(&json!({"name": "rex", "owner": {"age": -1}})));
        assert!(!pet.is_valid(&json!({"owner": {}})));
    }

    #[test]
    fn patterns_run_in_linear_time_and_look_around_is_refused() {
        let models = BTreeMap::from([
            (
                "Nested".to_owned(),
                json!({"type": "string", "pattern": "^(a+)+$"}),
            ),
            (
                "LookAhead".to_owned(),
                json!({"type": "string", "pattern": "^(?=a)a$"}),
            ),
        ]);
        let built = build_validators(&models);
        assert!(built["LookAhead"].is_err());
        // The classic catastrophic-backtracking input: answered at once.
        let evil = format!("{}!", "a".repeat(50_000));
        assert!(!built["Nested"].as_ref().unwrap().is_valid(&json!(evil)));
    }

    #[test]
    fn a_bad_schema_fails_alone_and_names_its_reason() {
        let models = BTreeMap::from([
            (
                "Bad".to_owned(),
                json!({"type": "object", "properties": {"a": {"pattern": "(["}}}),
            ),
            ("Good".to_owned(), json!({"type": "string"})),
            (
                "Dangling".to_owned(),
                json!({"$ref": "https://tollgate.dev/models/Missing"}),
            ),
        ]);
        let built = build_validators(&models);
        assert!(built["Good"].is_ok());
        assert!(built["Bad"].is_err());
        assert!(built["Dangling"].is_err());
    }
}
