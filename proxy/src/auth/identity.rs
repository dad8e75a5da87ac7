//! The caller's identity as an authorizer established it, and the identity sources it came
//! from.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use tollgate_crds::table::AuthorizerTable;

use crate::lambda::event::parse_query;

/// Headers an HTTP backend gets from the authorizer start with this; the proxy removes any a
/// client sent, so a backend can trust them.
pub const HEADER_PREFIX: &str = "x-authorizer-";

/// Who the caller is. Empty when the route has no authorizer. Shared (`Arc`): a verified JWT's
/// identity is built once and reused by every request with that token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    /// The custom authorizer's `principalId`, or the JWT's `sub`.
    pub principal_id: Option<String>,
    /// A verified JWT's claims and its scopes.
    pub jwt: Option<JwtIdentity>,
    /// A custom authorizer's `context`: string, number and boolean values.
    pub context: Map<String, Value>,
    /// A custom authorizer's `usageIdentifierKey`: the API key when the gateway's
    /// `apiKeySource` is `AUTHORIZER`.
    pub usage_identifier_key: Option<String>,
    /// The signer of a request an `AWS_IAM` authorizer verified.
    pub iam: Option<IamCaller>,
    /// [`headers`](Self::headers), built on first use.
    headers: OnceLock<Vec<(HeaderName, HeaderValue)>>,
}

/// Who signed a request with SigV4, as Amazon's `requestContext.identity` names an IAM caller.
#[derive(Clone, Debug, PartialEq)]
pub struct IamCaller {
    pub access_key: String,
    /// The Secret holding the key: the IAM user's name.
    pub user: String,
    /// `arn:aws:iam::tollgate:user/{user}`.
    pub user_arn: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwtIdentity {
    pub claims: Map<String, Value>,
    pub scopes: Vec<String>,
}

impl Identity {
    pub fn new(
        principal_id: Option<String>,
        jwt: Option<JwtIdentity>,
        context: Map<String, Value>,
        usage_identifier_key: Option<String>,
    ) -> Self {
        Self {
            principal_id,
            jwt,
            context,
            usage_identifier_key,
            iam: None,
            headers: OnceLock::new(),
        }
    }

    /// The identity of a SigV4 signer: its user ARN is the principal.
    pub fn signed_by(caller: IamCaller) -> Self {
        Self {
            principal_id: Some(caller.user_arn.clone()),
            iam: Some(caller),
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.principal_id.is_none() && self.jwt.is_none() && self.context.is_empty()
    }

    /// `requestContext.authorizer` of a payload 1.0 event: the context's keys and
    /// `principalId`, or `claims` and `scopes` of a JWT.
    pub fn lambda_v1(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut out = self.context.clone();
        if let Some(p) = &self.principal_id {
            out.insert("principalId".into(), json!(p));
        }
        if let Some(jwt) = &self.jwt {
            out.insert("claims".into(), Value::Object(jwt.claims.clone()));
            out.insert("scopes".into(), json!(jwt.scopes));
        }
        Some(Value::Object(out))
    }

    /// `requestContext.authorizer` of a payload 2.0 event: `{"jwt": {claims, scopes}}` or
    /// `{"lambda": context}`, with `principalId`.
    pub fn lambda_v2(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut out = Map::new();
        if let Some(iam) = &self.iam {
            // As an HTTP API's IAM authorization puts the signer.
            out.insert(
                "iam".into(),
                json!({
                    "accessKey": iam.access_key,
                    "accountId": crate::lambda::event::ACCOUNT_ID,
                    "callerId": iam.user,
                    "userArn": iam.user_arn,
                    "userId": iam.user,
                }),
            );
            return Some(Value::Object(out));
        }
        if let Some(jwt) = &self.jwt {
            out.insert(
                "jwt".into(),
                json!({ "claims": jwt.claims, "scopes": jwt.scopes }),
            );
        } else {
            out.insert("lambda".into(), Value::Object(self.context.clone()));
        }
        if let Some(p) = &self.principal_id {
            out.insert("principalId".into(), json!(p));
        }
        Some(Value::Object(out))
    }

    /// Headers for an HTTP backend: `x-authorizer-principal-id`, `x-authorizer-claim-{name}`
    /// per JWT claim, `x-authorizer-scopes`, `x-authorizer-context-{key}` per context entry.
    /// Names are lowercased with characters other than letters, digits and '-' turned into
    /// '-'; strings go as they are, other values as JSON; values a header cannot carry are
    /// left out.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        self.headers.get_or_init(|| self.build_headers())
    }

    fn build_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        let mut push = |name: String, value: &Value| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name),
                HeaderValue::try_from(text.as_str()),
            ) {
                out.push((n, v));
            }
        };
        if let Some(p) = &self.principal_id {
            push(format!("{HEADER_PREFIX}principal-id"), &json!(p));
        }
        if let Some(jwt) = &self.jwt {
            for (k, v) in &jwt.claims {
                push(format!("{HEADER_PREFIX}claim-{}", header_token(k)), v);
            }
            if !jwt.scopes.is_empty() {
                push(
                    format!("{HEADER_PREFIX}scopes"),
                    &json!(jwt.scopes.join(" ")),
                );
            }
        }
        for (k, v) in &self.context {
            push(format!("{HEADER_PREFIX}context-{}", header_token(k)), v);
        }
        out
    }
}

fn header_token(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The values of the authorizer's identity sources, in order; `None` when any is missing or
/// empty (the request then gets 401 without the authorizer being asked).
pub fn values(
    table: &AuthorizerTable,
    headers: &HeaderMap,
    query: &str,
    stage_variables: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    table
        .identity_sources
        .iter()
        .map(|source| value(source, headers, query, stage_variables))
        .collect()
}

fn value(
    source: &str,
    headers: &HeaderMap,
    query: &str,
    stage_variables: &BTreeMap<String, String>,
) -> Option<String> {
    let found = if let Some(name) = source.strip_prefix("$request.header.") {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    } else if let Some(name) = source.strip_prefix("$request.querystring.") {
        parse_query(query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    } else if let Some(name) = source.strip_prefix("$stageVariables.") {
        stage_variables.get(name).cloned()
    } else {
        None
    };
    found.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_claims_and_context_under_safe_names() {
        let identity = Identity {
            principal_id: Some("user-1".into()),
            jwt: Some(JwtIdentity {
                claims: json!({"sub": "user-1", "custom:tier": "gold", "n": 3})
                    .as_object()
                    .cloned()
                    .unwrap(),
                scopes: vec!["read".into(), "write".into()],
            }),
            context: json!({"bad\nvalue": "a\nb"}).as_object().cloned().unwrap(),
            ..Identity::default()
        };
        let headers: Vec<(String, String)> = identity
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert!(headers.contains(&("x-authorizer-principal-id".into(), "user-1".into())));
        assert!(headers.contains(&("x-authorizer-claim-custom-tier".into(), "gold".into())));
        assert!(headers.contains(&("x-authorizer-claim-n".into(), "3".into())));
        assert!(headers.contains(&("x-authorizer-scopes".into(), "read write".into())));
        // A value with a newline cannot be a header value: left out, not mangled.
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n.starts_with("x-authorizer-context"))
        );
    }

    #[test]
    fn v2_events_nest_jwt_or_lambda() {
        let jwt = Identity {
            jwt: Some(JwtIdentity::default()),
            ..Identity::default()
        };
        assert!(jwt.lambda_v2().unwrap().get("jwt").is_some());
        let custom = Identity {
            principal_id: Some("p".into()),
            context: json!({"tier": "gold"}).as_object().cloned().unwrap(),
            ..Identity::default()
        };
        let v2 = custom.lambda_v2().unwrap();
        assert_eq!(v2["lambda"]["tier"], "gold");
        assert_eq!(custom.lambda_v1().unwrap()["principalId"], "p");
        assert_eq!(Identity::default().lambda_v1(), None);
    }
}
