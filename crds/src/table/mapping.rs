//! Parameter mapping as the table carries it: Amazon's `overwrite:header.x` keys and
//! `$request.header.y` values, parsed once by the compiler into rules a proxy applies without
//! parsing anything.

use serde::{Deserialize, Serialize};

/// How an HTTP integration's request and response are rewritten.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParameterMappingTable {
    /// Applied, in order, to the request sent to the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<MappingRule>,
    /// Applied, in order, to the backend's response, by its status code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response: Vec<ResponseMapping>,
}

impl ParameterMappingTable {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }

    /// Whether a request rule changes the backend URL (its path or query string).
    pub fn maps_url(&self) -> bool {
        self.request.iter().any(|r| {
            matches!(
                r.target,
                MappingTarget::Path | MappingTarget::Querystring(_)
            )
        })
    }

    /// The rules for a response of this status code.
    pub fn for_status(&self, status: u16) -> Option<&[MappingRule]> {
        self.response
            .iter()
            .find(|m| m.status_code == status)
            .map(|m| m.rules.as_slice())
    }
}

/// The rules for responses of one status code.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMapping {
    pub status_code: u16,
    pub rules: Vec<MappingRule>,
}

/// One `action:target` key and its value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MappingRule {
    pub action: MappingAction,
    pub target: MappingTarget,
    /// The value's parts, concatenated; empty for `remove`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value: Vec<MappingPart>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MappingAction {
    /// Replace every value the target has.
    Overwrite,
    /// Add to the values it has (a header's with a comma, a query parameter as another).
    Append,
    /// Remove it.
    Remove,
}

/// What a rule changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum MappingTarget {
    /// A header, by its lowercased name.
    Header(String),
    /// A query-string parameter, by its name (case-sensitive).
    Querystring(String),
    /// The path of the backend URL.
    Path,
    /// The status code of the response.
    Statuscode,
}

/// A part of a value: text, or where to take text from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum MappingPart {
    Text(String),
    /// A request header (lowercased name), its values joined with commas.
    RequestHeader(String),
    /// A query-string parameter, decoded, its values joined with commas.
    RequestQuerystring(String),
    /// The request path without the stage.
    RequestPath,
    /// A path parameter of the route.
    RequestPathParameter(String),
    /// A response header (lowercased name), its values joined with commas.
    ResponseHeader(String),
    /// A stage variable.
    StageVariable(String),
    /// A context variable.
    Context(ContextVariable),
}

/// The context variables a mapping can read (Amazon's `$context.…` of an HTTP API).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum ContextVariable {
    RequestId,
    ApiId,
    Stage,
    HttpMethod,
    Path,
    Protocol,
    DomainName,
    RouteKey,
    RequestTime,
    RequestTimeEpoch,
    SourceIp,
    UserAgent,
    /// `authorizer.principalId`.
    PrincipalId,
    /// `authorizer.claims.NAME`: a claim of the caller's JWT.
    Claim(String),
    /// `authorizer.NAME`: a value of a Lambda authorizer's context.
    AuthorizerContext(String),
}
