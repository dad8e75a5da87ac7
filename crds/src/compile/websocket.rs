//! What a WebSocket API adds to its gateway's table: the route selection expression, the
//! connection limits, and the credentials that may sign `@connections` requests. (Its routes,
//! by route key, are placed by `route.rs` with every other route.)

use super::diagnostics::{Diagnostic, Reason};
use super::gateway::secret_string;
use super::{Resources, validate};
use crate::resources::{AWS_CREDENTIALS_SECRET_TYPE, WebSocketSettings};
use crate::table::{
    AuthorizerTable, AuthorizerType, AwsCredentialsTable, ObjectKey, RedisTable, WebSocketTable,
};

/// The smallest frame limit a client can work with: a control frame's payload is up to 125
/// bytes (RFC 6455, section 5.5).
const MIN_FRAME_BYTES: u32 = 125;
const MAX_FRAME_OR_MESSAGE_BYTES: u32 = 16 * 1024 * 1024;

/// The table's WebSocket settings. A bad expression or limit rejects the gateway; a
/// credentials Secret that is missing or bad is skipped and named (no caller can use it).
pub(super) fn compile(
    gateway: &ObjectKey,
    settings: &WebSocketSettings,
    authorizers: &[AuthorizerTable],
    rate_limiting_redis: Option<&RedisTable>,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> WebSocketTable {
    let route_selection_field =
        match validate::route_selection_expression(&settings.route_selection_expression) {
            Ok(fields) => fields,
            Err(e) => {
                diag.reject(
                    Reason::InvalidWebSocket,
                    "spec.websocket.routeSelectionExpression",
                    e,
                );
                Vec::new()
            }
        };
    for (field, value, min, max) in [
        (
            "idleTimeoutSeconds",
            settings.idle_timeout_seconds,
            1,
            86_400,
        ),
        (
            "maxConnectionSeconds",
            settings.max_connection_seconds,
            1,
            604_800,
        ),
        (
            "maxFrameBytes",
            settings.max_frame_bytes,
            MIN_FRAME_BYTES,
            MAX_FRAME_OR_MESSAGE_BYTES,
        ),
        (
            "maxMessageBytes",
            settings.max_message_bytes,
            MIN_FRAME_BYTES,
            MAX_FRAME_OR_MESSAGE_BYTES,
        ),
    ] {
        if !(min..=max).contains(&value) {
            diag.reject(
                Reason::InvalidWebSocket,
                format!("spec.websocket.{field}"),
                format!("{field} must be between {min} and {max}, not {value}"),
            );
        }
    }
    if settings.max_frame_bytes > settings.max_message_bytes {
        diag.reject(
            Reason::InvalidWebSocket,
            "spec.websocket.maxFrameBytes",
            "maxFrameBytes cannot exceed maxMessageBytes: a message is one or more frames",
        );
    }

    // The bus's Redis: its own, else the one the gateway's rate limiting shares.
    let redis = match (&settings.redis_url, &settings.redis) {
        (Some(_), Some(_)) => {
            diag.reject(
                Reason::InvalidWebSocket,
                "spec.websocket.redis",
                "name the bus's Redis in redis or redisUrl, not both",
            );
            None
        }
        (Some(url), None) => match validate::redis_url(url) {
            Ok(()) => Some(RedisTable::standalone(url)),
            Err(e) => {
                diag.reject(Reason::InvalidWebSocket, "spec.websocket.redisUrl", e);
                None
            }
        },
        (None, Some(connection)) => {
            super::redis::compile(gateway, connection, "spec.websocket.redis", resources, diag)
        }
        (None, None) => rate_limiting_redis.cloned(),
    };
    // A management authorizer that is not a valid JWT authorizer is left out, named: no
    // bearer token is then accepted, and SigV4 callers are not affected.
    let management_authorizer = settings.management_authorizer.as_ref().filter(|name| {
        let found = authorizers
            .iter()
            .any(|a| &a.name == *name && a.type_ == AuthorizerType::JWT);
        if !found {
            diag.skip(
                Reason::AuthorizerNotFound,
                "spec.websocket.managementAuthorizer",
                format!("the gateway has no valid JWT authorizer named {name:?}"),
            );
        }
        found
    });
    let mut management_credentials: Vec<AwsCredentialsTable> = settings
        .management_credentials
        .iter()
        .enumerate()
        .filter_map(|(i, secret)| {
            let field = format!("spec.websocket.managementCredentials[{i}]");
            let key = ObjectKey::new(&gateway.namespace, &secret.name);
            credentials(&key, resources)
                .map_err(|(reason, message)| diag.skip(reason, field, message))
                .ok()
        })
        .collect();
    management_credentials.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    management_credentials.dedup_by(|a, b| a.access_key_id == b.access_key_id);

    WebSocketTable {
        route_selection_field,
        idle_timeout_seconds: settings.idle_timeout_seconds,
        max_connection_seconds: settings.max_connection_seconds,
        max_frame_bytes: settings.max_frame_bytes,
        max_message_bytes: settings.max_message_bytes,
        management_credentials,
        management_authorizer: management_authorizer.cloned(),
        redis,
    }
}

/// An access key from a Secret of type `tollgate.dev/aws-credentials`.
pub(super) fn credentials(
    key: &ObjectKey,
    resources: &Resources,
) -> Result<AwsCredentialsTable, (Reason, String)> {
    let secret = resources.secrets.get(key).ok_or_else(|| {
        (
            Reason::SecretNotFound,
            format!("Secret {key} does not exist"),
        )
    })?;
    if secret.type_.as_deref() != Some(AWS_CREDENTIALS_SECRET_TYPE) {
        return Err((
            Reason::InvalidSecret,
            format!("Secret {key} must be of type {AWS_CREDENTIALS_SECRET_TYPE}"),
        ));
    }
    let value = |field: &str| {
        secret_string(secret, field)
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.is_ascii())
            .ok_or_else(|| {
                (
                    Reason::InvalidSecret,
                    format!("Secret {key} needs {field}: 1 to 128 ASCII characters"),
                )
            })
    };
    Ok(AwsCredentialsTable {
        access_key_id: value("accessKeyId")?,
        secret_access_key: value("secretAccessKey")?,
        source: key.clone(),
    })
}
