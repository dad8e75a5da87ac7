//! Who a bearer token is: a TokenReview by the API server, remembered for [`CACHE_TTL`] when
//! it succeeds (keyed by the token's SHA-256; a token is never logged or kept), and which
//! gateway's proxies that user may speak for. Proxies' tokens pass only for [`TOKEN_AUDIENCE`]:
//! a proxy's projected token is bound to the controller, not usable against the API server.
//! The usage API takes people's and programs' ordinary tokens (the API server's audience)
//! and asks the API server whether RBAC lets them read the plan (SubjectAccessReview).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest as _, Sha256};
use tollgate_crds::snapshot::{TOKEN_AUDIENCE, proxy_service_account};
use tollgate_crds::table::ObjectKey;

/// How long a successful review is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Reviews remembered at most; expired ones are dropped first, then all of them.
const CACHE_MAX: usize = 10_000;

pub struct Authenticator {
    client: Client,
    /// By the SHA-256 of the audience asked for and the token.
    cache: Mutex<HashMap<[u8; 32], (UserInfo, Instant)>>,
}

/// Why a request is not authenticated.
#[derive(Debug)]
pub enum AuthError {
    /// No token, or the API server does not accept it.
    Unauthenticated,
    /// The review itself failed (the API server is unreachable, or refuses the review).
    Review(String),
}

impl Authenticator {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user name of the `Authorization: Bearer` token in `headers`, a token for
    /// [`TOKEN_AUDIENCE`] (a proxy's).
    pub async fn user(&self, headers: &http::HeaderMap) -> Result<String, AuthError> {
        let user = self.review(headers, Some(TOKEN_AUDIENCE)).await?;
        user.username.ok_or(AuthError::Unauthenticated)
    }

    /// Who the `Authorization: Bearer` token in `headers` is, for the API server's own
    /// audience (a person's or a ServiceAccount's ordinary token).
    pub async fn person(&self, headers: &http::HeaderMap) -> Result<UserInfo, AuthError> {
        self.review(headers, None).await
    }

    async fn review(
        &self,
        headers: &http::HeaderMap,
        audience: Option<&str>,
    ) -> Result<UserInfo, AuthError> {
        let token = bearer(headers).ok_or(AuthError::Unauthenticated)?;
        let mut digest = Sha256::new();
        digest.update(audience.unwrap_or("").as_bytes());
        digest.update([0]);
        digest.update(token.as_bytes());
        let hash: [u8; 32] = digest.finalize().into();
        let now = Instant::now();
        if let Some((user, at)) = self.lock().get(&hash)
            && now.duration_since(*at) < CACHE_TTL
        {
            return Ok(user.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: audience.map(|a| vec![a.to_owned()]),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Review(e.to_string()))?;
        let status = reviewed.status.unwrap_or_default();
        if status.error.as_deref().is_some_and(|e| !e.is_empty()) {
            tracing::debug!(error = status.error.as_deref(), "token not authenticated");
        }
        // The API server answers with the requested audiences the token is valid for.
        let for_us = audience.is_none_or(|audience| {
            status
                .audiences
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a == audience))
        });
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(user)) if for_us && user.username.is_some() => user,
            _ => return Err(AuthError::Unauthenticated),
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(hash, (user.clone(), now));
        Ok(user)
    }

    /// Whether RBAC lets `user` `get` the UsagePlan `plan` (group `tollgate.dev`), by a
    /// SubjectAccessReview.
    pub async fn may_read_plan(
        &self,
        user: &UserInfo,
        plan: &ObjectKey,
    ) -> Result<bool, AuthError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("tollgate.dev".into()),
                    resource: Some("usageplans".into()),
                    verb: Some("get".into()),
                    namespace: Some(plan.namespace.clone()),
                    name: Some(plan.name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let reviewed = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Review(e.to_string()))?;
        Ok(reviewed.status.is_some_and(|s| s.allowed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (UserInfo, Instant)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The token of an `Authorization: Bearer` header, if any.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `user` is the ServiceAccount of `gateway`'s proxies.
pub fn may_serve(user: &str, gateway: &ObjectKey) -> bool {
    user == format!(
        "system:serviceaccount:{}:{}",
        gateway.namespace,
        proxy_service_account(&gateway.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_service_accounts() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);

        let gw = ObjectKey::new("shop", "hello");
        assert!(may_serve(
            "system:serviceaccount:shop:tollgate-proxy-hello",
            &gw
        ));
        assert!(!may_serve(
            "system:serviceaccount:other:tollgate-proxy-hello",
            &gw
        ));
        assert!(!may_serve(
            "system:serviceaccount:shop:tollgate-proxy-other",
            &gw
        ));
    }
}
