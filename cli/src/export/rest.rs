//! What only REST APIs have, written back as Amazon exports it: the gateway's models
//! (`components.schemas`, `$ref`s between them as `#/components/schemas/X`), request
//! validators and gateway responses; each route's validator, method request parameters and
//! body models; and a non-proxy integration (`http`, or `aws` for a Lambda function) with its
//! mapping templates and integration responses (`responses`, keyed by selection pattern), and
//! the method responses their status codes need.

use serde_json::{Map, Value, json};
use tollgate_crds::resources::{ApiGateway, MappingTemplates, Route};
use tollgate_crds::table::{GatewayTable, MODEL_URI_BASE};

/// The gateway's models, validators and gateway responses, as the compiler serves them.
pub(super) fn gateway(gateway: &ApiGateway, table: &GatewayTable, document: &mut Value) {
    let spec = &gateway.spec;
    let mut schemas = Map::new();
    for (name, model) in &spec.models {
        // A model the compiler skipped is not served.
        if !table.models.contains_key(name) {
            continue;
        }
        let mut schema = model.schema.clone();
        to_local_refs(&mut schema);
        schemas.insert(name.clone(), schema);
    }
    if !schemas.is_empty() {
        document["components"]["schemas"] = Value::Object(schemas);
    }
    if !spec.request_validators.is_empty() {
        document["x-amazon-apigateway-request-validators"] = json!(spec.request_validators);
    }
    let mut responses = Map::new();
    for served in &table.gateway_responses {
        let name = served.response_type.as_str();
        let Some(response) = spec.gateway_responses.get(name) else {
            continue;
        };
        responses.insert(name.into(), json!(response));
    }
    if !responses.is_empty() {
        document["x-amazon-apigateway-gateway-responses"] = Value::Object(responses);
    }
}

/// `$ref`s to another model (Amazon's model URL, or Tollgate's own) as the document's
/// `#/components/schemas/X`.
fn to_local_refs(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref") {
                let model = if target.contains("://apigateway.amazonaws.com/restapis/") {
                    target.split_once("/models/").map(|(_, rest)| rest)
                } else {
                    target.strip_prefix(MODEL_URI_BASE)
                };
                if let Some(rest) = model {
                    let (name, fragment) = rest.split_once('#').unwrap_or((rest, ""));
                    let fragment = fragment.trim_end_matches('/');
                    *target = format!("#/components/schemas/{name}{fragment}");
                }
            }
            map.values_mut().for_each(to_local_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(to_local_refs),
        _ => {}
    }
}

/// The route's validator, query-string and header parameters (after `parameters`, the path's)
/// and body models, on its operation.
pub(super) fn method_request(
    route: &Route,
    parameters: &mut Vec<Value>,
    operation: &mut Map<String, Value>,
) {
    let spec = &route.spec;
    for (key, required) in &spec.request_parameters {
        let Some((location, name)) = key
            .strip_prefix("method.request.")
            .and_then(|rest| rest.split_once('.'))
        else {
            continue;
        };
        let location = match location {
            "querystring" => "query",
            "header" => "header",
            // Path parameters are the path's, written already.
            _ => continue,
        };
        let mut parameter = json!({"name": name, "in": location, "schema": {"type": "string"}});
        if *required {
            parameter["required"] = json!(true);
        }
        parameters.push(parameter);
    }
    if !spec.request_models.is_empty() {
        let content: Map<String, Value> = spec
            .request_models
            .iter()
            .map(|(media, model)| {
                let schema = json!({"$ref": format!("#/components/schemas/{model}")});
                (media.clone(), json!({ "schema": schema }))
            })
            .collect();
        operation.insert("requestBody".into(), json!({ "content": content }));
    }
    if let Some(validator) = &spec.request_validator {
        operation.insert(
            "x-amazon-apigateway-request-validator".into(),
            json!(validator),
        );
    }
}

/// A non-proxy integration's type, templates and `responses` on `integration`; the method
/// responses its status codes need. `None` for a proxy integration.
pub(super) fn non_proxy(route: &Route, integration: &mut Value) -> Option<Value> {
    let (templates, lambda) = match (&route.spec.integration.http, &route.spec.integration.lambda) {
        (Some(http), _) => (&http.templates, false),
        (_, Some(lambda)) => (&lambda.templates, true),
        _ => return None,
    };
    if templates.is_empty() {
        return None;
    }
    let MappingTemplates {
        request_templates,
        passthrough_behavior,
        integration_responses,
    } = templates;
    if lambda {
        integration["type"] = json!("aws");
        if let Some(out) = integration.as_object_mut() {
            out.remove("payloadFormatVersion");
        }
    } else {
        integration["type"] = json!("http");
    }
    let behaviour = json!(passthrough_behavior.unwrap_or_default());
    integration["passthroughBehavior"] = json!(behaviour.as_str().unwrap_or("").to_lowercase());
    if !request_templates.is_empty() {
        integration["requestTemplates"] = json!(request_templates);
    }
    let mut responses = Map::new();
    let mut method_responses = Map::new();
    for response in integration_responses {
        let key = response
            .selection_pattern
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".into());
        let status = response.status_code.to_string();
        let mut out = json!({ "statusCode": status });
        if !response.response_parameters.is_empty() {
            out["responseParameters"] = json!(response.response_parameters);
        }
        if !response.response_templates.is_empty() {
            out["responseTemplates"] = json!(response.response_templates);
        }
        responses.insert(key, out);
        let method = method_responses
            .entry(status.clone())
            .or_insert_with(|| json!({"description": format!("{status} response")}));
        for key in response.response_parameters.keys() {
            if let Some(header) = key.strip_prefix("method.response.header.") {
                method["headers"][header] = json!({"schema": {"type": "string"}});
            }
        }
    }
    // None given: Tollgate answers through one default, 200, the body passed through.
    if responses.is_empty() {
        responses.insert("default".into(), json!({"statusCode": "200"}));
        method_responses.insert("200".into(), json!({"description": "200 response"}));
    }
    integration["responses"] = Value::Object(responses);
    Some(Value::Object(method_responses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_urls_become_references_inside_the_document() {
        let mut schema = json!({"items": [
            {"$ref": "https://apigateway.amazonaws.com/restapis/abc/models/Pet"},
            {"$ref": "https://apigateway.amazonaws.com/restapis/abc/models/Pet#/properties/id"},
            {"$ref": "https://tollgate.dev/models/Owner"},
            {"$ref": "#/definitions/local"},
        ]});
        to_local_refs(&mut schema);
        assert_eq!(
            schema,
            json!({"items": [
                {"$ref": "#/components/schemas/Pet"},
                {"$ref": "#/components/schemas/Pet/properties/id"},
                {"$ref": "#/components/schemas/Owner"},
                {"$ref": "#/definitions/local"},
            ]})
        );
    }
}
