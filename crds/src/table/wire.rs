//! The small enums and settings of the table format. They spell what the resources spell, but
//! they are the table's own types: the tables are a wire format between controller and
//! proxies of different versions, so a change to a CRD's Rust type (a new variant, a renamed
//! field, a schema attribute) must not change the tables unnoticed. Each converts from its
//! resource counterpart in one place, here; a resource variant the table lacks fails to
//! compile.

use serde::{Deserialize, Serialize};

use crate::resources;

/// Defines a unit-variant enum of the table and its conversion from the resource's enum of
/// the same variants.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<resources::$name> for $name {
            fn from(value: resources::$name) -> Self {
                match value {
                    $(resources::$name::$variant => Self::$variant),+
                }
            }
        }
    };
}

wire_enum! {
    /// An HTTP method a route answers, or `ANY` for all of them.
    #[allow(clippy::upper_case_acronyms)]
    HttpMethod { GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY }
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

wire_enum! {
    /// Where an API is reachable from.
    EndpointType { Edge, Regional, Private }
}

wire_enum! {
    /// Where the proxy reads API keys from.
    #[allow(clippy::upper_case_acronyms)]
    ApiKeySource { HEADER, AUTHORIZER }
}

wire_enum! {
    /// What kind of authorizer decides.
    #[allow(clippy::upper_case_acronyms)]
    AuthorizerType {
        JWT,
        TOKEN,
        REQUEST,
        #[serde(rename = "AWS_IAM")]
        AwsIam,
        #[serde(rename = "KUBERNETES")]
        Kubernetes,
    }
}

wire_enum! {
    /// The Lambda proxy event format.
    PayloadFormatVersion {
        #[serde(rename = "1.0")]
        V1,
        #[serde(rename = "2.0")]
        V2,
    }
}

wire_enum! {
    /// A quota period.
    #[allow(clippy::upper_case_acronyms)]
    QuotaPeriod { DAY, WEEK, MONTH }
}

wire_enum! {
    /// Where throttle and quota counters are kept.
    RateLimitMode { Local, Redis }
}

wire_enum! {
    /// What the proxy does while Redis is unreachable.
    RedisFailureMode { FailOpen, FailClosed, Local }
}

wire_enum! {
    /// The lowest TLS version a domain accepts.
    #[allow(non_camel_case_types)]
    TlsPolicy { TLS_1_2, TLS_1_3 }
}

/// A token-bucket throttle: a steady rate (requests per second; 0 blocks every request) and
/// the burst the bucket may hold.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleSettings {
    pub rate_limit: f64,
    pub burst_limit: u32,
}

impl From<resources::ThrottleSettings> for ThrottleSettings {
    fn from(value: resources::ThrottleSettings) -> Self {
        Self {
            rate_limit: value.rate_limit,
            burst_limit: value.burst_limit,
        }
    }
}
