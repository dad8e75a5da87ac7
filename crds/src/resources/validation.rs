//! Request validation, as Amazon API Gateway's REST APIs do it: models (JSON Schema draft 4)
//! and request validators on the gateway, named by routes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A JSON Schema routes' `requestModels` can name, as Amazon API Gateway's `Model`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// The media type the model describes; shown to people (a route's `requestModels` says
    /// which content type uses which model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub content_type: Option<String>,
    /// The schema, JSON Schema draft 4 as Amazon API Gateway reads it. `$ref` can point inside
    /// it (`#/definitions/Pet`) or at another model of the gateway, by Amazon's model URL
    /// (`https://apigateway.amazonaws.com/restapis/{api}/models/Pet`). Checked when the gateway
    /// is compiled: a schema that is not valid is refused, naming the model.
    #[schemars(schema_with = "any_json")]
    pub schema: serde_json::Value,
}

/// What a route's `requestValidator` checks, as Amazon API Gateway's `RequestValidator`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestValidator {
    /// The body against the route's model for its content type: 400 `Invalid request body`
    /// when it does not conform.
    #[serde(default)]
    pub validate_request_body: bool,
    /// The route's required `requestParameters` are present and not blank: 400 `Missing
    /// required request parameters: [name, …]` otherwise.
    #[serde(default)]
    pub validate_request_parameters: bool,
}

/// Any JSON value, kept as written (a JSON Schema).
pub(crate) fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
