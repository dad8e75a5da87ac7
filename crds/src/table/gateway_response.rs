//! Gateway responses as the table carries them: per response type, the status, headers
//! (each value parsed into where it comes from) and body templates (VTL source, checked by
//! the compiler, parsed once per table by the proxy).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Amazon API Gateway's gateway response types, each with its default status code.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayResponseType {
    AccessDenied,
    ApiConfigurationError,
    AuthorizerConfigurationError,
    AuthorizerFailure,
    BadRequestParameters,
    BadRequestBody,
    #[serde(rename = "DEFAULT_4XX")]
    Default4xx,
    #[serde(rename = "DEFAULT_5XX")]
    Default5xx,
    ExpiredToken,
    IntegrationFailure,
    IntegrationTimeout,
    InvalidApiKey,
    InvalidSignature,
    MissingAuthenticationToken,
    QuotaExceeded,
    RequestTooLarge,
    ResourceNotFound,
    Throttled,
    Unauthorized,
    UnsupportedMediaType,
    WafFiltered,
}

impl GatewayResponseType {
    pub const ALL: [Self; 21] = [
        Self::AccessDenied,
        Self::ApiConfigurationError,
        Self::AuthorizerConfigurationError,
        Self::AuthorizerFailure,
        Self::BadRequestParameters,
        Self::BadRequestBody,
        Self::Default4xx,
        Self::Default5xx,
        Self::ExpiredToken,
        Self::IntegrationFailure,
        Self::IntegrationTimeout,
        Self::InvalidApiKey,
        Self::InvalidSignature,
        Self::MissingAuthenticationToken,
        Self::QuotaExceeded,
        Self::RequestTooLarge,
        Self::ResourceNotFound,
        Self::Throttled,
        Self::Unauthorized,
        Self::UnsupportedMediaType,
        Self::WafFiltered,
    ];

    /// The name Amazon API Gateway gives it (`MISSING_AUTHENTICATION_TOKEN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "ACCESS_DENIED",
            Self::ApiConfigurationError => "API_CONFIGURATION_ERROR",
            Self::AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR",
            Self::AuthorizerFailure => "AUTHORIZER_FAILURE",
            Self::BadRequestParameters => "BAD_REQUEST_PARAMETERS",
            Self::BadRequestBody => "BAD_REQUEST_BODY",
            Self::Default4xx => "DEFAULT_4XX",
            Self::Default5xx => "DEFAULT_5XX",
            Self::ExpiredToken => "EXPIRED_TOKEN",
            Self::IntegrationFailure => "INTEGRATION_FAILURE",
            Self::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            Self::InvalidApiKey => "INVALID_API_KEY",
            Self::InvalidSignature => "INVALID_SIGNATURE",
            Self::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::RequestTooLarge => "REQUEST_TOO_LARGE",
            Self::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Self::Throttled => "THROTTLED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::WafFiltered => "WAF_FILTERED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for GatewayResponseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customised gateway response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResponseTable {
    #[serde(rename = "type")]
    pub response_type: GatewayResponseType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Sorted by name (lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ResponseHeaderTable>,
    /// Body templates by media type (lowercase).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
}

/// A header of a gateway response and where its value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResponseHeaderTable {
    /// Lowercase.
    pub name: String,
    pub value: HeaderSource,
}

/// Where a gateway response header's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "from")]
pub enum HeaderSource {
    /// `'text'`.
    Literal { value: String },
    /// `method.request.header.NAME` (lowercase).
    Header { name: String },
    /// `method.request.querystring.NAME`.
    Querystring { name: String },
    /// `method.request.path.NAME`.
    Path { name: String },
    /// `context.a.b` as its dotted path (`requestId`, `error.responseType`).
    Context { path: String },
    /// `stageVariables.NAME`.
    StageVariable { name: String },
}
