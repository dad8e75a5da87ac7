//! Small types shared by the three resources.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A token-bucket throttle: a steady rate and the burst the bucket may hold.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleSettings {
    /// Steady-state requests per second. 0 blocks every request.
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub rate_limit: f64,
    /// Largest number of requests admitted at once (the bucket's capacity).
    #[schemars(range(min = 0, max = 1000000))]
    pub burst_limit: u32,
}

/// A reference to an object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the object, in the namespace of the resource that refers to it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// An HTTP method a route answers, or `ANY` for all of them.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum HttpMethod {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
    HEAD,
    OPTIONS,
    ANY,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GET => "GET",
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::PATCH => "PATCH",
            Self::DELETE => "DELETE",
            Self::HEAD => "HEAD",
            Self::OPTIONS => "OPTIONS",
            Self::ANY => "ANY",
        }
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
