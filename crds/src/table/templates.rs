//! A non-proxy integration's mapping templates and integration responses as the table carries
//! them: template source (checked by the compiler, parsed once per table by the proxy),
//! selection patterns (checked regular expressions) and each response header's source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Amazon's non-proxy integration: how the request and the answer are reshaped.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplatesTable {
    /// Request templates by media type (lowercase).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request: BTreeMap<String, String>,
    pub passthrough: Passthrough,
    /// In the route's order; at least one (the compiler adds a default when none is given).
    pub responses: Vec<IntegrationResponseTable>,
}

/// What a request without a template for its content type gets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Passthrough {
    #[default]
    WhenNoMatch,
    WhenNoTemplates,
    Never,
}

/// One integration response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponseTable {
    /// A regular expression the whole selector must match; `None`: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_pattern: Option<String>,
    pub status_code: u16,
    /// Sorted by name (lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<IntegrationHeaderTable>,
    /// Response templates by media type (lowercase).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
}

/// A header of the answer and where its value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationHeaderTable {
    /// Lowercase.
    pub name: String,
    pub value: ResponseValue,
}

/// Where an integration response header's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "from")]
pub enum ResponseValue {
    /// `'text'`.
    Literal { value: String },
    /// `integration.response.header.NAME` (lowercase).
    Header { name: String },
    /// `integration.response.body.a.b`: a field of the JSON answer, as its dotted path.
    Body { path: String },
}

impl IntegrationResponseTable {
    /// The selection pattern as a regular expression that must match the whole selector,
    /// as Amazon's (Java's `matches`) does.
    pub fn anchored_pattern(&self) -> Option<String> {
        self.selection_pattern
            .as_ref()
            .map(|p| format!("^(?s:{p})$"))
    }
}
