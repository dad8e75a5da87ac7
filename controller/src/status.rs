//! The status each resource should have, computed from the compiler's output: Kubernetes
//! conditions (a transition time kept while the status value holds), observed generation,
//! and for gateways the invoke URLs and table version. Pure: the clock is an argument.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ObjectMeta;
use tollgate_crds::compile::{ConditionSpec, Diagnostic};
use tollgate_crds::resources::{
    ApiGatewayStatus, ProxyCounts, RouteStatus, StageStatus, UsagePlanStatus,
};
use tollgate_crds::table::{DEFAULT_STAGE, GatewayTable};

/// A status with conditions, so that statuses compare without their transition times.
pub trait WithConditions: Clone + PartialEq {
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

impl WithConditions for ApiGatewayStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

impl WithConditions for RouteStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

impl WithConditions for UsagePlanStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

/// Whether `desired` says something `current` does not (transition times aside).
pub fn differs<S: WithConditions>(current: Option<&S>, desired: &S) -> bool {
    let Some(current) = current else {
        return true;
    };
    let blank = |s: &S| {
        let mut s = s.clone();
        for c in s.conditions_mut() {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    blank(current) != blank(desired)
}

/// Stamps condition specs with the generation and a transition time: the previous one when
/// the condition's status did not change, `now` otherwise.
pub fn conditions(
    specs: impl IntoIterator<Item = ConditionSpec>,
    meta: &ObjectMeta,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    specs
        .into_iter()
        .map(|spec| {
            let status = if spec.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == spec.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: spec.type_.to_owned(),
                status: status.to_owned(),
                reason: spec.reason,
                message: spec.message,
                observed_generation: meta.generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The invoke URL of a gateway's stage: `http://{gateway}.{namespace}.{base domain}/{stage}`,
/// `ws://` for a WebSocket API (Amazon's `wss://` URL: TLS comes with a custom domain), and
/// `http://{gateway}.{namespace}.{base domain}/` for an HTTP API's `$default` stage.
pub fn invoke_url(table: &GatewayTable, base_domain: &str, stage: &str) -> String {
    let scheme = if table.websocket.is_some() {
        "ws"
    } else {
        "http"
    };
    // An HTTP API's `$default` stage has no segment of its own.
    let stage = if stage == DEFAULT_STAGE { "" } else { stage };
    format!(
        "{scheme}://{}.{}.{base_domain}/{stage}",
        table.gateway.name, table.gateway.namespace
    )
}

/// A WebSocket API stage's `@connections` URL, which backends post to (Amazon's connection
/// URL); `None` for a REST API.
pub fn connection_url(table: &GatewayTable, base_domain: &str, stage: &str) -> Option<String> {
    table.websocket.as_ref()?;
    Some(format!(
        "http://{}.{}.{base_domain}/{stage}/@connections",
        table.gateway.name, table.gateway.namespace
    ))
}

/// An ApiGateway's status: `Accepted` and `ResolvedRefs` from the compiler, `Programmed` when
/// it has a table; invoke URLs and version of the table; `proxies` from the snapshot service.
///
/// `Ready` is True when the gateway is Accepted and Programmed and every connected proxy runs
/// the current table (`proxies.current == proxies.connected`). With no proxy connected, Ready
/// is Accepted and Programmed alone: a gateway nobody serves yet (or served by standalone
/// proxies, which do not report) is ready to be served.
///
/// With several replicas, `proxies` are every replica's subscribers: the leader adds the other
/// replicas' published counts to its own ([`crate::replicas`]).
pub fn gateway(
    meta: &ObjectMeta,
    previous: Option<&ApiGatewayStatus>,
    diagnostic: &Diagnostic,
    table: Option<&GatewayTable>,
    proxies: ProxyCounts,
    base_domain: &str,
    now: Timestamp,
) -> ApiGatewayStatus {
    let mut specs = diagnostic.conditions();
    specs.push(match table {
        Some(t) => spec(
            "Programmed",
            true,
            "Programmed",
            format!("table {} compiled", t.version),
        ),
        None => spec(
            "Programmed",
            false,
            "NotAccepted",
            "the gateway has no table: see the Accepted condition",
        ),
    });
    let programmed = diagnostic.accepted && table.is_some();
    let fleet_current = proxies.current >= proxies.connected;
    specs.push(match (programmed, fleet_current) {
        (true, true) if proxies.connected == 0 => {
            spec("Ready", true, "Ready", "accepted and programmed")
        }
        (true, true) => spec(
            "Ready",
            true,
            "Ready",
            format!(
                "accepted and programmed; all {} connected proxies run the current table",
                proxies.connected
            ),
        ),
        (true, false) => spec(
            "Ready",
            false,
            "ProxiesNotCurrent",
            format!(
                "{} of {} connected proxies run the current table",
                proxies.current, proxies.connected
            ),
        ),
        (false, _) => spec(
            "Ready",
            false,
            "NotReady",
            "the gateway is not accepted and programmed",
        ),
    });
    let stages: Vec<StageStatus> = table
        .map(|t| {
            t.stages
                .iter()
                .map(|s| StageStatus {
                    name: s.name.clone(),
                    invoke_url: invoke_url(t, base_domain, &s.name),
                    connection_url: connection_url(t, base_domain, &s.name),
                })
                .collect()
        })
        .unwrap_or_default();
    let previous_conditions = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    ApiGatewayStatus {
        conditions: conditions(specs, meta, previous_conditions, now),
        observed_generation: meta.generation,
        invoke_url: stages.first().map(|s| s.invoke_url.clone()),
        stages,
        table_version: table.map(|t| t.version.clone()),
        proxies: Some(proxies),
    }
}

/// A Route's status: `Accepted`, `ResolvedRefs` and `Conflicted`.
pub fn route(
    meta: &ObjectMeta,
    previous: Option<&RouteStatus>,
    diagnostic: &Diagnostic,
    now: Timestamp,
) -> RouteStatus {
    let previous_conditions = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    RouteStatus {
        conditions: conditions(diagnostic.conditions(), meta, previous_conditions, now),
        observed_generation: meta.generation,
    }
}

/// A UsagePlan's status: `Accepted`, `ResolvedRefs` and the number of keys bound.
pub fn usage_plan(
    meta: &ObjectMeta,
    previous: Option<&UsagePlanStatus>,
    diagnostic: &Diagnostic,
    now: Timestamp,
) -> UsagePlanStatus {
    let previous_conditions = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    UsagePlanStatus {
        conditions: conditions(diagnostic.conditions(), meta, previous_conditions, now),
        observed_generation: meta.generation,
        keys_bound: diagnostic.keys_bound,
        // The diagnostic names a left-out key only in its message; left empty for now.
        unbound_keys: Default::default(),
        // Written apart, by crate::usage::status, with its own field manager.
        usage: None,
    }
}

fn spec(
    type_: &'static str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
) -> ConditionSpec {
    ConditionSpec {
        type_,
        status,
        reason: reason.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use tollgate_crds::compile::{Kind, Reason, ResourceRef};
    use tollgate_crds::table::ObjectKey;

    use super::*;

    fn meta(generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some("pets".into()),
            namespace: Some("default".into()),
            generation: Some(generation),
            ..Default::default()
        }
    }

    fn diagnostic() -> Diagnostic {
        Diagnostic::accepted(ResourceRef {
            kind: Kind::Route,
            key: ObjectKey::new("default", "pets"),
        })
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("a valid timestamp")
    }

    #[test]
    fn invoke_urls_by_kind_of_api() {
        let compiled = tollgate_crds::compile::compile_str(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: pets}\n\
             spec: {protocol: HTTP, stages: [{name: $default}, {name: beta}]}\n---\n\
             apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: chat}\n\
             spec: {protocol: WEBSOCKET, stages: [{name: prod}]}\n",
            "test",
        )
        .expect("loads");
        let table = |name: &str| &compiled.tables[&ObjectKey::new("default", name)];
        let url = |name: &str, stage: &str| invoke_url(table(name), "example.com", stage);
        assert_eq!(url("pets", "$default"), "http://pets.default.example.com/");
        assert_eq!(url("pets", "beta"), "http://pets.default.example.com/beta");
        assert_eq!(url("chat", "prod"), "ws://chat.default.example.com/prod");
        assert_eq!(
            connection_url(table("chat"), "example.com", "prod").as_deref(),
            Some("http://chat.default.example.com/prod/@connections")
        );
        assert_eq!(connection_url(table("pets"), "example.com", "beta"), None);
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let first = route(&meta(1), None, &diagnostic(), at(100));
        let again = route(&meta(2), Some(&first), &diagnostic(), at(200));
        let accepted = |s: &RouteStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Accepted")
                .cloned()
                .expect("Accepted")
        };
        assert_eq!(accepted(&again).last_transition_time, Time(at(100)));
        assert_eq!(accepted(&again).observed_generation, Some(2));

        let mut rejected = diagnostic();
        rejected.reject(Reason::InvalidPath, "spec.path", "duplicate parameter");
        let changed = route(&meta(3), Some(&again), &rejected, at(300));
        assert_eq!(accepted(&changed).status, "False");
        assert_eq!(accepted(&changed).last_transition_time, Time(at(300)));
    }

    #[test]
    fn ready_waits_for_every_connected_proxy() {
        let compiled = tollgate_crds::compile::compile_str(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello, namespace: default}\nspec: {stages: [{name: dev}]}\n",
            "t",
        )
        .unwrap();
        let key = ObjectKey::new("default", "hello");
        let diag = compiled.diagnostic(Kind::ApiGateway, &key).unwrap();
        let table = compiled.tables.get(&key);
        let ready = |current, connected| {
            let proxies = ProxyCounts { current, connected };
            let status = gateway(
                &meta(1),
                None,
                diag,
                table,
                proxies.clone(),
                "localhost",
                at(1),
            );
            assert_eq!(status.proxies, Some(proxies));
            let c = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap();
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(ready(0, 0), ("True".into(), "Ready".into()));
        assert_eq!(ready(2, 2), ("True".into(), "Ready".into()));
        assert_eq!(ready(1, 2), ("False".into(), "ProxiesNotCurrent".into()));
        let none = gateway(
            &meta(1),
            None,
            diag,
            None,
            ProxyCounts::default(),
            "localhost",
            at(1),
        );
        let c = none.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(c.status, "False");
    }

    #[test]
    fn statuses_compare_without_transition_times() {
        let first = route(&meta(1), None, &diagnostic(), at(100));
        let mut later = first.clone();
        for c in &mut later.conditions {
            c.last_transition_time = Time(at(999));
        }
        assert!(!differs(Some(&first), &later));
        assert!(differs(None, &later));
        let newer = route(&meta(2), Some(&first), &diagnostic(), at(100));
        assert!(differs(Some(&first), &newer));
    }
}
