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
use crate::state::Shared;

/// The request's route, or 403 `Missing Authentication Token` as Amazon answers an unknown
/// resource. The caller is `anonymous` until the auth phase says otherwise.
pub fn find<'a>(
    ctx: &'a RequestCtx<'a>,
    anonymous: Arc<Identity>,
) -> Result<RouteCtx<'a>, GatewayError> {
    request_path::check(ctx.path())?;
    let found = ctx
        .target
        .stage
        .router
        .find(&ctx.parts.method, ctx.path())
        .ok_or(GatewayError::MissingAuthenticationToken)?;
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
            Arc::new(shared.metrics.route(&RequestLabels {
                gateway: &ctx.target.gateway.name,
                stage: &ctx.target.stage.name,
                route: &ctx.route.key,
            }))
        })
        .clone()
}
