//! The last step of an import: the resources compiled by Tollgate's own compiler, so that what
//! is written is what a proxy serves. What the compiler refuses of what the import carried
//! over for validation, templates and gateway responses is taken out and reported where the
//! document has it: a model or a gateway response it skips, a method request parameter it
//! refuses; a route whose templates, integration responses, models or validator it refuses is
//! left out (a route is not served other than as the export says). Anything else (a Service a
//! VPC link names, say) is for the cluster to hold and is left alone.

use std::collections::BTreeMap;

use serde_json::Value;
use tollgate_crds::compile::{Effect, Kind, Resources, compile, object_key};
use tollgate_crds::resources::{ApiGateway, Route};

use super::{Unsupported, escape, unsupported};

/// Where the document has what became each part of the resources.
pub(super) struct Origins {
    /// `/definitions` or `/components/schemas`.
    pub(super) models: &'static str,
    /// Route name → the operation's pointer.
    pub(super) routes: BTreeMap<String, String>,
}

/// Fields of a route whose refusal leaves the route out.
const ROUTE_FIELDS: [&str; 8] = [
    "spec.requestModels",
    "spec.requestValidator",
    "spec.integration.http.requestTemplates",
    "spec.integration.http.passthroughBehavior",
    "spec.integration.http.integrationResponses",
    "spec.integration.lambda.requestTemplates",
    "spec.integration.lambda.passthroughBehavior",
    "spec.integration.lambda.integrationResponses",
];

/// Compiles `resources` (the gateway first) until the compiler has nothing left to refuse of
/// what is checked here.
pub(super) fn check(resources: &mut Vec<Value>, origins: &Origins, report: &mut Vec<Unsupported>) {
    // Each round takes something out; a few suffice (models that refer to ones taken out,
    // then the routes that name them).
    for _ in 0..8 {
        let mut compiled = Resources::default();
        let Ok(gateway) = serde_json::from_value::<ApiGateway>(resources[0].clone()) else {
            return;
        };
        compiled
            .gateways
            .insert(object_key(&gateway.metadata), gateway);
        let mut unreadable = Vec::new();
        for (i, value) in resources.iter().enumerate().skip(1) {
            match serde_json::from_value::<Route>(value.clone()) {
                Ok(route) => {
                    compiled.routes.insert(object_key(&route.metadata), route);
                }
                Err(e) => unreadable.push((i, e.to_string())),
            }
        }
        let mut changed = false;
        for (i, why) in unreadable.into_iter().rev() {
            let name = route_name(&resources[i]);
            report.push(unsupported(
                origins.routes.get(&name).map_or("", String::as_str),
                &format!("not a Route Tollgate reads ({why}): left out"),
            ));
            resources.remove(i);
            changed = true;
        }
        if changed {
            continue;
        }
        for diagnostic in compile(&compiled).diagnostics {
            let name = &diagnostic.resource.key.name;
            for problem in diagnostic
                .problems
                .iter()
                .filter(|p| p.effect != Effect::Warned)
            {
                let field = problem.field.as_str();
                let message = &problem.message;
                match diagnostic.resource.kind {
                    Kind::ApiGateway => {
                        changed |= gateway_part(&mut resources[0], field, message, origins, report);
                    }
                    Kind::Route => {
                        changed |= route_part(resources, name, field, message, origins, report);
                    }
                    Kind::UsagePlan => {}
                }
            }
        }
        if !changed {
            return;
        }
    }
}

fn route_name(resource: &Value) -> String {
    resource["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A model or a gateway response the compiler skipped, taken out.
fn gateway_part(
    gateway: &mut Value,
    field: &str,
    message: &str,
    origins: &Origins,
    report: &mut Vec<Unsupported>,
) -> bool {
    for (key, base) in [
        ("models", origins.models),
        (
            "gatewayResponses",
            &*format!("/{}", super::gateway_responses::EXTENSION),
        ),
    ] {
        let Some(rest) = field.strip_prefix(&format!("spec.{key}.")) else {
            continue;
        };
        let Some(map) = gateway["spec"][key].as_object_mut() else {
            continue;
        };
        // Names may hold dots: the longest one the field starts with.
        let Some(name) = map
            .keys()
            .filter(|n| rest == n.as_str() || rest.starts_with(&format!("{n}.")))
            .max_by_key(|n| n.len())
            .cloned()
        else {
            continue;
        };
        map.remove(&name);
        if map.is_empty()
            && let Some(spec) = gateway["spec"].as_object_mut()
        {
            spec.remove(key);
        }
        report.push(unsupported(
            &format!("{base}/{}", escape(&name)),
            &format!("Tollgate refuses {field}: {message}"),
        ));
        return true;
    }
    false
}

/// A method request parameter the compiler refused, taken out; a route whose templates or
/// validation it refused, left out.
fn route_part(
    resources: &mut Vec<Value>,
    name: &str,
    field: &str,
    message: &str,
    origins: &Origins,
    report: &mut Vec<Unsupported>,
) -> bool {
    let Some(at) = resources.iter().position(|r| route_name(r) == name) else {
        return false;
    };
    let operation = origins.routes.get(name).map_or("", String::as_str);
    if let Some(key) = field.strip_prefix("spec.requestParameters.")
        && let Some(parameters) = resources[at]["spec"]["requestParameters"].as_object_mut()
        && parameters.remove(key).is_some()
    {
        if parameters.is_empty()
            && let Some(spec) = resources[at]["spec"].as_object_mut()
        {
            spec.remove("requestParameters");
        }
        report.push(unsupported(
            &format!("{operation}/parameters"),
            &format!("Tollgate refuses {field}: {message}"),
        ));
        return true;
    }
    if !ROUTE_FIELDS.iter().any(|f| field.starts_with(f)) {
        return false;
    }
    let pointer = if field.starts_with("spec.integration.") {
        format!("{operation}/x-amazon-apigateway-integration")
    } else {
        operation.to_string()
    };
    report.push(unsupported(
        &pointer,
        &format!("Tollgate refuses {field}: {message}; the route is left out"),
    ));
    resources.remove(at);
    true
}
