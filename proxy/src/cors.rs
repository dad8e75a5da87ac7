//! CORS per gateway: preflight answers and the headers on every other response.

use hyper::{HeaderMap, Method, Response};
use tollgate_crds::table::CorsTable;

use crate::body::Body;

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`), or `None` when the request is not one.
pub fn preflight(
    _cors: &CorsTable,
    _method: &Method,
    _headers: &HeaderMap,
) -> Option<Response<Body>> {
    None
}

/// Adds the CORS response headers for the request's `Origin`, when it is allowed.
pub fn decorate(_cors: &CorsTable, _request_headers: &HeaderMap, _response: &mut Response<Body>) {}
