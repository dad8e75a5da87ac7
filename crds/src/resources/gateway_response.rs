//! Gateway responses: how a REST API answers what the gateway refuses or fails itself, as
//! Amazon API Gateway's `GatewayResponse`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One response type's answer. Unset parts keep the default's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResponse {
    /// The status code sent instead of the type's own (`THROTTLED` is 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status_code: Option<u16>,
    /// Headers of the answer, as Amazon writes them: `gatewayresponse.header.NAME` to a
    /// quoted literal (`"'10'"`), `method.request.header.NAME`,
    /// `method.request.querystring.NAME`, `method.request.path.NAME`, `context.NAME`
    /// (`context.requestId`, `context.error.responseType`) or `stageVariables.NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub response_parameters: BTreeMap<String, String>,
    /// The body by media type (`application/json`), a mapping template that can read
    /// `$context` (`$context.error.message`, `$context.error.messageString` — the message as a
    /// quoted JSON string —, `$context.error.responseType`,
    /// `$context.error.validationErrorString`, `$context.requestId`, …) and `$stageVariables`.
    /// The one for the request's `Accept` is used, else `application/json`, else the first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10))]
    pub response_templates: BTreeMap<String, String>,
}
