//! The errors a request can end in, each with the status code and JSON body Amazon API
//! Gateway's default gateway response gives it, and the side at fault.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use tollgate_crds::table::GatewayResponseType;

use crate::body::{Body, full};
use crate::request_path::PathError;
use crate::throttle::RateLimitStatus;

/// Who caused an error: decides the log level and the metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Gateway,
}

/// A request that ends without reaching (or without a usable answer from) its integration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No route for the path, or none for the method (MISSING_AUTHENTICATION_TOKEN).
    #[error("no route matches the method and path")]
    MissingAuthenticationToken,
    /// Unknown host, unknown stage, or a missing, unknown or disabled API key.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request line and headers exceed 10,240 bytes.
    #[error("request head exceeds 10,240 bytes")]
    HeadersTooLarge,
    /// The request line alone exceeds the 10,240-byte head limit (RFC 9110, 414).
    #[error("request line exceeds 10,240 bytes")]
    UriTooLong,
    /// An authorizer's identity source is missing (UNAUTHORIZED).
    #[error("missing identity source")]
    Unauthorized,
    /// The identity is there but not valid: a bad signature, an expired token, the wrong
    /// issuer or audience (UNAUTHORIZED, with the reason in the log only).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A custom authorizer denied the request (ACCESS_DENIED).
    #[error("the authorizer denied the request")]
    ExplicitDeny,
    /// A SigV4 signature that does not verify, a signer the AWS_IAM authorizer's statements
    /// do not allow, a ServiceAccount a KUBERNETES authorizer does not allow: 403 with the
    /// message for the case.
    #[error("{message}")]
    AccessRefused {
        message: String,
        error_type: &'static str,
    },
    /// No statement of the authorizer's policy allows the request (ACCESS_DENIED).
    #[error("the authorizer's policy does not allow the request")]
    NotAuthorized,
    /// The gateway's resource policy does not admit the client's address (ACCESS_DENIED).
    #[error("the resource policy does not admit {0}")]
    PolicyDenied(std::net::IpAddr),
    /// A custom domain with mutual TLS, and no trusted client certificate on the connection:
    /// untrusted, expired, or the request came over plain HTTP (ACCESS_DENIED).
    #[error("client certificate refused: {0}")]
    ClientCertificate(String),
    /// The connection's TLS handshake was made for another domain than the request's host,
    /// and that host asks more of its handshake (mutual TLS, TLS 1.3 only): the client must
    /// open a connection for it (RFC 9110, 421).
    #[error("the connection was negotiated for another domain")]
    MisdirectedRequest,
    /// A rate limit is spent (THROTTLED).
    #[error("throttled")]
    TooManyRequests(RateLimitStatus),
    /// The key's quota for the period is spent (QUOTA_EXCEEDED).
    #[error("quota exceeded")]
    LimitExceeded(RateLimitStatus),
    /// The authorizer cannot decide (AUTHORIZER_CONFIGURATION_ERROR): fail closed.
    #[error("authorizer configuration error: {0}")]
    AuthorizerConfiguration(String),
    /// The body is larger than the 10 MB payload limit (REQUEST_TOO_LARGE).
    #[error("request body exceeds the payload limit")]
    RequestTooLong,
    /// The client sent a body the proxy could not read.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The route's request validator found required parameters missing or blank
    /// (BAD_REQUEST_PARAMETERS); their names, in the route's order.
    #[error("missing required request parameters: {0:?}")]
    MissingParameters(Vec<String>),
    /// The route's request validator found the body does not conform to its model
    /// (BAD_REQUEST_BODY); what is wrong with it, as `[a, b]`.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// The route validates bodies and has no model for the request's content type
    /// (UNSUPPORTED_MEDIA_TYPE).
    #[error("no model for the request's content type")]
    UnsupportedMediaType,
    /// The client sent no body bytes for the body read timeout.
    #[error("the client stopped sending the request body")]
    RequestTimeout,
    /// The proxy is at a limit it keeps for itself (the buffered-body budget): the request is
    /// refused before it takes more.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// The path has a dot-segment or an encoded separator, which a backend could resolve to
    /// another resource than the one routed (BAD_REQUEST_PARAMETERS).
    #[error("{0}")]
    InvalidPath(#[from] PathError),
    /// The client went away before the response was ready (the connection closed, or the
    /// HTTP/2 stream was reset): nobody receives the response, the access log says 499, as
    /// nginx's "Client Closed Request" does.
    #[error("the client went away before the response")]
    ClientClosed,
    /// The integration did not answer within its timeout (INTEGRATION_TIMEOUT).
    #[error("integration timed out")]
    IntegrationTimeout,
    /// The integration could not be reached or broke the connection (INTEGRATION_FAILURE).
    #[error("integration failed: {0}")]
    IntegrationFailure(String),
    /// A function failed or returned a malformed proxy result.
    #[error("bad Lambda result: {0}")]
    BadLambdaResult(String),
    /// The route's configuration cannot be carried out (API_CONFIGURATION_ERROR).
    #[error("configuration error: {0}")]
    Configuration(String),
    /// An HTTP API's answer where no route (and no `$default` route) matches.
    #[error("no route matches the method and path")]
    NotFound,
    /// An HTTP API's answer for an integration that failed (its cause inside).
    #[error("{0}")]
    InternalServerError(Box<GatewayError>),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingAuthenticationToken | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RequestTooLong => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::Unauthorized | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::ExplicitDeny
            | Self::NotAuthorized
            | Self::PolicyDenied(_)
            | Self::AccessRefused { .. }
            | Self::ClientCertificate(_) => StatusCode::FORBIDDEN,
            Self::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            Self::TooManyRequests(_) | Self::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::AuthorizerConfiguration(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadRequest(_)
            | Self::InvalidPath(_)
            | Self::MissingParameters(_)
            | Self::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ClientClosed => client_closed_request(),
            Self::IntegrationTimeout | Self::IntegrationFailure(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BadLambdaResult(_) => StatusCode::BAD_GATEWAY,
            Self::Configuration(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::InternalServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `message` of the JSON body, as Amazon API Gateway words it.
    pub fn message(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "Missing Authentication Token",
            Self::Forbidden(_) | Self::ClientCertificate(_) => "Forbidden",
            Self::MisdirectedRequest => "Misdirected Request",
            Self::RequestTooLong => "Request Too Long",
            Self::HeadersTooLarge => "Request Header Fields Too Large",
            Self::UriTooLong => "Request-URI Too Long",
            Self::Unauthorized | Self::InvalidToken(_) => "Unauthorized",
            Self::ExplicitDeny => {
                "User is not authorized to access this resource with an explicit deny"
            }
            Self::NotAuthorized => "User is not authorized to access this resource",
            Self::PolicyDenied(_) => {
                "User: anonymous is not authorized to perform: execute-api:Invoke on this resource"
            }
            // Its own message is written by `into_response`.
            Self::AccessRefused { .. } => "Forbidden",
            Self::TooManyRequests(_) => "Too Many Requests",
            Self::LimitExceeded(_) => "Limit Exceeded",
            // Amazon API Gateway answers authorizer errors with a null message.
            Self::AuthorizerConfiguration(_) => "",
            Self::BadRequest(_) => "Bad Request",
            // Its own message (the names) is written by `into_response`.
            Self::MissingParameters(_) => "Missing required request parameters",
            Self::InvalidBody(_) => "Invalid request body",
            Self::UnsupportedMediaType => "Unsupported Media Type",
            Self::InvalidPath(e) => e.message(),
            Self::RequestTimeout => "Request Timeout",
            Self::Overloaded(_) => "Service Unavailable",
            Self::ClientClosed => "Client Closed Request",
            Self::IntegrationTimeout => "Endpoint request timed out",
            Self::IntegrationFailure(_) | Self::BadLambdaResult(_) | Self::Configuration(_) => {
                "Internal server error"
            }
            Self::NotFound => "Not Found",
            Self::InternalServerError(_) => "Internal Server Error",
        }
    }

    /// The error as an HTTP API answers it: 404 `Not Found` where a REST API says `Missing
    /// Authentication Token`, 500 `Internal Server Error` for a failed integration or
    /// authorizer, 403 `Forbidden` for an authorizer's denial.
    pub fn for_http_api(self) -> Self {
        match self {
            Self::MissingAuthenticationToken => Self::NotFound,
            Self::IntegrationFailure(_)
            | Self::BadLambdaResult(_)
            | Self::Configuration(_)
            | Self::AuthorizerConfiguration(_) => Self::InternalServerError(Box::new(self)),
            // An HTTP API's authorizer that says no: 403 `Forbidden`, whatever the reason.
            Self::ExplicitDeny | Self::NotAuthorized => {
                Self::Forbidden("the authorizer denied the request")
            }
            other => other,
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            Self::MissingAuthenticationToken
            | Self::Forbidden(_)
            | Self::RequestTooLong
            | Self::HeadersTooLarge
            | Self::UriTooLong
            | Self::Unauthorized
            | Self::InvalidToken(_)
            | Self::ExplicitDeny
            | Self::NotAuthorized
            | Self::PolicyDenied(_)
            | Self::AccessRefused { .. }
            | Self::ClientCertificate(_)
            | Self::MisdirectedRequest
            | Self::TooManyRequests(_)
            | Self::LimitExceeded(_)
            | Self::BadRequest(_)
            | Self::InvalidPath(_)
            | Self::MissingParameters(_)
            | Self::InvalidBody(_)
            | Self::UnsupportedMediaType
            | Self::RequestTimeout
            | Self::NotFound
            | Self::ClientClosed => Fault::Client,
            Self::IntegrationTimeout | Self::IntegrationFailure(_) | Self::BadLambdaResult(_) => {
                Fault::Upstream
            }
            Self::Configuration(_) | Self::AuthorizerConfiguration(_) | Self::Overloaded(_) => {
                Fault::Gateway
            }
            Self::InternalServerError(cause) => cause.fault(),
        }
    }

    /// The gateway response type that answers it (what a gateway's `gatewayResponses`
    /// customise).
    pub fn response_type(&self) -> GatewayResponseType {
        use GatewayResponseType as T;
        match self {
            Self::MissingAuthenticationToken => T::MissingAuthenticationToken,
            Self::Forbidden(reason) if reason.ends_with("API key") => T::InvalidApiKey,
            Self::Unauthorized | Self::InvalidToken(_) => T::Unauthorized,
            Self::AccessRefused { error_type, .. } => match *error_type {
                "InvalidSignatureException" | "IncompleteSignatureException" => T::InvalidSignature,
                "MissingAuthenticationTokenException" => T::MissingAuthenticationToken,
                _ => T::AccessDenied,
            },
            Self::ExplicitDeny
            | Self::NotAuthorized
            | Self::PolicyDenied(_)
            | Self::ClientCertificate(_) => T::AccessDenied,
            Self::TooManyRequests(_) => T::Throttled,
            Self::LimitExceeded(_) => T::QuotaExceeded,
            Self::AuthorizerConfiguration(_) => T::AuthorizerConfigurationError,
            Self::RequestTooLong => T::RequestTooLarge,
            Self::InvalidPath(_) | Self::MissingParameters(_) => T::BadRequestParameters,
            Self::BadRequest(_) | Self::InvalidBody(_) => T::BadRequestBody,
            Self::UnsupportedMediaType => T::UnsupportedMediaType,
            Self::IntegrationTimeout => T::IntegrationTimeout,
            Self::IntegrationFailure(_) => T::IntegrationFailure,
            Self::Configuration(_) => T::ApiConfigurationError,
            Self::NotFound => T::ResourceNotFound,
            Self::InternalServerError(cause) => cause.response_type(),
            Self::Forbidden(_)
            | Self::HeadersTooLarge
            | Self::UriTooLong
            | Self::MisdirectedRequest
            | Self::RequestTimeout
            | Self::ClientClosed => T::Default4xx,
            Self::Overloaded(_) | Self::BadLambdaResult(_) => T::Default5xx,
        }
    }

    /// The text of `$context.error.validationErrorString`: what request validation found.
    pub fn validation_errors(&self) -> Option<&str> {
        match self {
            Self::InvalidBody(errors) => Some(errors),
            _ => None,
        }
    }

    /// The `x-amzn-ErrorType` header value.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::Forbidden(_) => "ForbiddenException",
            Self::RequestTooLong => "RequestTooLongException",
            Self::HeadersTooLarge => "RequestHeaderFieldsTooLargeException",
            Self::UriTooLong => "RequestUriTooLongException",
            Self::Unauthorized | Self::InvalidToken(_) => "UnauthorizedException",
            Self::ExplicitDeny
            | Self::NotAuthorized
            | Self::PolicyDenied(_)
            | Self::ClientCertificate(_) => "AccessDeniedException",
            Self::MisdirectedRequest => "MisdirectedRequestException",
            Self::TooManyRequests(_) => "TooManyRequestsException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::AuthorizerConfiguration(_) => "AuthorizerConfigurationException",
            Self::BadRequest(_)
            | Self::InvalidPath(_)
            | Self::MissingParameters(_)
            | Self::InvalidBody(_) => "BadRequestException",
            Self::UnsupportedMediaType => "UnsupportedMediaTypeException",
            Self::RequestTimeout => "RequestTimeoutException",
            Self::Overloaded(_) => "ServiceUnavailableException",
            Self::ClientClosed => "ClientClosedRequestException",
            Self::IntegrationTimeout
            | Self::IntegrationFailure(_)
            | Self::BadLambdaResult(_)
            | Self::Configuration(_)
            | Self::InternalServerError(_) => "InternalServerErrorException",
            Self::NotFound => "NotFoundException",
            Self::AccessRefused { error_type, .. } => error_type,
        }
    }

    /// The `message` of the answer's JSON body as sent (`$context.error.message`); `None`
    /// where Amazon API Gateway sends `null` (an authorizer's failure).
    pub fn full_message(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::AuthorizerConfiguration(_) => None,
            Self::AccessRefused { message, .. } => Some(Cow::Borrowed(message)),
            Self::MissingParameters(names) => Some(Cow::Owned(format!(
                "{}: [{}]",
                self.message(),
                names.join(", ")
            ))),
            _ => Some(Cow::Borrowed(self.message())),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        self.to_response()
    }

    /// The default gateway response: Amazon's status, JSON body and headers for the error.
    pub fn to_response(&self) -> Response<Body> {
        let body = serde_json::json!({ "message": self.full_message() }).to_string();
        let mut response = json_body(self.status(), body, Some(self.error_type()));
        match self {
            Self::TooManyRequests(status) | Self::LimitExceeded(status) => {
                status.write_headers(response.headers_mut(), true);
            }
            Self::InvalidToken(_) | Self::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

const ERROR_TYPE: http::HeaderName = http::HeaderName::from_static("x-amzn-errortype");

/// `{"message": "..."}` with the given status, as every gateway response is shaped.
pub fn json_message(
    status: StatusCode,
    message: &str,
    error_type: Option<&'static str>,
) -> Response<Body> {
    json_body(
        status,
        serde_json::json!({ "message": message }).to_string(),
        error_type,
    )
}

/// An error with its causes, as `a: b: c`, for logs: hyper's top-level message alone hides
/// the reason.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn json_body(status: StatusCode, body: String, error_type: Option<&'static str>) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(t) = error_type {
        headers.insert(ERROR_TYPE, HeaderValue::from_static(t));
    }
    response
}

/// 499, nginx's status for a request whose client went away; no HTTP standard names it.
fn client_closed_request() -> StatusCode {
    StatusCode::from_u16(499).expect("499 is in the status code range")
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn bodies_are_the_aws_json_messages() {
        for (err, status, body) in [
            (
                GatewayError::MissingAuthenticationToken,
                403,
                r#"{"message":"Missing Authentication Token"}"#,
            ),
            (
                GatewayError::Forbidden("stage"),
                403,
                r#"{"message":"Forbidden"}"#,
            ),
            (
                GatewayError::RequestTooLong,
                413,
                r#"{"message":"Request Too Long"}"#,
            ),
            (
                GatewayError::ClientClosed,
                499,
                r#"{"message":"Client Closed Request"}"#,
            ),
            (
                GatewayError::IntegrationTimeout,
                504,
                r#"{"message":"Endpoint request timed out"}"#,
            ),
            (
                GatewayError::Unauthorized,
                401,
                r#"{"message":"Unauthorized"}"#,
            ),
            (
                GatewayError::AuthorizerConfiguration("x".into()),
                500,
                r#"{"message":null}"#,
            ),
            (
                GatewayError::HeadersTooLarge,
                431,
                r#"{"message":"Request Header Fields Too Large"}"#,
            ),
            (
                GatewayError::InvalidPath(PathError::DotSegment),
                400,
                r#"{"message":"Invalid request path: dot-segments ('.' and '..') are not allowed"}"#,
            ),
            (
                GatewayError::BadLambdaResult("x".into()),
                502,
                r#"{"message":"Internal server error"}"#,
            ),
        ] {
            let response = err.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(bytes, body.as_bytes());
        }
    }
}
