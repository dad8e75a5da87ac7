//! The admin port: `/healthz`, `/readyz` (ready once a table is loaded), `/metrics`
//! (Prometheus text) and `/config` (table versions per gateway, the diagnostics and the route
//! conflicts).

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio::net::TcpListener;
use tollgate_crds::compile::{Diagnostic, RouteConflict};

use crate::body::{Body, full};
use crate::state::Shared;

/// What `/config` shows: where the tables came from and what was made of them.
#[derive(Serialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReport {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
    pub gateways: Vec<GatewayReport>,
    pub diagnostics: Vec<Diagnostic>,
    /// Routes that asked for a (stage, method, path) another route serves, with the route
    /// that serves it and why it won; also in `diagnostics` as `RouteConflict` problems.
    pub conflicts: Vec<RouteConflict>,
    /// Why the last load was refused, while the previous tables keep serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReport {
    pub gateway: String,
    pub version: String,
    pub stages: Vec<String>,
    pub routes: usize,
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, report: Arc<ArcSwap<ConfigReport>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        let report = report.clone();
        let service = service_fn(move |req| {
            let response = answer(&req, &shared, &report);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let _ = auto_builder()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn auto_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
}

fn answer<B>(req: &Request<B>, shared: &Shared, report: &ArcSwap<ConfigReport>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" if !shared.dispatch.load().is_empty() => {
            text(StatusCode::OK, "ready\n", "text/plain")
        }
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no table loaded\n",
            "text/plain",
        ),
        "/metrics" => text(
            StatusCode::OK,
            shared.metrics.render(),
            "text/plain; version=0.0.4",
        ),
        "/config" => {
            let body = serde_json::to_string_pretty(&**report.load()).unwrap_or_default();
            text(StatusCode::OK, body, "application/json")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}

fn text(
    status: StatusCode,
    body: impl Into<bytes::Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
