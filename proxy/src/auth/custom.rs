//! TOKEN and REQUEST authorizers: ask a custom endpoint (HTTP or the Lambda Invoke API) about a
//! request, as Amazon API Gateway asks a Lambda authorizer.
//!
//! In the order of this file:
//! 1. **The question.** A TOKEN authorizer gets `{"type": "TOKEN", "authorizationToken",
//!    "methodArn"}`. A REQUEST authorizer gets the REST API proxy event (payload 1.0, as
//!    [`event_v1`] builds it) without `body` and `isBase64Encoded`, with `type` and `methodArn`
//!    added, as the developer guide's "Input to a Lambda authorizer" shows. The method ARN is
//!    `arn:aws:execute-api:local:tollgate:{gateway}/{stage}/{METHOD}{path}` ([`method_arn`]).
//! 2. **The call.** The question is POSTed as JSON to the HTTP URL or the Lambda Invoke API;
//!    the whole exchange has 10 s (Amazon's Lambda authorizer timeout). An HTTP authorizer
//!    answering 401 means `Unauthorized` and 403 an explicit deny; a function raising
//!    `Unauthorized` (the TOKEN authorizer convention) means `Unauthorized`.
//! 3. **The answer.** An IAM policy document (`principalId`, `policyDocument`, `context`,
//!    `usageIdentifierKey`) or the simple format (`isAuthorized`, `context`). Context values
//!    must be strings, numbers or booleans: an answer with an object, array or null in its
//!    context is refused as malformed (500), the way Amazon API Gateway fails such an answer,
//!    rather than silently dropping what the authorizer meant to pass on.
//! 4. **The cache.** Answers, allowing and denying alike, are kept per gateway, authorizer,
//!    endpoint and identity source values for the authorizer's TTL (at most 3,600 s; 0
//!    disables). Failures and `Unauthorized` are never cached. The cache holds at most
//!    [`MAX_CACHED_ANSWERS`] answers and is keyed by a SHA-256 of the values, so tokens are
//!    not kept in memory.
//! 5. **The decision.** A policy is evaluated against each request's method ARN, whether the
//!    answer is fresh or cached (Amazon caches the policy, not the decision): a matching
//!    `Deny` wins (403, "... with an explicit deny"), else a matching `Allow` allows, else the
//!    request is denied implicitly (403, "User is not authorized to access this resource").
//!
//! A failure (unreachable, timed out, a 5xx, a malformed answer, a function error) is
//! `AuthorizerConfiguration`: 500 `{"message": null}`. Identity source values are never
//! logged, and no error message quotes the answer's values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode, Version};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tollgate_crds::table::{AuthorizerEndpoint, AuthorizerTable, ObjectKey};
use tollgate_crds::table::{AuthorizerType, PayloadFormatVersion};

use super::Identity;
use crate::errors::{GatewayError, error_chain};
use crate::lambda::event::{ACCOUNT_ID, EventInput, event_v1, event_v2};
use crate::lambda::{self, Invocation};
use crate::request_ctx::RouteCtx;
use crate::request_trace::{Phase, Propagate};
use crate::upstream::{Deadline, Kind, Outbound, Reply, Upstream, UpstreamError};

/// The region in every method ARN: Tollgate runs in no AWS region.
pub const REGION: &str = "local";
/// How long the whole exchange with an authorizer may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most answers the cache holds; past it, expired answers go first, then the oldest.
pub const MAX_CACHED_ANSWERS: usize = 10_000;
/// The longest TTL honoured, whatever the table says.
const MAX_TTL_SECONDS: u32 = 3_600;
/// The largest answer read from an authorizer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The action a policy statement must cover to apply.
const INVOKE_ACTION: &str = "execute-api:invoke";
/// The statement elements understood; a statement with any other (`Condition`, `NotAction`,
/// `NotResource`, `Principal`) is refused, since ignoring it could allow too much.
const STATEMENT_ELEMENTS: &[&str] = &["Sid", "Effect", "Action", "Resource"];

/// Asks the authorizer about the request whose identity sources are `sources`, or takes its
/// cached answer, and decides on the request's method ARN.
pub async fn authorize(
    cache: &AnswerCache,
    client: &Upstream,
    table: &AuthorizerTable,
    sources: &[String],
    request: &RouteCtx<'_>,
) -> Result<Arc<Identity>, GatewayError> {
    let endpoint = table.endpoint.as_ref().ok_or_else(|| {
        GatewayError::AuthorizerConfiguration(format!(
            "authorizer {:?} has no endpoint",
            table.name
        ))
    })?;
    let gateway = &request.gateway().gateway;
    let method_arn = method_arn(
        &gateway.name,
        &request.stage().name,
        &request.parts.method,
        request.path(),
    );
    let key = CacheKey::new(gateway, table, endpoint, sources);
    let ttl = cache_ttl(table, sources);

    let cached = cache.get(&key, ttl);
    let from_cache = cached.is_some();
    let answer = match cached {
        Some(answer) => answer,
        None => {
            let question = question(table, sources, request, &method_arn)?;
            let answer = Arc::new(
                ask(
                    client,
                    endpoint,
                    &question,
                    request.id,
                    request.propagate(Phase::Authorize),
                )
                .await
                .map_err(|e| e.into_gateway_error(&table.name))?,
            );
            cache.insert(key, answer.clone(), ttl);
            answer
        }
    };

    let decision = answer.decide(&method_arn);
    let allowed = decision == Decision::Allow;
    tracing::debug!(
        request_id = %request.id,
        gateway = %gateway,
        authorizer = %table.name,
        from_cache,
        allowed,
        "custom authorizer decided"
    );
    match decision {
        Decision::Allow => Ok(Arc::new(answer.identity())),
        Decision::ExplicitDeny => Err(GatewayError::ExplicitDeny),
        Decision::ImplicitDeny => Err(GatewayError::NotAuthorized),
    }
}

/// What an answer says about one method ARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Allow,
    /// A matching `Deny`, a simple `false`, or an HTTP 403.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}{path}`, with the request's
/// own method and path (relative to the stage), as Amazon builds `methodArn`.
pub fn method_arn(api_id: &str, stage: &str, method: &Method, path: &str) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/{stage}/{method}{slash}{path}")
}

/// The TTL answers of this authorizer are cached for: zero (no caching) without identity
/// sources, since the cache key would then be the same for every caller.
fn cache_ttl(table: &AuthorizerTable, sources: &[String]) -> Duration {
    if sources.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_secs(u64::from(table.result_ttl_seconds.min(MAX_TTL_SECONDS)))
}

// === The question ===

/// The JSON the authorizer receives.
fn question(
    table: &AuthorizerTable,
    sources: &[String],
    request: &RouteCtx<'_>,
    method_arn: &str,
) -> Result<Value, GatewayError> {
    // `auth::authorize` sends only TOKEN and REQUEST authorizers here.
    if table.type_ != AuthorizerType::TOKEN {
        return Ok(match table.payload_format_version {
            PayloadFormatVersion::V1 => request_event(request, method_arn),
            PayloadFormatVersion::V2 => request_event_v2(request, sources, method_arn),
        });
    }
    let token = sources.first().ok_or_else(|| {
        GatewayError::AuthorizerConfiguration(format!(
            "TOKEN authorizer {:?} has no identity source",
            table.name
        ))
    })?;
    Ok(json!({
        "type": "TOKEN",
        "authorizationToken": token,
        "methodArn": method_arn,
    }))
}

/// The REQUEST authorizer event: the payload 1.0 proxy event without the body (not read yet)
/// and without `requestContext.protocol` (not known here), plus `type` and `methodArn`.
fn request_event(request: &RouteCtx<'_>, method_arn: &str) -> Value {
    let path_parameters = request.decoded_params();
    let input = EventInput::of(request, &path_parameters, Version::HTTP_11, &[], None);
    let mut event = event_v1(&input);
    if let Value::Object(fields) = &mut event {
        fields.remove("body");
        fields.remove("isBase64Encoded");
        if let Some(Value::Object(context)) = fields.get_mut("requestContext") {
            context.remove("protocol");
        }
        fields.insert("type".into(), json!("REQUEST"));
        fields.insert("methodArn".into(), json!(method_arn));
    }
    event
}

/// The REQUEST authorizer event of an HTTP API (payload 2.0): the 2.0 proxy event without
/// the body, plus `type`, `routeArn` and `identitySource` (the identity sources' values), as the
/// developer guide's "Lambda authorizer payload format 2.0" shows.
fn request_event_v2(request: &RouteCtx<'_>, sources: &[String], route_arn: &str) -> Value {
    let path_parameters = request.decoded_params();
    let input = EventInput::of(request, &path_parameters, Version::HTTP_11, &[], None);
    let mut event = event_v2(&input);
    if let Value::Object(fields) = &mut event {
        fields.remove("body");
        fields.remove("isBase64Encoded");
        fields.insert("type".into(), json!("REQUEST"));
        fields.insert("routeArn".into(), json!(route_arn));
        fields.insert("identitySource".into(), json!(sources));
    }
    event
}

// === The call ===

/// Why an authorizer gave no answer to cache.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AuthorizerError {
    /// The authorizer said the caller is not authenticated (401, not a failure).
    #[error("the authorizer answered Unauthorized")]
    Unauthorized,
    #[error("the endpoint URL is invalid: {0}")]
    BadUrl(String),
    #[error("the authorizer is unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the authorizer answered HTTP {0}")]
    Status(StatusCode),
    /// The function raised; the error type only (its message may quote the request).
    #[error("the function failed with {0}")]
    FunctionError(String),
    #[error("malformed answer: {0}")]
    Malformed(#[from] AnswerError),
}

impl From<UpstreamError> for AuthorizerError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::BadUrl { reason, .. } => Self::BadUrl(reason),
            UpstreamError::Timeout(_) => Self::Timeout,
            other => Self::Unreachable(error_chain(&other)),
        }
    }
}

impl AuthorizerError {
    /// 401 for `Unauthorized`; every other error is the authorizer's failure (500).
    pub fn into_gateway_error(self, authorizer: &str) -> GatewayError {
        match self {
            Self::Unauthorized => GatewayError::Unauthorized,
            other => GatewayError::AuthorizerConfiguration(format!(
                "custom authorizer {authorizer:?}: {other}"
            )),
        }
    }
}

/// POSTs the question and reads the answer, within [`TIMEOUT`].
async fn ask(
    upstream: &Upstream,
    endpoint: &AuthorizerEndpoint,
    question: &Value,
    request_id: &str,
    trace: Option<Propagate<'_>>,
) -> Result<Answer, AuthorizerError> {
    let call = Outbound {
        kind: Kind::Authorizer,
        request_id: Some(request_id),
        deadline: Deadline::after(TIMEOUT),
        trace,
    };
    match endpoint {
        AuthorizerEndpoint::Http { url } => {
            let reply = upstream
                .post_json(call, url, question.to_string(), MAX_ANSWER_BYTES, None)
                .await?;
            http_answer(reply)
        }
        AuthorizerEndpoint::Lambda { invoke_url, region } => {
            let invocation = lambda::invoke(
                upstream,
                call,
                invoke_url,
                region.as_deref(),
                question.to_string(),
                MAX_ANSWER_BYTES,
            )
            .await?;
            lambda_answer(invocation)
        }
    }
}

/// An HTTP authorizer: 2xx carries an answer, 401 is `Unauthorized`, 403 an explicit deny.
fn http_answer(reply: Reply) -> Result<Answer, AuthorizerError> {
    match reply.status {
        StatusCode::UNAUTHORIZED => Err(AuthorizerError::Unauthorized),
        StatusCode::FORBIDDEN => Ok(Answer::denied()),
        status if status.is_success() => parse_answer(&reply.body),
        status => Err(AuthorizerError::Status(status)),
    }
}

/// A function behind the Invoke API: its result is the answer; a function error is a failure,
/// unless its message is `Unauthorized`.
fn lambda_answer(reply: Invocation) -> Result<Answer, AuthorizerError> {
    if let Some(error_type) = reply.function_error {
        return Err(
            if error_message(&reply.body).as_deref() == Some("Unauthorized") {
                AuthorizerError::Unauthorized
            } else {
                AuthorizerError::FunctionError(error_type)
            },
        );
    }
    if reply.status != StatusCode::OK {
        return Err(AuthorizerError::Status(reply.status));
    }
    parse_answer(&reply.body)
}

/// `errorMessage` of a function error document.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("errorMessage")?.as_str().map(str::to_string)
}

// === The answer ===

/// Why an answer is malformed. No variant quotes a value of the answer: an authorizer may
/// echo the token back.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("not JSON ({0})")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("neither policyDocument nor isAuthorized")]
    Unrecognised,
    #[error("isAuthorized is not a boolean")]
    IsAuthorized,
    #[error("principalId is missing or not a string")]
    PrincipalId,
    #[error("usageIdentifierKey is not a string")]
    UsageIdentifierKey,
    #[error("context is not an object")]
    ContextNotObject,
    #[error("context value {0:?} is not a string, number or boolean")]
    ContextValue(String),
    #[error("policyDocument: {0}")]
    Policy(&'static str),
    #[error("policyDocument: statement element {0:?} is not supported")]
    UnsupportedElement(String),
}

/// An answer as cached: who the caller is, and the policy (or fixed verdict) to apply.
#[derive(Debug, PartialEq)]
struct Answer {
    principal_id: Option<String>,
    verdict: Verdict,
    context: Map<String, Value>,
    usage_identifier_key: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Verdict {
    /// An IAM policy document, evaluated per method ARN.
    Policy(Vec<Statement>),
    /// The simple format's `isAuthorized`, or an HTTP authorizer's 403.
    Fixed(bool),
}

#[derive(Debug, PartialEq)]
struct Statement {
    effect: Effect,
    actions: Vec<String>,
    resources: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Effect {
    Allow,
    Deny,
}

/// Parses an authorizer's result: JSON `"Unauthorized"` is `Unauthorized`, anything else must
/// be an answer.
fn parse_answer(body: &[u8]) -> Result<Answer, AuthorizerError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| AnswerError::NotJson(e.to_string()))?;
    if value.as_str() == Some("Unauthorized") {
        return Err(AuthorizerError::Unauthorized);
    }
    Ok(Answer::from_json(value)?)
}

impl Answer {
    /// An HTTP authorizer's 403: deny, whatever the method ARN.
    fn denied() -> Self {
        Self {
            principal_id: None,
            verdict: Verdict::Fixed(false),
            context: Map::new(),
            usage_identifier_key: None,
        }
    }

    fn from_json(value: Value) -> Result<Self, AnswerError> {
        let Value::Object(fields) = value else {
            return Err(AnswerError::NotAnObject);
        };
        let context = context(fields.get("context"))?;
        if let Some(flag) = fields.get("isAuthorized") {
            let authorized = flag.as_bool().ok_or(AnswerError::IsAuthorized)?;
            return Ok(Self {
                principal_id: None,
                verdict: Verdict::Fixed(authorized),
                context,
                usage_identifier_key: None,
            });
        }
        let document = fields
            .get("policyDocument")
            .ok_or(AnswerError::Unrecognised)?;
        let principal_id = fields
            .get("principalId")
            .and_then(Value::as_str)
            .ok_or(AnswerError::PrincipalId)?;
        let usage_identifier_key = match fields.get("usageIdentifierKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(key.clone()),
            Some(_) => return Err(AnswerError::UsageIdentifierKey),
        };
        Ok(Self {
            principal_id: Some(principal_id.to_string()),
            verdict: Verdict::Policy(statements(document)?),
            context,
            usage_identifier_key,
        })
    }

    /// Whether the answer admits a request with this method ARN.
    #[cfg(test)]
    fn allows(&self, method_arn: &str) -> bool {
        self.decide(method_arn) == Decision::Allow
    }

    /// A matching `Deny` wins, else a matching `Allow` allows, else the request is denied
    /// implicitly. A simple answer's `false` (or an HTTP 403) is an explicit deny.
    fn decide(&self, method_arn: &str) -> Decision {
        let statements = match &self.verdict {
            Verdict::Fixed(true) => return Decision::Allow,
            Verdict::Fixed(false) => return Decision::ExplicitDeny,
            Verdict::Policy(statements) => statements,
        };
        let mut decision = Decision::ImplicitDeny;
        for statement in statements.iter().filter(|s| s.applies_to(method_arn)) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => decision = Decision::Allow,
            }
        }
        decision
    }

    fn identity(&self) -> Identity {
        Identity::new(
            self.principal_id.clone(),
            None,
            self.context.clone(),
            self.usage_identifier_key.clone(),
        )
    }
}

/// The `context` map: absent or null is empty; values must be strings, numbers or booleans.
fn context(value: Option<&Value>) -> Result<Map<String, Value>, AnswerError> {
    let fields = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err(AnswerError::ContextNotObject),
    };
    if let Some((key, _)) = fields
        .iter()
        .find(|(_, v)| !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
    {
        return Err(AnswerError::ContextValue(key.clone()));
    }
    Ok(fields.clone())
}

/// The policy document's statements: `Statement` is an array or a single statement.
fn statements(document: &Value) -> Result<Vec<Statement>, AnswerError> {
    match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().map(statement).collect(),
        Some(single @ Value::Object(_)) => Ok(vec![statement(single)?]),
        _ => Err(AnswerError::Policy("Statement is missing or not an array")),
    }
}

fn statement(value: &Value) -> Result<Statement, AnswerError> {
    let Value::Object(fields) = value else {
        return Err(AnswerError::Policy("a statement is not an object"));
    };
    if let Some(element) = fields
        .keys()
        .find(|k| !STATEMENT_ELEMENTS.contains(&k.as_str()))
    {
        return Err(AnswerError::UnsupportedElement(element.clone()));
    }
    let effect = match fields.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(AnswerError::Policy("Effect must be Allow or Deny")),
    };
    let actions = strings(fields.get("Action")).ok_or(AnswerError::Policy(
        "Action must be a string or an array of strings",
    ))?;
    let resources = strings(fields.get("Resource")).ok_or(AnswerError::Policy(
        "Resource must be a string or an array of strings",
    ))?;
    Ok(Statement {
        effect,
        actions,
        resources,
    })
}

/// A string or an array of strings, as IAM writes one or several values.
fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

// === The decision ===

impl Statement {
    /// The statement covers `execute-api:Invoke` (action names ignore case, as in IAM) on a
    /// resource matching the method ARN.
    fn applies_to(&self, method_arn: &str) -> bool {
        self.actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), INVOKE_ACTION))
            && self.resources.iter().any(|r| arn_matches(r, method_arn))
    }
}

/// The colon-separated segments of an ARN: `arn:partition:service:region:account:resource`.
const ARN_SEGMENTS: usize = 6;

/// Whether a resource pattern matches an ARN, as IAM matches them: segment by segment, `*`
/// any run of characters (slashes included) and `?` any one character. A pattern with fewer
/// than six segments must end in `*`, which then spans the rest of the ARN, colons included
/// (`*` alone matches every ARN; `arn:aws:execute-api:*` every API).
pub(crate) fn arn_matches(pattern: &str, arn: &str) -> bool {
    let patterns: Vec<&str> = pattern.splitn(ARN_SEGMENTS, ':').collect();
    if patterns.len() < ARN_SEGMENTS && !pattern.ends_with('*') {
        return false;
    }
    let segments: Vec<&str> = arn.splitn(patterns.len(), ':').collect();
    segments.len() == patterns.len()
        && patterns
            .iter()
            .zip(&segments)
            .all(|(pattern, segment)| glob(pattern, segment))
}

/// Wildcard matching: `*` matches any run of characters, `?` any one character; linear in
/// practice (it backtracks to the last `*` only).
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // After a `*`: where the pattern resumes, and where in the text the `*` stops for now.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p + 1, t));
            p += 1;
        } else if let Some((resume, stop)) = star {
            star = Some((resume, stop + 1));
            p = resume;
            t = stop + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

// === The cache ===

/// Answers cached per gateway, authorizer, endpoint and identity source values, for the
/// authorizer's TTL; at most [`MAX_CACHED_ANSWERS`] of them. Safe to share between requests;
/// the lock is never held across an `.await`.
pub struct AnswerCache {
    entries: Mutex<HashMap<CacheKey, Cached>>,
    capacity: usize,
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self::with_capacity(MAX_CACHED_ANSWERS)
    }
}

/// The SHA-256 of everything an answer depends on: the identity source values are not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CacheKey([u8; 32]);

impl CacheKey {
    fn new(
        gateway: &ObjectKey,
        table: &AuthorizerTable,
        endpoint: &AuthorizerEndpoint,
        sources: &[String],
    ) -> Self {
        let type_ = match table.type_ {
            AuthorizerType::JWT => "JWT",
            AuthorizerType::TOKEN => "TOKEN",
            AuthorizerType::REQUEST => "REQUEST",
            AuthorizerType::AwsIam => "AWS_IAM",
            AuthorizerType::Kubernetes => "KUBERNETES",
        };
        let (kind, url) = match endpoint {
            AuthorizerEndpoint::Http { url } => ("http", url),
            AuthorizerEndpoint::Lambda { invoke_url, .. } => ("lambda", invoke_url),
        };
        let fields = [
            gateway.namespace.as_str(),
            &gateway.name,
            &table.name,
            type_,
            kind,
            url,
        ];
        let mut hasher = Sha256::new();
        // Each field length-prefixed, so no two different lists hash the same input.
        for field in fields.into_iter().chain(sources.iter().map(String::as_str)) {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        Self(hasher.finalize().into())
    }
}

struct Cached {
    answer: Arc<Answer>,
    stored_at: Instant,
    ttl: Duration,
}

impl Cached {
    /// Fresh for the shorter of the TTL it was stored with and `ttl` (the table's now).
    fn is_fresh(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.stored_at) < self.ttl.min(ttl)
    }
}

impl AnswerCache {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// The answer stored under `key`, if still fresh for `ttl`; a stale one is dropped.
    fn get(&self, key: &CacheKey, ttl: Duration) -> Option<Arc<Answer>> {
        if ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        let entry = entries.get(key)?;
        if entry.is_fresh(Instant::now(), ttl) {
            return Some(entry.answer.clone());
        }
        entries.remove(key);
        None
    }

    /// Stores an answer for `ttl` (zero: not at all), making room first when full.
    fn insert(&self, key: CacheKey, answer: Arc<Answer>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            make_room(&mut entries, self.capacity, now);
        }
        entries.insert(
            key,
            Cached {
                answer,
                stored_at: now,
                ttl,
            },
        );
    }

    /// How many answers are held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Cached>> {
        // A panic elsewhere cannot leave the map half-updated: use it as it is.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops expired answers; if the cache is still full, the oldest tenth, so that a stream of
/// new identities costs one scan per tenth of the capacity, not one per request.
fn make_room(entries: &mut HashMap<CacheKey, Cached>, capacity: usize, now: Instant) {
    entries.retain(|_, e| e.is_fresh(now, e.ttl));
    if entries.len() < capacity {
        return;
    }
    let mut ages: Vec<Instant> = entries.values().map(|e| e.stored_at).collect();
    let batch = (capacity / 10).clamp(1, ages.len()) - 1;
    let (_, cutoff, _) = ages.select_nth_unstable(batch);
    let cutoff = *cutoff;
    entries.retain(|_, e| e.stored_at > cutoff);
    tracing::debug!(
        kept = entries.len(),
        "custom authorizer cache full: evicted the oldest answers"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:local:tollgate:pets/dev/GET/pets/42";

    fn policy(statements: Value) -> Answer {
        Answer::from_json(json!({
            "principalId": "user-1",
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        }))
        .unwrap()
    }

    fn allow(resource: Value) -> Value {
        json!({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource})
    }

    fn deny(resource: Value) -> Value {
        json!({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": resource})
    }

    #[test]
    fn method_arns_name_the_request_method_and_path() {
        assert_eq!(method_arn("pets", "dev", &Method::GET, "/pets/42"), ARN);
        assert_eq!(
            method_arn("pets", "prod", &Method::POST, "/"),
            "arn:aws:execute-api:local:tollgate:pets/prod/POST/"
        );
        assert_eq!(
            method_arn("pets", "prod", &Method::DELETE, ""),
            "arn:aws:execute-api:local:tollgate:pets/prod/DELETE/"
        );
    }

    #[test]
    fn glob_wildcards() {
        assert!(glob("*", ""));
        assert!(glob("*", "anything/at:all"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("pets/*/GET/*", "pets/dev/GET/pets/42"));
        assert!(glob("*/GET/*", "pets/dev/GET/"));
        assert!(!glob("pets/*/POST/*", "pets/dev/GET/pets/42"));
        assert!(glob("a*b*c", "axxbyybzc"));
        assert!(!glob("a*b*c", "axxbyyb"));
        assert!(glob("pets/dev/GET/pets/??", "pets/dev/GET/pets/42"));
        assert!(!glob("pets/dev/GET/pets/?", "pets/dev/GET/pets/42"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn resource_patterns_match_as_iam_does() {
        for pattern in [
            ARN,
            "*",
            "arn:aws:execute-api:*",
            "arn:aws:execute-api:*:*:*",
            "arn:aws:execute-api:local:tollgate:pets/*",
            "arn:aws:execute-api:local:tollgate:pets/dev/GET/*",
            "arn:aws:execute-api:local:tollgate:pets/*/GET/pets/*",
            "arn:aws:execute-api:*:*:*/dev/*/pets/??",
            "arn:aws:execute-api:loc?l:tollgate:pets/dev/GET/pets/42",
        ] {
            assert!(arn_matches(pattern, ARN), "{pattern} should match");
        }
        for pattern in [
            "arn:aws:execute-api:us-east-1:tollgate:pets/*",
            "arn:aws:execute-api:local:tollgate:cats/*",
            "arn:aws:execute-api:local:tollgate:pets/prod/*",
            "arn:aws:execute-api:local:tollgate:pets/dev/POST/*",
            "arn:aws:execute-api:local:tollgate:pets/dev/GET/pets",
            // Fewer than six segments without a trailing `*` match nothing.
            "arn:aws:execute-api:local",
            // Resource names are case-sensitive.
            "arn:aws:execute-api:local:tollgate:PETS/*",
            "",
        ] {
            assert!(!arn_matches(pattern, ARN), "{pattern} should not match");
        }
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        let answer = policy(json!([
            allow(json!("*")),
            deny(json!(["arn:aws:execute-api:*:*:pets/*/DELETE/*"])),
        ]));
        assert!(answer.allows(ARN));
        assert!(!answer.allows("arn:aws:execute-api:local:tollgate:pets/dev/DELETE/pets/42"));

        // Order does not matter.
        let answer = policy(json!([deny(json!(ARN)), allow(json!(ARN))]));
        assert!(!answer.allows(ARN));
    }

    #[test]
    fn without_a_matching_allow_the_request_is_denied() {
        let answer = policy(json!([allow(json!(
            "arn:aws:execute-api:local:tollgate:pets/dev/GET/pets/*"
        ))]));
        assert!(answer.allows(ARN));
        assert!(!answer.allows("arn:aws:execute-api:local:tollgate:pets/dev/POST/pets/42"));
        assert!(!policy(json!([])).allows(ARN));
    }

    #[test]
    fn a_statement_applies_only_to_the_invoke_action() {
        let other_action = json!({
            "Action": "execute-api:ManageConnections", "Effect": "Allow", "Resource": "*",
        });
        assert!(!policy(json!([other_action])).allows(ARN));
        for action in [
            json!("execute-api:*"),
            json!("*"),
            json!("EXECUTE-API:invoke"),
            json!(["s3:GetObject", "execute-api:Invoke"]),
        ] {
            let statement = json!({"Action": action, "Effect": "Allow", "Resource": "*"});
            assert!(policy(json!([statement])).allows(ARN), "{action}");
        }
        // A deny for another action does not deny Invoke.
        let answer = policy(json!([
            allow(json!("*")),
            {"Action": "execute-api:ManageConnections", "Effect": "Deny", "Resource": "*"},
        ]));
        assert!(answer.allows(ARN));
    }

    #[test]
    fn policy_answers_parse_with_context_and_usage_key() {
        let answer = Answer::from_json(json!({
            "principalId": "user-1",
            "policyDocument": {
                "Version": "2012-10-17",
                // A single statement need not be in an array; nor a single resource.
                "Statement": {"Sid": "s1", "Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN},
            },
            "context": {"tier": "gold", "n": 3, "admin": false},
            "usageIdentifierKey": "key-value",
        }))
        .unwrap();
        assert!(answer.allows(ARN));
        let identity = answer.identity();
        assert_eq!(identity.principal_id.as_deref(), Some("user-1"));
        assert_eq!(
            Value::Object(identity.context),
            json!({"tier": "gold", "n": 3, "admin": false})
        );
        assert_eq!(identity.usage_identifier_key.as_deref(), Some("key-value"));
    }

    #[test]
    fn simple_answers_parse() {
        let yes = Answer::from_json(json!({"isAuthorized": true, "context": {"a": "b"}})).unwrap();
        assert!(yes.allows(ARN));
        assert_eq!(yes.identity().context["a"], "b");
        assert_eq!(yes.identity().principal_id, None);
        let no = Answer::from_json(json!({"isAuthorized": false})).unwrap();
        assert!(!no.allows(ARN));
    }

    #[test]
    fn malformed_answers_are_refused() {
        let statement = allow(json!("*"));
        for (value, error) in [
            (json!([1]), AnswerError::NotAnObject),
            (json!({"principalId": "p"}), AnswerError::Unrecognised),
            (json!({"isAuthorized": "yes"}), AnswerError::IsAuthorized),
            (
                json!({"policyDocument": {"Statement": [statement]}}),
                AnswerError::PrincipalId,
            ),
            (
                json!({"principalId": 7, "policyDocument": {"Statement": [statement]}}),
                AnswerError::PrincipalId,
            ),
            (
                json!({"principalId": "p", "policyDocument": {}}),
                AnswerError::Policy("Statement is missing or not an array"),
            ),
            (
                json!({"principalId": "p", "policyDocument": {"Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "allow", "Resource": "*"}
                ]}}),
                AnswerError::Policy("Effect must be Allow or Deny"),
            ),
            (
                json!({"principalId": "p", "policyDocument": {"Statement": [
                    {"Effect": "Allow", "Resource": "*"}
                ]}}),
                AnswerError::Policy("Action must be a string or an array of strings"),
            ),
            (
                json!({"principalId": "p", "policyDocument": {"Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [1]}
                ]}}),
                AnswerError::Policy("Resource must be a string or an array of strings"),
            ),
            (
                json!({"principalId": "p", "policyDocument": {"Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*",
                     "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
                ]}}),
                AnswerError::UnsupportedElement("Condition".into()),
            ),
            (
                json!({"principalId": "p", "policyDocument": {"Statement": [statement]},
                       "context": {"nested": {"a": 1}}}),
                AnswerError::ContextValue("nested".into()),
            ),
            (
                json!({"isAuthorized": true, "context": {"list": [1, 2]}}),
                AnswerError::ContextValue("list".into()),
            ),
            (
                json!({"isAuthorized": true, "context": {"nothing": null}}),
                AnswerError::ContextValue("nothing".into()),
            ),
            (
                json!({"isAuthorized": true, "context": "text"}),
                AnswerError::ContextNotObject,
            ),
            (
                json!({"principalId": "p", "policyDocument": {"Statement": [statement]},
                       "usageIdentifierKey": 12}),
                AnswerError::UsageIdentifierKey,
            ),
        ] {
            assert_eq!(Answer::from_json(value.clone()), Err(error), "{value}");
        }
    }

    #[test]
    fn the_unauthorized_convention_and_garbage() {
        assert_eq!(
            parse_answer(br#""Unauthorized""#),
            Err(AuthorizerError::Unauthorized)
        );
        assert!(matches!(
            parse_answer(b"<html>oops</html>"),
            Err(AuthorizerError::Malformed(AnswerError::NotJson(_)))
        ));
        let error =
            parse_answer(br#"{"isAuthorized": true, "context": {"k": {"secret-token": 1}}}"#)
                .unwrap_err()
                .into_gateway_error("auth");
        assert!(matches!(&error, GatewayError::AuthorizerConfiguration(_)));
        assert!(!error.to_string().contains("secret-token"), "{error}");
        assert_eq!(
            AuthorizerError::Unauthorized.into_gateway_error("auth"),
            GatewayError::Unauthorized
        );
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: hyper::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    fn invocation(status: u16, function_error: Option<&str>, body: &str) -> Invocation {
        Invocation::new(
            StatusCode::from_u16(status).unwrap(),
            function_error.map(str::to_string),
            bytes::Bytes::from(body.to_string()),
        )
    }

    #[test]
    fn http_authorizer_statuses() {
        assert_eq!(
            http_answer(reply(401, "")),
            Err(AuthorizerError::Unauthorized)
        );
        assert_eq!(http_answer(reply(403, "")), Ok(Answer::denied()));
        assert_eq!(
            http_answer(reply(500, r#"{"isAuthorized": true}"#)),
            Err(AuthorizerError::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert!(
            http_answer(reply(200, r#"{"isAuthorized": true}"#))
                .unwrap()
                .allows(ARN)
        );
    }

    #[test]
    fn lambda_function_errors() {
        let unauthorized = r#"{"errorMessage": "Unauthorized", "errorType": "Exception"}"#;
        assert_eq!(
            lambda_answer(invocation(200, Some("Unhandled"), unauthorized)),
            Err(AuthorizerError::Unauthorized)
        );
        // The emulator flags nothing: its error document is recognised.
        assert_eq!(
            lambda_answer(invocation(200, None, unauthorized)),
            Err(AuthorizerError::Unauthorized)
        );
        assert_eq!(
            lambda_answer(invocation(
                200,
                None,
                r#"{"errorMessage": "boom", "errorType": "KeyError", "stackTrace": []}"#
            )),
            Err(AuthorizerError::FunctionError("KeyError".into()))
        );
        assert_eq!(
            lambda_answer(invocation(502, None, "bad gateway")),
            Err(AuthorizerError::Status(StatusCode::BAD_GATEWAY))
        );
        assert!(
            lambda_answer(invocation(200, None, r#"{"isAuthorized": true}"#))
                .unwrap()
                .allows(ARN)
        );
    }

    fn table(name: &str, type_: AuthorizerType) -> AuthorizerTable {
        AuthorizerTable {
            name: name.into(),
            type_,
            identity_sources: vec!["$request.header.Authorization".into()],
            jwt: None,
            endpoint: Some(AuthorizerEndpoint::Http {
                url: "http://auth.example/check".into(),
            }),
            iam: None,
            service_accounts: Vec::new(),
            payload_format_version: PayloadFormatVersion::V1,
            result_ttl_seconds: 300,
        }
    }

    fn key(gateway: &str, authorizer: &str, url: &str, sources: &[&str]) -> CacheKey {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        CacheKey::new(
            &ObjectKey::new("default", gateway),
            &table(authorizer, AuthorizerType::TOKEN),
            &AuthorizerEndpoint::Http { url: url.into() },
            &sources,
        )
    }

    #[test]
    fn cache_keys_depend_on_everything_an_answer_depends_on() {
        let base = key("pets", "auth", "http://a/", &["t1"]);
        assert_eq!(base, key("pets", "auth", "http://a/", &["t1"]));
        for other in [
            key("cats", "auth", "http://a/", &["t1"]),
            key("pets", "other", "http://a/", &["t1"]),
            key("pets", "auth", "http://b/", &["t1"]),
            key("pets", "auth", "http://a/", &["t2"]),
            key("pets", "auth", "http://a/", &["t", "1"]),
            key("pets", "auth", "http://a/", &[]),
        ] {
            assert_ne!(base, other);
        }
        let http = CacheKey::new(
            &ObjectKey::new("default", "pets"),
            &table("auth", AuthorizerType::REQUEST),
            &AuthorizerEndpoint::Http { url: "u".into() },
            &["t".into()],
        );
        let lambda = CacheKey::new(
            &ObjectKey::new("default", "pets"),
            &table("auth", AuthorizerType::REQUEST),
            &AuthorizerEndpoint::Lambda {
                invoke_url: "u".into(),
                region: None,
            },
            &["t".into()],
        );
        assert_ne!(http, lambda);
    }

    #[test]
    fn the_cache_honours_the_ttl() {
        let cache = AnswerCache::default();
        let answer = Arc::new(Answer::denied());
        let k = key("pets", "auth", "http://a/", &["t"]);

        cache.insert(k, answer.clone(), Duration::ZERO);
        assert!(cache.is_empty(), "TTL 0 caches nothing");

        cache.insert(k, answer.clone(), Duration::from_secs(300));
        assert_eq!(
            cache.get(&k, Duration::from_secs(300)),
            Some(answer.clone())
        );
        assert_eq!(cache.get(&k, Duration::ZERO), None, "TTL now 0");

        // An answer older than the (new, shorter) TTL is gone.
        cache.insert(k, answer.clone(), Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&k, Duration::from_secs(300)), None);
        assert!(cache.is_empty(), "a stale answer is dropped when found");
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = AnswerCache::with_capacity(20);
        let answer = Arc::new(Answer::denied());
        let keys: Vec<CacheKey> = (0..100)
            .map(|i| key("pets", "auth", "http://a/", &[&i.to_string()]))
            .collect();
        for k in &keys {
            cache.insert(*k, answer.clone(), Duration::from_secs(300));
            assert!(cache.len() <= 20);
        }
        let ttl = Duration::from_secs(300);
        assert!(cache.get(&keys[99], ttl).is_some(), "the newest is kept");
        assert!(cache.get(&keys[0], ttl).is_none(), "the oldest is evicted");

        // Expired answers are evicted before fresh ones.
        let cache = AnswerCache::with_capacity(3);
        cache.insert(keys[0], answer.clone(), Duration::from_secs(300));
        cache.insert(keys[1], answer.clone(), Duration::from_millis(1));
        cache.insert(keys[2], answer.clone(), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        cache.insert(keys[3], answer.clone(), Duration::from_secs(300));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&keys[0], ttl).is_some());
        assert!(cache.get(&keys[3], ttl).is_some());
    }
}
