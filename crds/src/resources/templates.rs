//! Amazon's non-proxy integrations (REST APIs): mapping templates that reshape the request
//! sent to an HTTP backend or a Lambda function, and integration responses that reshape its
//! answer.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Mapping templates and integration responses. Setting either makes the integration Amazon's
/// non-proxy one (`HTTP`, or `AWS` for Lambda): the request body is read whole and, when a
/// template matches its content type, replaced by the template's output (for Lambda, the
/// function's event is that output instead of the proxy event); the answer is read whole and
/// goes through the first integration response that selects it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingTemplates {
    /// Templates by the request's media type (`application/json`; a request without
    /// `Content-Type` is `application/json`), in Amazon's mapping-template language.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10))]
    pub request_templates: BTreeMap<String, String>,

    /// What a request whose content type has no template gets. `WHEN_NO_MATCH` (the default):
    /// its body passes through as it is. `WHEN_NO_TEMPLATES`: it passes through only when the
    /// integration has no request template at all, else 415. `NEVER`: 415.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough_behavior: Option<PassthroughBehavior>,

    /// How the answer is mapped, tried in order: the first whose `selectionPattern` matches
    /// (the backend's status code for HTTP, the function's `errorMessage` for Lambda) is used,
    /// else the one without a pattern. None given: one without a pattern, status 200, body
    /// passed through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub integration_responses: Vec<IntegrationResponse>,
}

impl MappingTemplates {
    pub fn is_empty(&self) -> bool {
        self.request_templates.is_empty()
            && self.passthrough_behavior.is_none()
            && self.integration_responses.is_empty()
    }
}

/// Amazon API Gateway's passthrough behaviours.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    #[default]
    WhenNoMatch,
    WhenNoTemplates,
    Never,
}

/// One way of answering, as Amazon's integration response with its method response.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponse {
    /// A regular expression the whole of the backend's status code (`4\d{2}`) or the
    /// function's `errorMessage` (`.*not found.*`) must match; unset (or empty): the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub selection_pattern: Option<String>,
    /// The status code of the answer (default 200).
    #[serde(default = "default_status")]
    #[schemars(range(min = 100, max = 599))]
    pub status_code: u16,
    /// Headers of the answer: `method.response.header.NAME` to a quoted literal (`"'v'"`),
    /// `integration.response.header.NAME` (the backend's header), or
    /// `integration.response.body.FIELD` (a field of the JSON answer). The backend's other
    /// headers are not passed on, as in Amazon's non-proxy integrations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub response_parameters: BTreeMap<String, String>,
    /// Templates by media type: the one for the request's `Accept`, else `application/json`,
    /// else the first, reshapes the body (`$input` is the answer); none: the body passes
    /// through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10))]
    pub response_templates: BTreeMap<String, String>,
}

fn default_status() -> u16 {
    200
}
