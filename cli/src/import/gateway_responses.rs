//! `x-amazon-apigateway-gateway-responses` as a REST API's `spec.gatewayResponses`: each
//! response type's `statusCode` (a number or text), `responseParameters`
//! (`gatewayresponse.header.NAME` to its source) and `responseTemplates`, as they are. The type
//! names, header sources and templates are checked by the compiler when the import ends.

use serde_json::{Map, Value, json};

use super::{Unsupported, escape, unsupported};

pub(super) const EXTENSION: &str = "x-amazon-apigateway-gateway-responses";

pub(super) fn carry_over(
    root: &Map<String, Value>,
    spec: &mut Map<String, Value>,
    report: &mut Vec<Unsupported>,
) {
    let mut out = Map::new();
    for (kind, response) in root
        .get(EXTENSION)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let pointer = format!("/{EXTENSION}/{}", escape(kind));
        let Some(response) = response.as_object() else {
            report.push(unsupported(&pointer, "not an object"));
            continue;
        };
        let mut one = Map::new();
        for (key, value) in response {
            let at = format!("{pointer}/{}", escape(key));
            match key.as_str() {
                "statusCode" => {
                    let code = value
                        .as_str()
                        .and_then(|s| s.parse::<u16>().ok())
                        .or(value.as_u64().and_then(|n| u16::try_from(n).ok()))
                        .filter(|c| (100..=599).contains(c));
                    match code {
                        Some(code) => {
                            one.insert(key.clone(), json!(code));
                        }
                        None => report.push(unsupported(
                            &at,
                            "not a status code: the type's own is kept",
                        )),
                    }
                }
                "responseParameters" | "responseTemplates" => {
                    let mut strings = Map::new();
                    for (name, text) in value.as_object().into_iter().flatten() {
                        match text {
                            Value::String(_) => {
                                strings.insert(name.clone(), text.clone());
                            }
                            _ => report.push(unsupported(
                                &format!("{at}/{}", escape(name)),
                                "not a string",
                            )),
                        }
                    }
                    if !strings.is_empty() {
                        one.insert(key.clone(), Value::Object(strings));
                    }
                }
                _ => report.push(unsupported(&at, "not carried over yet")),
            }
        }
        out.insert(kind.clone(), Value::Object(one));
    }
    if !out.is_empty() {
        spec.insert("gatewayResponses".into(), Value::Object(out));
    }
}
