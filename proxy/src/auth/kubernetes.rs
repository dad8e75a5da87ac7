//! `KUBERNETES` authorizers: the caller's projected ServiceAccount token, verified as a JWT
//! against the cluster's service account issuer ([`jwt::verify`](super::jwt::verify): keys
//! fetched and cached, no API-server call per request), names a ServiceAccount; the route's
//! `serviceAccounts`, else the authorizer's `allow`, say whether it may call. An empty list
//! allows nobody.

use tollgate_crds::table::{AuthorizerTable, RouteTable};

use super::Identity;
use super::custom::method_arn;
use crate::errors::GatewayError;
use crate::request_ctx::RouteCtx;

/// Whether the verified token's ServiceAccount may call the route.
pub fn admit(
    identity: &Identity,
    table: &AuthorizerTable,
    ctx: &RouteCtx<'_>,
) -> Result<(), GatewayError> {
    let Some((namespace, name)) = service_account(identity) else {
        // A token of the issuer that names no ServiceAccount (a node's, say).
        return Err(refused("an unknown caller", ctx));
    };
    let allowed = allow_list(table, ctx.route_table())
        .iter()
        .any(|entry| matches(entry, &namespace, &name));
    if allowed {
        Ok(())
    } else {
        Err(refused(
            &format!("system:serviceaccount:{namespace}:{name}"),
            ctx,
        ))
    }
}

/// The route's own list, else the authorizer's.
fn allow_list<'a>(table: &'a AuthorizerTable, route: &'a RouteTable) -> &'a [String] {
    if route.service_accounts.is_empty() {
        &table.service_accounts
    } else {
        &route.service_accounts
    }
}

/// `namespace/name` or `namespace/*`.
fn matches(entry: &str, namespace: &str, name: &str) -> bool {
    match entry.split_once('/') {
        Some((ns, "*")) => ns == namespace,
        Some((ns, n)) => ns == namespace && n == name,
        None => false,
    }
}

/// The ServiceAccount a token names: its `kubernetes.io` claim, else its `sub`
/// (`system:serviceaccount:NAMESPACE:NAME`).
fn service_account(identity: &Identity) -> Option<(String, String)> {
    let claims = &identity.jwt.as_ref()?.claims;
    let k8s = claims.get("kubernetes.io");
    let from_claim = k8s.and_then(|k| {
        let namespace = k.get("namespace")?.as_str()?;
        let name = k.get("serviceaccount")?.get("name")?.as_str()?;
        Some((namespace.to_string(), name.to_string()))
    });
    from_claim.or_else(|| {
        let sub = claims.get("sub")?.as_str()?;
        let rest = sub.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        Some((namespace.to_string(), name.to_string()))
    })
}

fn refused(who: &str, ctx: &RouteCtx<'_>) -> GatewayError {
    let arn = method_arn(
        &ctx.gateway().gateway.name,
        &ctx.stage().name,
        &ctx.parts.method,
        ctx.path(),
    );
    GatewayError::AccessRefused {
        message: format!(
            "User: {who} is not authorized to perform: execute-api:Invoke on resource: {arn}"
        ),
        error_type: "AccessDeniedException",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::auth::identity::JwtIdentity;

    fn identity(claims: serde_json::Value) -> Identity {
        let claims: Map<String, serde_json::Value> = serde_json::from_value(claims).unwrap();
        Identity::new(
            None,
            Some(JwtIdentity {
                claims,
                scopes: Vec::new(),
            }),
            Map::new(),
            None,
        )
    }

    #[test]
    fn the_service_account_comes_from_the_kubernetes_claim_or_the_subject() {
        let projected = identity(json!({
            "sub": "system:serviceaccount:shop:checkout",
            "kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "checkout", "uid": "u"}},
        }));
        assert_eq!(
            service_account(&projected),
            Some(("shop".into(), "checkout".into()))
        );
        let legacy = identity(json!({"sub": "system:serviceaccount:billing:worker"}));
        assert_eq!(
            service_account(&legacy),
            Some(("billing".into(), "worker".into()))
        );
        assert_eq!(
            service_account(&identity(json!({"sub": "system:node:n1"}))),
            None
        );
    }

    #[test]
    fn entries_name_one_account_or_a_namespace() {
        assert!(matches("shop/checkout", "shop", "checkout"));
        assert!(!matches("shop/checkout", "shop", "cart"));
        assert!(matches("shop/*", "shop", "cart"));
        assert!(!matches("shop/*", "shopping", "cart"));
    }
}
