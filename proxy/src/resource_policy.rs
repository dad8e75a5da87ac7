//! The gateway's resource policy: which source addresses may call it.

use std::net::IpAddr;

use hyper::HeaderMap;
use tollgate_crds::resources::EndpointType;
use tollgate_crds::table::ResourcePolicyTable;

use crate::errors::GatewayError;

/// A policy with its CIDRs parsed, built once per table.
#[derive(Debug, Default)]
pub struct Policy {}

impl Policy {
    pub fn build(_table: Option<&ResourcePolicyTable>, _endpoint_type: EndpointType) -> Self {
        Self {}
    }

    /// The client's address: the peer's, or the one `X-Forwarded-For` names when the peer is a
    /// trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, _headers: &HeaderMap) -> IpAddr {
        peer
    }

    /// Refuses a client the policy does not admit.
    pub fn check(&self, _client: IpAddr) -> Result<(), GatewayError> {
        Ok(())
    }
}
