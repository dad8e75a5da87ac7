//! A Route onto the stages of its gateway's table: checked, its integration resolved, and
//! placed unless a senior route (see `seniority.rs`) already serves the same method and path
//! shape (REST API) or route key (WebSocket API) there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::diagnostics::{Diagnostic, Effect, Reason};
use super::path::{PathTemplate, template_params};
use super::seniority::{Precedence, Seniority};
use super::{Resources, cache, mapping, templates, validate, validation};
use crate::resources::{
    HttpIntegration, HttpMethod, Integration, PayloadFormatVersion, Route, ServiceBackend,
    WeightedBackend,
};
use crate::table::{
    self, GatewayTable, HttpBackendTable, IntegrationTable, ObjectKey, RouteTable, TemplatesTable,
};

pub const MIN_TIMEOUT_MILLIS: u32 = 50;
pub const MAX_TIMEOUT_MILLIS: u32 = 29_000;

/// Which route holds each (gateway, stage, what it matches), and the conflicts so far.
#[derive(Default)]
pub(super) struct Placements {
    taken: HashMap<(ObjectKey, String, Matches), ObjectKey>,
    conflicts: Vec<RouteConflict>,
}

impl Placements {
    pub(super) fn into_conflicts(self) -> Vec<RouteConflict> {
        self.conflicts
    }
}

/// Two routes asking for one (stage, what they match): `served` got it, `refused` did not.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RouteConflict {
    pub gateway: ObjectKey,
    pub stage: String,
    /// The refused route's key: `METHOD /path` (the served route's path has the same shape)
    /// or a WebSocket route key.
    pub route_key: String,
    pub refused: ObjectKey,
    pub served: ObjectKey,
    /// Why `served` won.
    pub precedence: Precedence,
}

/// What a route matches, as two routes of one stage may not share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Matches {
    /// REST API: a method and a path shape (parameter names aside).
    Request { method: HttpMethod, shape: String },
    /// WebSocket API: a route key.
    Key(String),
}

/// A route's own match, checked against its gateway's protocol.
struct Matcher {
    matches: Matches,
    route_key: String,
    method: Option<HttpMethod>,
    path: Option<PathTemplate>,
}

pub(super) fn compile(
    key: &ObjectKey,
    rt: &Route,
    resources: &Resources,
    tables: &mut BTreeMap<ObjectKey, GatewayTable>,
    placements: &mut Placements,
    diag: &mut Diagnostic,
) {
    let spec = &rt.spec;
    let gw_key = ObjectKey::new(&key.namespace, &spec.gateway_ref.name);
    let Some(table) = tables.get_mut(&gw_key) else {
        let (reason, message) = if resources.gateways.contains_key(&gw_key) {
            (
                Reason::GatewayNotAccepted,
                format!(
                    "ApiGateway {gw_key} is not accepted (see its status); this route waits for it"
                ),
            )
        } else {
            (
                Reason::GatewayNotFound,
                format!("ApiGateway {gw_key} does not exist"),
            )
        };
        diag.reject(reason, "spec.gatewayRef.name", message);
        return;
    };

    let Some(matcher) = matcher(rt, table, diag) else {
        return;
    };
    let params: BTreeSet<&str> = matcher
        .path
        .as_ref()
        .map(|p| p.param_names().collect())
        .unwrap_or_default();

    let stages: Vec<String> = if spec.stages.is_empty() {
        table.stages.iter().map(|s| s.name.clone()).collect()
    } else {
        for (i, s) in spec.stages.iter().enumerate() {
            if table.stage(s).is_none() {
                diag.reject(
                    Reason::StageNotFound,
                    format!("spec.stages[{i}]"),
                    format!("ApiGateway {gw_key} has no stage {s:?}"),
                );
            }
        }
        spec.stages.clone()
    };

    check_authorization(rt, table, diag);
    let rest_api = !table.http_api && table.websocket.is_none();
    let cache_keys = cache::key_parameters(spec.cache.as_ref(), rest_api, diag).unwrap_or_default();
    let validation = validation::route(
        rt,
        resources.gateways.get(&gw_key),
        &table.models,
        rest_api,
        &params,
        diag,
    );
    if let Some(t) = &spec.throttle
        && let Err(e) = validate::throttle(t)
    {
        diag.reject(Reason::InvalidThrottle, "spec.throttle", e);
    }
    // An HTTP API's Lambda functions get payload 2.0 unless a route says otherwise.
    let default_payload = if table.http_api {
        PayloadFormatVersion::V2
    } else {
        PayloadFormatVersion::V1
    };
    let integration = compile_integration(
        key,
        &spec.integration,
        default_payload,
        rest_api,
        &params,
        resources,
        diag,
    );
    let Some(integration) = integration.filter(|_| diag.accepted) else {
        return;
    };
    check_stage_variables(rt, table, &stages, diag);

    // Place the route on each stage; a senior route holding the same slot keeps it.
    let conflicts: Vec<RouteConflict> = stages
        .iter()
        .filter_map(|stage| {
            let slot = (gw_key.clone(), stage.clone(), matcher.matches.clone());
            let owner = placements.taken.get(&slot)?;
            Some(RouteConflict {
                gateway: gw_key.clone(),
                stage: stage.clone(),
                route_key: matcher.route_key.clone(),
                refused: key.clone(),
                served: owner.clone(),
                precedence: precedence(owner, key, rt, resources),
            })
        })
        .collect();
    let effect = if conflicts.len() == stages.len() && !stages.is_empty() {
        Effect::Rejected
    } else {
        Effect::Skipped
    };
    let (field, change) = match matcher.matches {
        Matches::Request { .. } => ("spec.path", "method or path"),
        Matches::Key(_) => ("spec.routeKey", "route key"),
    };
    for c in &conflicts {
        diag.push(
            Reason::RouteConflict,
            effect,
            field,
            format!(
                "on stage {:?}, Route {} already serves {}: {}; change this route's {change}",
                c.stage,
                c.served,
                matcher.route_key,
                c.precedence.because()
            ),
        );
    }
    placements.conflicts.extend(conflicts.iter().cloned());
    for stage_name in &stages {
        if conflicts.iter().any(|c| &c.stage == stage_name) {
            continue;
        }
        let slot = (gw_key.clone(), stage_name.clone(), matcher.matches.clone());
        placements.taken.insert(slot, key.clone());
        let ceiling = table.throttle;
        let Some(stage) = table.stages.iter_mut().find(|s| &s.name == stage_name) else {
            continue;
        };
        let throttle = spec
            .throttle
            .map(|t| validate::cap(t, ceiling))
            .unwrap_or(stage.throttle);
        stage.routes.push(RouteTable {
            route_key: matcher.route_key.clone(),
            method: matcher.method.map(Into::into),
            path: spec.path.clone(),
            two_way: spec.route_response_selection_expression.is_some(),
            source: key.clone(),
            api_key_required: spec.api_key_required,
            authorizer: spec.authorizer.clone(),
            authorization_scopes: spec.authorization_scopes.clone(),
            service_accounts: spec.service_accounts.clone(),
            throttle,
            validation: validation.clone(),
            cache: cache::on_stage(stage, spec.method, spec.cache.as_ref(), &cache_keys),
            integration: integration.clone(),
        });
    }
}

/// What the route matches: a method and path on a REST API, a route key on a WebSocket API.
/// `None` (and the route rejected) when it has the other kind's fields or neither.
fn matcher(rt: &Route, table: &GatewayTable, diag: &mut Diagnostic) -> Option<Matcher> {
    let spec = &rt.spec;
    let gateway = &table.gateway;
    if table.websocket.is_some() {
        let Some(route_key) = &spec.route_key else {
            diag.reject(
                Reason::ProtocolMismatch,
                "spec.routeKey",
                format!(
                    "ApiGateway {gateway} is a WEBSOCKET API: its routes have a routeKey \
                     ($connect, $disconnect, $default or a selected key), not a method and path"
                ),
            );
            return None;
        };
        if let Err(e) = validate::route_key(route_key) {
            diag.reject(Reason::InvalidRouteKey, "spec.routeKey", e);
            return None;
        }
        if let Some(field) = websocket_misfit(rt) {
            diag.reject(Reason::ProtocolMismatch, field.0, field.1);
            return None;
        }
        return Some(Matcher {
            matches: Matches::Key(route_key.clone()),
            route_key: route_key.clone(),
            method: None,
            path: None,
        });
    }
    if table.http_api && spec.route_key.is_some() {
        return http_default_route(rt, diag);
    }
    let (Some(method), Some(path)) = (spec.method, &spec.path) else {
        let (field, what) = if spec.route_key.is_some() {
            (
                "spec.routeKey",
                "not a routeKey, which is for WEBSOCKET APIs",
            )
        } else if spec.method.is_none() {
            ("spec.method", "which spec.method lacks")
        } else {
            ("spec.path", "which spec.path lacks")
        };
        diag.reject(
            Reason::ProtocolMismatch,
            field,
            format!(
                "ApiGateway {gateway} is {}: its routes have a method and a path, {what}",
                if table.http_api {
                    "an HTTP API"
                } else {
                    "a REST API"
                }
            ),
        );
        return None;
    };
    no_route_response(rt, diag)?;
    let template = match PathTemplate::parse(path) {
        Ok(p) => p,
        Err(e) => {
            diag.reject(Reason::InvalidPath, "spec.path", e);
            return None;
        }
    };
    Some(Matcher {
        matches: Matches::Request {
            method,
            shape: template.shape(),
        },
        route_key: format!("{method} {path}"),
        method: Some(method),
        path: Some(template),
    })
}

/// A REST or HTTP API route has no route response (a WebSocket API's two-way routes do).
fn no_route_response(rt: &Route, diag: &mut Diagnostic) -> Option<()> {
    if rt.spec.route_response_selection_expression.is_some() {
        diag.reject(
            Reason::ProtocolMismatch,
            "spec.routeResponseSelectionExpression",
            "routeResponseSelectionExpression is for WEBSOCKET APIs: remove it",
        );
        return None;
    }
    Some(())
}

/// An HTTP API's `$default` route: the one key an HTTP API's route may have, taking every
/// request no other route does.
fn http_default_route(rt: &Route, diag: &mut Diagnostic) -> Option<Matcher> {
    let spec = &rt.spec;
    if spec.route_key.as_deref() != Some("$default") {
        diag.reject(
            Reason::ProtocolMismatch,
            "spec.routeKey",
            "an HTTP API's routes have a method and a path, or the routeKey $default (every \
             request no other route takes)",
        );
        return None;
    }
    no_route_response(rt, diag)?;
    Some(Matcher {
        matches: Matches::Key("$default".into()),
        route_key: "$default".into(),
        method: None,
        path: None,
    })
}

/// What a WebSocket route may not have, as the field and why: the schema's CEL rules
/// again, for standalone files that never pass the API server.
fn websocket_misfit(rt: &Route) -> Option<(&'static str, &'static str)> {
    let spec = &rt.spec;
    let connect = spec.route_key.as_deref() == Some("$connect");
    if spec.method.is_some() || spec.path.is_some() {
        return Some((
            "spec.method",
            "a WebSocket route has a routeKey, not a method and path: remove them",
        ));
    }
    if !connect && spec.authorizer.is_some() {
        return Some((
            "spec.authorizer",
            "a WebSocket API authorizes a connection once, on $connect: move the authorizer there",
        ));
    }
    if !connect && spec.api_key_required {
        return Some((
            "spec.apiKeyRequired",
            "a WebSocket API checks the API key once, on $connect: move apiKeyRequired there",
        ));
    }
    if let Some(http) = &spec.integration.http
        && !(http.request_parameters.is_empty() && http.response_parameters.is_empty())
    {
        return Some((
            "spec.integration.http.requestParameters",
            "parameter mapping rewrites HTTP requests and responses: a WebSocket route has neither",
        ));
    }
    if spec.route_key.as_deref() == Some("$disconnect")
        && spec.route_response_selection_expression.is_some()
    {
        return Some((
            "spec.routeResponseSelectionExpression",
            "$disconnect cannot answer: its client is gone",
        ));
    }
    None
}

/// Why the route `owner`, placed earlier, wins over `rt` (filed under `key`).
fn precedence(owner: &ObjectKey, key: &ObjectKey, rt: &Route, resources: &Resources) -> Precedence {
    let ranks = &resources.first_seen.routes;
    let junior = Seniority::of(key, &rt.metadata, ranks);
    resources
        .routes
        .get(owner)
        .map(|o| Seniority::of(owner, &o.metadata, ranks).precedence_over(&junior))
        .unwrap_or(Precedence::SortsFirst)
}

/// Every `${stageVariables.x}` in the integration must be defined by at least one of the
/// route's stages (or their canaries): one defined nowhere renders empty, surely a typo.
fn check_stage_variables(
    rt: &Route,
    table: &GatewayTable,
    stages: &[String],
    diag: &mut Diagnostic,
) {
    let defined: BTreeSet<&str> = table
        .stages
        .iter()
        .filter(|s| stages.contains(&s.name))
        .flat_map(|s| {
            let canary = s.canary.iter().flat_map(|c| c.variables.keys());
            s.variables.keys().chain(canary)
        })
        .map(String::as_str)
        .collect();
    let Ok(integration) = serde_json::to_value(&rt.spec.integration) else {
        return;
    };
    let mut used = Vec::new();
    stage_variables_in(&integration, "spec.integration", &mut used);
    for (field, name) in used {
        if !defined.contains(name.as_str()) {
            diag.warn(
                Reason::StageVariableNotFound,
                field,
                format!(
                    "${{stageVariables.{name}}} is defined in no stage this route is on \
                     ({}): it renders empty; define it under spec.stages[].variables of \
                     ApiGateway {} or correct its name",
                    stages.join(", "),
                    table.gateway
                ),
            );
        }
    }
}

/// Each string in `value` with the stage variables it names, as (field path, name).
fn stage_variables_in(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${stageVariables.") {
                rest = &rest[start + "${stageVariables.".len()..];
                let Some(end) = rest.find('}') else { break };
                out.push((path.to_string(), rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                stage_variables_in(v, &format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                stage_variables_in(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn check_authorization(rt: &Route, table: &GatewayTable, diag: &mut Diagnostic) {
    let spec = &rt.spec;
    let authorizer = match &spec.authorizer {
        None => None,
        Some(name) => match table.authorizers.iter().find(|a| &a.name == name) {
            Some(a) => Some(a),
            None => {
                diag.reject(
                    Reason::AuthorizerNotFound,
                    "spec.authorizer",
                    format!(
                        "ApiGateway {} has no valid authorizer named {name:?}",
                        table.gateway
                    ),
                );
                return;
            }
        },
    };
    if !spec.authorization_scopes.is_empty()
        && authorizer.is_none_or(|a| a.type_ != table::AuthorizerType::JWT)
    {
        diag.reject(
            Reason::InvalidAuthorizer,
            "spec.authorizationScopes",
            "authorizationScopes need spec.authorizer to name a JWT authorizer",
        );
    }
    if !spec.service_accounts.is_empty()
        && authorizer.is_none_or(|a| a.type_ != table::AuthorizerType::Kubernetes)
    {
        diag.reject(
            Reason::InvalidAuthorizer,
            "spec.serviceAccounts",
            "serviceAccounts need spec.authorizer to name a KUBERNETES authorizer",
        );
    }
}

fn compile_integration(
    route: &ObjectKey,
    integration: &Integration,
    default_payload: PayloadFormatVersion,
    rest_api: bool,
    params: &BTreeSet<&str>,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Option<IntegrationTable> {
    let timeout_millis = integration.timeout_millis;
    if !(MIN_TIMEOUT_MILLIS..=MAX_TIMEOUT_MILLIS).contains(&timeout_millis) {
        diag.reject(
            Reason::InvalidIntegration,
            "spec.integration.timeoutMillis",
            format!("timeoutMillis must be between {MIN_TIMEOUT_MILLIS} and {MAX_TIMEOUT_MILLIS}, not {timeout_millis}"),
        );
        return None;
    }
    match (&integration.http, &integration.lambda, &integration.mock) {
        (Some(http), None, None) => {
            let templates =
                templates::compile(&http.templates, "spec.integration.http", rest_api, diag)
                    .ok()?;
            compile_http(
                route,
                http,
                timeout_millis,
                templates,
                params,
                resources,
                diag,
            )
        }
        (None, Some(lambda), None) => {
            let templates =
                templates::compile(&lambda.templates, "spec.integration.lambda", rest_api, diag)
                    .ok()?;
            let f = &lambda.function;
            let target = match super::lambda::target(f) {
                Ok(target) => target,
                Err((sub, e)) => {
                    diag.reject(
                        Reason::InvalidIntegration,
                        format!("spec.integration.lambda{sub}"),
                        e,
                    );
                    return None;
                }
            };
            Some(IntegrationTable::Lambda {
                invoke_url: target.invoke_url,
                function_name: f.function_name.clone(),
                region: target.region,
                payload_format_version: lambda
                    .payload_format_version
                    .unwrap_or(default_payload)
                    .into(),
                max_concurrency: lambda.max_concurrency.filter(|n| *n > 0),
                templates,
                timeout_millis,
            })
        }
        (None, None, Some(mock)) => {
            if !(100..=599).contains(&mock.status_code) {
                diag.reject(
                    Reason::InvalidIntegration,
                    "spec.integration.mock.statusCode",
                    "statusCode must be between 100 and 599",
                );
                return None;
            }
            check_headers(&mock.headers, "spec.integration.mock.headers", params, diag)?;
            Some(IntegrationTable::Mock {
                status_code: mock.status_code,
                headers: mock.headers.clone(),
                body: mock.body.clone(),
            })
        }
        _ => {
            diag.reject(
                Reason::InvalidIntegration,
                "spec.integration",
                "set exactly one of integration.http, integration.lambda or integration.mock",
            );
            None
        }
    }
}

fn compile_http(
    route: &ObjectKey,
    http: &HttpIntegration,
    timeout_millis: u32,
    templates: Option<Box<TemplatesTable>>,
    params: &BTreeSet<&str>,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Option<IntegrationTable> {
    let base = "spec.integration.http";
    let backends: Vec<HttpBackendTable> = match (&http.url, &http.service, &http.backends) {
        (Some(url), None, None) => vec![url_backend(url, 1, &format!("{base}.url"), params, diag)?],
        (None, Some(svc), None) => vec![service_backend(
            route,
            svc,
            1,
            &format!("{base}.service"),
            params,
            resources,
            diag,
        )?],
        (None, None, Some(list)) if !list.is_empty() => {
            let mut out = Vec::new();
            for (
                i,
                WeightedBackend {
                    url,
                    service,
                    weight,
                },
            ) in list.iter().enumerate()
            {
                let field = format!("{base}.backends[{i}]");
                out.push(match (url, service) {
                    (Some(u), None) => {
                        url_backend(u, *weight, &format!("{field}.url"), params, diag)?
                    }
                    (None, Some(s)) => service_backend(
                        route,
                        s,
                        *weight,
                        &format!("{field}.service"),
                        params,
                        resources,
                        diag,
                    )?,
                    _ => {
                        diag.reject(
                            Reason::InvalidIntegration,
                            field,
                            "each backend needs exactly one of url or service",
                        );
                        return None;
                    }
                });
            }
            if out.iter().all(|b| b.weight == 0) {
                diag.reject(
                    Reason::InvalidIntegration,
                    format!("{base}.backends"),
                    "every backend has weight 0: give at least one a positive weight",
                );
                return None;
            }
            out
        }
        _ => {
            diag.reject(
                Reason::InvalidIntegration,
                base,
                "set exactly one of http.url, http.service or http.backends",
            );
            return None;
        }
    };
    check_headers(
        &http.request_headers,
        &format!("{base}.requestHeaders"),
        params,
        diag,
    )?;
    let parameter_mapping =
        match mapping::compile(&http.request_parameters, &http.response_parameters, params) {
            Ok(mapping) => mapping.map(Box::new),
            Err((field, e)) => {
                diag.reject(Reason::InvalidMapping, format!("{base}.{field}"), e);
                return None;
            }
        };
    Some(IntegrationTable::Http {
        backends,
        method: http
            .method
            .filter(|m| *m != HttpMethod::ANY)
            .map(Into::into),
        request_headers: http.request_headers.clone(),
        parameter_mapping,
        templates,
        timeout_millis,
    })
}

fn url_backend(
    url: &str,
    weight: u32,
    field: &str,
    params: &BTreeSet<&str>,
    diag: &mut Diagnostic,
) -> Option<HttpBackendTable> {
    if let Err(e) = validate::http_url(url).and_then(|()| check_template(url, params)) {
        diag.reject(Reason::InvalidIntegration, field, e);
        return None;
    }
    Some(HttpBackendTable {
        url: url.to_string(),
        forward_request_path: false,
        weight,
    })
}

fn service_backend(
    route: &ObjectKey,
    svc: &ServiceBackend,
    weight: u32,
    field: &str,
    params: &BTreeSet<&str>,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Option<HttpBackendTable> {
    let key = ObjectKey::new(&route.namespace, &svc.name);
    let Some(service) = resources.services.get(&key) else {
        diag.reject(
            Reason::ServiceNotFound,
            format!("{field}.name"),
            format!("Service {key} does not exist"),
        );
        return None;
    };
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ports| ports.iter().map(|p| p.port).collect::<Vec<_>>())
        .unwrap_or_default();
    if !ports.contains(&svc.port) {
        diag.reject(
            Reason::ServicePortNotFound,
            format!("{field}.port"),
            format!("Service {key} has no port {} (it has {ports:?})", svc.port),
        );
        return None;
    }
    if let Some(path) = &svc.path
        && let Err(e) = check_template(path, params)
    {
        diag.reject(Reason::InvalidIntegration, format!("{field}.path"), e);
        return None;
    }
    Some(HttpBackendTable {
        url: format!(
            "http://{}.{}.svc:{}{}",
            svc.name,
            route.namespace,
            svc.port,
            svc.path.as_deref().unwrap_or("")
        ),
        forward_request_path: svc.path.is_none(),
        weight,
    })
}

/// Every `{param}` in an integration template must be a parameter of the route's path.
fn check_template(template: &str, params: &BTreeSet<&str>) -> Result<(), String> {
    for p in template_params(template) {
        if !params.contains(p) {
            return Err(format!(
                "{{{p}}} is not a parameter of the route's path (it has {})",
                if params.is_empty() {
                    "none".to_string()
                } else {
                    params
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    Ok(())
}

fn check_headers(
    headers: &BTreeMap<String, String>,
    field: &str,
    params: &BTreeSet<&str>,
    diag: &mut Diagnostic,
) -> Option<()> {
    for (name, value) in headers {
        let checked = validate::header_name(name)
            .and_then(|()| validate::header_value(name, value))
            .and_then(|()| check_template(value, params));
        if let Err(e) = checked {
            diag.reject(Reason::InvalidIntegration, format!("{field}.{name}"), e);
            return None;
        }
    }
    Some(())
}
