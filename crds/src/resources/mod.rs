//! The resources users apply: `ApiGateway`, `Route` and `UsagePlan` in `tollgate.dev/v1alpha1`.
//!
//! The doc comments here become the schema descriptions `kubectl explain` shows; the
//! `x-kubernetes-validations` rules are the CEL checks the API server runs on apply.

mod cache;
mod common;
mod gateway;
mod gateway_response;
mod redis;
mod route;
mod templates;
mod tracing;
mod usage_plan;
mod validation;

pub use cache::*;
pub use common::{HttpMethod, LocalRef, ThrottleSettings};
pub use gateway::*;
pub use gateway_response::*;
pub use redis::*;
pub use route::*;
pub use templates::*;
pub use tracing::*;
pub use usage_plan::*;
pub use validation::*;
