//! Security schemes: API keys, and `x-amazon-apigateway-authorizer` schemes as the gateway's
//! `spec.authorizers` — JWT (HTTP APIs), Lambda TOKEN and REQUEST authorizers (both kinds of
//! API) — and an operation's `security` as its route's `apiKeyRequired`, `authorizer` and
//! `authorizationScopes`.

use serde_json::{Map, Value, json};

use super::{Options, Unsupported, escape, lambda_function, unsupported};

/// What the document's security schemes became.
#[derive(Default)]
pub(super) struct Schemes {
    /// Names of the schemes that are Amazon API keys (`x-api-key` in a header).
    api_keys: Vec<String>,
    /// Scheme name → authorizer name, for the schemes carried over as authorizers.
    authorizers: Vec<(String, String, bool)>,
    /// The `spec.authorizers` entries.
    pub(super) entries: Vec<Value>,
}

/// Where the schemes are: OpenAPI 3's `components.securitySchemes`, Swagger's
/// `securityDefinitions`.
fn schemes_of(root: &Map<String, Value>) -> Option<(&Map<String, Value>, &'static str)> {
    if let Some(s) = root
        .get("components")
        .and_then(|c| c.get("securitySchemes"))
        .and_then(Value::as_object)
    {
        return Some((s, "/components/securitySchemes"));
    }
    root.get("securityDefinitions")
        .and_then(Value::as_object)
        .map(|s| (s, "/securityDefinitions"))
}

pub(super) fn read(
    root: &Map<String, Value>,
    http_api: bool,
    options: &Options,
    report: &mut Vec<Unsupported>,
) -> Schemes {
    let mut out = Schemes::default();
    let Some((schemes, base)) = schemes_of(root) else {
        return out;
    };
    for (name, scheme) in schemes {
        let pointer = format!("{base}/{}", escape(name));
        let Some(authorizer) = scheme.get("x-amazon-apigateway-authorizer") else {
            if is_api_key(scheme) {
                out.api_keys.push(name.clone());
            } else if scheme
                .get("x-amazon-apigateway-authtype")
                .and_then(Value::as_str)
                == Some("awsSigv4")
            {
                report.push(unsupported(
                    &pointer,
                    "IAM (SigV4) authorization: an export carries neither the callers' keys nor their policies; add an AWS_IAM authorizer (iam.credentials, iam.statements) and name it on these routes, which are imported without it",
                ));
            } else {
                report.push(unsupported(
                    &pointer,
                    "a security scheme API Gateway does not enforce (no x-amazon-apigateway-authorizer)",
                ));
            }
            continue;
        };
        let pointer = format!("{pointer}/x-amazon-apigateway-authorizer");
        let authorizer_name = authorizer_name(name);
        if let Some((entry, jwt)) = authorizer_entry(
            &authorizer_name,
            authorizer,
            &pointer,
            http_api,
            options,
            report,
        ) {
            out.entries.push(entry);
            out.authorizers.push((name.clone(), authorizer_name, jwt));
        }
    }
    out
}

fn is_api_key(scheme: &Value) -> bool {
    scheme.get("type").and_then(Value::as_str) == Some("apiKey")
        && scheme.get("in").and_then(Value::as_str) == Some("header")
        && scheme
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
        && scheme.get("x-amazon-apigateway-authtype").is_none()
}

/// An authorizer name as the CRD takes it: letters, digits, `_` and `-`, 64 at most.
fn authorizer_name(scheme: &str) -> String {
    let name: String = scheme
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "authorizer".into()
    } else {
        name
    }
}

/// The `spec.authorizers` entry of one `x-amazon-apigateway-authorizer`, and whether it is a
/// JWT authorizer (whose routes carry scopes); `None` (reported) when Tollgate has no equal.
fn authorizer_entry(
    name: &str,
    authorizer: &Value,
    pointer: &str,
    http_api: bool,
    options: &Options,
    report: &mut Vec<Unsupported>,
) -> Option<(Value, bool)> {
    let kind = authorizer
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let handled: &[&str] = match kind.as_str() {
        "jwt" => &["type", "jwtConfiguration", "identitySource"],
        "token" | "request" => &[
            "type",
            "authorizerUri",
            "identitySource",
            "authorizerResultTtlInSeconds",
            "enableSimpleResponses",
            "authorizerPayloadFormatVersion",
        ],
        "cognito_user_pools" => {
            let issuer = authorizer
                .get("providerARNs")
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
                .and_then(cognito_issuer);
            report.push(unsupported(
                pointer,
                &match issuer {
                    Some(issuer) => format!(
                        "a Cognito user pool authorizer: write a JWT authorizer with issuer {issuer} and your app client IDs as audiences"
                    ),
                    None => "a Cognito user pool authorizer: write a JWT authorizer with the pool's issuer and your app client IDs as audiences".into(),
                },
            ));
            return None;
        }
        other => {
            report.push(unsupported(
                &format!("{pointer}/type"),
                &format!("authorizer type {other:?}: Tollgate has jwt, token and request"),
            ));
            return None;
        }
    };
    if let Some(object) = authorizer.as_object() {
        for key in object.keys().filter(|k| !handled.contains(&k.as_str())) {
            report.push(unsupported(
                &format!("{pointer}/{}", escape(key)),
                "not carried over yet",
            ));
        }
    }
    let sources = identity_sources(authorizer.get("identitySource"), pointer, report);
    if kind == "jwt" {
        let config = authorizer.get("jwtConfiguration");
        let issuer = config.and_then(|c| c.get("issuer")).and_then(Value::as_str);
        let audiences: Vec<&str> = config
            .and_then(|c| c.get("audience"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(issuer) = issuer.filter(|_| !audiences.is_empty()) else {
            report.push(unsupported(
                &format!("{pointer}/jwtConfiguration"),
                "a JWT authorizer needs an issuer and at least one audience",
            ));
            return None;
        };
        let mut entry = json!({
            "name": name,
            "type": "JWT",
            "jwt": {"issuer": issuer, "audiences": audiences},
        });
        if sources != ["$request.header.Authorization"] && !sources.is_empty() {
            entry["identitySource"] = json!(sources);
        }
        return Some((entry, true));
    }
    let uri = authorizer.get("authorizerUri").and_then(Value::as_str);
    let Some(function) = uri.and_then(|uri| lambda_function(uri, options)) else {
        report.push(unsupported(
            &format!("{pointer}/authorizerUri"),
            "not a Lambda function's invocations ARN",
        ));
        return None;
    };
    let type_ = if kind == "token" { "TOKEN" } else { "REQUEST" };
    if type_ == "TOKEN" && (sources.len() != 1 || !sources[0].starts_with("$request.header.")) {
        report.push(unsupported(
            &format!("{pointer}/identitySource"),
            "a TOKEN authorizer reads exactly one header",
        ));
        return None;
    }
    let mut entry = json!({
        "name": name,
        "type": type_,
        "lambda": function,
    });
    // The event format: written only when it is not the protocol's default (an HTTP API's
    // 2.0, a REST API's 1.0), so that export and import agree.
    let version = match authorizer.get("authorizerPayloadFormatVersion") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => Some("1.0"),
        Some(Value::Number(n)) if n.as_f64() == Some(2.0) => Some("2.0"),
        _ => None,
    };
    let default = if http_api { "2.0" } else { "1.0" };
    if type_ == "REQUEST"
        && let Some(version) = version.filter(|v| *v != default)
    {
        entry["payloadFormatVersion"] = json!(version);
    }
    if !sources.is_empty() {
        entry["identitySource"] = json!(sources);
    }
    // Amazon's default TTL is 300 s, Tollgate's too: written only when it differs.
    let ttl = authorizer
        .get("authorizerResultTtlInSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(300);
    if ttl != 300 {
        entry["resultTtlSeconds"] = json!(ttl.min(3600));
    }
    Some((entry, false))
}

/// Identity sources in Tollgate's form (`$request.header.Name`), from either REST's
/// (`method.request.header.Name`, comma-separated) or an HTTP API's (`$request.header.Name`,
/// a list or comma-separated).
fn identity_sources(
    value: Option<&Value>,
    pointer: &str,
    report: &mut Vec<Unsupported>,
) -> Vec<String> {
    let raw: Vec<String> = match value {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for source in raw.into_iter().filter(|s| !s.is_empty()) {
        let converted = if let Some(rest) = source.strip_prefix("method.request.") {
            Some(format!("$request.{rest}"))
        } else if let Some(rest) = source.strip_prefix("stageVariables.") {
            Some(format!("$stageVariables.{rest}"))
        } else if source.starts_with("$request.header.")
            || source.starts_with("$request.querystring.")
            || source.starts_with("$stageVariables.")
        {
            Some(source.clone())
        } else {
            None
        };
        match converted.filter(|c| {
            c.starts_with("$request.header.")
                || c.starts_with("$request.querystring.")
                || c.starts_with("$stageVariables.")
        }) {
            Some(c) => out.push(c),
            None => report.push(unsupported(
                &format!("{pointer}/identitySource"),
                &format!("identity source {source:?}: Tollgate reads headers, query strings and stage variables"),
            )),
        }
    }
    out
}

/// `https://cognito-idp.{region}.amazonaws.com/{pool}` from a user pool ARN.
fn cognito_issuer(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:aws:cognito-idp:")?;
    let (region, rest) = rest.split_once(':')?;
    let pool = rest.split_once(":userpool/")?.1;
    Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
}

impl Schemes {
    /// An operation's (else the document's) `security` on its route's spec: the API key, the
    /// first authorizer with its scopes; what is left out, reported.
    pub(super) fn apply(
        &self,
        security: Option<&Value>,
        pointer: &str,
        spec: &mut Map<String, Value>,
        report: &mut Vec<Unsupported>,
    ) {
        let Some(requirements) = security.and_then(Value::as_array) else {
            return;
        };
        for (i, requirement) in requirements.iter().enumerate() {
            let Some(requirement) = requirement.as_object() else {
                continue;
            };
            for (scheme, scopes) in requirement {
                let at = format!("{pointer}/{i}/{}", escape(scheme));
                if self.api_keys.contains(scheme) {
                    spec.insert("apiKeyRequired".into(), json!(true));
                } else if let Some((_, name, jwt)) =
                    self.authorizers.iter().find(|(s, _, _)| s == scheme)
                {
                    if spec.contains_key("authorizer") {
                        report.push(unsupported(
                            &at,
                            "a second authorizer on one operation: Tollgate runs one per route",
                        ));
                        continue;
                    }
                    spec.insert("authorizer".into(), json!(name));
                    let scopes: Vec<&str> = scopes
                        .as_array()
                        .map(|s| s.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if !scopes.is_empty() {
                        if *jwt {
                            spec.insert("authorizationScopes".into(), json!(scopes));
                        } else {
                            report.push(unsupported(
                                &at,
                                "scopes apply to JWT authorizers: left out",
                            ));
                        }
                    }
                } else {
                    report.push(unsupported(
                        &at,
                        "a security scheme that was not carried over (see its own line)",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources_of_both_kinds_of_api() {
        let mut report = Vec::new();
        assert_eq!(
            identity_sources(
                Some(&json!(
                    "method.request.header.Authorization, method.request.querystring.token, stageVariables.env"
                )),
                "/x",
                &mut report
            ),
            [
                "$request.header.Authorization",
                "$request.querystring.token",
                "$stageVariables.env"
            ]
        );
        assert_eq!(
            identity_sources(
                Some(&json!(["$request.header.X-Key", "$context.requestId"])),
                "/x",
                &mut report
            ),
            ["$request.header.X-Key"]
        );
        assert_eq!(report.len(), 1, "{report:?}");
    }

    #[test]
    fn cognito_pools_name_their_issuer() {
        assert_eq!(
            cognito_issuer("arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbC123")
                .as_deref(),
            Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123")
        );
        assert_eq!(authorizer_name("my authorizer!"), "my-authorizer-");
    }
}
