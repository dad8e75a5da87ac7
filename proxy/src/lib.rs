//! Tollgate's data plane. The request path reads top to bottom in [`pipeline`].

// The request path's futures nest deeply (a connection, TLS, the pipeline, a Redis Cluster
// call inside it): their Send checks need more than the default 128 levels.
#![recursion_limit = "256"]

pub mod access_log;
pub mod admin;
pub mod api_key;
pub mod args;
pub mod auth;
pub mod aws_signer;
pub mod body;
pub mod cache;
pub mod canary;
pub mod client;
pub mod compression;
pub mod connections;
pub mod cors;
pub mod dispatch;
pub mod errors;
pub mod fleet;
pub mod gateway_response;
pub mod head;
pub mod install;
pub mod integration;
pub mod lambda;
pub mod managed;
pub mod mapping;
pub mod metrics;
pub mod outage;
pub mod pipeline;
pub mod relay;
pub mod request_body;
pub mod request_ctx;
pub mod request_log;
pub mod request_path;
pub mod request_trace;
pub mod request_validation;
pub mod resource_policy;
pub mod router;
pub mod server;
pub mod sigv4;
pub mod standalone;
pub mod state;
pub mod template;
pub mod throttle;
pub mod tls;
pub mod transport;
pub mod upstream;
pub mod warn_every;
pub mod websocket;
