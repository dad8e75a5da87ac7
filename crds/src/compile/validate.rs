//! Value checks the compiler repeats from the CRD schema. In a cluster the API server has run
//! them already; standalone files reach the compiler unchecked, and a value the proxy cannot
//! serve must never reach a table.

use std::net::IpAddr;

use crate::table;

pub const MAX_RATE: f64 = 1_000_000.0;
pub const MAX_BURST: u32 = 1_000_000;

/// A throttle within the bounds the CRD schema states: a resource's, or the table's default.
pub fn throttle<T: Copy + Into<table::ThrottleSettings>>(t: &T) -> Result<(), String> {
    let t: table::ThrottleSettings = (*t).into();
    if !t.rate_limit.is_finite() || !(0.0..=MAX_RATE).contains(&t.rate_limit) {
        return Err(format!(
            "rateLimit must be between 0 and {MAX_RATE}, not {}",
            t.rate_limit
        ));
    }
    if t.burst_limit > MAX_BURST {
        return Err(format!(
            "burstLimit must be at most {MAX_BURST}, not {}",
            t.burst_limit
        ));
    }
    Ok(())
}

/// The lower of each limit, in the table's terms: a stage or route throttle never exceeds
/// the gateway's.
pub fn cap(
    t: impl Into<table::ThrottleSettings>,
    ceiling: table::ThrottleSettings,
) -> table::ThrottleSettings {
    let t = t.into();
    table::ThrottleSettings {
        rate_limit: t.rate_limit.min(ceiling.rate_limit),
        burst_limit: t.burst_limit.min(ceiling.burst_limit),
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`; a bare address is not a CIDR.
pub fn cidr(s: &str) -> Result<(), String> {
    let err = || format!("{s:?} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32");
    let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
    let addr: IpAddr = addr.parse().map_err(|_| err())?;
    let prefix: u8 = prefix.parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(err());
    }
    Ok(())
}

pub fn stage_name(s: &str) -> Result<(), String> {
    token("stage name", s, 128)
}

pub fn name_token(what: &str, s: &str) -> Result<(), String> {
    token(what, s, 64)
}

/// 1 to `max` letters, digits, '_' or '-'.
fn token(what: &str, s: &str, max: usize) -> Result<(), String> {
    let valid = (1..=max).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} must be 1 to {max} letters, digits, '_' or '-'"
        ))
    }
}

pub fn stage_variable(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "stage variable name {name:?} may use only letters, digits and '_' (at most 64)"
        ));
    }
    if value.len() > 512
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#&=,".contains(c))
    {
        return Err(format!(
            "stage variable {name}: value may use letters, digits and -._~:/?#&=, (at most 512 characters)"
        ));
    }
    Ok(())
}

/// `$request.header.Name`, `$request.querystring.name` or `$stageVariables.name`.
pub fn identity_source(s: &str) -> Result<(), String> {
    let ok = |rest: &str, extra: &str| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
    };
    let valid = if let Some(h) = s.strip_prefix("$request.header.") {
        ok(h, "-.")
    } else if let Some(q) = s.strip_prefix("$request.querystring.") {
        ok(q, "-.")
    } else if let Some(v) = s.strip_prefix("$stageVariables.") {
        ok(v, "")
    } else {
        false
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "identity source {s:?} must be $request.header.Name, $request.querystring.name or $stageVariables.name"
        ))
    }
}

/// An HTTP header name (RFC 9110 token).
pub fn header_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid header name"))
    }
}

/// Headers an answer's configuration may not set: the proxy frames the answer and owns its
/// request id.
const GATEWAY_OWNED_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "x-amzn-requestid",
];

/// The header an answer's `{prefix}NAME` key sets (`gatewayresponse.header.`,
/// `method.response.header.`), lowercased; one the gateway owns is refused.
pub fn answer_header(key: &str, prefix: &str) -> Result<String, String> {
    let name = key
        .strip_prefix(prefix)
        .ok_or_else(|| format!("a key is {prefix}NAME"))?
        .to_ascii_lowercase();
    header_name(&name)?;
    if GATEWAY_OWNED_HEADERS.contains(&name.as_str()) {
        return Err(format!("the gateway sets {name} itself"));
    }
    Ok(name)
}

/// A header value may not carry line breaks or other control characters.
pub fn header_value(name: &str, v: &str) -> Result<(), String> {
    if v.chars().any(|c| c.is_control() && c != '\t') {
        Err(format!("header {name}: value contains a control character"))
    } else {
        Ok(())
    }
}

/// An absolute `http://` or `https://` URL (or URL template) with a host part.
pub fn http_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{s:?} has no host"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} contains white space"));
    }
    Ok(())
}

/// A WebSocket route key: `$connect`, `$disconnect`, `$default`, or a key of up to 128
/// characters that does not start with `$` and has no whitespace.
pub fn route_key(s: &str) -> Result<(), String> {
    if matches!(s, "$connect" | "$disconnect" | "$default") {
        return Ok(());
    }
    if s.is_empty() || s.len() > 128 || s.starts_with('$') || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "{s:?} is not a route key: use $connect, $disconnect, $default, or up to 128 \
             characters without whitespace that do not start with '$'"
        ));
    }
    Ok(())
}

/// `$request.body.action` to its field path (`["action"]`).
pub fn route_selection_expression(s: &str) -> Result<Vec<String>, String> {
    let err = || {
        format!(
            "{s:?} is not a route selection expression: use $request.body. and a dotted path \
             to a field of the message, such as $request.body.action"
        )
    };
    let path = s.strip_prefix("$request.body.").ok_or_else(err)?;
    let fields: Vec<String> = path.split('.').map(str::to_string).collect();
    let valid = |f: &String| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if s.len() > 256 || !fields.iter().all(valid) {
        return Err(err());
    }
    Ok(fields)
}

/// `redis://host:port/db` or `rediss://…` (TLS).
pub fn redis_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("redis://")
        .or_else(|| s.strip_prefix("rediss://"));
    match rest {
        Some(rest) if !rest.is_empty() && !s.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(format!(
            "{s:?} is not a Redis URL such as redis://redis.tollgate-system:6379"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ThrottleSettings;

    #[test]
    fn cidrs() {
        for ok in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::/0",
            "192.168.1.7/32",
        ] {
            assert!(cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "fe80::/129",
            "ten/8",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn throttles_must_be_finite_and_bounded() {
        let t = |r, b| ThrottleSettings {
            rate_limit: r,
            burst_limit: b,
        };
        assert!(throttle(&t(0.0, 0)).is_ok());
        assert!(throttle(&t(f64::NAN, 1)).is_err());
        assert!(throttle(&t(-1.0, 1)).is_err());
        assert!(throttle(&t(1.0, MAX_BURST + 1)).is_err());
        let table = |r, b| table::ThrottleSettings {
            rate_limit: r,
            burst_limit: b,
        };
        assert_eq!(cap(t(50.0, 10), table(20.0, 100)), table(20.0, 10));
    }

    #[test]
    fn identity_sources() {
        assert!(identity_source("$request.header.Authorization").is_ok());
        assert!(identity_source("$request.querystring.token").is_ok());
        assert!(identity_source("$stageVariables.tenant").is_ok());
        assert!(identity_source("method.request.header.Authorization").is_err());
        assert!(identity_source("$request.header.").is_err());
    }
}
