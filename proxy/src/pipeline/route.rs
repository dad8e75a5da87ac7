//! The route phase: a path with no dot-segment or encoded separator (so that the route matched,
//! and authorised, is the resource the backend serves), then method and path to a route, then
//! the stage's deployment (stable or canary) and the stage variables it brings.

use std::sync::Arc;

use crate::auth::Identity;
use crate::canary;
use crate::errors::GatewayError;
use crate::metrics::{RequestLabels, RouteMetrics};
use crate::request_ctx::{RequestCtx, RouteCtx};
use crate::request_path;
use crate::router::RouteMatch;
use crate::state::Shared;

/// The HTTP API route for requests no other route takes.
const DEFAULT_ROUTE: &str = "$default";

/// The request's route (on an HTTP API, its `$default` route when no other matches), or 403
/// `Missing Authentication Token` as Amazon answers an unknown resource (404 on an HTTP API:
/// the pipeline says it as an HTTP API does). The caller is `anonymous` until the auth phase says otherwise.
pub fn find<'a>(
    ctx: &'a RequestCtx<'a>,
    anonymous: Arc<Identity>,
) -> Result<RouteCtx<'a>, GatewayError> {
    request_path::check(ctx.path())?;
    let router = &ctx.target.stage.router;
    let found = match router.find(&ctx.parts.method, ctx.path()) {
        Some(found) => found,
        // An HTTP API's `$default` route takes what no other route does.
        None => router
            .by_key(DEFAULT_ROUTE)
            .filter(|_| ctx.gateway().http_api)
            .map(|route| RouteMatch {
                route,
                params: Vec::new(),
            })
            .ok_or(GatewayError::MissingAuthenticationToken)?,
    };
    let (deployment, stage_variables) = canary::choose(ctx.stage(), &ctx.parts.headers);
    Ok(RouteCtx {
        request: ctx,
        route: found.route,
        params: found.params,
        deployment,
        stage_variables,
        identity: anonymous,
        binding: None,
    })
}

/// The route's metrics, resolved on its first request and kept with the route.
pub fn metrics(shared: &Shared, ctx: &RouteCtx<'_>) -> Arc<RouteMetrics> {
    ctx.route
        .metrics
        .get_or_init(|| {
            Arc::new(shared.metrics.route(
                &RequestLabels {
                    gateway: &ctx.target.gateway.name,
                    stage: &ctx.target.stage.name,
                    route: &ctx.route.key,
                },
                ctx.route_table().cache.is_some(),
            ))
        })
        .clone()
}
