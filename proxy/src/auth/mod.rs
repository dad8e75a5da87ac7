//! The authorizer phase for routes that name one: who the caller is.
//!
//! As Amazon API Gateway, a request missing any of the authorizer's identity sources gets 401
//! `Unauthorized` without the authorizer being consulted. Otherwise a JWT authorizer verifies
//! the token ([`jwt`]) and a TOKEN or REQUEST authorizer asks a custom endpoint ([`custom`]).
//! Either way the result is an [`Identity`] that reaches the integration: in the Lambda event's
//! `requestContext.authorizer`, or as `x-authorizer-*` headers to an HTTP backend.

pub mod custom;
pub mod identity;
pub mod jwt;
pub mod verified;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hyper::{HeaderMap, Method};
use tollgate_crds::resources::AuthorizerType;
use tollgate_crds::table::{AuthorizerTable, GatewayTable, RouteTable};

use crate::errors::GatewayError;
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

/// The request as an authorizer sees it (the body is not read yet).
pub struct AuthRequest<'a> {
    pub request_id: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The query string without '?', "" when none.
    pub query: &'a str,
    /// The path as the client sent it, with the stage or base path.
    pub raw_path: &'a str,
    /// The path relative to the stage.
    pub path: &'a str,
    pub source_ip: IpAddr,
    pub host: &'a str,
    pub gateway: &'a GatewayTable,
    pub stage: &'a str,
    pub route: &'a RouteTable,
    /// Path parameters, raw (as in the URL).
    pub params: &'a [(String, String)],
    pub stage_variables: &'a BTreeMap<String, String>,
    /// The verified client certificate of a mutual-TLS domain (REQUEST authorizers get it).
    pub client_cert: Option<&'a crate::tls::ClientCert>,
}

/// Runs the route's authorizer, if it names one.
pub async fn authorize(
    state: &AuthState,
    client: &Upstream,
    request: &AuthRequest<'_>,
) -> Result<Arc<Identity>, GatewayError> {
    let Some(name) = &request.route.authorizer else {
        return Ok(state.anonymous.clone());
    };
    let table = find(request.gateway, name)?;
    let sources = identity::values(
        table,
        request.headers,
        request.query,
        request.stage_variables,
    )
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
                &request.route.authorization_scopes,
            )
            .await
        }
        AuthorizerType::TOKEN | AuthorizerType::REQUEST => {
            custom::authorize(&state.answers, client, table, &sources, request).await
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
