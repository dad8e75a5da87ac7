//! `AWS_IAM` authorizers: the caller signs the request with SigV4 (service `execute-api`) with
//! an access key of the authorizer's ([`sigv4::verify`], the same check as the `@connections`
//! API's); then the authorizer's statements decide whether that caller may invoke this
//! method ARN, an explicit `Deny` winning over any `Allow`, as IAM evaluates a policy.
//!
//! The signature covers the body, so the pipeline reads the body whole before this phase on
//! routes with such an authorizer. The caller reaches the integration as Amazon passes an IAM
//! caller: `requestContext.identity` (`accessKey`, `user`, `userArn`, `caller`, `accountId`)
//! in payload 1.0, `requestContext.authorizer.iam` in 2.0, `x-authorizer-principal-id` (the
//! user ARN) to an HTTP backend.

use std::sync::Arc;

use tollgate_crds::table::IamTable;

use super::Identity;
use super::custom::{arn_matches, method_arn};
use super::identity::IamCaller;
use crate::errors::GatewayError;
use crate::lambda::event::ACCOUNT_ID;
use crate::request_ctx::RouteCtx;
use crate::sigv4::{self, SignedRequest};

/// Verifies the signature over the request and `body`, then the statements.
pub fn authorize(
    iam: &IamTable,
    ctx: &RouteCtx<'_>,
    body: &[u8],
) -> Result<Arc<Identity>, GatewayError> {
    let headers = sigv4::headers_with_host(ctx.parts);
    let signed = SignedRequest {
        method: &ctx.parts.method,
        raw_path: ctx.raw_path(),
        raw_query: ctx.query,
        headers: &headers,
        payload: body,
    };
    let find = |key: &str| iam.credentials.iter().find(|c| c.access_key_id == key);
    let signer =
        sigv4::verify(&signed, jiff::Timestamp::now(), "execute-api", find).map_err(|e| {
            GatewayError::AccessRefused {
                message: e.to_string(),
                error_type: e.error_type(),
            }
        })?;
    // The key's Secret names the caller.
    let user = signer.source.name.as_str();
    let caller = IamCaller {
        access_key: signer.access_key_id.clone(),
        user: user.to_string(),
        user_arn: format!("arn:aws:iam::{ACCOUNT_ID}:user/{user}"),
    };

    let arn = method_arn(
        &ctx.gateway().gateway.name,
        &ctx.stage().name,
        &ctx.parts.method,
        ctx.path(),
    );
    match decide(iam, user, &arn) {
        Some(true) => Ok(Arc::new(Identity::signed_by(caller))),
        decision => Err(GatewayError::AccessRefused {
            message: format!(
                "User: {} is not authorized to perform: execute-api:Invoke on resource: {arn}{}",
                caller.user_arn,
                if decision == Some(false) {
                    " with an explicit deny"
                } else {
                    ""
                }
            ),
            error_type: "AccessDeniedException",
        }),
    }
}

/// `Some(true)` when a statement allows `user` to invoke `arn` and none denies it,
/// `Some(false)` when one denies it, `None` when none speaks of it.
fn decide(iam: &IamTable, user: &str, arn: &str) -> Option<bool> {
    let mut decision = None;
    for statement in &iam.statements {
        let about_user = statement.principals.iter().any(|p| p == "*" || p == user);
        let about_arn = statement
            .resources
            .iter()
            .any(|r| r == "*" || arn_matches(r, arn));
        if about_user && about_arn {
            if !statement.allow {
                return Some(false);
            }
            decision = Some(true);
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use tollgate_crds::table::IamStatementTable;

    use super::*;

    fn statement(allow: bool, principals: &[&str], resources: &[&str]) -> IamStatementTable {
        IamStatementTable {
            allow,
            principals: principals.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_deny_wins_and_silence_refuses() {
        let iam = IamTable {
            credentials: Vec::new(),
            statements: vec![
                statement(true, &["*"], &["arn:aws:execute-api:*:*:shop/prod/GET/*"]),
                statement(
                    false,
                    &["intern"],
                    &["arn:aws:execute-api:*:*:shop/prod/GET/admin/*"],
                ),
                statement(true, &["ops"], &["*"]),
            ],
        };
        let arn = |path: &str| format!("arn:aws:execute-api:local:tollgate:shop/prod/{path}");
        assert_eq!(decide(&iam, "intern", &arn("GET/orders")), Some(true));
        assert_eq!(decide(&iam, "intern", &arn("GET/admin/users")), Some(false));
        assert_eq!(decide(&iam, "intern", &arn("POST/orders")), None);
        assert_eq!(decide(&iam, "ops", &arn("POST/orders")), Some(true));
    }
}
