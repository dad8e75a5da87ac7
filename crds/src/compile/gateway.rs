//! An ApiGateway into the frame of its table: stages, authorizers, domains, CORS, policy.
//! Routes and usage plans are placed into it afterwards.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;

use super::diagnostics::{Diagnostic, Reason};
use super::{
    Resources, access_log, cache, gateway_response, lambda, pem, validate, validation, websocket,
};
use crate::resources::{
    ApiGateway, ApiGatewaySpec, ApiProtocol, Authorizer, AuthorizerType, CustomDomain,
    EndpointType, IamEffect, MutualTls, RateLimitMode, TLS_SECRET_TYPE, TRUSTSTORE_KEY,
    TRUSTSTORE_LABEL, TRUSTSTORE_SECRET_TYPE,
};
use crate::resources::{DEFAULT_SAMPLING_RATIO, TracingSettings};
use crate::table::{
    AuthorizerEndpoint, AuthorizerTable, AwsCredentialsTable, BasePathTable, CanaryTable,
    CorsTable, DEFAULT_GATEWAY_THROTTLE, DEFAULT_STAGE, DomainTable, GatewayTable,
    IamStatementTable, IamTable, JwtTable, ObjectKey, RateLimitingTable, ResourcePolicyTable,
    StageTable, TABLE_FORMAT, ThrottleSettings, TlsMaterial, TracingTable,
};

pub const JWT_DEFAULT_IDENTITY_SOURCE: &str = "$request.header.Authorization";
pub const MAX_AUTHORIZER_TTL: u32 = 3600;

/// Compiles a gateway's own settings; `None` when the gateway cannot be served at all.
pub(super) fn compile(
    key: &ObjectKey,
    gw: &ApiGateway,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Option<GatewayTable> {
    let spec = &gw.spec;

    let throttle = spec.throttle.map_or(DEFAULT_GATEWAY_THROTTLE, Into::into);
    if let Err(e) = validate::throttle(&throttle) {
        diag.reject(Reason::InvalidThrottle, "spec.throttle", e);
    }

    let resource_policy = spec.resource_policy.as_ref().map(|p| {
        for (field, cidrs) in [
            ("allowCidrs", &p.allow_cidrs),
            ("denyCidrs", &p.deny_cidrs),
            ("trustedProxyCidrs", &p.trusted_proxy_cidrs),
        ] {
            for (i, c) in cidrs.iter().enumerate() {
                if let Err(e) = validate::cidr(c) {
                    diag.reject(
                        Reason::InvalidPolicy,
                        format!("spec.resourcePolicy.{field}[{i}]"),
                        e,
                    );
                }
            }
        }
        ResourcePolicyTable {
            allow_cidrs: p.allow_cidrs.clone(),
            deny_cidrs: p.deny_cidrs.clone(),
            trusted_proxy_cidrs: p.trusted_proxy_cidrs.clone(),
        }
    });
    if spec.endpoint_type == EndpointType::Private
        && spec
            .resource_policy
            .as_ref()
            .is_none_or(|p| p.allow_cidrs.is_empty() && p.allow_namespaces.is_empty())
    {
        diag.reject(
            Reason::InvalidPolicy,
            "spec.resourcePolicy",
            "a Private gateway needs resourcePolicy.allowCidrs or allowNamespaces to say who may call it",
        );
    }

    let rate_limiting = spec.rate_limiting.clone().unwrap_or_default();
    if rate_limiting.mode == RateLimitMode::Redis && rate_limiting.redis.is_none() {
        diag.reject(
            Reason::InvalidRedis,
            "spec.rateLimiting.redis",
            "mode Redis needs rateLimiting.redis (a url, cluster or sentinel)",
        );
    }
    let redis = rate_limiting.redis.as_ref().and_then(|r| {
        super::redis::compile(
            key,
            &r.connection,
            "spec.rateLimiting.redis",
            resources,
            diag,
        )
    });

    let stages = compile_stages(gw, throttle, diag);
    if stages.is_empty() {
        diag.reject(
            Reason::NoStages,
            "spec.stages",
            "the gateway has no valid stage: add one",
        );
    }
    let stage_names: BTreeSet<&str> = stages.iter().map(|s| s.name.as_str()).collect();

    let authorizers = compile_authorizers(
        key,
        &spec.authorizers,
        spec.protocol == ApiProtocol::HTTP,
        resources,
        diag,
    );
    let domains = compile_domains(key, &spec.domains, &stage_names, resources, diag);
    let websocket = (spec.protocol == ApiProtocol::WEBSOCKET).then(|| {
        let settings = spec.websocket.clone().unwrap_or_default();
        let shared = (rate_limiting.mode == RateLimitMode::Redis)
            .then_some(redis.as_ref())
            .flatten();
        websocket::compile(key, &settings, &authorizers, shared, resources, diag)
    });
    if spec.protocol == ApiProtocol::REST && spec.websocket.is_some() {
        diag.reject(
            Reason::ProtocolMismatch,
            "spec.websocket",
            "spec.websocket is for WebSocket APIs: set spec.protocol to WEBSOCKET, or remove spec.websocket",
        );
    }
    if spec.protocol == ApiProtocol::WEBSOCKET && spec.cors.is_some() {
        diag.reject(
            Reason::ProtocolMismatch,
            "spec.cors",
            "CORS is for REST and HTTP APIs (browsers do not preflight a WebSocket): remove spec.cors",
        );
    }

    let rest_api = spec.protocol == ApiProtocol::REST;
    let models = validation::models(&spec.models, rest_api, diag);
    let gateway_responses = gateway_response::compile(&spec.gateway_responses, rest_api, diag);
    if !rest_api && !spec.request_validators.is_empty() {
        diag.skip(
            Reason::ProtocolMismatch,
            "spec.requestValidators",
            "request validators are for REST APIs: remove spec.requestValidators",
        );
    }

    let (minimum_compression_size, binary_media_types) = content_settings(spec, rest_api, diag);

    if !diag.accepted {
        return None;
    }
    Some(GatewayTable {
        format: TABLE_FORMAT,
        version: String::new(),
        gateway: key.clone(),
        endpoint_type: spec.endpoint_type.into(),
        api_key_source: spec.api_key_source.into(),
        throttle,
        rate_limiting: RateLimitingTable {
            mode: rate_limiting.mode.into(),
            redis,
            on_redis_failure: rate_limiting
                .redis
                .map(|r| r.on_failure)
                .unwrap_or_default()
                .into(),
        },
        resource_policy,
        cors: spec.cors.as_ref().map(|c| CorsTable {
            allow_origins: c.allow_origins.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_headers: c.allow_headers.clone(),
            expose_headers: c.expose_headers.clone(),
            max_age_seconds: c.max_age_seconds,
            allow_credentials: c.allow_credentials,
        }),
        authorizers,
        domains,
        redirect_to_https: spec.redirect_to_https,
        disable_execute_api_endpoint: spec.disable_execute_api_endpoint,
        stages,
        usage_plans: Vec::new(),
        http_api: spec.protocol == ApiProtocol::HTTP,
        websocket,
        models,
        gateway_responses,
        minimum_compression_size,
        binary_media_types,
    })
}

/// Amazon's largest `minimumCompressionSize`: 10 MB.
pub const MAX_MINIMUM_COMPRESSION_SIZE: u32 = 10_485_760;
/// Most entries in `binaryMediaTypes`, as the CRD schema says.
const MAX_BINARY_MEDIA_TYPES: usize = 50;

/// `minimumCompressionSize` and `binaryMediaTypes`: REST API settings, as on Amazon. On
/// another kind of API they are skipped with `ProtocolMismatch`; a value out of range or a
/// media type that is not one is skipped and named (the API serves without it).
fn content_settings(
    spec: &ApiGatewaySpec,
    rest_api: bool,
    diag: &mut Diagnostic,
) -> (Option<u32>, Vec<String>) {
    if !rest_api {
        if spec.minimum_compression_size.is_some() {
            diag.skip(
                Reason::ProtocolMismatch,
                "spec.minimumCompressionSize",
                "compression is a REST API setting, as on Amazon: remove spec.minimumCompressionSize",
            );
        }
        if !spec.binary_media_types.is_empty() {
            diag.skip(
                Reason::ProtocolMismatch,
                "spec.binaryMediaTypes",
                "binary media types are a REST API setting, as on Amazon: remove spec.binaryMediaTypes",
            );
        }
        return (None, Vec::new());
    }
    let minimum = match spec.minimum_compression_size {
        Some(size) if size > MAX_MINIMUM_COMPRESSION_SIZE => {
            diag.skip(
                Reason::InvalidPolicy,
                "spec.minimumCompressionSize",
                format!(
                    "minimumCompressionSize is 0 to {MAX_MINIMUM_COMPRESSION_SIZE} bytes, not {size}: answers are not compressed"
                ),
            );
            None
        }
        other => other,
    };
    let mut types = BTreeSet::new();
    for (i, media_type) in spec.binary_media_types.iter().enumerate() {
        if i >= MAX_BINARY_MEDIA_TYPES {
            diag.skip(
                Reason::InvalidPolicy,
                format!("spec.binaryMediaTypes[{i}]"),
                format!("at most {MAX_BINARY_MEDIA_TYPES} binary media types: this one and those after it are left out"),
            );
            break;
        }
        match media_range(media_type) {
            Ok(()) => {
                types.insert(media_type.to_ascii_lowercase());
            }
            Err(e) => diag.skip(
                Reason::InvalidPolicy,
                format!("spec.binaryMediaTypes[{i}]"),
                format!("{e}: it is left out, and bodies of that type are text"),
            ),
        }
    }
    (minimum, types.into_iter().collect())
}

/// A media range as `binaryMediaTypes` takes it: `type/subtype`, `type/*` or `*/*`, each part
/// an RFC 9110 token of at most 255 characters in all (as the CRD schema's pattern).
fn media_range(s: &str) -> Result<(), String> {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            && t.as_bytes()[0].is_ascii_alphanumeric()
    };
    let valid = s.len() <= 255
        && match s.split_once('/') {
            Some(("*", "*")) => true,
            Some((kind, "*")) => token(kind),
            Some((kind, subtype)) => token(kind) && token(subtype),
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a media type such as image/png, image/* or */*"
        ))
    }
}

fn compile_stages(
    gw: &ApiGateway,
    ceiling: ThrottleSettings,
    diag: &mut Diagnostic,
) -> Vec<StageTable> {
    let mut stages: Vec<StageTable> = Vec::new();
    for (i, stage) in gw.spec.stages.iter().enumerate() {
        let field = format!("spec.stages[{i}]");
        let default_stage = stage.name == DEFAULT_STAGE;
        if default_stage && gw.spec.protocol != ApiProtocol::HTTP {
            diag.skip(
                Reason::InvalidStage,
                format!("{field}.name"),
                "a $default stage (served without a stage in the path) is for HTTP APIs: set \
                 spec.protocol to HTTP, or name the stage",
            );
            continue;
        }
        if let (false, Err(e)) = (default_stage, validate::stage_name(&stage.name)) {
            diag.skip(Reason::InvalidStage, format!("{field}.name"), e);
            continue;
        }
        if stages.iter().any(|s| s.name == stage.name) {
            diag.skip(
                Reason::Duplicate,
                format!("{field}.name"),
                format!(
                    "stage {:?} is defined twice; the first definition is served",
                    stage.name
                ),
            );
            continue;
        }
        let variables = valid_variables(&stage.variables, &format!("{field}.variables"), diag);
        let throttle = match stage.throttle {
            Some(t) => match validate::throttle(&t) {
                Ok(()) => validate::cap(t, ceiling),
                Err(e) => {
                    diag.skip(Reason::InvalidStage, format!("{field}.throttle"), e);
                    continue;
                }
            },
            None => ceiling,
        };
        let canary = stage.canary.as_ref().and_then(|c| {
            let percent = match c.percent_traffic {
                Some(p) if p.is_finite() && (0.0..=100.0).contains(&p) => p,
                Some(p) => {
                    diag.skip(
                        Reason::InvalidStage,
                        format!("{field}.canary.percentTraffic"),
                        format!(
                            "percentTraffic must be between 0 and 100, not {p}; the canary is off"
                        ),
                    );
                    return None;
                }
                None => {
                    diag.skip(
                        Reason::InvalidStage,
                        format!("{field}.canary.percentTraffic"),
                        "a canary needs percentTraffic; the canary is off",
                    );
                    return None;
                }
            };
            let overrides = valid_variables(
                &c.stage_variable_overrides,
                &format!("{field}.canary.stageVariableOverrides"),
                diag,
            );
            let mut merged = variables.clone();
            merged.extend(overrides);
            Some(CanaryTable {
                percent,
                variables: merged,
            })
        });
        let cache = stage
            .cache
            .as_ref()
            .and_then(|c| cache::stage(c, gw.spec.protocol, &format!("{field}.cache"), diag));
        // A format that cannot be logged as written (a secret, an unknown variable) leaves
        // the stage out: it is never served with another line than the one asked for.
        let access_log = match &stage.access_log_settings {
            None => None,
            Some(settings) => {
                let field = format!("{field}.accessLogSettings");
                match access_log::stage(settings, gw.spec.protocol, &field, diag) {
                    Ok(format) => Some(format),
                    Err(()) => continue,
                }
            }
        };
        stages.push(StageTable {
            name: stage.name.clone(),
            variables,
            throttle,
            tracing: tracing(gw.spec.tracing.as_ref(), stage.tracing_enabled),
            canary,
            cache,
            access_log,
            routes: Vec::new(),
        });
    }
    stages
}

/// A stage's tracing: on when the stage says so, else when the gateway has `tracing`. The
/// schema bounds the endpoint and the ratio; a ratio out of range (from a file that skipped
/// the API server's checks) is clamped, never a reason to refuse the stage.
fn tracing(gateway: Option<&TracingSettings>, stage: Option<bool>) -> Option<TracingTable> {
    if !stage.unwrap_or(gateway.is_some()) {
        return None;
    }
    let settings = gateway.cloned().unwrap_or_default();
    let ratio = settings
        .sampling_ratio
        .unwrap_or(DEFAULT_SAMPLING_RATIO)
        .clamp(0.0, 1.0);
    Some(TracingTable {
        endpoint: settings.endpoint,
        protocol: settings.protocol,
        sampling_ratio: if ratio.is_nan() { 0.0 } else { ratio },
    })
}

fn valid_variables(
    vars: &BTreeMap<String, String>,
    field: &str,
    diag: &mut Diagnostic,
) -> BTreeMap<String, String> {
    vars.iter()
        .filter(|(k, v)| match validate::stage_variable(k, v) {
            Ok(()) => true,
            Err(e) => {
                diag.skip(Reason::InvalidStage, format!("{field}.{k}"), e);
                false
            }
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn compile_authorizers(
    gateway: &ObjectKey,
    authorizers: &[Authorizer],
    http_api: bool,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Vec<AuthorizerTable> {
    let mut out: Vec<AuthorizerTable> = Vec::new();
    for (i, a) in authorizers.iter().enumerate() {
        let field = format!("spec.authorizers[{i}]");
        // An AWS_IAM authorizer's keys: one that does not resolve is left out and named.
        let mut credentials = Vec::new();
        for (j, r) in a.iam.iter().flat_map(|iam| &iam.credentials).enumerate() {
            let secret = ObjectKey::new(&gateway.namespace, &r.name);
            match websocket::credentials(&secret, resources) {
                Ok(c) => credentials.push(c),
                Err((reason, e)) => {
                    diag.skip(reason, format!("{field}.iam.credentials[{j}]"), e);
                }
            }
        }
        match compile_authorizer(a, http_api, credentials) {
            Err((sub, e)) => diag.skip(Reason::InvalidAuthorizer, format!("{field}{sub}"), e),
            Ok(_) if out.iter().any(|o| o.name == a.name) => diag.skip(
                Reason::Duplicate,
                format!("{field}.name"),
                format!(
                    "authorizer {:?} is defined twice; the first definition is used",
                    a.name
                ),
            ),
            Ok(table) => out.push(table),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// An authorizer, or the sub-field at fault and why.
fn compile_authorizer(
    a: &Authorizer,
    http_api: bool,
    credentials: Vec<AwsCredentialsTable>,
) -> Result<AuthorizerTable, (String, String)> {
    let at = |sub: &str, e: String| (sub.to_string(), e);
    validate::name_token("authorizer name", &a.name).map_err(|e| at(".name", e))?;
    if a.result_ttl_seconds > MAX_AUTHORIZER_TTL {
        return Err(at(
            ".resultTtlSeconds",
            format!("resultTtlSeconds must be at most {MAX_AUTHORIZER_TTL}"),
        ));
    }
    for (i, s) in a.identity_source.iter().enumerate() {
        validate::identity_source(s).map_err(|e| at(&format!(".identitySource[{i}]"), e))?;
    }
    let mut identity_sources = a.identity_source.clone();
    if a.iam.is_some() && a.type_ != AuthorizerType::AwsIam {
        return Err(at(".iam", "only an AWS_IAM authorizer takes iam".into()));
    }
    if a.kubernetes.is_some() != (a.type_ == AuthorizerType::Kubernetes) {
        return Err(at(
            ".kubernetes",
            "a KUBERNETES authorizer takes kubernetes, and only it".into(),
        ));
    }
    let mut service_accounts = Vec::new();
    let (jwt, endpoint) = match a.type_ {
        AuthorizerType::AwsIam => {
            return Ok(AuthorizerTable {
                name: a.name.clone(),
                type_: a.type_.into(),
                identity_sources: Vec::new(),
                jwt: None,
                endpoint: None,
                iam: Some(iam_table(a, credentials)?),
                service_accounts: Vec::new(),
                payload_format_version: payload_format_version(a, http_api)?,
                result_ttl_seconds: 0,
            });
        }
        AuthorizerType::Kubernetes => {
            let Some(k) = &a.kubernetes else {
                return Err(at(
                    ".kubernetes",
                    "a KUBERNETES authorizer needs kubernetes.audiences".into(),
                ));
            };
            if a.jwt.is_some() || a.http.is_some() || a.lambda.is_some() {
                return Err(at(
                    "",
                    "a KUBERNETES authorizer takes kubernetes only, not jwt, http or lambda".into(),
                ));
            }
            validate::http_url(&k.issuer).map_err(|e| at(".kubernetes.issuer", e))?;
            if k.audiences.is_empty() {
                return Err(at(
                    ".kubernetes.audiences",
                    "name at least one audience (one of this gateway's own)".into(),
                ));
            }
            let jwks_uri = match &k.jwks_uri {
                Some(u) => {
                    validate::http_url(u).map_err(|e| at(".kubernetes.jwksUri", e))?;
                    u.clone()
                }
                None => format!("{}/openid/v1/jwks", k.issuer.trim_end_matches('/')),
            };
            if identity_sources.is_empty() {
                identity_sources.push(JWT_DEFAULT_IDENTITY_SOURCE.to_string());
            }
            service_accounts = k.allow.clone();
            let table = JwtTable {
                issuer: k.issuer.clone(),
                audiences: k.audiences.clone(),
                jwks_uri,
            };
            (Some(table), None)
        }
        AuthorizerType::JWT => {
            let Some(jwt) = &a.jwt else {
                return Err(at(
                    ".jwt",
                    "a JWT authorizer needs jwt.issuer and jwt.audiences".into(),
                ));
            };
            if a.http.is_some() || a.lambda.is_some() {
                return Err(at(
                    "",
                    "a JWT authorizer takes jwt only, not http or lambda".into(),
                ));
            }
            validate::http_url(&jwt.issuer).map_err(|e| at(".jwt.issuer", e))?;
            if jwt.audiences.is_empty() {
                return Err(at(".jwt.audiences", "name at least one audience".into()));
            }
            let jwks_uri = match &jwt.jwks_uri {
                Some(u) => {
                    validate::http_url(u).map_err(|e| at(".jwt.jwksUri", e))?;
                    u.clone()
                }
                None => format!("{}/.well-known/jwks.json", jwt.issuer.trim_end_matches('/')),
            };
            if identity_sources.is_empty() {
                identity_sources.push(JWT_DEFAULT_IDENTITY_SOURCE.to_string());
            }
            let table = JwtTable {
                issuer: jwt.issuer.clone(),
                audiences: jwt.audiences.clone(),
                jwks_uri,
            };
            (Some(table), None)
        }
        AuthorizerType::TOKEN | AuthorizerType::REQUEST => {
            if a.jwt.is_some() {
                return Err(at(".jwt", "only a JWT authorizer takes jwt".into()));
            }
            let endpoint = match (&a.http, &a.lambda) {
                (Some(h), None) => {
                    validate::http_url(&h.url).map_err(|e| at(".http.url", e))?;
                    AuthorizerEndpoint::Http { url: h.url.clone() }
                }
                (None, Some(l)) => {
                    let target =
                        lambda::target(l).map_err(|(sub, e)| at(&format!(".lambda{sub}"), e))?;
                    AuthorizerEndpoint::Lambda {
                        invoke_url: target.invoke_url,
                        region: target.region,
                    }
                }
                _ => return Err(at("", "set exactly one of http or lambda".into())),
            };
            if a.type_ == AuthorizerType::TOKEN
                && (identity_sources.len() != 1
                    || !identity_sources[0].starts_with("$request.header."))
            {
                return Err(at(
                    ".identitySource",
                    "a TOKEN authorizer takes exactly one identity source, a header".into(),
                ));
            }
            // As Amazon API Gateway: the identity sources are the cache key, so caching needs them.
            if identity_sources.is_empty() && a.result_ttl_seconds > 0 {
                return Err(at(
                    ".identitySource",
                    "a cached REQUEST authorizer needs an identity source (its cache key); or set resultTtlSeconds: 0"
                        .into(),
                ));
            }
            (None, Some(endpoint))
        }
    };
    Ok(AuthorizerTable {
        name: a.name.clone(),
        type_: a.type_.into(),
        identity_sources,
        jwt,
        endpoint,
        iam: None,
        service_accounts,
        payload_format_version: payload_format_version(a, http_api)?,
        result_ttl_seconds: a.result_ttl_seconds,
    })
}

/// An AWS_IAM authorizer's keys (those that resolved) and statements, checked: each
/// principal is `*` or a Secret of `credentials`, each resource an ARN pattern.
fn iam_table(
    a: &Authorizer,
    credentials: Vec<AwsCredentialsTable>,
) -> Result<IamTable, (String, String)> {
    let at = |sub: String, e: String| (sub, e);
    let Some(iam) = &a.iam else {
        return Err(at(
            ".iam".into(),
            "an AWS_IAM authorizer needs iam.credentials and iam.statements".into(),
        ));
    };
    if a.jwt.is_some() || a.http.is_some() || a.lambda.is_some() || !a.identity_source.is_empty() {
        return Err(at(
            String::new(),
            "an AWS_IAM authorizer takes iam only (the signature is its identity source)".into(),
        ));
    }
    let names: BTreeSet<&str> = iam.credentials.iter().map(|r| r.name.as_str()).collect();
    let mut statements = Vec::new();
    for (i, s) in iam.statements.iter().enumerate() {
        for (j, p) in s.principals.iter().enumerate() {
            if p != "*" && !names.contains(p.as_str()) {
                return Err(at(
                    format!(".iam.statements[{i}].principals[{j}]"),
                    format!("{p:?} is not a Secret of iam.credentials (or *)"),
                ));
            }
        }
        for (j, r) in s.resources.iter().enumerate() {
            if !(r == "*" || r.starts_with("arn:")) {
                return Err(at(
                    format!(".iam.statements[{i}].resources[{j}]"),
                    format!(
                        "{r:?} is not a method ARN pattern (arn:aws:execute-api:*:*:GATEWAY/STAGE/METHOD/PATH)"
                    ),
                ));
            }
        }
        statements.push(IamStatementTable {
            allow: s.effect == IamEffect::Allow,
            principals: s.principals.clone(),
            resources: s.resources.clone(),
        });
    }
    if credentials.is_empty() {
        return Err(at(
            ".iam.credentials".into(),
            "none of the credentials resolved: nobody could sign".into(),
        ));
    }
    let mut credentials = credentials;
    credentials.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    credentials.dedup_by(|a, b| a.access_key_id == b.access_key_id);
    Ok(IamTable {
        credentials,
        statements,
    })
}

/// The event a REQUEST authorizer gets: as written, else an HTTP API's 2.0 and a REST API's
/// 1.0. Other authorizers get no event of this kind.
fn payload_format_version(
    a: &Authorizer,
    http_api: bool,
) -> Result<crate::table::PayloadFormatVersion, (String, String)> {
    use crate::resources::PayloadFormatVersion as Written;
    match (a.type_, a.payload_format_version) {
        (AuthorizerType::REQUEST, Some(v)) => Ok(v.into()),
        (AuthorizerType::REQUEST, None) if http_api => Ok(Written::V2.into()),
        (_, None) => Ok(Written::V1.into()),
        (_, Some(_)) => Err((
            ".payloadFormatVersion".into(),
            "payloadFormatVersion is the event a REQUEST authorizer gets: remove it from a JWT or TOKEN authorizer".into(),
        )),
    }
}

fn compile_domains(
    gw: &ObjectKey,
    domains: &[CustomDomain],
    stages: &BTreeSet<&str>,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Vec<DomainTable> {
    let mut out: Vec<DomainTable> = Vec::new();
    for (i, d) in domains.iter().enumerate() {
        let field = format!("spec.domains[{i}]");
        if !valid_hostname(&d.hostname) {
            diag.skip(
                Reason::InvalidDomain,
                format!("{field}.hostname"),
                format!(
                    "{:?} is not a lowercase DNS name (a leading '*.' is allowed)",
                    d.hostname
                ),
            );
            continue;
        }
        if out.iter().any(|o| o.hostname == d.hostname) {
            diag.skip(
                Reason::Duplicate,
                format!("{field}.hostname"),
                format!("{} is listed twice; the first entry is served", d.hostname),
            );
            continue;
        }
        let tls = match &d.certificate_secret_ref {
            None => None,
            Some(r) => match tls_material(gw, &r.name, &resources.secrets) {
                Ok(m) => Some(m),
                Err((reason, e)) => {
                    diag.skip(
                        reason,
                        format!("{field}.certificateSecretRef.name"),
                        format!("{e}; {} is not served", d.hostname),
                    );
                    continue;
                }
            },
        };
        let client_ca_pem = match &d.mutual_tls {
            None => None,
            Some(m) => match truststore(gw, m, resources) {
                Ok(pem) => Some(pem),
                Err((reason, sub, e)) => {
                    diag.skip(
                        reason,
                        format!("{field}.mutualTls{sub}"),
                        format!("{e}; {} is not served", d.hostname),
                    );
                    continue;
                }
            },
        };
        let mut mappings: Vec<BasePathTable> = Vec::new();
        for (j, m) in d.base_path_mappings.iter().enumerate() {
            let mfield = format!("{field}.basePathMappings[{j}]");
            if !valid_base_path(&m.base_path) {
                diag.skip(
                    Reason::InvalidDomain,
                    format!("{mfield}.basePath"),
                    format!(
                        "{:?} is not a base path such as v1 or v1/orders",
                        m.base_path
                    ),
                );
            } else if !stages.contains(m.stage.as_str()) {
                diag.skip(
                    Reason::StageNotFound,
                    format!("{mfield}.stage"),
                    format!("the gateway has no stage {:?}", m.stage),
                );
            } else if mappings.iter().any(|o| o.base_path == m.base_path) {
                diag.skip(
                    Reason::Duplicate,
                    format!("{mfield}.basePath"),
                    format!(
                        "base path {:?} is mapped twice; the first mapping is used",
                        m.base_path
                    ),
                );
            } else {
                mappings.push(BasePathTable {
                    base_path: m.base_path.clone(),
                    stage: m.stage.clone(),
                });
            }
        }
        if mappings.is_empty() {
            diag.skip(
                Reason::InvalidDomain,
                format!("{field}.basePathMappings"),
                format!(
                    "{} has no valid base path mapping and is not served",
                    d.hostname
                ),
            );
            continue;
        }
        // Longest base path first: the first prefix that matches a request wins.
        mappings.sort_by(|a, b| {
            b.base_path
                .len()
                .cmp(&a.base_path.len())
                .then(a.base_path.cmp(&b.base_path))
        });
        out.push(DomainTable {
            hostname: d.hostname.clone(),
            tls,
            security_policy: d.security_policy.into(),
            client_ca_pem,
            mappings,
        });
    }
    out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    out
}

fn valid_hostname(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && h.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_base_path(p: &str) -> bool {
    p.is_empty()
        || p.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
        })
}

/// The certificate chain and key of a `kubernetes.io/tls` Secret, each checked.
pub(super) fn tls_material(
    gw: &ObjectKey,
    name: &str,
    secrets: &BTreeMap<ObjectKey, Secret>,
) -> Result<TlsMaterial, (Reason, String)> {
    let key = ObjectKey::new(&gw.namespace, name);
    let secret = secrets.get(&key).ok_or_else(|| {
        (
            Reason::SecretNotFound,
            format!("Secret {key} does not exist"),
        )
    })?;
    if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err((
            Reason::InvalidSecret,
            format!("Secret {key} must be of type {TLS_SECRET_TYPE}"),
        ));
    }
    Ok(TlsMaterial {
        secret: key.to_string(),
        certificate_pem: secret_value(&key, secret, "tls.crt", pem::certificates)?,
        private_key_pem: secret_value(&key, secret, "tls.key", pem::private_key)?,
    })
}

/// The client CA bundle of a domain's mutual TLS, or the reason, and the sub-field of
/// `mutualTls` at fault.
fn truststore(
    gw: &ObjectKey,
    m: &MutualTls,
    resources: &Resources,
) -> Result<String, (Reason, &'static str, String)> {
    match (&m.truststore_secret_ref, &m.truststore_config_map_ref) {
        (Some(r), None) => truststore_secret(gw, &r.name, &resources.secrets)
            .map_err(|(reason, e)| (reason, ".truststoreSecretRef.name", e)),
        (None, Some(r)) => truststore_config_map(gw, &r.name, resources)
            .map_err(|(reason, e)| (reason, ".truststoreConfigMapRef.name", e)),
        _ => Err((
            Reason::InvalidDomain,
            "",
            "mutualTls needs exactly one of truststoreSecretRef and truststoreConfigMapRef".into(),
        )),
    }
}

pub(super) fn truststore_secret(
    gw: &ObjectKey,
    name: &str,
    secrets: &BTreeMap<ObjectKey, Secret>,
) -> Result<String, (Reason, String)> {
    let key = ObjectKey::new(&gw.namespace, name);
    // The controller sees no Secret of another type: to it, such a Secret does not exist.
    let secret = secrets.get(&key).ok_or_else(|| {
        (
            Reason::SecretNotFound,
            format!(
                "Secret {key} does not exist, or is not of type {TRUSTSTORE_SECRET_TYPE} or \
                 {TLS_SECRET_TYPE} (the only truststore types the controller watches)"
            ),
        )
    })?;
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != TRUSTSTORE_SECRET_TYPE && type_ != TLS_SECRET_TYPE {
        return Err((
            Reason::InvalidSecret,
            format!(
                "Secret {key} is of type {type_}, which the controller does not watch: use a \
                 Secret of type {TRUSTSTORE_SECRET_TYPE} (kubectl create secret generic {name} \
                 --type={TRUSTSTORE_SECRET_TYPE} --from-file={TRUSTSTORE_KEY}) or {TLS_SECRET_TYPE}"
            ),
        ));
    }
    secret_value(&key, secret, TRUSTSTORE_KEY, pem::certificates)
}

pub(super) fn truststore_config_map(
    gw: &ObjectKey,
    name: &str,
    resources: &Resources,
) -> Result<String, (Reason, String)> {
    let key = ObjectKey::new(&gw.namespace, name);
    // The controller sees no unlabelled ConfigMap: to it, such a ConfigMap does not exist.
    let config_map = resources.config_maps.get(&key).ok_or_else(|| {
        (
            Reason::ConfigMapNotFound,
            format!(
                "ConfigMap {key} does not exist, or lacks the label {TRUSTSTORE_LABEL} (the \
                 controller watches only ConfigMaps that carry it)"
            ),
        )
    })?;
    let labelled = config_map
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(TRUSTSTORE_LABEL));
    if !labelled {
        return Err((
            Reason::InvalidConfigMap,
            format!(
                "ConfigMap {key} lacks the label {TRUSTSTORE_LABEL}, so the controller does not \
                 see it: add it (kubectl label configmap {name} {TRUSTSTORE_LABEL}=true)"
            ),
        ));
    }
    let value = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(TRUSTSTORE_KEY).cloned())
        .or_else(|| {
            let bytes = config_map.binary_data.as_ref()?.get(TRUSTSTORE_KEY)?;
            String::from_utf8(bytes.0.clone()).ok()
        })
        .ok_or_else(|| {
            (
                Reason::InvalidConfigMap,
                format!("ConfigMap {key} has no key {TRUSTSTORE_KEY}"),
            )
        })?;
    pem::certificates(&value).map_err(|e| {
        (
            Reason::InvalidConfigMap,
            format!("ConfigMap {key} key {TRUSTSTORE_KEY} {e}"),
        )
    })?;
    Ok(value)
}

/// A PEM value of a Secret (from `data`, or `stringData` as standalone files write it),
/// passed through `check`.
fn secret_value(
    key: &ObjectKey,
    secret: &Secret,
    field: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<String, (Reason, String)> {
    let value = secret_string(secret, field).ok_or_else(|| {
        (
            Reason::InvalidSecret,
            format!("Secret {key} has no key {field}"),
        )
    })?;
    check(&value).map_err(|e| {
        (
            Reason::InvalidSecret,
            format!("Secret {key} key {field} {e}"),
        )
    })?;
    Ok(value)
}

/// A Secret value as text, from `data` or `stringData`; `None` when absent or not UTF-8.
pub(super) fn secret_string(secret: &Secret, field: &str) -> Option<String> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(field)) {
        return Some(v.clone());
    }
    let bytes = secret.data.as_ref()?.get(field)?;
    String::from_utf8(bytes.0.clone()).ok()
}
