//! What the compiler says about each resource: accepted or not, and every problem with the
//! field it concerns. The controller turns these into status conditions and events; standalone
//! mode logs them.

use serde::{Deserialize, Serialize};

use crate::table::ObjectKey;

/// The kind of a resource the compiler reports on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ApiGateway,
    Route,
    UsagePlan,
}

/// A resource the compiler reports on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub kind: Kind,
    #[serde(flatten)]
    pub key: ObjectKey,
}

/// Why something about a resource is wrong. The names are the condition reasons.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    GatewayNotFound,
    GatewayNotAccepted,
    StageNotFound,
    AuthorizerNotFound,
    RouteNotFound,
    SecretNotFound,
    ConfigMapNotFound,
    ServiceNotFound,
    ServicePortNotFound,
    InvalidPath,
    InvalidIntegration,
    InvalidAuthorizer,
    InvalidStage,
    InvalidDomain,
    InvalidSecret,
    InvalidConfigMap,
    InvalidApiKey,
    InvalidPolicy,
    InvalidThrottle,
    InvalidSelector,
    Duplicate,
    KeyAlreadyBound,
    RouteConflict,
    NoStages,
    StageVariableNotFound,
    /// A route with the other kind of API's fields (a route key on a REST API, a method and
    /// path on a WebSocket API).
    ProtocolMismatch,
    InvalidRouteKey,
    InvalidWebSocket,
    /// A parameter-mapping key or value that is malformed, reserved or reads what the route
    /// does not have.
    InvalidMapping,
    /// A model that is not a valid JSON Schema (draft 4), or refers to one that is not.
    InvalidModel,
    /// A route's `requestModels` names a model the gateway does not have (or not a valid one).
    ModelNotFound,
    /// A route's `requestValidator` names a validator the gateway does not have.
    RequestValidatorNotFound,
    /// A malformed `method.request.*` key in a route's `requestParameters`.
    InvalidRequestParameter,
    /// A gateway response of an unknown type, or with a header or template that is wrong.
    InvalidGatewayResponse,
    /// A mapping template that does not parse, a selection pattern that is not a regular
    /// expression, or an integration response header that is wrong.
    InvalidTemplate,
    /// A route's `cache` with a time to live out of range or a key parameter that is wrong.
    InvalidRouteCache,
    /// Redis settings that cannot work: a URL that is not one, TLS material for plain-text
    /// addresses, nodes that mix `redis://` and `rediss://`, or a credentials Secret without
    /// a password.
    InvalidRedis,
}

impl Reason {
    /// Whether the problem is a reference that does not resolve (the `ResolvedRefs`
    /// condition) rather than an invalid value.
    pub fn is_unresolved_ref(self) -> bool {
        matches!(
            self,
            Self::GatewayNotFound
                | Self::StageNotFound
                | Self::AuthorizerNotFound
                | Self::RouteNotFound
                | Self::SecretNotFound
                | Self::ConfigMapNotFound
                | Self::ServiceNotFound
                | Self::ServicePortNotFound
                | Self::StageVariableNotFound
                | Self::ModelNotFound
                | Self::RequestValidatorNotFound
        )
    }
}

/// What a problem did to the resource.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// The whole resource is left out of every table.
    Rejected,
    /// Only the part at `field` is left out; the rest is served.
    Skipped,
    /// Nothing is left out: the resource is served as written, which is probably not what
    /// was meant (a stage variable defined in no stage renders empty).
    Warned,
}

/// One problem with a resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub reason: Reason,
    pub effect: Effect,
    /// Path of the field at fault, as `kubectl explain` spells it: `spec.stages[1].name`.
    pub field: String,
    /// What is wrong and what to change.
    pub message: String,
}

/// The compiler's verdict on one resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub resource: ResourceRef,
    pub accepted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// For usage plans: how many keys are bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_bound: Option<u32>,
}

/// A condition derived from a diagnostic, before the controller stamps it with a generation
/// and a transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSpec {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Diagnostic {
    pub fn accepted(resource: ResourceRef) -> Self {
        Self {
            resource,
            accepted: true,
            problems: Vec::new(),
            keys_bound: None,
        }
    }

    /// Records a problem; a `Rejected` one un-accepts the resource.
    pub fn push(
        &mut self,
        reason: Reason,
        effect: Effect,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        if effect == Effect::Rejected {
            self.accepted = false;
        }
        self.problems.push(Problem {
            reason,
            effect,
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn reject(&mut self, reason: Reason, field: impl Into<String>, message: impl Into<String>) {
        self.push(reason, Effect::Rejected, field, message);
    }

    pub fn skip(&mut self, reason: Reason, field: impl Into<String>, message: impl Into<String>) {
        self.push(reason, Effect::Skipped, field, message);
    }

    pub fn warn(&mut self, reason: Reason, field: impl Into<String>, message: impl Into<String>) {
        self.push(reason, Effect::Warned, field, message);
    }

    /// The `Accepted`, `ResolvedRefs` and (for routes) `Conflicted` conditions.
    pub fn conditions(&self) -> Vec<ConditionSpec> {
        let describe = |problems: &[&Problem]| {
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut conditions = Vec::new();

        let rejections: Vec<&Problem> = self
            .problems
            .iter()
            .filter(|p| p.effect == Effect::Rejected)
            .collect();
        // Parts left out of an accepted resource (a domain whose certificate is bad, a stage
        // defined twice) are said in its Accepted message: no other condition shows them.
        let skipped: Vec<&Problem> = self
            .problems
            .iter()
            .filter(|p| p.effect == Effect::Skipped)
            .collect();
        conditions.push(match rejections.first() {
            None if skipped.is_empty() => ConditionSpec {
                type_: "Accepted",
                status: true,
                reason: "Accepted".into(),
                message: "the resource is valid and compiled".into(),
            },
            None => ConditionSpec {
                type_: "Accepted",
                status: true,
                reason: "Accepted".into(),
                message: format!(
                    "the resource is compiled without these parts: {}",
                    describe(&skipped)
                ),
            },
            Some(first) => ConditionSpec {
                type_: "Accepted",
                status: false,
                reason: format!("{:?}", first.reason),
                message: describe(&rejections),
            },
        });

        let unresolved: Vec<&Problem> = self
            .problems
            .iter()
            .filter(|p| p.reason.is_unresolved_ref())
            .collect();
        conditions.push(match unresolved.first() {
            None => ConditionSpec {
                type_: "ResolvedRefs",
                status: true,
                reason: "ResolvedRefs".into(),
                message: "every reference resolves".into(),
            },
            Some(first) => ConditionSpec {
                type_: "ResolvedRefs",
                status: false,
                reason: format!("{:?}", first.reason),
                message: describe(&unresolved),
            },
        });

        if self.resource.kind == Kind::Route {
            let conflicts: Vec<&Problem> = self
                .problems
                .iter()
                .filter(|p| p.reason == Reason::RouteConflict)
                .collect();
            conditions.push(ConditionSpec {
                type_: "Conflicted",
                status: !conflicts.is_empty(),
                reason: if conflicts.is_empty() {
                    "NoConflicts".into()
                } else {
                    "RouteConflict".into()
                },
                message: if conflicts.is_empty() {
                    "no other route has the same method and path".into()
                } else {
                    describe(&conflicts)
                },
            });
        }
        conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Diagnostic {
        Diagnostic::accepted(ResourceRef {
            kind: Kind::Route,
            key: ObjectKey::new("default", "pets"),
        })
    }

    fn condition(d: &Diagnostic, type_: &str) -> ConditionSpec {
        d.conditions()
            .into_iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn an_accepted_resource_names_the_parts_left_out() {
        let mut d = route();
        d.skip(
            Reason::InvalidSecret,
            "spec.domains[1].certificateSecretRef.name",
            "Secret default/x key tls.key holds no private key",
        );
        let accepted = condition(&d, "Accepted");
        assert!(accepted.status);
        assert_eq!(
            accepted.message,
            "the resource is compiled without these parts: spec.domains[1].certificateSecretRef.name: Secret default/x key tls.key holds no private key"
        );
        assert!(condition(&d, "ResolvedRefs").status);
    }

    #[test]
    fn an_accepted_route_has_three_true_or_false_conditions() {
        let d = route();
        assert!(condition(&d, "Accepted").status);
        assert!(condition(&d, "ResolvedRefs").status);
        assert!(!condition(&d, "Conflicted").status);
    }

    #[test]
    fn a_missing_reference_rejects_and_names_the_field() {
        let mut d = route();
        d.reject(
            Reason::ServiceNotFound,
            "spec.integration.http.service.name",
            "Service default/x does not exist",
        );
        let accepted = condition(&d, "Accepted");
        assert!(!accepted.status);
        assert_eq!(accepted.reason, "ServiceNotFound");
        assert_eq!(
            accepted.message,
            "spec.integration.http.service.name: Service default/x does not exist"
        );
        assert!(!condition(&d, "ResolvedRefs").status);
    }

    #[test]
    fn a_conflict_on_some_stages_keeps_the_route_accepted() {
        let mut d = route();
        d.skip(
            Reason::RouteConflict,
            "spec.path",
            "on stage \"prod\", Route default/old already serves GET /pets",
        );
        assert!(d.accepted);
        assert!(condition(&d, "Accepted").status);
        assert!(condition(&d, "Conflicted").status);
        assert!(condition(&d, "ResolvedRefs").status);
    }

    #[test]
    fn a_warning_keeps_the_route_accepted_and_shows_in_resolved_refs() {
        let mut d = route();
        d.warn(
            Reason::StageVariableNotFound,
            "spec.integration.mock.body",
            "${stageVariables.greting} is defined in no stage",
        );
        assert!(d.accepted);
        let accepted = condition(&d, "Accepted");
        assert!(accepted.status);
        assert_eq!(accepted.message, "the resource is valid and compiled");
        let refs = condition(&d, "ResolvedRefs");
        assert!(!refs.status);
        assert_eq!(refs.reason, "StageVariableNotFound");
    }
}
