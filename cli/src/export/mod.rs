//! Tollgate resources as the OpenAPI 3.0 document Amazon API Gateway exports for a REST API
//! or an HTTP API (`x-amazon-apigateway-integration` on each operation, the authorizers as
//! security schemes, CORS), so that `tollgate import` of the result gives the same resources
//! back, and Amazon's own import takes it.
//!
//! The resources are compiled first, with Tollgate's compiler: what is exported is what a
//! proxy would serve (one stage of one gateway), references resolved (a Service backend as its
//! URL). Parameter mappings and authorizers are written as the resources write them; a REST
//! API's models, request validators, gateway responses, method requests and non-proxy
//! integrations (mapping templates, integration responses) as Amazon does ([`rest`]). What a
//! definition cannot say (authorizers reached over HTTP, throttles, usage plans, custom
//! domains, canaries, stage variables, weighted backends, a mock's headers) is reported, with
//! the field it came from; so is every resource the compiler refused.

mod rest;

use serde_json::{Map, Value, json};
use tollgate_crds::compile::{Compiled, Effect, Resources};
use tollgate_crds::resources::{AuthorizerType, PayloadFormatVersion, Route};
use tollgate_crds::table::{DEFAULT_STAGE, GatewayTable, ObjectKey};

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
    resources: &Resources,
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

    let (schemes, authorizers) = security_schemes(resources, table, options, &mut report);
    let mut paths: Map<String, Value> = Map::new();
    let mut uses_api_keys = false;
    let routes = table_json["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["name"] == stage.name.as_str()))
        .and_then(|s| s["routes"].as_array())
        .cloned()
        .unwrap_or_default();
    for route in &routes {
        // An HTTP API's `$default` route is exported as Amazon does: `ANY /$default`.
        let default_route = route["routeKey"] == "$default";
        let (method, path) = match (route["method"].as_str(), route["path"].as_str()) {
            (Some(method), Some(path)) => (method, path),
            _ if default_route => ("ANY", "/$default"),
            _ => continue,
        };
        let source = &route["source"];
        let origin = format!(
            "Route {}/{}",
            source["namespace"].as_str().unwrap_or(""),
            source["name"].as_str().unwrap_or("")
        );
        let Some(mut integration) =
            integration(&route["integration"], path, options, &origin, &mut report)
        else {
            continue;
        };
        let key = ObjectKey::new(
            source["namespace"].as_str().unwrap_or(""),
            source["name"].as_str().unwrap_or(""),
        );
        let resource = resources.routes.get(&key);
        if let Some(route) = resource {
            parameter_mapping(route, &mut integration);
        }
        let mut operation = Map::new();
        // A non-proxy integration's status codes are method responses; a proxy's answer is
        // the integration's.
        let method_responses = resource.and_then(|r| rest::non_proxy(r, &mut integration));
        operation.insert(
            "responses".into(),
            method_responses
                .unwrap_or_else(|| json!({"default": {"description": "the integration's answer"}})),
        );
        if default_route {
            operation.insert("isDefaultRoute".into(), json!(true));
        }
        let mut security = Map::new();
        if route["apiKeyRequired"] == true {
            uses_api_keys = true;
            security.insert("api_key".into(), json!([]));
        }
        if let Some(name) = route["authorizer"].as_str()
            && authorizers.contains(&name.to_string())
        {
            security.insert(name.into(), route["authorizationScopes"].clone());
            if route["authorizationScopes"].is_null() {
                security.insert(name.into(), json!([]));
            }
        }
        if !security.is_empty() {
            operation.insert("security".into(), json!([security]));
        }
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(route) = resource
            && !table.http_api
        {
            rest::method_request(route, &mut parameters, &mut operation);
        }
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

    // An HTTP API's `$default` stage has no base path.
    let base_path = if stage.name == DEFAULT_STAGE {
        ""
    } else {
        stage.name.as_str()
    };
    let mut document = json!({
        "openapi": "3.0.1",
        "info": {"title": gateway_name, "version": table.version},
        "servers": [{
            "url": format!("http://{gateway_name}.{}/{{basePath}}", table.gateway.namespace),
            "variables": {"basePath": {"default": base_path}},
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
    if !table.binary_media_types.is_empty() {
        document["x-amazon-apigateway-binary-media-types"] = json!(table.binary_media_types);
    }
    if let Some(size) = table.minimum_compression_size {
        document["x-amazon-apigateway-minimum-compression-size"] = json!(size);
    }
    if table.http_api {
        document["x-amazon-apigateway-importexport-version"] = json!("1.0");
    }
    if let Some(cors) = &table.cors {
        let mut out = Map::new();
        for (key, list) in [
            ("allowOrigins", &cors.allow_origins),
            ("allowMethods", &cors.allow_methods),
            ("allowHeaders", &cors.allow_headers),
            ("exposeHeaders", &cors.expose_headers),
        ] {
            if !list.is_empty() {
                out.insert(key.into(), json!(list));
            }
        }
        if let Some(age) = cors.max_age_seconds {
            out.insert("maxAge".into(), json!(age));
        }
        if cors.allow_credentials {
            out.insert("allowCredentials".into(), json!(true));
        }
        document["x-amazon-apigateway-cors"] = Value::Object(out);
    }
    let mut schemes = schemes;
    if uses_api_keys {
        schemes.insert(
            "api_key".into(),
            json!({"type": "apiKey", "name": "x-api-key", "in": "header"}),
        );
    }
    if !schemes.is_empty() {
        document["components"]["securitySchemes"] = Value::Object(schemes);
    }
    if !table.http_api
        && table.websocket.is_none()
        && let Some(gateway) = resources.gateways.get(&table.gateway)
    {
        rest::gateway(gateway, table, &mut document);
    }
    Ok(Exported { document, report })
}

/// The route's parameter mapping, as its resource writes it.
fn parameter_mapping(route: &Route, integration: &mut Value) {
    let Some(http) = &route.spec.integration.http else {
        return;
    };
    if !http.request_parameters.is_empty() {
        integration["requestParameters"] = json!(http.request_parameters);
    }
    if !http.response_parameters.is_empty() {
        integration["responseParameters"] = json!(http.response_parameters);
    }
}

/// The gateway's served authorizers as security schemes (`x-amazon-apigateway-authorizer`),
/// as its resource writes them, and their names; one reached over HTTP cannot be said.
fn security_schemes(
    resources: &Resources,
    table: &GatewayTable,
    options: &Options,
    report: &mut Vec<String>,
) -> (Map<String, Value>, Vec<String>) {
    let mut schemes = Map::new();
    let mut names = Vec::new();
    let Some(gateway) = resources.gateways.get(&table.gateway) else {
        return (schemes, names);
    };
    let served: Vec<&str> = table.authorizers.iter().map(|a| a.name.as_str()).collect();
    for (i, authorizer) in gateway.spec.authorizers.iter().enumerate() {
        if !served.contains(&authorizer.name.as_str()) {
            continue;
        }
        // A REST API writes identity sources as `method.request.header.X`.
        let sources: Vec<String> = authorizer
            .identity_source
            .iter()
            .map(|s| {
                if table.http_api {
                    s.clone()
                } else if let Some(rest) = s.strip_prefix("$request.") {
                    format!("method.request.{rest}")
                } else {
                    s.trim_start_matches('$').to_string()
                }
            })
            .collect();
        let scheme = match (&authorizer.jwt, &authorizer.lambda) {
            (Some(jwt), _) => {
                if jwt.jwks_uri.is_some() {
                    report.push(format!(
                        "ApiGateway {} spec.authorizers[{i}].jwt.jwksUri: not exported (Amazon finds the keys from the issuer)",
                        table.gateway
                    ));
                }
                let config = json!({"issuer": jwt.issuer, "audience": jwt.audiences});
                let mut authorizer = json!({"type": "jwt", "jwtConfiguration": config});
                authorizer["identitySource"] = json!(if sources.is_empty() {
                    "$request.header.Authorization".to_string()
                } else {
                    sources.join(", ")
                });
                json!({"type": "oauth2", "flows": {}, "x-amazon-apigateway-authorizer": authorizer})
            }
            (None, Some(lambda)) => {
                let kind = format!("{:?}", authorizer.type_).to_ascii_lowercase();
                let mut out = json!({
                    "type": kind,
                    "authorizerUri": lambda_uri(options, &lambda.function_name),
                    "authorizerResultTtlInSeconds": authorizer.result_ttl_seconds,
                });
                if !sources.is_empty() {
                    out["identitySource"] = json!(sources.join(", "));
                }
                // An HTTP API names the event a REQUEST authorizer gets, and lets it answer
                // simply (Tollgate takes either answer).
                if table.http_api && authorizer.type_ == AuthorizerType::REQUEST {
                    let version = match authorizer.payload_format_version {
                        Some(PayloadFormatVersion::V1) => "1.0",
                        _ => "2.0",
                    };
                    out["authorizerPayloadFormatVersion"] = json!(version);
                    out["enableSimpleResponses"] = json!(version == "2.0");
                }
                let header = sources
                    .first()
                    .and_then(|s| {
                        s.strip_prefix("$request.header.")
                            .or_else(|| s.strip_prefix("method.request.header."))
                    })
                    .unwrap_or("Authorization");
                let mut scheme = json!({"type": "apiKey", "name": header, "in": "header"});
                if !table.http_api {
                    scheme["x-amazon-apigateway-authtype"] = json!("custom");
                }
                scheme["x-amazon-apigateway-authorizer"] = out;
                scheme
            }
            (None, None) => {
                report.push(format!(
                    "ApiGateway {} spec.authorizers[{i}] ({}): an authorizer reached over HTTP cannot be exported (Amazon's are Lambda functions); routes using it are exported without it",
                    table.gateway, authorizer.name
                ));
                continue;
            }
        };
        schemes.insert(authorizer.name.clone(), scheme);
        names.push(authorizer.name.clone());
    }
    (schemes, names)
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
            json!({
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": lambda_uri(options, function),
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

/// The invocations ARN API Gateway names a Lambda function by: its own ARN, or one made of
/// its name with `--region` and `--account`.
fn lambda_uri(options: &Options, function: &str) -> String {
    let (function_arn, region) = match function.split(':').nth(3) {
        Some(region) if function.starts_with("arn:") => (function.to_string(), region.to_string()),
        _ => {
            let (region, account) = (&options.region, &options.account);
            (
                format!("arn:aws:lambda:{region}:{account}:function:{function}"),
                region.clone(),
            )
        }
    };
    format!(
        "arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    )
}
