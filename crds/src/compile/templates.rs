//! A REST API route's mapping templates and integration responses (Amazon's non-proxy
//! integrations) into its [`TemplatesTable`]: every template parsed with `tollgate-vtl` (an
//! error names the template's field, line and column), every selection pattern compiled as
//! the proxy will, every response header's source parsed. Anything wrong rejects the route:
//! it is not served other than as written.

use std::collections::BTreeMap;

use super::diagnostics::{Diagnostic, Reason};
use super::validate;
use crate::resources::{IntegrationResponse, MappingTemplates, PassthroughBehavior};
use crate::table::{
    IntegrationHeaderTable, IntegrationResponseTable, Passthrough, ResponseValue, TemplatesTable,
};

/// `None` for a proxy integration (nothing set); `Err` once the route is rejected.
pub(super) fn compile(
    templates: &MappingTemplates,
    field: &str,
    rest_api: bool,
    diag: &mut Diagnostic,
) -> Result<Option<Box<TemplatesTable>>, ()> {
    if templates.is_empty() {
        return Ok(None);
    }
    if !rest_api {
        diag.reject(
            Reason::ProtocolMismatch,
            field,
            "mapping templates and integration responses are for REST APIs (an HTTP API maps parameters with requestParameters)",
        );
        return Err(());
    }
    let before = diag.problems.len();
    let request = parsed_templates(
        &templates.request_templates,
        &format!("{field}.requestTemplates"),
        diag,
    );
    let mut responses = Vec::new();
    for (i, response) in templates.integration_responses.iter().enumerate() {
        let at = format!("{field}.integrationResponses[{i}]");
        if let Some(table) = integration_response(response, &at, diag) {
            responses.push(table);
        }
    }
    let defaults = responses
        .iter()
        .filter(|r| r.selection_pattern.is_none())
        .count();
    if defaults > 1 {
        diag.reject(
            Reason::InvalidTemplate,
            format!("{field}.integrationResponses"),
            "more than one integration response has no selectionPattern: only one can be the default",
        );
    }
    if diag.problems.len() > before {
        return Err(());
    }
    if responses.is_empty() {
        responses.push(IntegrationResponseTable {
            selection_pattern: None,
            status_code: 200,
            headers: Vec::new(),
            templates: BTreeMap::new(),
        });
    }
    Ok(Some(Box::new(TemplatesTable {
        request,
        passthrough: match templates.passthrough_behavior.unwrap_or_default() {
            PassthroughBehavior::WhenNoMatch => Passthrough::WhenNoMatch,
            PassthroughBehavior::WhenNoTemplates => Passthrough::WhenNoTemplates,
            PassthroughBehavior::Never => Passthrough::Never,
        },
        responses,
    })))
}

fn integration_response(
    response: &IntegrationResponse,
    at: &str,
    diag: &mut Diagnostic,
) -> Option<IntegrationResponseTable> {
    let before = diag.problems.len();
    let selection_pattern = response.selection_pattern.clone().filter(|p| !p.is_empty());
    let table = IntegrationResponseTable {
        selection_pattern,
        status_code: response.status_code,
        headers: Vec::new(),
        templates: BTreeMap::new(),
    };
    if let Some(pattern) = table.anchored_pattern()
        && let Err(e) = regex::Regex::new(&pattern)
    {
        diag.reject(
            Reason::InvalidTemplate,
            format!("{at}.selectionPattern"),
            // The regex crate's error ends with the reason on its own line.
            format!(
                "not a regular expression: {}",
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            ),
        );
    }
    if !(100..=599).contains(&response.status_code) {
        diag.reject(
            Reason::InvalidTemplate,
            format!("{at}.statusCode"),
            "statusCode must be between 100 and 599",
        );
    }
    let mut headers = Vec::new();
    for (key, value) in &response.response_parameters {
        match header(key, value) {
            Ok(h) => headers.push(h),
            Err(e) => diag.reject(
                Reason::InvalidTemplate,
                format!("{at}.responseParameters.{key}"),
                e,
            ),
        }
    }
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    let templates = parsed_templates(
        &response.response_templates,
        &format!("{at}.responseTemplates"),
        diag,
    );
    (diag.problems.len() == before).then_some(IntegrationResponseTable {
        headers,
        templates,
        ..table
    })
}

/// Each template parsed (one that does not is refused, naming its line and column), keyed
/// by its media type in lowercase.
fn parsed_templates(
    templates: &BTreeMap<String, String>,
    at: &str,
    diag: &mut Diagnostic,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (media, source) in templates {
        if let Err(e) = tollgate_vtl::Template::parse(source) {
            diag.reject(
                Reason::InvalidTemplate,
                format!("{at}.{media}"),
                format!("the template does not parse: {e}"),
            );
            continue;
        }
        out.insert(media.to_ascii_lowercase(), source.clone());
    }
    out
}

fn header(key: &str, value: &str) -> Result<IntegrationHeaderTable, String> {
    let name = validate::answer_header(key, "method.response.header.")?;
    let value = if let Some(literal) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        validate::header_value(&name, literal)?;
        ResponseValue::Literal {
            value: literal.to_owned(),
        }
    } else if let Some(header) = value.strip_prefix("integration.response.header.") {
        validate::header_name(header)?;
        ResponseValue::Header {
            name: header.to_ascii_lowercase(),
        }
    } else if let Some(path) = value.strip_prefix("integration.response.body.") {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!("{value:?} names no field"));
        }
        ResponseValue::Body {
            path: path.to_owned(),
        }
    } else {
        return Err(format!(
            "{value:?} is not a value: write a literal in single quotes ('text'), \
             integration.response.header.NAME or integration.response.body.FIELD"
        ));
    };
    Ok(IntegrationHeaderTable { name, value })
}
