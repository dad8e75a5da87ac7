//! OpenAPI (3.0, 3.1) and Swagger (2.0) definitions, as Amazon API Gateway exports a REST API
//! or an HTTP API, into Tollgate resources: one `ApiGateway` and a `Route` per operation.
//!
//! What is carried over: each path and method (`x-amazon-apigateway-any-method` as `ANY`; an
//! HTTP API's `/$default` or `isDefaultRoute` as the `$default` route), with its
//! `x-amazon-apigateway-integration` of type `http_proxy` or `http` (the URI, `httpMethod`,
//! stage variables, parameter mapping: [`parameters`]; a VPC link as the Service `--vpc-link`
//! names), `aws_proxy` to Lambda (the function's name from the ARN, the payload format), `aws`
//! to Lambda, or `mock` (the `default` response's status and JSON template); a non-proxy
//! integration's mapping templates and integration responses ([`templates`]);
//! `timeoutInMillis`; security schemes and requirements ([`authorizers`]); a REST API's
//! models, request validators and method request parameters ([`validation`]) and gateway
//! responses ([`gateway_responses`]); the stage (from `servers[].variables.basePath` or
//! `basePath`; an HTTP API's empty one is `$default`), `x-amazon-apigateway-api-key-source`,
//! the endpoint type and an HTTP API's CORS. An export with
//! `x-amazon-apigateway-importexport-version` is an HTTP API (`protocol: HTTP`). Everything
//! else the document holds that changes what the API does is reported with its JSON pointer
//! and why it was not carried over, never dropped unsaid; what Tollgate's compiler refuses of
//! the result is taken out and reported too ([`check`]).
//!
//! Values, not a typed OpenAPI model: Amazon's extensions are most of what is read, the three
//! versions share the `paths` layout, and no maintained crate reads 2.0 and 3.x alike.

mod authorizers;
mod check;
mod gateway_responses;
mod parameters;
mod templates;
mod validation;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// What the importer was told besides the document.
#[derive(Debug, Clone)]
pub struct Options {
    /// The ApiGateway's name; default: the document's title as a DNS label.
    pub name: Option<String>,
    pub namespace: String,
    /// An Invoke API endpoint (the emulator's) that runs the functions under their bare names;
    /// `None`: AWS Lambda itself, each function by its ARN (signed calls).
    pub lambda_endpoint: Option<String>,
    /// VPC links (their `connectionId`) as the Service (name, port) that takes their place.
    pub vpc_links: BTreeMap<String, (String, u16)>,
    /// Values of the stage variables the integrations read.
    pub stage_variables: BTreeMap<String, String>,
}

/// The resources, and what could not be carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub resources: Vec<Value>,
    pub report: Vec<Unsupported>,
}

/// A construct left out, where it is and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    /// RFC 6901 JSON pointer into the document.
    pub pointer: String,
    pub why: String,
}

/// Why a document cannot be imported at all.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("{pointer}: {why}")]
    Invalid { pointer: String, why: String },
}

const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("post", "POST"),
    ("put", "PUT"),
    ("patch", "PATCH"),
    ("delete", "DELETE"),
    ("head", "HEAD"),
    ("options", "OPTIONS"),
    ("x-amazon-apigateway-any-method", "ANY"),
];

/// Top-level extensions carried over (the rest are reported).
const HANDLED_TOP: [&str; 4] = [
    "x-amazon-apigateway-api-key-source",
    "x-amazon-apigateway-endpoint-configuration",
    "x-amazon-apigateway-cors",
    "x-amazon-apigateway-importexport-version",
];

/// Top-level extensions a REST API's import carries over besides.
const HANDLED_TOP_REST: [&str; 5] = [
    gateway_responses::EXTENSION,
    "x-amazon-apigateway-request-validators",
    "x-amazon-apigateway-request-validator",
    BINARY_MEDIA_TYPES,
    MINIMUM_COMPRESSION_SIZE,
];

const BINARY_MEDIA_TYPES: &str = "x-amazon-apigateway-binary-media-types";
const MINIMUM_COMPRESSION_SIZE: &str = "x-amazon-apigateway-minimum-compression-size";

/// The path an HTTP API export gives its `$default` route.
const DEFAULT_ROUTE_PATH: &str = "/$default";

const MIN_TIMEOUT: u64 = 50;
const MAX_TIMEOUT: u64 = 29_000;

/// Imports one document.
pub fn import(doc: &Value, options: &Options) -> Result<Imported, ImportError> {
    let root = doc
        .as_object()
        .ok_or_else(|| invalid("", "not a JSON/YAML object"))?;
    if root.get("openapi").is_none() && root.get("swagger").is_none() {
        return Err(invalid(
            "",
            "neither `openapi` (3.x) nor `swagger` (2.0): not an OpenAPI document",
        ));
    }
    let paths = root
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("/paths", "missing, or not an object"))?;
    let mut report = Vec::new();
    let name = match &options.name {
        Some(name) => name.clone(),
        None => dns_label(
            root.get("info")
                .and_then(|i| i.get("title"))
                .and_then(Value::as_str)
                .unwrap_or("api"),
        ),
    };
    // Only HTTP API exports carry the import/export version.
    let http_api = root.contains_key("x-amazon-apigateway-importexport-version");
    let stage = stage_of(root, http_api);
    let schemes = authorizers::read(root, http_api, options, &mut report);

    let mut gateway_spec = Map::new();
    if http_api {
        gateway_spec.insert("protocol".into(), json!("HTTP"));
    }
    gateway_spec.insert("stages".into(), json!([{"name": stage}]));
    if !schemes.entries.is_empty() {
        gateway_spec.insert("authorizers".into(), json!(schemes.entries));
    }
    top_level(root, http_api, &mut gateway_spec, &mut report);
    if !http_api {
        validation::gateway(root, &name, &mut gateway_spec, &mut report);
        gateway_responses::carry_over(root, &mut gateway_spec, &mut report);
    }
    let document = validation::Document::of(root);
    let mut origins = check::Origins {
        models: if root.contains_key("swagger") {
            "/definitions"
        } else {
            "/components/schemas"
        },
        routes: BTreeMap::new(),
    };
    let mut resources = vec![json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ApiGateway",
        "metadata": {"name": name, "namespace": options.namespace},
        "spec": gateway_spec,
    })];

    let mut variables = Map::new();
    let mut unset = BTreeSet::new();
    for (path, item) in paths {
        let item_pointer = format!("/paths/{}", escape(path));
        let Some(item) = item.as_object() else {
            return Err(invalid(&item_pointer, "a path item must be an object"));
        };
        for (key, value) in item {
            let pointer = format!("{item_pointer}/{}", escape(key));
            let Some((_, method)) = METHODS.iter().find(|(k, _)| k == key) else {
                // Documentation and other tools' extensions change nothing served.
                let harmless = matches!(
                    key.as_str(),
                    "parameters" | "summary" | "description" | "servers"
                ) || (key.starts_with("x-")
                    && !key.starts_with("x-amazon-apigateway"));
                if !harmless {
                    report.push(unsupported(&pointer, "not an operation Tollgate serves"));
                }
                continue;
            };
            let mut route_name = format!("{name}-{}", route_suffix(method, path));
            // Paths that differ only in punctuation make the same name: number the later ones.
            let taken = |n: &str| resources.iter().any(|r| r["metadata"]["name"] == n);
            if taken(&route_name) {
                let base = route_name.clone();
                route_name = (2..)
                    .map(|i| format!("{base}-{i}"))
                    .find(|n| !taken(n))
                    .unwrap_or(base);
            }
            if let Some(route) = operation(
                &RouteInput {
                    name: &route_name,
                    gateway: &name,
                    method,
                    path,
                    pointer: &pointer,
                    item,
                    item_pointer: &item_pointer,
                    document: &document,
                    schemes: &schemes,
                    default_security: root.get("security"),
                    http_api,
                },
                value,
                options,
                &mut report,
            )? {
                // An export carries no stage's variables: they come from the command line.
                for variable in stage_variables_in(&route["spec"]["integration"].to_string()) {
                    match options.stage_variables.get(&variable) {
                        Some(value) => {
                            variables.insert(variable, json!(value));
                        }
                        None if unset.insert(variable.clone()) => report.push(unsupported(
                            &format!("{pointer}/x-amazon-apigateway-integration"),
                            &format!("stage variable {variable:?} has no value (an export carries none): give it one with --stage-variable {variable}=VALUE"),
                        )),
                        None => {}
                    }
                }
                origins.routes.insert(route_name.clone(), pointer.clone());
                resources.push(route);
            }
        }
    }
    if !variables.is_empty() {
        resources[0]["spec"]["stages"][0]["variables"] = Value::Object(variables);
    }
    check::check(&mut resources, &origins, &mut report);
    Ok(Imported { resources, report })
}

/// The names of the stage variables a text reads (`${stageVariables.x}`, `$stageVariables.x`).
fn stage_variables_in(text: &str) -> BTreeSet<String> {
    text.match_indices("stageVariables.")
        .filter(|(at, _)| text[..*at].ends_with('$') || text[..*at].ends_with("${"))
        .map(|(at, found)| {
            text[at + found.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

struct RouteInput<'a> {
    name: &'a str,
    gateway: &'a str,
    method: &'a str,
    path: &'a str,
    pointer: &'a str,
    /// The path item the operation is in, and where.
    item: &'a Map<String, Value>,
    item_pointer: &'a str,
    document: &'a validation::Document<'a>,
    schemes: &'a authorizers::Schemes,
    /// The document's `security`, for operations without their own.
    default_security: Option<&'a Value>,
    http_api: bool,
}

/// One operation as a Route, or `None` (reported) when nothing can answer it.
fn operation(
    input: &RouteInput<'_>,
    op: &Value,
    options: &Options,
    report: &mut Vec<Unsupported>,
) -> Result<Option<Value>, ImportError> {
    let pointer = input.pointer;
    let op = op
        .as_object()
        .ok_or_else(|| invalid(pointer, "an operation must be an object"))?;
    let integration_pointer = format!("{pointer}/x-amazon-apigateway-integration");
    let Some(integration) = op.get("x-amazon-apigateway-integration") else {
        report.push(unsupported(
            pointer,
            "no x-amazon-apigateway-integration: nothing answers this operation",
        ));
        return Ok(None);
    };
    let Some(integration) = integration.as_object() else {
        return Err(invalid(&integration_pointer, "must be an object"));
    };
    let Some(mapped) = map_integration(
        integration,
        &integration_pointer,
        input.path,
        options,
        report,
    )?
    else {
        return Ok(None);
    };

    let mut spec = Map::new();
    spec.insert("gatewayRef".into(), json!({"name": input.gateway}));
    let default_route = op.get("isDefaultRoute").and_then(Value::as_bool) == Some(true);
    if input.http_api && (default_route || input.path == DEFAULT_ROUTE_PATH) {
        spec.insert("routeKey".into(), json!("$default"));
    } else {
        spec.insert("method".into(), json!(input.method));
        spec.insert("path".into(), json!(input.path));
    }
    spec.insert("integration".into(), mapped);
    if !input.http_api {
        validation::route(
            input.document,
            input.item,
            input.item_pointer,
            op,
            pointer,
            &mut spec,
            report,
        );
    }
    for key in op.keys() {
        let handled = key == "x-amazon-apigateway-integration"
            || (!input.http_api && key == "x-amazon-apigateway-request-validator");
        if key.starts_with("x-amazon-apigateway") && !handled {
            report.push(unsupported(
                &format!("{pointer}/{}", escape(key)),
                "not carried over yet",
            ));
        }
    }
    let (security, security_pointer) = match op.get("security") {
        Some(security) => (Some(security), format!("{pointer}/security")),
        None => (input.default_security, "/security".to_string()),
    };
    input
        .schemes
        .apply(security, &security_pointer, &mut spec, report);
    Ok(Some(json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "Route",
        "metadata": {"name": input.name, "namespace": options.namespace},
        "spec": spec,
    })))
}

/// An `x-amazon-apigateway-integration` as a Route's `integration`, or `None` (reported).
fn map_integration(
    integration: &Map<String, Value>,
    pointer: &str,
    route_path: &str,
    options: &Options,
    report: &mut Vec<Unsupported>,
) -> Result<Option<Value>, ImportError> {
    let kind = integration
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{pointer}/type"), "missing, or not a string"))?
        .to_ascii_lowercase();
    let handled: &[&str] = match kind.as_str() {
        // An HTTP API export gives every integration a payload format; an HTTP one has no
        // use for it.
        "http_proxy" => &[
            "type",
            "uri",
            "httpMethod",
            "timeoutInMillis",
            "passthroughBehavior",
            "payloadFormatVersion",
            "requestParameters",
            "responseParameters",
            "connectionType",
            "connectionId",
        ],
        // A non-proxy integration: its templates and responses ([`templates`]).
        "http" => &[
            "type",
            "uri",
            "httpMethod",
            "timeoutInMillis",
            "passthroughBehavior",
            "responses",
            "requestTemplates",
            "contentHandling",
            "requestParameters",
            "connectionType",
            "connectionId",
        ],
        // Only to Lambda (checked below); its request parameters are reported on their own.
        "aws" => &[
            "type",
            "uri",
            "httpMethod",
            "timeoutInMillis",
            "passthroughBehavior",
            "responses",
            "requestTemplates",
            "contentHandling",
            "requestParameters",
            "credentials",
        ],
        "aws_proxy" => &[
            "type",
            "uri",
            "httpMethod",
            "timeoutInMillis",
            "payloadFormatVersion",
            "passthroughBehavior",
            "credentials",
        ],
        "mock" => &[
            "type",
            "responses",
            "requestTemplates",
            "passthroughBehavior",
            "timeoutInMillis",
        ],
        other => {
            report.push(unsupported(
                &format!("{pointer}/type"),
                &format!("integration type {other:?}: Tollgate has http, http_proxy, aws and aws_proxy (Lambda) and mock"),
            ));
            return Ok(None);
        }
    };
    if kind == "aws" {
        let uri = string(integration, "uri", pointer)?;
        if lambda_function(&uri, options).is_none() {
            let service = uri.split(':').nth(4).unwrap_or("");
            report.push(unsupported(
                &format!("{pointer}/type"),
                &format!("integration type \"aws\" to {service:?}: Tollgate calls AWS Lambda functions only"),
            ));
            return Ok(None);
        }
    }
    for key in integration.keys() {
        if !handled.contains(&key.as_str()) {
            report.push(unsupported(
                &format!("{pointer}/{}", escape(key)),
                "not carried over yet",
            ));
        }
    }
    if let Some(role) = integration.get("credentials").and_then(Value::as_str) {
        report.push(unsupported(
            &format!("{pointer}/credentials"),
            &format!("{role}: Tollgate calls the function with the proxy's own AWS credentials (operations.md#aws-credentials), not as this role"),
        ));
    }
    let mut out = match kind.as_str() {
        "http_proxy" | "http" => {
            let uri = string(integration, "uri", pointer)?;
            let mut http = Map::new();
            let vpc_link = integration
                .get("connectionType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("VPC_LINK"));
            if vpc_link {
                let id = integration
                    .get("connectionId")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let Some((service, port)) = options.vpc_links.get(id) else {
                    report.push(unsupported(
                        &format!("{pointer}/connectionId"),
                        &format!("VPC link {id:?}: say which Service takes its place with --vpc-link {id}=SERVICE:PORT"),
                    ));
                    return Ok(None);
                };
                let mut backend = json!({"name": service, "port": port});
                // A REST API's VPC link URI is a URL whose path is sent; an HTTP API's is a
                // listener ARN, and the request's path is forwarded.
                if let Some(path) = url_path(&uri).filter(|p| *p != "/") {
                    backend["path"] = json!(path);
                }
                http.insert("service".into(), backend);
            } else {
                http.insert("url".into(), json!(uri));
            }
            parameters::carry_over(integration, pointer, route_path, &mut http, report);
            if let Some(method) = integration.get("httpMethod").and_then(Value::as_str)
                && !method.eq_ignore_ascii_case("ANY")
            {
                http.insert("method".into(), json!(method.to_ascii_uppercase()));
            }
            if kind == "http" {
                templates::carry_over(integration, pointer, &mut http, report);
            }
            json!({"http": http})
        }
        "aws" => {
            let uri = string(integration, "uri", pointer)?;
            let Some(Value::Object(mut lambda)) = lambda_function(&uri, options) else {
                return Ok(None);
            };
            templates::carry_over(integration, pointer, &mut lambda, report);
            templates::lambda_request_parameters(integration, pointer, report);
            json!({ "lambda": lambda })
        }
        "aws_proxy" => {
            let uri = string(integration, "uri", pointer)?;
            let Some(function) = lambda_function(&uri, options) else {
                report.push(unsupported(
                    &format!("{pointer}/uri"),
                    "not a Lambda function's invocations ARN",
                ));
                return Ok(None);
            };
            // The developer guide's examples write it as a number (`1.0`) as often as text.
            let version = match integration.get("payloadFormatVersion") {
                Some(Value::Number(n)) if n.as_f64() == Some(2.0) => "2.0",
                Some(Value::String(s)) if s == "2.0" => "2.0",
                _ => "1.0",
            };
            let mut lambda = function;
            lambda["payloadFormatVersion"] = json!(version);
            json!({ "lambda": lambda })
        }
        _ => mock(integration, pointer, report),
    };
    if let Some(timeout) = integration.get("timeoutInMillis").and_then(Value::as_u64) {
        let clamped = timeout.clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        if clamped != timeout {
            report.push(unsupported(
                &format!("{pointer}/timeoutInMillis"),
                &format!("{timeout} ms is outside {MIN_TIMEOUT}..{MAX_TIMEOUT}: {clamped} ms"),
            ));
        }
        // Tollgate's default is Amazon's REST API default (and an HTTP API's largest that
        // Tollgate keeps): written only when it differs, so that export and import agree.
        if clamped != MAX_TIMEOUT {
            out["timeoutMillis"] = json!(clamped);
        }
    }
    Ok(Some(out))
}

/// A mock integration: the `default` response's status and its JSON template as the body.
fn mock(integration: &Map<String, Value>, pointer: &str, report: &mut Vec<Unsupported>) -> Value {
    let default = integration.get("responses").and_then(|r| r.get("default"));
    let status = default
        .and_then(|d| d.get("statusCode"))
        .and_then(|s| {
            s.as_str()
                .and_then(|s| s.parse::<u16>().ok())
                .or(s.as_u64().map(|n| n as u16))
        })
        .unwrap_or(200);
    // The JSON template, else the only one there is.
    let templates = default
        .and_then(|d| d.get("responseTemplates"))
        .and_then(Value::as_object);
    let body = templates
        .and_then(|t| t.get("application/json").or_else(|| t.values().next()))
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(templates) = templates.filter(|t| t.len() > 1) {
        for key in templates
            .keys()
            .filter(|k| k.as_str() != "application/json")
        {
            report.push(unsupported(
                &format!(
                    "{pointer}/responses/default/responseTemplates/{}",
                    escape(key)
                ),
                "one response template per mock: the JSON one is served",
            ));
        }
    }
    if body.contains("$input") || body.contains("$context") || body.contains("#set") {
        report.push(unsupported(
            &format!("{pointer}/responses/default/responseTemplates"),
            "a template with VTL: its text is served as it is",
        ));
    }
    if let Some(responses) = integration.get("responses").and_then(Value::as_object) {
        for key in responses.keys().filter(|k| k.as_str() != "default") {
            report.push(unsupported(
                &format!("{pointer}/responses/{}", escape(key)),
                "only the default response of a mock is carried over",
            ));
        }
    }
    json!({"mock": {"statusCode": status, "body": body}})
}

/// The function name (with its qualifier) of a Lambda invocations ARN:
/// `arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/arn:aws:lambda:{region}:{account}:function:{name}[:{qualifier}]/invocations`.
/// As a `lambda` block: the function's ARN (AWS Lambda, signed calls), or with
/// `--lambda-endpoint` its name (with the qualifier) and that endpoint.
fn lambda_function(uri: &str, options: &Options) -> Option<Value> {
    let function_arn = uri
        .split("/functions/")
        .nth(1)?
        .strip_suffix("/invocations")?;
    let (_, name) = function_arn.split_once(":function:")?;
    if name.is_empty() {
        return None;
    }
    Some(match &options.lambda_endpoint {
        Some(endpoint) => json!({"functionName": name, "endpoint": endpoint}),
        None => json!({ "functionName": function_arn }),
    })
}

/// The path of an `http(s)://` URL (`None` for anything else, such as an ARN).
fn url_path(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))?;
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

/// The stage: OpenAPI 3's `servers[0].variables.basePath.default`, Swagger's `basePath`, or
/// `dev` (an HTTP API's `$default`: its export's base path is empty).
fn stage_of(root: &Map<String, Value>, http_api: bool) -> String {
    let from_servers = root
        .get("servers")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("variables"))
        .and_then(|v| v.get("basePath"))
        .and_then(|b| b.get("default"))
        .and_then(Value::as_str);
    let from_base_path = root.get("basePath").and_then(Value::as_str);
    let stage = from_servers
        .or(from_base_path)
        .map(|s| s.trim_matches('/'))
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    match stage {
        Some(stage) => stage.to_string(),
        None if http_api => "$default".into(),
        None => "dev".into(),
    }
}

/// The API-wide extensions: the key source and the endpoint type carried over, the others
/// reported.
fn top_level(
    root: &Map<String, Value>,
    http_api: bool,
    spec: &mut Map<String, Value>,
    report: &mut Vec<Unsupported>,
) {
    // HEADER is the default: written only when it is not, so that export and import agree.
    if let Some(source) = root
        .get("x-amazon-apigateway-api-key-source")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .filter(|s| s != "HEADER")
    {
        spec.insert("apiKeySource".into(), json!(source));
    }
    let types = root
        .get("x-amazon-apigateway-endpoint-configuration")
        .and_then(|c| c.get("types"))
        .and_then(|t| t.get(0))
        .and_then(Value::as_str);
    match types.map(str::to_ascii_uppercase).as_deref() {
        Some("EDGE") => {
            spec.insert("endpointType".into(), json!("Edge"));
        }
        Some("REGIONAL") | None => {}
        Some(other) => report.push(unsupported(
            "/x-amazon-apigateway-endpoint-configuration/types/0",
            &format!("endpoint type {other}: a Private gateway needs a resource policy of addresses; set spec.endpointType and spec.resourcePolicy by hand"),
        )),
    }
    if let Some(cors) = root.get("x-amazon-apigateway-cors") {
        spec.insert("cors".into(), cors_of(cors, report));
    }
    if !http_api {
        // Amazon's API spells a `/` in a media type `~1`; its exports write either.
        // Sorted, as the compiler keeps them, so import, export and import agree.
        let types: std::collections::BTreeSet<String> = root
            .get(BINARY_MEDIA_TYPES)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|t| t.replace("~1", "/"))
            .collect();
        if !types.is_empty() {
            spec.insert("binaryMediaTypes".into(), json!(types));
        }
        if let Some(size) = root.get(MINIMUM_COMPRESSION_SIZE).and_then(Value::as_u64) {
            spec.insert("minimumCompressionSize".into(), json!(size));
        }
    }
    for key in root.keys() {
        let handled = HANDLED_TOP.contains(&key.as_str())
            || (!http_api && HANDLED_TOP_REST.contains(&key.as_str()));
        if key.starts_with("x-amazon-apigateway") && !handled {
            let why = match key.as_str() {
                gateway_responses::EXTENSION
                | "x-amazon-apigateway-request-validators"
                | "x-amazon-apigateway-request-validator" => {
                    "gateway responses and request validation are for REST APIs, as on Amazon: an HTTP API has neither"
                }
                BINARY_MEDIA_TYPES | MINIMUM_COMPRESSION_SIZE => {
                    "binary media types and compression are for REST APIs, as on Amazon: an HTTP API base64-encodes what is not text by its own rule"
                }
                "x-amazon-apigateway-policy" => {
                    "an IAM resource policy: write spec.resourcePolicy (source addresses) by hand"
                }
                _ => "not carried over yet",
            };
            report.push(unsupported(&format!("/{}", escape(key)), why));
        }
    }
}

/// An HTTP API's `x-amazon-apigateway-cors` as `spec.cors`.
fn cors_of(cors: &Value, report: &mut Vec<Unsupported>) -> Value {
    let mut out = Map::new();
    for (from, to) in [
        ("allowOrigins", "allowOrigins"),
        ("allowMethods", "allowMethods"),
        ("allowHeaders", "allowHeaders"),
        ("exposeHeaders", "exposeHeaders"),
    ] {
        if let Some(list) = cors.get(from).and_then(Value::as_array)
            && !list.is_empty()
        {
            out.insert(to.into(), json!(list));
        }
    }
    if let Some(age) = cors.get("maxAge").and_then(Value::as_u64) {
        out.insert("maxAgeSeconds".into(), json!(age.min(86_400)));
    }
    if cors.get("allowCredentials").and_then(Value::as_bool) == Some(true) {
        out.insert("allowCredentials".into(), json!(true));
    }
    for key in cors.as_object().into_iter().flatten().map(|(k, _)| k) {
        if ![
            "allowOrigins",
            "allowMethods",
            "allowHeaders",
            "exposeHeaders",
            "maxAge",
            "allowCredentials",
        ]
        .contains(&key.as_str())
        {
            report.push(unsupported(
                &format!("/x-amazon-apigateway-cors/{}", escape(key)),
                "not a CORS setting Tollgate knows",
            ));
        }
    }
    Value::Object(out)
}

fn string(map: &Map<String, Value>, key: &str, pointer: &str) -> Result<String, ImportError> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| invalid(&format!("{pointer}/{key}"), "missing, or not a string"))
}

/// Lowercase letters, digits and single `-` from free text (possibly empty).
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.chars().take(50).collect();
    out.trim_end_matches('-').to_string()
}

/// A Kubernetes name from free text (`api` when nothing is left).
fn dns_label(text: &str) -> String {
    let label = slug(text);
    if label.is_empty() {
        "api".into()
    } else {
        label
    }
}

/// A route's name from its method and path: `get-pets-petid`, `any-root`.
fn route_suffix(method: &str, path: &str) -> String {
    let path = slug(path);
    let path = if path.is_empty() {
        "root".to_string()
    } else {
        path
    };
    format!("{}-{path}", method.to_ascii_lowercase())
}

/// RFC 6901: `~` as `~0`, `/` as `~1`.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn invalid(pointer: &str, why: &str) -> ImportError {
    ImportError::Invalid {
        pointer: if pointer.is_empty() {
            "/".into()
        } else {
            pointer.into()
        },
        why: why.into(),
    }
}

fn unsupported(pointer: &str, why: &str) -> Unsupported {
    Unsupported {
        pointer: pointer.to_string(),
        why: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            name: None,
            namespace: "default".into(),
            lambda_endpoint: Some("http://127.0.0.1:9001".into()),
            vpc_links: BTreeMap::new(),
            stage_variables: BTreeMap::new(),
        }
    }

    #[test]
    fn documents_that_cannot_be_imported_name_the_place() {
        let cases = [
            (json!([1, 2]), "/"),
            (json!({"info": {}}), "/"),
            (json!({"openapi": "3.0.1"}), "/paths"),
            (
                json!({"openapi": "3.0.1", "paths": {"/a": {"get": {"x-amazon-apigateway-integration": {"uri": "http://x"}}}}}),
                "/paths/~1a/get/x-amazon-apigateway-integration/type",
            ),
            (
                json!({"swagger": "2.0", "paths": {"/a": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy"}}}}}),
                "/paths/~1a/get/x-amazon-apigateway-integration/uri",
            ),
        ];
        for (doc, pointer) in cases {
            let Err(ImportError::Invalid { pointer: at, .. }) = import(&doc, &options()) else {
                panic!("{doc} imported");
            };
            assert_eq!(at, pointer, "{doc}");
        }
    }

    #[test]
    fn a_swagger_2_export_gives_its_stage_keys_and_any_method() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Orders API"},
            "basePath": "/prod",
            "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
            "paths": {"/orders/{proxy+}": {"x-amazon-apigateway-any-method": {
                "security": [{"api_key": []}],
                "x-amazon-apigateway-integration": {
                    "type": "http_proxy",
                    "httpMethod": "ANY",
                    "uri": "https://${stageVariables.host}/orders/{proxy}",
                    "timeoutInMillis": 60000,
                },
            }}},
        });
        let mut options = options();
        options
            .stage_variables
            .insert("host".into(), "orders.shop.svc:8080".into());
        let imported = import(&doc, &options).unwrap();
        let [gateway, route] = imported.resources.as_slice() else {
            panic!("{:?}", imported.resources);
        };
        assert_eq!(gateway["metadata"]["name"], "orders-api");
        assert_eq!(gateway["spec"]["stages"][0]["name"], "prod");
        // The stage variable the URI reads has the value given.
        assert_eq!(
            gateway["spec"]["stages"][0]["variables"],
            json!({"host": "orders.shop.svc:8080"})
        );
        assert_eq!(route["metadata"]["name"], "orders-api-any-orders-proxy");
        let spec = &route["spec"];
        assert_eq!(spec["method"], "ANY");
        assert_eq!(spec["path"], "/orders/{proxy+}");
        assert_eq!(spec["apiKeyRequired"], true);
        assert_eq!(
            spec["integration"],
            json!({"http": {"url": "https://${stageVariables.host}/orders/{proxy}"}})
        );
        // The timeout Tollgate cannot keep is said.
        assert_eq!(
            imported.report,
            [Unsupported {
                pointer: "/paths/~1orders~1{proxy+}/x-amazon-apigateway-any-method/x-amazon-apigateway-integration/timeoutInMillis".into(),
                why: "60000 ms is outside 50..29000: 29000 ms".into(),
            }]
        );
    }

    #[test]
    fn lambda_arns_give_the_function_and_its_qualifier() {
        let arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:GetPets:live/invocations";
        assert_eq!(
            lambda_function(arn, &options()),
            Some(json!({"functionName": "GetPets:live", "endpoint": "http://127.0.0.1:9001"}))
        );
        // Without an endpoint: AWS Lambda itself, by the function's ARN.
        let aws = Options {
            lambda_endpoint: None,
            ..options()
        };
        assert_eq!(
            lambda_function(arn, &aws),
            Some(
                json!({"functionName": "arn:aws:lambda:us-east-1:123456789012:function:GetPets:live"})
            )
        );
        assert_eq!(lambda_function("http://example.com/", &aws), None);
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_label("Pet Store (v2)"), "pet-store-v2");
        assert_eq!(dns_label("***"), "api");
        assert_eq!(route_suffix("GET", "/pets/{petId}"), "get-pets-petid");
        assert_eq!(route_suffix("ANY", "/"), "any-root");
    }

    #[test]
    fn stage_variables_are_found_in_either_form() {
        let found = stage_variables_in(
            r#"{"url":"http://${stageVariables.host}/x","h":"$stageVariables.env_1-","n":"stageVariables.no"}"#,
        );
        assert_eq!(
            found,
            BTreeSet::from(["env_1".to_string(), "host".to_string()])
        );
    }
}
