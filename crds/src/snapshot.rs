//! The controller-to-proxy snapshot protocol: the wire types both sides share.
//!
//! Over TLS and HTTP/2, with the proxy's ServiceAccount token as `Authorization: Bearer`:
//!
//! - `GET /v1/subscribe?gateway={namespace}/{name}` with header `x-tollgate-proxy-id` opens
//!   one long-lived stream. The response body is newline-delimited JSON: one
//!   [`SnapshotFrame`] per line, the first at once, then one each time the gateway's table
//!   version changes (or the fleet size does). A refused subscription is a plain HTTP error
//!   (401 bad token, 403 another gateway's token, 404 unknown gateway) with a
//!   `{"message": ...}` body.
//! - `POST /v1/ack` with an [`Ack`] body answers each frame: accepted (the proxy validated,
//!   swapped and persisted the table) or not, with the reason. 204 on receipt.
//!
//! A frame carries a full table (never a diff): a proxy that reconnects simply receives the
//! current table again. The version is the table's content hash, so every controller replica
//! sends the same version for the same resources.

use serde::{Deserialize, Serialize};

use crate::table::{GatewayTable, ObjectKey};

pub const SUBSCRIBE_PATH: &str = "/v1/subscribe";
pub const ACK_PATH: &str = "/v1/ack";
/// Identifies one proxy process across its subscription and its ACKs.
pub const PROXY_ID_HEADER: &str = "x-tollgate-proxy-id";
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// The audience of the ServiceAccount tokens proxies present: the controller's TokenReview
/// asks for it, so a token minted for the API server (or anyone else) is refused, and a
/// proxy's token is no use against the API server.
pub const TOKEN_AUDIENCE: &str = "tollgate.dev/snapshot";

/// The name of the ServiceAccount a gateway's proxies run as: its token may subscribe to that
/// gateway (same namespace) and no other.
pub fn proxy_service_account(gateway: &str) -> String {
    format!("tollgate-proxy-{gateway}")
}

/// One table pushed to a proxy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFrame {
    pub table: GatewayTable,
    /// How many proxies serve this gateway: in `Local` rate-limiting mode each enforces
    /// `1 / fleetSize` of every rate. At least 1.
    pub fleet_size: u32,
}

/// A proxy's answer to a frame.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub gateway: ObjectKey,
    pub proxy_id: String,
    /// The version of the table the answer is about.
    pub version: String,
    /// True: the proxy now serves this version. False: it refused it and keeps its previous
    /// table; `reason` says why.
    pub accepted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Checks a received table before it is served: the format this crate writes, and a version
/// that matches the content (a truncated or altered table is refused).
pub fn verify(table: &GatewayTable) -> Result<(), String> {
    if table.format != crate::table::TABLE_FORMAT {
        return Err(format!(
            "table format {} is not the supported {}",
            table.format,
            crate::table::TABLE_FORMAT
        ));
    }
    let hash = table.content_hash();
    if hash != table.version {
        return Err(format!(
            "table version {} does not match its content ({hash})",
            table.version
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile_str;

    fn table() -> GatewayTable {
        compile_str("apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec: {stages: [{name: dev}]}\n", "t")
            .unwrap()
            .tables
            .into_values()
            .next()
            .unwrap()
    }

    #[test]
    fn a_sealed_table_verifies_and_an_altered_one_does_not() {
        let t = table();
        assert!(verify(&t).is_ok());
        let mut altered = t.clone();
        altered.stages[0].name = "prod".into();
        assert!(verify(&altered).unwrap_err().contains("does not match"));
        let mut future = t;
        future.format = 99;
        assert!(verify(&future).unwrap_err().contains("format 99"));
    }

    #[test]
    fn frames_round_trip_as_one_json_line() {
        let frame = SnapshotFrame {
            table: table(),
            fleet_size: 3,
        };
        let line = serde_json::to_string(&frame).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<SnapshotFrame>(&line).unwrap(), frame);
    }
}
