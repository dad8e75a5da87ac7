//! The `@connections` API of a WebSocket API's stage, as Amazon API Gateway's
//! `ApiGatewayManagementApi`: `POST /{stage}/@connections/{id}` sends the body to the client,
//! `GET` tells when it connected, when it was last active and who it is, `DELETE` closes it;
//! 410 `GoneException` for a connection that is not (or no longer) there.
//!
//! Callers sign with AWS Signature Version 4 (service `execute-api`, any region) using an
//! access key from the gateway's `websocket.managementCredentials`, so an unchanged AWS SDK
//! client with its endpoint set to the stage's URL works; or, when the gateway names a
//! `websocket.managementAuthorizer`, send a bearer token that JWT authorizer accepts (a
//! Kubernetes ServiceAccount token for in-cluster backends). The connection may be held by this
//! proxy or by any other of the fleet: the call then goes over the [`bus`](super::bus).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tollgate_crds::table::WebSocketTable;

use super::registry::{self, Command, Registry};
use crate::auth::jwt;
use crate::body::{Body, ClientBody, full};
use crate::errors::{GatewayError, json_message};
use crate::request_ctx::RequestCtx;
use crate::sigv4::{self, SigV4Error, SignedRequest};
use crate::state::Shared;

/// Largest message a backend may send: Amazon API Gateway's 128 KB.
pub const MAX_POST_BYTES: usize = 128 * 1024;
/// How long reading a call's body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a send may wait for room in the connection's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// The connection id of an `@connections` path (relative to the stage). SDKs send the `@`
/// as it is or percent-encoded.
pub fn connection_id(path: &str) -> Option<&str> {
    path.strip_prefix("/@connections/")
        .or_else(|| path.strip_prefix("/%40connections/"))
}

/// What a call asks of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Send `data` (base64 on the bus).
    Post {
        #[serde(with = "base64_bytes")]
        data: Bytes,
    },
    Get,
    Delete,
}

/// What became of a call, wherever the connection is held.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    Sent,
    Deleted,
    #[serde(rename_all = "camelCase")]
    Info {
        connected_at_ms: i64,
        last_active_ms: i64,
        source_ip: String,
        user_agent: Option<String>,
    },
    /// No such connection (any more).
    Gone,
    /// The connection's queue stayed full: its client reads too slowly.
    Busy,
    /// The proxy holding the connection did not answer over the bus.
    Unreachable,
}

/// Serves one `@connections` call.
pub async fn serve<B: ClientBody>(
    shared: &Shared,
    ctx: &RequestCtx<'_>,
    id: &str,
    body: B,
) -> Response<Body> {
    let Some(settings) = ctx.gateway().websocket.as_ref() else {
        return json_message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some("ForbiddenException"),
        );
    };
    let payload = match read(body).await {
        Ok(payload) => payload,
        Err(response) => return response,
    };
    let bearer =
        bearer_token(&ctx.parts.headers).filter(|_| settings.management_authorizer.is_some());
    if let Some(token) = bearer {
        if let Err(refused) = bearer_caller(shared, ctx, token).await {
            tracing::debug!(request_id = ctx.id, error = %refused, "@connections call refused");
            return refused.into_response();
        }
    } else if let Err(e) = signed_caller(ctx, settings, &payload) {
        tracing::debug!(request_id = ctx.id, error = %e, "@connections call refused");
        return json_message(e.status(), &e.to_string(), Some(e.error_type()));
    }

    let op = match ctx.parts.method {
        Method::POST => Op::Post { data: payload },
        Method::GET => Op::Get,
        Method::DELETE => Op::Delete,
        _ => {
            return json_message(
                StatusCode::FORBIDDEN,
                "Missing Authentication Token",
                Some("MissingAuthenticationTokenException"),
            );
        }
    };
    let gateway = ctx.gateway().gateway.to_string();
    let stage = &ctx.target.stage.name;
    let managed = &shared.managed;
    let outcome = match registry::tag_of(id) {
        Some(tag) if tag == managed.registry.tag() => {
            local(&managed.registry, &gateway, stage, id, op).await
        }
        Some(tag) => match &settings.redis {
            Some(redis) => {
                let call = super::bus::Call {
                    gateway,
                    stage: stage.to_string(),
                    id: id.to_string(),
                    op,
                };
                managed.bus.call(redis, &managed.registry, &tag, call).await
            }
            None => Outcome::Gone,
        },
        None => Outcome::Gone,
    };
    answer(outcome)
}

/// A caller signing with AWS Signature Version 4, with keys of the gateway's.
fn signed_caller(
    ctx: &RequestCtx<'_>,
    settings: &WebSocketTable,
    payload: &[u8],
) -> Result<(), SigV4Error> {
    let headers = sigv4::headers_with_host(ctx.parts);
    let signed = SignedRequest {
        method: &ctx.parts.method,
        raw_path: ctx.raw_path(),
        raw_query: ctx.query,
        headers: &headers,
        payload,
    };
    let find = |key: &str| {
        settings
            .management_credentials
            .iter()
            .find(|c| c.access_key_id == key)
    };
    sigv4::verify(&signed, jiff::Timestamp::now(), "execute-api", find)?;
    Ok(())
}

/// A caller with a bearer token the gateway's management authorizer (a JWT authorizer)
/// accepts: a Kubernetes ServiceAccount token, say.
async fn bearer_caller(
    shared: &Shared,
    ctx: &RequestCtx<'_>,
    token: &str,
) -> Result<(), GatewayError> {
    let gateway = ctx.gateway();
    let name = gateway
        .websocket
        .as_ref()
        .and_then(|w| w.management_authorizer.as_deref())
        .unwrap_or_default();
    let jwt = gateway
        .authorizers
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.jwt.as_ref())
        .ok_or_else(|| {
            GatewayError::AuthorizerConfiguration(format!("no JWT authorizer named {name:?}"))
        })?;
    jwt::verify(&shared.auth.jwks, &shared.client, jwt, token, &[]).await?;
    Ok(())
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(headers: &hyper::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Carries out a call on a connection this proxy holds.
pub async fn local(registry: &Registry, gateway: &str, stage: &str, id: &str, op: Op) -> Outcome {
    let Some(handle) = registry
        .get(id)
        .filter(|h| h.info.gateway == gateway && h.info.stage == stage)
    else {
        return Outcome::Gone;
    };
    let command = match op {
        Op::Get => {
            return Outcome::Info {
                connected_at_ms: handle.info.connected_at_ms,
                last_active_ms: handle.last_active_ms(),
                source_ip: handle.info.source_ip.to_string(),
                user_agent: handle.info.user_agent.clone(),
            };
        }
        Op::Post { data } => Command::Send(data),
        Op::Delete => Command::Close,
    };
    let deleted = matches!(command, Command::Close);
    match handle.commands.send_timeout(command, QUEUE_TIMEOUT).await {
        Ok(()) if deleted => Outcome::Deleted,
        Ok(()) => Outcome::Sent,
        Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => Outcome::Busy,
        Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => Outcome::Gone,
    }
}

/// The call's body, at most [`MAX_POST_BYTES`].
async fn read<B: ClientBody>(body: B) -> Result<Bytes, Response<Body>> {
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_POST_BYTES).collect())
            .await
            .map_err(|_| {
                json_message(
                    StatusCode::REQUEST_TIMEOUT,
                    "Request Timeout",
                    Some("RequestTimeoutException"),
                )
            })?;
    collected.map(|c| c.to_bytes()).map_err(|_| {
        json_message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Too Long",
            Some("PayloadTooLargeException"),
        )
    })
}

/// The answer Amazon API Gateway gives for each outcome.
fn answer(outcome: Outcome) -> Response<Body> {
    match outcome {
        Outcome::Sent => Response::new(full(Bytes::new())),
        Outcome::Deleted => {
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Outcome::Info {
            connected_at_ms,
            last_active_ms,
            source_ip,
            user_agent,
        } => {
            let mut identity = json!({ "sourceIp": source_ip });
            if let Some(agent) = user_agent {
                identity["userAgent"] = json!(agent);
            }
            let body = json!({
                "connectedAt": iso8601(connected_at_ms),
                "lastActiveAt": iso8601(last_active_ms),
                "identity": identity,
            });
            let mut response = Response::new(full(body.to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        // Amazon API Gateway's GoneException has no message (the SDKs say "Unknown").
        Outcome::Gone => {
            let mut response = json_message(StatusCode::GONE, "", Some("GoneException"));
            *response.body_mut() = full(r#"{"message":null}"#);
            response
        }
        Outcome::Busy => json_message(
            StatusCode::TOO_MANY_REQUESTS,
            "Limit Exceeded",
            Some("LimitExceededException"),
        ),
        Outcome::Unreachable => json_message(
            StatusCode::GATEWAY_TIMEOUT,
            "The proxy holding the connection did not answer",
            Some("InternalServerErrorException"),
        ),
    }
}

/// A message's bytes as base64 text in the bus's JSON.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

fn iso8601(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_paths_with_the_at_sign_as_it_is_or_encoded() {
        assert_eq!(connection_id("/@connections/abc"), Some("abc"));
        assert_eq!(connection_id("/%40connections/abc"), Some("abc"));
        assert_eq!(connection_id("/connections/abc"), None);
        assert_eq!(connection_id("/"), None);
    }

    #[test]
    fn a_post_crosses_the_bus_as_base64() {
        let op = Op::Post {
            data: Bytes::from_static(&[0, 159, 146, 150]),
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, r#"{"op":"post","data":"AJ+Slg=="}"#);
        assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
    }

    #[test]
    fn timestamps_are_iso8601_with_milliseconds() {
        assert_eq!(iso8601(1_586_455_428_587), "2020-04-09T18:03:48.587Z");
    }
}
