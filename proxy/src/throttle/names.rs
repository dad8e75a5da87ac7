//! The names of throttle buckets and quota counters, made here and nowhere else. They key the
//! local counters and, prefixed `tollgate:`, the Redis keys the whole fleet shares: they are a
//! wire format, and changing one resets every counter named with it.
//!
//! - `g|{namespace}/{gateway}`: the gateway-wide bucket;
//! - `r|{namespace}/{gateway}|{stage}|{route key}`: a route's bucket on a stage;
//! - `k|{namespace}/{plan}|{tenant}`: a key's bucket under its plan, and
//!   `k|{namespace}/{plan}|{tenant}|{gateway}|{stage}|{route key}` for a plan's per-route
//!   override;
//! - `q|{namespace}/{plan}|{tenant}|{period start, Unix seconds}`: a key's quota in one period;
//! - `u|{namespace}/{plan}|{YYYY-MM-DD}`: a plan's usage of one UTC day, a Redis hash of
//!   requests per key id, named by `tollgate_crds::usage::redis_key` (the controller reads it).
//!
//! In Redis they are prefixed `tollgate:`, and on a Redis Cluster grouped by a hash tag
//! ([`redis_key`]).

use std::sync::Arc;

use tollgate_crds::table::ObjectKey;

pub fn gateway_bucket(gateway: &ObjectKey) -> Arc<str> {
    Arc::from(format!("g|{gateway}"))
}

pub fn route_bucket(gateway: &ObjectKey, stage: &str, route_key: &str) -> Arc<str> {
    Arc::from(format!("r|{gateway}|{stage}|{route_key}"))
}

/// The cluster group (hash tag) of a gateway's counters, from its bucket's name: `ns/gateway`.
pub fn gateway_group(gateway_bucket: &str) -> &str {
    gateway_bucket.strip_prefix("g|").unwrap_or(gateway_bucket)
}

/// Who a key's counters belong to: the plan (namespaced with its gateway) and the tenant.
pub fn key_owner(namespace: &str, plan: &str, tenant: &str) -> String {
    format!("{namespace}/{plan}|{tenant}")
}

pub fn key_bucket(owner: &str) -> Arc<str> {
    Arc::from(format!("k|{owner}"))
}

/// A key's bucket for one route, from the plan's per-route override: the route's own bucket
/// name, under the key's owner.
pub fn key_route_bucket(owner: &str, route_bucket: &str) -> Arc<str> {
    let route = route_bucket.strip_prefix("r|").unwrap_or(route_bucket);
    Arc::from(format!("k|{owner}|{route}"))
}

pub fn quota_counter(owner: &str, period_start: jiff::Timestamp) -> String {
    format!("q|{owner}|{}", period_start.as_second())
}

/// The Redis key of a counter named `name`. On one server (or Sentinel's primary):
/// `tollgate:{name}`. On a Redis Cluster the counter's group is the hash tag, so that what one
/// admission call touches is in one slot while groups spread over the cluster:
/// `tollgate:{{group}}:{name}`, the group being a key's owner (`ns/plan|tenant`: its buckets
/// and quota) or a gateway (`ns/gateway`: its route buckets and its own).
pub fn redis_key(name: &str, cluster_group: Option<&str>) -> String {
    match cluster_group {
        None => format!("tollgate:{name}"),
        Some(group) => format!("tollgate:{{{group}}}:{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_fleets_shared_keys() {
        let gw = ObjectKey::new("default", "pets");
        let route = route_bucket(&gw, "dev", "GET /pets");
        assert_eq!(&*gateway_bucket(&gw), "g|default/pets");
        assert_eq!(gateway_group(&gateway_bucket(&gw)), "default/pets");
        assert_eq!(&*route, "r|default/pets|dev|GET /pets");
        let owner = key_owner("default", "gold", "alice");
        assert_eq!(&*key_bucket(&owner), "k|default/gold|alice");
        assert_eq!(
            &*key_route_bucket(&owner, &route),
            "k|default/gold|alice|default/pets|dev|GET /pets"
        );
        let start = jiff::Timestamp::from_second(1_795_478_400).unwrap();
        assert_eq!(
            quota_counter(&owner, start),
            "q|default/gold|alice|1795478400"
        );
    }

    #[test]
    fn on_a_cluster_a_keys_counters_share_a_tag_and_a_gateways_theirs() {
        let owner = key_owner("default", "gold", "alice");
        assert_eq!(
            redis_key("k|default/gold|alice", None),
            "tollgate:k|default/gold|alice"
        );
        assert_eq!(
            redis_key("k|default/gold|alice", Some(&owner)),
            "tollgate:{default/gold|alice}:k|default/gold|alice"
        );
        // A route key's own braces come after the tag, so they do not change the slot.
        assert_eq!(
            redis_key("r|default/pets|dev|GET /pets/{petId}", Some("default/pets")),
            "tollgate:{default/pets}:r|default/pets|dev|GET /pets/{petId}"
        );
    }
}
