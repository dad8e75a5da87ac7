//! An integration's `requestParameters` and `responseParameters` as the route's parameter
//! mapping. HTTP API exports write them as Tollgate does (`overwrite:header.x`); REST API
//! exports write `integration.request.header.x: method.request.header.y`, translated here.
//! Every mapping is then checked by the compiler's own parser, so what is written is what a
//! proxy would serve; what it refuses is reported, not written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Unsupported, escape, unsupported};

/// Adds the integration's parameter mapping to `http` (the route's `integration.http`), and
/// renames `{param}`s of `url` that REST's `integration.request.path.x` maps from another name.
pub(super) fn carry_over(
    integration: &Map<String, Value>,
    pointer: &str,
    route_path: &str,
    http: &mut Map<String, Value>,
    report: &mut Vec<Unsupported>,
) {
    let params = path_params(route_path);
    let params_ref: BTreeSet<&str> = params.iter().map(String::as_str).collect();
    let mut request = BTreeMap::new();
    // Translated key → the key the document wrote, for the report.
    let mut written_as: BTreeMap<String, String> = BTreeMap::new();
    if let Some(map) = integration
        .get("requestParameters")
        .and_then(Value::as_object)
    {
        for (key, value) in map {
            let at = format!("{pointer}/requestParameters/{}", escape(key));
            let Some(value) = value.as_str() else {
                report.push(unsupported(&at, "not a string"));
                continue;
            };
            if is_http_api_key(key) {
                request.insert(key.clone(), value.to_string());
                continue;
            }
            match rest_mapping(key, value) {
                Ok(Translated::Mapping(k, v)) => {
                    written_as.insert(k.clone(), key.clone());
                    request.insert(k, v);
                }
                Ok(Translated::PassedAnyway) => {}
                Ok(Translated::RenamePathParameter { from, to }) => {
                    if let Some(url) = http.get_mut("url")
                        && let Some(text) = url.as_str()
                    {
                        *url = json!(text.replace(&format!("{{{from}}}"), &format!("{{{to}}}")));
                    }
                }
                Err(why) => report.push(unsupported(&at, &why)),
            }
        }
    }
    let mut response = BTreeMap::new();
    if let Some(map) = integration
        .get("responseParameters")
        .and_then(Value::as_object)
    {
        for (status, rules) in map {
            let mut out = BTreeMap::new();
            for (key, value) in rules.as_object().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    out.insert(key.clone(), value.to_string());
                } else {
                    report.push(unsupported(
                        &format!(
                            "{pointer}/responseParameters/{}/{}",
                            escape(status),
                            escape(key)
                        ),
                        "not a string",
                    ));
                }
            }
            response.insert(status.clone(), out);
        }
    }
    // What the compiler refuses is left out, one key at a time, and said.
    loop {
        match tollgate_crds::compile::compile_parameter_mapping(&request, &response, &params_ref) {
            Ok(_) => break,
            Err((field, why)) => {
                let removed = if let Some(key) = field.strip_prefix("requestParameters.") {
                    request.remove(key).is_some()
                } else if let Some(rest) = field.strip_prefix("responseParameters.") {
                    match rest.split_once('.') {
                        Some((status, key)) => response
                            .get_mut(status)
                            .is_some_and(|rules| rules.remove(key).is_some()),
                        None => response.remove(rest).is_some(),
                    }
                } else {
                    false
                };
                let at = match field.split_once('.') {
                    Some(("requestParameters", key)) => format!(
                        "{pointer}/requestParameters/{}",
                        escape(written_as.get(key).map_or(key, String::as_str))
                    ),
                    Some((kind, rest)) => match rest.split_once('.') {
                        Some((status, key)) => {
                            format!("{pointer}/{kind}/{}/{}", escape(status), escape(key))
                        }
                        None => format!("{pointer}/{kind}/{}", escape(rest)),
                    },
                    None => pointer.to_string(),
                };
                report.push(unsupported(&at, &why));
                if !removed {
                    return;
                }
            }
        }
    }
    if !request.is_empty() {
        http.insert("requestParameters".into(), json!(request));
    }
    response.retain(|_, rules| !rules.is_empty());
    if !response.is_empty() {
        http.insert("responseParameters".into(), json!(response));
    }
}

fn is_http_api_key(key: &str) -> bool {
    ["overwrite:", "append:", "remove:"]
        .iter()
        .any(|p| key.starts_with(p))
}

enum Translated {
    Mapping(String, String),
    /// The same header or query parameter the client sent: the proxy passes it anyway.
    PassedAnyway,
    /// `integration.request.path.to` from `method.request.path.from`.
    RenamePathParameter {
        from: String,
        to: String,
    },
}

/// One REST API mapping (`integration.request.header.x: method.request.header.y`).
fn rest_mapping(key: &str, value: &str) -> Result<Translated, String> {
    let target = key.strip_prefix("integration.request.").ok_or_else(|| {
        format!("{key:?} is neither an HTTP API mapping key nor integration.request.…")
    })?;
    let (location, name) = target
        .split_once('.')
        .ok_or_else(|| format!("{key:?} names no parameter"))?;
    let source = rest_source(value)?;
    match location {
        "path" => match value.strip_prefix("method.request.path.") {
            Some(from) if from == name => Ok(Translated::PassedAnyway),
            Some(from) => Ok(Translated::RenamePathParameter {
                from: name.to_string(),
                to: from.to_string(),
            }),
            None => Err(format!(
                "a path parameter mapped from {value:?}: Tollgate's URL templates take the route's path parameters"
            )),
        },
        "header" | "querystring" => {
            if value == format!("method.request.{location}.{name}") {
                return Ok(Translated::PassedAnyway);
            }
            Ok(Translated::Mapping(
                format!("overwrite:{location}.{name}"),
                source,
            ))
        }
        other => Err(format!(
            "{other} parameters: Tollgate maps headers, query strings and the path"
        )),
    }
}

/// A REST mapping value in the HTTP API syntax.
fn rest_source(value: &str) -> Result<String, String> {
    if let Some(text) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return Ok(text.to_string());
    }
    for (rest, prefix) in [
        ("method.request.header.", "$request.header."),
        ("method.request.querystring.", "$request.querystring."),
        ("method.request.path.", "$request.path."),
        ("context.", "$context."),
        ("stageVariables.", "$stageVariables."),
    ] {
        if let Some(name) = value.strip_prefix(rest) {
            return Ok(format!("{prefix}{name}"));
        }
    }
    Err(format!(
        "{value:?}: Tollgate maps from method.request.header/querystring/path, context, stageVariables and 'literal' values"
    ))
}

/// The `{param}` and `{param+}` names of a route path.
fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|s| s.trim_end_matches('+').to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_mappings_become_http_api_mappings() {
        let integration = json!({
            "requestParameters": {
                "integration.request.header.x-user": "method.request.header.x-caller",
                "integration.request.header.x-source": "'tollgate'",
                "integration.request.querystring.stage": "stageVariables.env",
                "integration.request.header.x-request": "context.requestId",
                "integration.request.header.accept": "method.request.header.accept",
                "integration.request.path.id": "method.request.path.petId",
                "integration.request.header.Host": "'evil.example'",
                "integration.request.header.x-body": "method.request.body.name",
            }
        });
        let mut http = Map::from_iter([("url".to_string(), json!("http://pets/{id}"))]);
        let mut report = Vec::new();
        carry_over(
            integration.as_object().unwrap(),
            "/op",
            "/pets/{petId}",
            &mut http,
            &mut report,
        );
        assert_eq!(http["url"], "http://pets/{petId}");
        assert_eq!(
            http["requestParameters"],
            json!({
                "overwrite:header.x-user": "$request.header.x-caller",
                "overwrite:header.x-source": "tollgate",
                "overwrite:querystring.stage": "$stageVariables.env",
                "overwrite:header.x-request": "$context.requestId",
            })
        );
        let pointers: Vec<&str> = report.iter().map(|u| u.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/op/requestParameters/integration.request.header.x-body",
                "/op/requestParameters/integration.request.header.Host",
            ],
            "{report:?}"
        );
        assert!(report[1].why.contains("reserved"), "{report:?}");
    }
}
