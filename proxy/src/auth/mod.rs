//! The authorizer phase for routes that name one: who the caller is.
//!
//! As Amazon API Gateway, a request missing any of the authorizer's identity sources gets 401
//! `Unauthorized` without the authorizer being consulted. Otherwise a JWT authorizer verifies
//! the token ([`jwt`]) and a TOKEN or REQUEST authorizer asks a custom endpoint ([`custom`]).
//! Either way the result is an [`Identity`] that reaches the integration: in the Lambda event's
//! `requestContext.authorizer`, or as `x-authorizer-*` headers to an HTTP backend.

pub mod custom;
pub mod iam;
pub mod identity;
pub mod jwt;
pub mod kubernetes;
pub mod verified;

use std::sync::Arc;

use tollgate_crds::table::AuthorizerType;
use tollgate_crds::table::{AuthorizerTable, GatewayTable};

use crate::errors::GatewayError;
use crate::request_ctx::RouteCtx;
use crate::upstream::Upstream;
pub use identity::Identity;

/// What authorizers keep between requests: fetched signing keys and cached answers. Lives as
/// long as the proxy; entries are keyed by everything they depend on, so a new table never
/// sees an answer given under another configuration.
#[derive(Default)]
pub struct AuthState {
    pub jwks: jwt::JwksCache,
    pub answers: custom::AnswerCache,
    /// The identity of every request to a route without an authorizer.
    anonymous: Arc<Identity>,
}

impl AuthState {
    /// The identity of a request before (or without) an authorizer.
    pub fn anonymous(&self) -> Arc<Identity> {
        self.anonymous.clone()
    }
}

/// Whether the route's authorizer reads the body (an `AWS_IAM` signature covers it): then the
/// pipeline reads it whole before this phase.
pub fn reads_body(ctx: &RouteCtx<'_>) -> bool {
    ctx.route_table()
        .authorizer
        .as_deref()
        .and_then(|name| find(ctx.gateway(), name).ok())
        .is_some_and(|table| table.type_ == AuthorizerType::AwsIam)
}

/// Runs the route's authorizer, if it names one. `body` is the body read whole when
/// [`reads_body`] said so; otherwise the body is not read yet.
pub async fn authorize(
    state: &AuthState,
    client: &Upstream,
    ctx: &RouteCtx<'_>,
    body: Option<&[u8]>,
) -> Result<Arc<Identity>, GatewayError> {
    let Some(name) = &ctx.route_table().authorizer else {
        return Ok(state.anonymous.clone());
    };
    let table = find(ctx.gateway(), name)?;
    let sources = identity::values(table, &ctx.parts.headers, ctx.query, ctx.stage_variables)
        .ok_or(GatewayError::Unauthorized)?;
    match table.type_ {
        AuthorizerType::JWT => {
            let token = sources.first().map(String::as_str).unwrap_or_default();
            let jwt = table.jwt.as_ref().ok_or_else(|| {
                GatewayError::AuthorizerConfiguration(format!("JWT authorizer {name:?} has no jwt"))
            })?;
            jwt::verify(
                &state.jwks,
                client,
                jwt,
                token,
                &ctx.route_table().authorization_scopes,
            )
            .await
        }
        AuthorizerType::TOKEN | AuthorizerType::REQUEST => {
            custom::authorize(&state.answers, client, table, &sources, ctx).await
        }
        AuthorizerType::Kubernetes => {
            let token = sources.first().map(String::as_str).unwrap_or_default();
            let jwt = table.jwt.as_ref().ok_or_else(|| {
                GatewayError::AuthorizerConfiguration(format!(
                    "KUBERNETES authorizer {name:?} has no issuer"
                ))
            })?;
            let identity = jwt::verify(&state.jwks, client, jwt, token, &[]).await?;
            kubernetes::admit(&identity, table, ctx)?;
            Ok(identity)
        }
        AuthorizerType::AwsIam => {
            let iam = table.iam.as_ref().ok_or_else(|| {
                GatewayError::AuthorizerConfiguration(format!(
                    "AWS_IAM authorizer {name:?} has no iam"
                ))
            })?;
            iam::authorize(iam, ctx, body.unwrap_or_default())
        }
    }
}

fn find<'a>(gateway: &'a GatewayTable, name: &str) -> Result<&'a AuthorizerTable, GatewayError> {
    gateway
        .authorizers
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            GatewayError::AuthorizerConfiguration(format!(
                "authorizer {name:?} is not in the table"
            ))
        })
}
