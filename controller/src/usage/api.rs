//! `GET /usage/v1/namespaces/{namespace}/usageplans/{name}?startDate=&endDate=[&keyId=]
//! [&limit=][&position=]`: Amazon's `GetUsage` for one plan. The server (`snapshot/server.rs`)
//! authenticates the caller and asks RBAC first; this module reads the request and the counts.

use jiff::civil::Date;
use tollgate_crds::table::ObjectKey;
use tollgate_crds::usage::{
    API_PREFIX, GetUsage, MAX_RANGE_DAYS, Query, first_day_needed, parse_date, usage,
};

use super::{PlanView, Usage, UsageError};

/// Keys per page unless `limit` says otherwise, and at most (Amazon's).
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 500;

/// The plan a path names: `{API_PREFIX}{namespace}/usageplans/{name}`.
pub fn plan_of(path: &str) -> Option<ObjectKey> {
    let rest = path.strip_prefix(API_PREFIX)?;
    let mut parts = rest.split('/');
    let (namespace, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (kind == "usageplans" && parts.next().is_none() && valid(namespace) && valid(name))
        .then(|| ObjectKey::new(namespace, name))
}

/// What the query string asks.
#[derive(Debug, PartialEq)]
pub struct Params {
    pub start: Date,
    pub end: Date,
    pub key_id: Option<String>,
    pub limit: usize,
    pub position: Option<String>,
}

/// The query string, checked as Amazon does: both dates required, in order, at most
/// [`MAX_RANGE_DAYS`] days apart; a message for a 400 otherwise.
pub fn params(query: &str) -> Result<Params, String> {
    let mut start = None;
    let mut end = None;
    let mut key_id = None;
    let mut limit = DEFAULT_LIMIT;
    let mut position = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value).ok_or_else(|| format!("{name}: invalid percent-encoding"))?;
        match name {
            "startDate" => start = Some(parse_date(&value)?),
            "endDate" => end = Some(parse_date(&value)?),
            "keyId" if !value.is_empty() => key_id = Some(value),
            "position" if !value.is_empty() => position = Some(value),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit must be between 1 and {MAX_LIMIT}"))?;
            }
            _ => {}
        }
    }
    let start = start.ok_or("startDate is required (YYYY-MM-DD)")?;
    let end = end.ok_or("endDate is required (YYYY-MM-DD)")?;
    if end < start {
        return Err("endDate must not be before startDate".into());
    }
    let days = (end - start).get_days() + 1;
    if i64::from(days) > MAX_RANGE_DAYS {
        return Err(format!(
            "the date range cannot exceed {MAX_RANGE_DAYS} days (asked: {days})"
        ));
    }
    Ok(Params {
        start,
        end,
        key_id,
        limit,
        position,
    })
}

/// The answer for `plan`.
pub async fn get_usage(
    store: &Usage,
    plan: &PlanView,
    params: &Params,
) -> Result<GetUsage, UsageError> {
    let from = first_day_needed(plan.quota.as_ref(), params.start);
    let counts = store.counts(plan, from, params.end).await?;
    let query = Query {
        start: params.start,
        end: params.end,
        key_id: params.key_id.as_deref(),
        limit: params.limit,
        position: params.position.as_deref(),
    };
    Ok(usage(
        &plan.key.name,
        plan.quota.as_ref(),
        &plan.keys,
        &counts,
        &query,
    ))
}

/// Percent-decoding (and `+` as a space), `None` for a bad escape or bytes that are not UTF-8.
fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_plan() {
        assert_eq!(
            plan_of("/usage/v1/namespaces/shop/usageplans/gold"),
            Some(ObjectKey::new("shop", "gold"))
        );
        for bad in [
            "/usage/v1/namespaces/shop/usageplans/",
            "/usage/v1/namespaces/shop/routes/gold",
            "/usage/v1/namespaces/shop/usageplans/gold/x",
            "/usage/v1/namespaces/Shop/usageplans/gold",
        ] {
            assert_eq!(plan_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn queries_are_checked_as_amazon_does() {
        let p = params("startDate=2026-11-01&endDate=2026-11-24&keyId=alice%2D1&limit=2").unwrap();
        assert_eq!(p.start.to_string(), "2026-11-01");
        assert_eq!(p.key_id.as_deref(), Some("alice-1"));
        assert_eq!(p.limit, 2);
        assert_eq!(
            params("startDate=2026-11-01&endDate=2026-11-01")
                .unwrap()
                .limit,
            25
        );
        for bad in [
            "endDate=2026-11-24",
            "startDate=2026-11-24",
            "startDate=2026-11-24&endDate=2026-11-01",
            "startDate=2026-01-01&endDate=2026-12-31",
            "startDate=2026-11-24&endDate=2026-11-31",
            "startDate=2026-11-24&endDate=2026-11-24&limit=0",
        ] {
            assert!(params(bad).is_err(), "{bad}");
        }
        // 90 days, both ends included, is the most.
        assert!(params("startDate=2026-01-01&endDate=2026-03-31").is_ok());
        assert!(params("startDate=2026-01-01&endDate=2026-04-01").is_err());
    }
}
