//! Tollgate resources as the OpenAPI 3.0 document Amazon API Gateway exports for a REST API
//! (`x-amazon-apigateway-integration` on each operation), so that `tollgate import` of the
//! result gives the same resources back, and Amazon's own import takes it.
//!
//! The resources are compiled first, with Tollgate's compiler: what is exported is what a
//! proxy would serve (one stage of one gateway), references resolved (a Service backend as its
//! URL). What a REST API export cannot say (authorizers, CORS, throttles, usage plans, custom
//! domains, canaries, stage variables, weighted backends, a mock's headers) is reported, with
//! the field it came from; so is every resource the compiler refused.

use serde_json::{Map, Value, json};
use tollgate_crds::compile::{Compiled, Effect};
use tollgate_crds::table::GatewayTable;

/// Amazon's default (and, for REST APIs, largest) integration timeout: not written.
const DEFAULT_TIMEOUT_MILLIS: u64 = 29_000;

/// Where exported Lambda ARNs say the functions are.
#[derive(Debug, Clone)]
pub struct Options {
    pub region: String,
    pub account: String,
}

/// The document, and what it could not say.
#[derive(Debug)]
pub struct Exported {
    pub document: Value,
    pub report: Vec<String>,
}

/// Exports `stage` (default: the first) of the compiled `gateway` table.
pub fn export(
    compiled: &Compiled,
    table: &GatewayTable,
    stage: Option<&str>,
    options: &Options,
) -> Result<Exported, String> {
    let stage = match stage {
        Some(name) => table
            .stage(name)
            .ok_or_else(|| format!("ApiGateway {} has no stage {name:?}", table.gateway))?,
        None => table
            .stages
            .first()
            .ok_or_else(|| format!("ApiGateway {} has no stage", table.gateway))?,
    };
    let mut report = Vec::new();
    for diagnostic in &compiled.diagnostics {
        for problem in diagnostic
            .problems
            .iter()
            .filter(|p| p.effect != Effect::Warned)
        {
            report.push(format!(
                "{:?} {} {}: {}",
                diagnostic.resource.kind, diagnostic.resource.key, problem.field, problem.message
            ));
        }
    }
    let table_json = serde_json::to_value(table).map_err(|e| e.to_string())?;
    let gateway_name = &table.gateway.name;
    let mut not_said = |what: &str| report.push(format!("ApiGateway {}: {what}", table.gateway));
    if !table.authorizers.is_empty() {
        not_said("spec.authorizers: authorizers are not exported yet");
    }
    if table.cors.is_some() {
        not_said("spec.cors: not exported yet");
    }
    if !table.domains.is_empty() {
        not_said("spec.domains: custom domains are not part of an API's definition");
    }
    if !table.usage_plans.is_empty() {
        not_said("usage plans are not part of an API's definition");
    }
    if !stage.variables.is_empty() {
        not_said(&format!(
            "spec.stages[{}].variables: stage variables belong to the stage, not the definition",
            stage.name
        ));
    }
    if stage.canary.is_some() {
        not_said(&format!("spec.stages[{}].canary: not exported", stage.name));
    }

    let mut paths: Map<String, Value> = Map::new();
    let mut uses_api_keys = false;
    let routes = table_json["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["name"] == stage.name.as_str()))
        .and_then(|s| s["routes"].as_array())
        .cloned()
        .unwrap_or_default();
    for route in &routes {
        let (Some(method), Some(path)) = (route["method"].as_str(), route["path"].as_str()) else {
            continue;
        };
        let source = &route["source"];
        let origin = format!(
            "Route {}/{}",
            source["namespace"].as_str().unwrap_or(""),
            source["name"].as_str().unwrap_or("")
        );
        let Some(integration) =
            integration(&route["integration"], path, options, &origin, &mut report)
        else {
            continue;
        };
        let mut operation = Map::new();
        operation.insert(
            "responses".into(),
            json!({"default": {"description": "the integration's answer"}}),
        );
        if route["apiKeyRequired"] == true {
            uses_api_keys = true;
            operation.insert("security".into(), json!([{"api_key": []}]));
        }
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        operation.insert("x-amazon-apigateway-integration".into(), integration);
        let key = if method == "ANY" {
            "x-amazon-apigateway-any-method".to_string()
        } else {
            method.to_ascii_lowercase()
        };
        if let Some(item) = paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            item.insert(key, Value::Object(operation));
        }
    }

    let mut document = json!({
        "openapi": "3.0.1",
        "info": {"title": gateway_name, "version": table.version},
        "servers": [{
            "url": format!("http://{gateway_name}.{}/{{basePath}}", table.gateway.namespace),
            "variables": {"basePath": {"default": stage.name}},
        }],
        "paths": paths,
        "x-amazon-apigateway-endpoint-configuration": {
            "types": [match table_json["endpointType"].as_str() {
                Some("Edge") => "EDGE",
                Some("Private") => "PRIVATE",
                _ => "REGIONAL",
            }],
        },
    });
    if table_json["apiKeySource"] == "AUTHORIZER" {
        document["x-amazon-apigateway-api-key-source"] = json!("AUTHORIZER");
    }
    if uses_api_keys {
        document["components"] = json!({"securitySchemes": {"api_key": {
            "type": "apiKey", "name": "x-api-key", "in": "header",
        }}});
    }
    Ok(Exported { document, report })
}

/// A compiled integration as `x-amazon-apigateway-integration`, or `None` (reported).
fn integration(
    table: &Value,
    path: &str,
    options: &Options,
    origin: &str,
    report: &mut Vec<String>,
) -> Option<Value> {
    let mut out = match table["type"].as_str() {
        Some("http") => {
            let backends = table["backends"].as_array()?;
            let [backend] = backends.as_slice() else {
                report.push(format!("{origin} spec.integration.http.backends: weighted backends cannot be exported; not exported"));
                return None;
            };
            let mut uri = backend["url"].as_str()?.to_string();
            if backend["forwardRequestPath"] == true {
                uri = format!("{}{path}", uri.trim_end_matches('/'));
            }
            if table["requestHeaders"]
                .as_object()
                .is_some_and(|h| !h.is_empty())
            {
                report.push(format!(
                    "{origin} spec.integration.http.requestHeaders: not exported"
                ));
            }
            json!({
                "type": "http_proxy",
                "httpMethod": table["method"].as_str().unwrap_or("ANY"),
                "uri": uri,
                "passthroughBehavior": "when_no_match",
            })
        }
        Some("lambda") => {
            let function = table["functionName"].as_str()?;
            let (region, account) = (&options.region, &options.account);
            json!({
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": format!("arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/arn:aws:lambda:{region}:{account}:function:{function}/invocations"),
                "payloadFormatVersion": table["payloadFormatVersion"],
            })
        }
        Some("mock") => {
            let status = table["statusCode"].as_u64().unwrap_or(200);
            if table["headers"].as_object().is_some_and(|h| !h.is_empty()) {
                report.push(format!(
                    "{origin} spec.integration.mock.headers: not exported"
                ));
            }
            json!({
                "type": "mock",
                "requestTemplates": {"application/json": format!("{{\"statusCode\": {status}}}")},
                "passthroughBehavior": "when_no_match",
                "responses": {"default": {
                    "statusCode": status.to_string(),
                    "responseTemplates": {"application/json": table["body"].as_str().unwrap_or("")},
                }},
            })
        }
        _ => return None,
    };
    if let Some(timeout) = table["timeoutMillis"]
        .as_u64()
        .filter(|t| *t != DEFAULT_TIMEOUT_MILLIS)
    {
        out["timeoutInMillis"] = json!(timeout);
    }
    Some(out)
}
