//! A stage's access-log format as the table carries it: Amazon's `$context` format string,
//! parsed once by the compiler into text and variables, with the escaping its kind needs, so a
//! proxy renders a line without parsing anything.

use serde::{Deserialize, Serialize};

/// A stage's access-log line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogFormatTable {
    /// How values are escaped, decided once from the format.
    pub kind: AccessLogKind,
    /// The line's parts, in order; the proxy adds the newline.
    pub segments: Vec<AccessLogSegment>,
}

/// What a format writes, and so how its values are escaped: no value can end the line or
/// break out of the structure around it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AccessLogKind {
    /// Starts with `{`: values JSON-string-escaped.
    Json,
    /// Starts with `<`: values XML-escaped.
    Xml,
    /// Commas between values and no spaces: control characters escaped, and a value holding
    /// a comma or a quote quoted (`"a,""b"""`).
    Csv,
    /// Anything else (CLF): control characters, quotes and backslashes escaped (`\n`, `\"`,
    /// `\\`, `\x01`).
    Text,
}

/// A part of a line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum AccessLogSegment {
    Text(String),
    /// A variable's value, escaped for the kind (`-` when absent, as Amazon writes).
    Value(AccessLogVariable),
    /// A JSON format's variable outside a string (`"status":$context.status`): a number as
    /// is, anything else (an absent value's `-` too) as a JSON string, so the line stays JSON.
    JsonValue(AccessLogVariable),
}

/// The `$context` variables a stage's access log can write (Amazon's names in the docs).
/// None of them holds a secret: the compiler refuses those.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AccessLogVariable {
    RequestId,
    /// Tollgate has one id per request: the same as `requestId`.
    ExtendedRequestId,
    /// CLF time: `dd/MMM/yyyy:HH:mm:ss +0000`.
    RequestTime,
    /// Milliseconds since the epoch.
    RequestTimeEpoch,
    HttpMethod,
    /// The route's path template (`/pets/{id}`).
    ResourcePath,
    /// The path as requested.
    Path,
    Protocol,
    Status,
    ResponseLength,
    ResponseLatency,
    /// `integrationLatency` and `integration.latency`.
    IntegrationLatency,
    /// `integrationStatus` and `integration.status`: the status the integration answered.
    IntegrationStatus,
    /// `error.message`.
    ErrorMessage,
    /// `error.messageString`: the message in double quotes.
    ErrorMessageString,
    /// `error.responseType`: the gateway response type of a refusal.
    ErrorResponseType,
    /// `identity.sourceIp`.
    SourceIp,
    /// `identity.userAgent`.
    UserAgent,
    /// `identity.apiKeyId`: the API key's id (its Secret's name), never the key.
    ApiKeyId,
    /// `identity.caller`: an `AWS_IAM` caller's user.
    Caller,
    /// `identity.user`: an `AWS_IAM` caller's user.
    User,
    /// `authorizer.principalId`.
    PrincipalId,
    /// `authorizer.claims.NAME`: a claim of the caller's JWT.
    Claim(String),
    /// `authorizer.NAME`: a value of a custom authorizer's context.
    AuthorizerContext(String),
    DomainName,
    /// The first label of the domain name.
    DomainPrefix,
    Stage,
    ApiId,
    RouteKey,
    /// `stable` or `canary`, on a stage with a canary.
    DeploymentId,
    /// The W3C trace id in X-Ray's form: `1-{8 hex}-{24 hex}`.
    XrayTraceId,
    /// The W3C trace id: 32 lowercase hex digits.
    TraceId,
    /// A WebSocket API's connection id.
    ConnectionId,
    /// A WebSocket API's event: `CONNECT`.
    EventType,
}
