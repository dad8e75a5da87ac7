//! A non-proxy integration's mapping templates and integration responses (`type: http`, and
//! `aws` to a Lambda function) as the `requestTemplates`, `passthroughBehavior` and
//! `integrationResponses` of the route's `integration.http` or `integration.lambda`.
//!
//! `passthroughBehavior` is always written (Amazon's default, `WHEN_NO_MATCH`, when the export
//! has none): it is what makes the Tollgate integration a non-proxy one, as the export's is.
//! Integration responses are keyed by selection pattern in the export (`default` being the
//! default); a lone default 200 without headers or templates is what Tollgate does without
//! any, and is left out so that export and import agree. Response headers from a source
//! Tollgate has no equivalent for are reported and left out; templates, selection patterns and
//! the rest are checked by the compiler when the import ends.

use serde_json::{Map, Value, json};

use super::{Unsupported, escape, unsupported};

/// The template fields of the integration at `pointer`, to add to `http` or `lambda`.
pub(super) fn carry_over(
    integration: &Map<String, Value>,
    pointer: &str,
    out: &mut Map<String, Value>,
    report: &mut Vec<Unsupported>,
) {
    if let Some(templates) = templates(
        integration.get("requestTemplates"),
        &format!("{pointer}/requestTemplates"),
        report,
    ) {
        out.insert("requestTemplates".into(), templates);
    }
    let behaviour = integration
        .get("passthroughBehavior")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    let behaviour = match behaviour.as_deref() {
        None | Some("WHEN_NO_MATCH") => "WHEN_NO_MATCH",
        Some("WHEN_NO_TEMPLATES") => "WHEN_NO_TEMPLATES",
        Some("NEVER") => "NEVER",
        Some(other) => {
            report.push(unsupported(
                &format!("{pointer}/passthroughBehavior"),
                &format!("{other:?} is not a passthrough behaviour (when_no_match, when_no_templates, never): WHEN_NO_MATCH"),
            ));
            "WHEN_NO_MATCH"
        }
    };
    out.insert("passthroughBehavior".into(), json!(behaviour));
    content_handling(integration, pointer, report);

    let mut responses = Vec::new();
    if let Some(map) = integration.get("responses").and_then(Value::as_object) {
        for (pattern, response) in map {
            let at = format!("{pointer}/responses/{}", escape(pattern));
            if let Some(response) = integration_response(pattern, response, &at, report) {
                responses.push(response);
            }
        }
    }
    // The default last: it is tried after every pattern either way.
    responses.sort_by_key(|r| r.get("selectionPattern").is_none());
    let only_the_default = matches!(responses.as_slice(), [r] if *r == json!({"statusCode": 200}));
    if !responses.is_empty() && !only_the_default {
        out.insert("integrationResponses".into(), json!(responses));
    }
}

/// A non-proxy Lambda integration's request parameters: Tollgate invokes the function
/// synchronously with the template's output, which `X-Amz-Invocation-Type: 'RequestResponse'`
/// says; anything else is reported.
pub(super) fn lambda_request_parameters(
    integration: &Map<String, Value>,
    pointer: &str,
    report: &mut Vec<Unsupported>,
) {
    let parameters = integration
        .get("requestParameters")
        .and_then(Value::as_object);
    for (key, value) in parameters.into_iter().flatten() {
        let synchronous = key
            .eq_ignore_ascii_case("integration.request.header.X-Amz-Invocation-Type")
            && value.as_str() == Some("'RequestResponse'");
        if !synchronous {
            report.push(unsupported(
                &format!("{pointer}/requestParameters/{}", escape(key)),
                "a Lambda integration has no request parameters in Tollgate: the function is invoked synchronously (RequestResponse), with the request template's output",
            ));
        }
    }
}

/// One entry of the export's `responses`.
fn integration_response(
    pattern: &str,
    response: &Value,
    pointer: &str,
    report: &mut Vec<Unsupported>,
) -> Option<Value> {
    let Some(response) = response.as_object() else {
        report.push(unsupported(pointer, "not an object"));
        return None;
    };
    let mut out = Map::new();
    if pattern != "default" && !pattern.is_empty() {
        out.insert("selectionPattern".into(), json!(pattern));
    }
    let status = match response.get("statusCode") {
        None => Some(200),
        Some(code) => code
            .as_str()
            .and_then(|s| s.parse::<u16>().ok())
            .or(code.as_u64().and_then(|n| u16::try_from(n).ok()))
            .filter(|c| (100..=599).contains(c)),
    };
    let Some(status) = status else {
        report.push(unsupported(
            &format!("{pointer}/statusCode"),
            "not a status code: this integration response is left out",
        ));
        return None;
    };
    out.insert("statusCode".into(), json!(status));
    let mut headers = Map::new();
    for (key, value) in response
        .get("responseParameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let at = format!("{pointer}/responseParameters/{}", escape(key));
        match response_header(key, value) {
            Ok(()) => {
                headers.insert(key.clone(), value.clone());
            }
            Err(why) => report.push(unsupported(&at, &why)),
        }
    }
    if !headers.is_empty() {
        out.insert("responseParameters".into(), Value::Object(headers));
    }
    if let Some(templates) = templates(
        response.get("responseTemplates"),
        &format!("{pointer}/responseTemplates"),
        report,
    ) {
        out.insert("responseTemplates".into(), templates);
    }
    content_handling(response, pointer, report);
    for key in response.keys() {
        if ![
            "statusCode",
            "responseParameters",
            "responseTemplates",
            "contentHandling",
        ]
        .contains(&key.as_str())
        {
            report.push(unsupported(
                &format!("{pointer}/{}", escape(key)),
                "not carried over yet",
            ));
        }
    }
    Some(Value::Object(out))
}

/// Whether Tollgate has the source of a `method.response.header.X` mapping.
fn response_header(key: &str, value: &Value) -> Result<(), String> {
    if !key.starts_with("method.response.header.") {
        return Err(format!(
            "{key:?}: Tollgate maps integration responses to method.response.header.NAME"
        ));
    }
    let Some(value) = value.as_str() else {
        return Err("not a string".into());
    };
    let literal = value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'');
    let field = value
        .strip_prefix("integration.response.body.")
        .is_some_and(|path| !path.split('.').any(str::is_empty));
    if literal || value.starts_with("integration.response.header.") || field {
        return Ok(());
    }
    Err(format!(
        "{value:?}: Tollgate sets response headers from 'literals', integration.response.header.NAME and integration.response.body.FIELD"
    ))
}

/// Templates by media type, each a string.
fn templates(
    templates: Option<&Value>,
    pointer: &str,
    report: &mut Vec<Unsupported>,
) -> Option<Value> {
    let mut out = Map::new();
    for (media, template) in templates.and_then(Value::as_object).into_iter().flatten() {
        match template {
            Value::String(_) => {
                out.insert(media.clone(), template.clone());
            }
            // A template with nothing in it (Amazon writes `null` for an empty one).
            Value::Null => {
                out.insert(media.clone(), json!(""));
            }
            _ => report.push(unsupported(
                &format!("{pointer}/{}", escape(media)),
                "not a string",
            )),
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn content_handling(at: &Map<String, Value>, pointer: &str, report: &mut Vec<Unsupported>) {
    if let Some(handling) = at.get("contentHandling") {
        report.push(unsupported(
            &format!("{pointer}/contentHandling"),
            &format!("{handling}: Tollgate converts no bodies between text and binary; they pass as they are"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(integration: Value) -> (Map<String, Value>, Vec<Unsupported>) {
        let mut out = Map::new();
        let mut report = Vec::new();
        carry_over(
            integration.as_object().unwrap(),
            "/op",
            &mut out,
            &mut report,
        );
        (out, report)
    }

    #[test]
    fn responses_keyed_by_pattern_become_integration_responses_default_last() {
        let (out, report) = carried(json!({
            "passthroughBehavior": "when_no_templates",
            "requestTemplates": {"application/json": "{\"id\": \"$input.params('id')\"}"},
            "responses": {
                "default": {"statusCode": "200", "responseParameters": {
                    "method.response.header.x-id": "integration.response.body.id",
                    "method.response.header.x-all": "integration.response.body",
                }},
                "4\\d{2}": {"statusCode": 404, "responseTemplates": {"application/json": null}},
            },
            "contentHandling": "CONVERT_TO_TEXT",
        }));
        assert_eq!(out["passthroughBehavior"], "WHEN_NO_TEMPLATES");
        assert_eq!(
            out["integrationResponses"],
            json!([
                {"selectionPattern": "4\\d{2}", "statusCode": 404, "responseTemplates": {"application/json": ""}},
                {"statusCode": 200, "responseParameters": {"method.response.header.x-id": "integration.response.body.id"}},
            ])
        );
        let pointers: Vec<&str> = report.iter().map(|u| u.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/op/contentHandling",
                "/op/responses/default/responseParameters/method.response.header.x-all"
            ]
        );
    }

    #[test]
    fn a_lone_default_200_is_tollgates_default_and_passthrough_is_always_said() {
        let (out, report) = carried(json!({"responses": {"default": {"statusCode": "200"}}}));
        assert_eq!(
            out,
            Map::from_iter([("passthroughBehavior".to_string(), json!("WHEN_NO_MATCH"))])
        );
        assert!(report.is_empty());
    }
}
