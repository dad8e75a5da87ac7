//! Parameter mapping: Amazon's `action:target` keys and `$source` values, checked and parsed
//! into the table's rules. Each function returns the message a status condition shows.

use std::collections::{BTreeMap, BTreeSet};

use crate::table::{
    ContextVariable, MappingAction, MappingPart, MappingRule, MappingTarget, ParameterMappingTable,
    ResponseMapping,
};

/// Headers a mapping may not touch: the gateway sets them, or they describe the connection
/// rather than the message (Amazon's reserved headers of HTTP APIs, and `Host`).
const RESERVED_HEADERS: [&str; 19] = [
    "authorization",
    "connection",
    "content-encoding",
    "content-length",
    "content-location",
    "forwarded",
    "host",
    "keep-alive",
    "origin",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
];
const RESERVED_PREFIXES: [&str; 6] = [
    "access-control-",
    "apigw-",
    "x-amz-",
    "x-amzn-",
    "x-forwarded-",
    "x-authorizer-",
];

/// Which sources a value may read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// The request and response mappings of one integration; `Err((field, message))` names the
/// first key or value that is wrong, as `requestParameters.KEY` or
/// `responseParameters.STATUS.KEY`.
pub fn compile(
    request: &BTreeMap<String, String>,
    response: &BTreeMap<String, BTreeMap<String, String>>,
    params: &BTreeSet<&str>,
) -> Result<Option<ParameterMappingTable>, (String, String)> {
    let mut table = ParameterMappingTable::default();
    for (key, value) in request {
        let rule = rule(key, value, Side::Request, params)
            .map_err(|e| (format!("requestParameters.{key}"), e))?;
        table.request.push(rule);
    }
    for (status, rules) in response {
        let status_code = status
            .parse::<u16>()
            .ok()
            .filter(|s| (200..=599).contains(s))
            .ok_or_else(|| {
                (
                    format!("responseParameters.{status}"),
                    format!("{status:?} is not a status code from 200 to 599"),
                )
            })?;
        let mut out = Vec::new();
        for (key, value) in rules {
            out.push(
                rule(key, value, Side::Response, params)
                    .map_err(|e| (format!("responseParameters.{status}.{key}"), e))?,
            );
        }
        table.response.push(ResponseMapping {
            status_code,
            rules: out,
        });
    }
    Ok((!table.is_empty()).then_some(table))
}

fn rule(
    key: &str,
    value: &str,
    side: Side,
    params: &BTreeSet<&str>,
) -> Result<MappingRule, String> {
    let (action, target) = key.split_once(':').ok_or_else(|| {
        format!("{key:?} is not a mapping key: write overwrite:, append: or remove: and a target (header.NAME, querystring.NAME, path, statuscode)")
    })?;
    let action = match action {
        "overwrite" => MappingAction::Overwrite,
        "append" => MappingAction::Append,
        "remove" => MappingAction::Remove,
        other => {
            return Err(format!(
                "{other:?} is not an action: write overwrite, append or remove"
            ));
        }
    };
    let target = target_of(target, side)?;
    if matches!(target, MappingTarget::Path | MappingTarget::Statuscode)
        && action != MappingAction::Overwrite
    {
        return Err(format!(
            "the {} can only be overwritten",
            if target == MappingTarget::Path {
                "path"
            } else {
                "status code"
            }
        ));
    }
    if action == MappingAction::Remove {
        if !value.is_empty() && value != "''" {
            return Err(format!("remove takes no value: write '' (not {value:?})"));
        }
        return Ok(MappingRule {
            action,
            target,
            value: Vec::new(),
        });
    }
    let parts = value_parts(value, side, params)?;
    if parts.is_empty() {
        return Err("the value is empty: to remove the target, write remove: and ''".into());
    }
    if target == MappingTarget::Statuscode
        && let [MappingPart::Text(text)] = parts.as_slice()
        && !text.parse::<u16>().is_ok_and(|s| (200..=599).contains(&s))
    {
        return Err(format!(
            "{text:?} is not a status code from 200 to 599 (a final answer)"
        ));
    }
    Ok(MappingRule {
        action,
        target,
        value: parts,
    })
}

fn target_of(target: &str, side: Side) -> Result<MappingTarget, String> {
    if let Some(name) = target.strip_prefix("header.") {
        let lower = name.to_ascii_lowercase();
        super::validate::header_name(name)?;
        if RESERVED_HEADERS.contains(&lower.as_str())
            || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
        {
            return Err(format!(
                "header {name} is reserved: the gateway sets it, or it describes the connection"
            ));
        }
        return Ok(MappingTarget::Header(lower));
    }
    match (target, side) {
        ("path", Side::Request) => Ok(MappingTarget::Path),
        ("statuscode", Side::Response) => Ok(MappingTarget::Statuscode),
        (t, Side::Request) => match t.strip_prefix("querystring.") {
            Some(name) if !name.is_empty() && !name.contains(['&', '=', '#', ' ']) => {
                Ok(MappingTarget::Querystring(name.to_string()))
            }
            _ => Err(format!(
                "{t:?} is not a request target: write header.NAME, querystring.NAME or path"
            )),
        },
        (t, Side::Response) => Err(format!(
            "{t:?} is not a response target: write header.NAME or statuscode"
        )),
    }
}

/// A value's parts: text, and `$source` or `${source}` references.
fn value_parts(
    value: &str,
    side: Side,
    params: &BTreeSet<&str>,
) -> Result<Vec<MappingPart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (reference, next) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("{value:?}: ${{ is not closed by }}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match source(reference, side, params)? {
            Some(part) => {
                if !text.is_empty() {
                    parts.push(MappingPart::Text(std::mem::take(&mut text)));
                }
                parts.push(part);
                rest = next;
            }
            // A '$' that starts no reference is text, and so is what follows it.
            None => {
                text.push('$');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(MappingPart::Text(text));
    }
    Ok(parts)
}

/// The source `reference` names (`request.header.x`, without the `$`), `None` when it names
/// none (`$5`), or why it is wrong.
fn source(
    reference: &str,
    side: Side,
    params: &BTreeSet<&str>,
) -> Result<Option<MappingPart>, String> {
    let (root, rest) = reference.split_once('.').unwrap_or((reference, ""));
    let nonempty = |kind: &str| {
        if rest.is_empty() {
            Err(format!("${reference} names no {kind}"))
        } else {
            Ok(rest.to_string())
        }
    };
    let part = match root {
        "request" if side == Side::Response => {
            return Err(format!(
                "${reference}: a response mapping reads $response, $context and $stageVariables"
            ));
        }
        "request" => match rest.split_once('.').unwrap_or((rest, "")) {
            ("path", "") => MappingPart::RequestPath,
            ("path", name) => {
                if !params.contains(name) {
                    return Err(format!(
                        "${reference}: {{{name}}} is not a parameter of the route's path"
                    ));
                }
                MappingPart::RequestPathParameter(name.to_string())
            }
            ("header", name) if !name.is_empty() => {
                MappingPart::RequestHeader(name.to_ascii_lowercase())
            }
            ("querystring", name) if !name.is_empty() => {
                MappingPart::RequestQuerystring(name.to_string())
            }
            ("body", _) => {
                return Err(format!(
                    "${reference}: Tollgate does not map request bodies yet (headers, query strings and the path it does)"
                ));
            }
            _ => {
                return Err(format!(
                    "${reference} is not a request source: write $request.header.NAME, $request.querystring.NAME, $request.path or $request.path.NAME"
                ));
            }
        },
        "response" if side == Side::Request => {
            return Err(format!(
                "${reference}: a request mapping cannot read the response"
            ));
        }
        "response" => match rest.split_once('.').unwrap_or((rest, "")) {
            ("header", name) if !name.is_empty() => {
                MappingPart::ResponseHeader(name.to_ascii_lowercase())
            }
            ("body", _) => {
                return Err(format!(
                    "${reference}: Tollgate does not map response bodies yet (headers and the status code it does)"
                ));
            }
            _ => {
                return Err(format!(
                    "${reference} is not a response source: write $response.header.NAME"
                ));
            }
        },
        "stageVariables" => MappingPart::StageVariable(nonempty("stage variable")?),
        "context" => MappingPart::Context(context(&nonempty("context variable")?)?),
        _ => return Ok(None),
    };
    Ok(Some(part))
}

fn context(name: &str) -> Result<ContextVariable, String> {
    Ok(match name {
        "requestId" => ContextVariable::RequestId,
        "apiId" => ContextVariable::ApiId,
        "stage" => ContextVariable::Stage,
        "httpMethod" => ContextVariable::HttpMethod,
        "path" => ContextVariable::Path,
        "protocol" => ContextVariable::Protocol,
        "domainName" => ContextVariable::DomainName,
        "routeKey" => ContextVariable::RouteKey,
        "requestTime" => ContextVariable::RequestTime,
        "requestTimeEpoch" => ContextVariable::RequestTimeEpoch,
        "identity.sourceIp" => ContextVariable::SourceIp,
        "identity.userAgent" => ContextVariable::UserAgent,
        "authorizer.principalId" => ContextVariable::PrincipalId,
        other => match other.strip_prefix("authorizer.") {
            Some(rest) => match rest.strip_prefix("claims.") {
                Some(claim) if !claim.is_empty() => ContextVariable::Claim(claim.to_string()),
                Some(_) => return Err("$context.authorizer.claims names no claim".into()),
                None => ContextVariable::AuthorizerContext(rest.to_string()),
            },
            None => {
                return Err(format!(
                    "$context.{other} is not a context variable Tollgate maps (requestId, apiId, stage, httpMethod, path, protocol, domainName, routeKey, requestTime, requestTimeEpoch, identity.sourceIp, identity.userAgent, authorizer.principalId, authorizer.claims.NAME, authorizer.NAME)"
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BTreeSet<&'static str> {
        BTreeSet::from(["petId"])
    }

    fn request(pairs: &[(&str, &str)]) -> Result<Option<ParameterMappingTable>, (String, String)> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        compile(&map, &BTreeMap::new(), &params())
    }

    #[test]
    fn parses_keys_and_mixed_values() {
        let table = request(&[
            (
                "append:header.X-Pet",
                "pet-${request.path.petId}-$context.requestId",
            ),
            ("overwrite:path", "/v2$request.path"),
            ("remove:querystring.debug", "''"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            table.request[0],
            MappingRule {
                action: MappingAction::Append,
                target: MappingTarget::Header("x-pet".into()),
                value: vec![
                    MappingPart::Text("pet-".into()),
                    MappingPart::RequestPathParameter("petId".into()),
                    MappingPart::Text("-".into()),
                    MappingPart::Context(ContextVariable::RequestId),
                ],
            }
        );
        assert_eq!(
            table.request[1].value,
            vec![MappingPart::Text("/v2".into()), MappingPart::RequestPath]
        );
        assert_eq!(table.request[2].action, MappingAction::Remove);
        assert!(table.request[2].value.is_empty());
        assert_eq!(request(&[]).unwrap(), None);
    }

    #[test]
    fn a_dollar_that_names_no_source_is_text() {
        let table = request(&[("overwrite:header.price", "$5 or ${none}")])
            .unwrap()
            .unwrap();
        assert_eq!(
            table.request[0].value,
            vec![MappingPart::Text("$5 or ${none}".into())]
        );
    }

    #[test]
    fn refuses_what_amazon_refuses_with_the_field() {
        let cases = [
            (("overwrite:header.Host", "x"), "reserved"),
            (("append:header.x-amzn-trace-id", "x"), "reserved"),
            (("rewrite:header.x", "x"), "not an action"),
            (("overwrite:body", "x"), "not a request target"),
            (("append:path", "/x"), "only be overwritten"),
            (
                ("remove:header.x", "$request.header.y"),
                "remove takes no value",
            ),
            (
                ("overwrite:header.x", "$request.path.nope"),
                "not a parameter",
            ),
            (
                ("overwrite:header.x", "$response.header.y"),
                "cannot read the response",
            ),
            (
                ("overwrite:header.x", "$context.nope"),
                "not a context variable",
            ),
            (("overwrite:header.x", "${request.header.x"), "not closed"),
            (
                ("overwrite:header.x", "$request.body.name"),
                "request bodies",
            ),
            (("overwrite:header.x", ""), "empty"),
        ];
        for ((key, value), want) in cases {
            let (field, message) = request(&[(key, value)]).unwrap_err();
            assert_eq!(field, format!("requestParameters.{key}"));
            assert!(message.contains(want), "{key}: {message}");
        }
    }

    #[test]
    fn response_mapping_by_status() {
        let response = BTreeMap::from([(
            "404".to_string(),
            BTreeMap::from([
                ("overwrite:statuscode".to_string(), "204".to_string()),
                (
                    "append:header.x-backend".to_string(),
                    "$response.header.server".to_string(),
                ),
            ]),
        )]);
        let table = compile(&BTreeMap::new(), &response, &params())
            .unwrap()
            .unwrap();
        assert_eq!(table.for_status(404).unwrap().len(), 2);
        assert!(table.for_status(200).is_none());

        let bad = |status: &str, key: &str, value: &str| {
            let response = BTreeMap::from([(
                status.to_string(),
                BTreeMap::from([(key.to_string(), value.to_string())]),
            )]);
            compile(&BTreeMap::new(), &response, &params()).unwrap_err()
        };
        assert!(
            bad("2xx", "overwrite:statuscode", "200")
                .1
                .contains("not a status code")
        );
        assert!(
            bad("200", "overwrite:statuscode", "2000")
                .1
                .contains("not a status code")
        );
        assert!(
            bad("200", "overwrite:path", "/")
                .1
                .contains("not a response target")
        );
        assert!(
            bad("200", "overwrite:header.x", "$request.header.y")
                .1
                .contains("reads $response")
        );
        assert_eq!(
            bad("200", "overwrite:header.content-length", "1").0,
            "responseParameters.200.overwrite:header.content-length"
        );
    }
}
