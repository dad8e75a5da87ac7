//! Tollgate's data plane. The request path reads top to bottom in [`pipeline`].

pub mod access_log;
pub mod admin;
pub mod api_key;
pub mod args;
pub mod auth;
pub mod body;
pub mod canary;
pub mod client;
pub mod connections;
pub mod cors;
pub mod dispatch;
pub mod errors;
pub mod fleet;
pub mod head;
pub mod install;
pub mod integration;
pub mod metrics;
pub mod pipeline;
pub mod resource_policy;
pub mod router;
pub mod server;
pub mod standalone;
pub mod template;
pub mod throttle;
pub mod tls;
pub mod transport;
