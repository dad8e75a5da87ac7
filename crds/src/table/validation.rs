//! Request validation as the table carries it: the gateway's models (JSON Schema draft 4,
//! references between models rewritten to [`model_uri`]) and, per route, what its request
//! validator checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The URI a model is known by inside a table: `$ref`s to another model point here.
pub fn model_uri(name: &str) -> String {
    format!("{MODEL_URI_BASE}{name}")
}

pub const MODEL_URI_BASE: &str = "https://tollgate.dev/models/";

/// A route's request validation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ValidationTable {
    /// The required parameters, sorted as Amazon API Gateway lists them when they are
    /// missing (by `method.request.{location}.{name}`); empty when parameters are not
    /// validated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_parameters: Vec<RequiredParameter>,
    /// Whether the body is checked against its model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_body: bool,
    /// Model name by media type (lowercase; `$default` for any other), from the route's
    /// `requestModels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body_models: BTreeMap<String, String>,
}

/// A parameter a request must carry, not blank.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RequiredParameter {
    pub location: ParameterLocation,
    pub name: String,
}

/// Where a method request parameter is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum ParameterLocation {
    Header,
    Path,
    Querystring,
}

/// The media type a body model applies to when no other matches.
pub const DEFAULT_MODEL_KEY: &str = "$default";

impl ValidationTable {
    /// The model for a request's `Content-Type` (`None`: absent, which Amazon API Gateway
    /// reads as `application/json`): its media type without parameters, else `$default`.
    pub fn model_for(&self, content_type: Option<&str>) -> Option<&str> {
        let media = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .unwrap_or("application/json");
        self.body_models
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(media))
            .or_else(|| self.body_models.get_key_value(DEFAULT_MODEL_KEY))
            .map(|(_, v)| v.as_str())
    }
}
