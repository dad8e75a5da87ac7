//! Lambda proxy integration: the Amazon API Gateway proxy event (payload 1.0 and 2.0) POSTed
//! to the Lambda Invoke API, and the function's result turned into the HTTP response.

pub mod event;
mod invoke;
pub mod result;

pub use invoke::invoke;
