//! JSONPath for `$input.json`/`$input.path`/... through jsonpath-rust (RFC 9535), with the
//! Jayway behaviours Amazon's templates rely on:
//!
//! - a definite path (names and indexes only) gives one value, or nothing; an indefinite one
//!   (wildcard, `..`, filter, slice, union) gives a list, even of one match;
//! - member names in dot notation may hold characters RFC 9535 only allows in brackets
//!   (`$.user-agent`), and a path without the leading `$` is taken from the root.

use crate::json::Json;
use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;

pub(crate) enum Matched<'a> {
    One(&'a Json),
    Many(Vec<&'a Json>),
    Nothing,
}

pub(crate) fn query<'a>(doc: &'a Json, path: &str) -> Result<Matched<'a>, String> {
    // Most real paths are `$`, `$.a.b` or `$.items[0]`: walked directly, without parsing a
    // JSONPath grammar on every request.
    if let Some(found) = simple(doc, path) {
        return Ok(found);
    }
    let normalized = normalize(path);
    let parsed = parse_json_path(&normalized).map_err(|e| format!("bad JSONPath {path:?}: {e}"))?;
    let found = js_path_process(&parsed, doc).map_err(|e| format!("JSONPath {path:?}: {e}"))?;
    let mut values: Vec<&Json> = found.into_iter().map(|r| r.val).collect();
    if !is_definite(&parsed) {
        return Ok(Matched::Many(values));
    }
    Ok(match values.pop() {
        Some(value) => Matched::One(value),
        None => Matched::Nothing,
    })
}

/// A definite path of dot names (letters, digits, `_`) and bracketed indexes, walked without
/// the JSONPath parser; `None` for any other path (the parser takes it).
fn simple<'a>(doc: &'a Json, path: &str) -> Option<Matched<'a>> {
    let rest = path.trim().strip_prefix('$')?;
    let mut at = Some(doc);
    let mut rest = rest;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
                return None;
            }
            at = match at {
                Some(Json::Object(members)) => {
                    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
                }
                _ => None,
            };
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let index: usize = after[..end].parse().ok()?;
            at = match at {
                Some(Json::Array(items)) => items.get(index),
                _ => None,
            };
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(at.map_or(Matched::Nothing, Matched::One))
}

fn is_definite(query: &JpQuery) -> bool {
    query.segments.iter().all(|segment| {
        matches!(
            segment,
            Segment::Selector(Selector::Name(_) | Selector::Index(_))
        )
    })
}

/// Rewrites Jayway-only spellings into RFC 9535: `name` → `$.name`, `$.a-b` → `$['a-b']`.
fn normalize(path: &str) -> String {
    let path = path.trim();
    let path = if path.starts_with('$') {
        path.to_owned()
    } else if path.starts_with('[') {
        format!("${path}")
    } else {
        format!("$.{path}")
    };
    let chars: Vec<char> = path.chars().collect();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    let mut brackets = 0usize;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' if brackets > 0 => quote = Some(c),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '.' if brackets == 0 => {
                let descendant = chars.get(i + 1) == Some(&'.');
                let start = if descendant { i + 2 } else { i + 1 };
                let end = (start..chars.len())
                    .find(|&j| matches!(chars[j], '.' | '['))
                    .unwrap_or(chars.len());
                let name: String = chars[start..end].iter().collect();
                let shorthand = name == "*"
                    || name.chars().next().is_some_and(|c| !c.is_ascii_digit())
                        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                out.push_str(if descendant { ".." } else { "" });
                if name.is_empty() || shorthand {
                    out.push_str(if descendant { "" } else { "." });
                    out.push_str(&name);
                } else {
                    out.push_str("['");
                    out.push_str(&name.replace('\\', "\\\\").replace('\'', "\\'"));
                    out.push_str("']");
                }
                i = end;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_jayway_spellings() {
        assert_eq!(normalize("$.a.b"), "$.a.b");
        assert_eq!(normalize("$.user-agent"), "$['user-agent']");
        assert_eq!(normalize("$..user-agent"), "$..['user-agent']");
        assert_eq!(normalize("a.b"), "$.a.b");
        assert_eq!(normalize("$['x.y'].z"), "$['x.y'].z");
        assert_eq!(normalize("$.items[*].id"), "$.items[*].id");
        assert_eq!(normalize("$..id"), "$..id");
        assert_eq!(normalize("$.*"), "$.*");
    }

    #[test]
    fn simple_paths_walked_directly_agree_with_the_parser() {
        let doc =
            Json::parse(r#"{"a":{"b":"c","n":[10,20,{"x_1":true}]},"items":[{"id":1}],"e":null}"#)
                .unwrap();
        for path in [
            "$",
            "$.a",
            "$.a.b",
            "$.a.n[1]",
            "$.a.n[2].x_1",
            "$.items[0].id",
            "$.missing",
            "$.a.missing.deeper",
            "$.a.n[9]",
            "$.e",
            "$.a.b[0]",
        ] {
            let fast = simple(&doc, path).expect("a simple path");
            let normalized = normalize(path);
            let parsed = parse_json_path(&normalized).unwrap();
            let slow: Vec<&Json> = js_path_process(&parsed, &doc)
                .unwrap()
                .into_iter()
                .map(|r| r.val)
                .collect();
            match fast {
                Matched::One(v) => assert_eq!(slow, vec![v], "{path}"),
                Matched::Nothing => assert!(slow.is_empty(), "{path}: {slow:?}"),
                Matched::Many(_) => panic!("{path}: a simple path is definite"),
            }
        }
        for path in [
            "$..id",
            "$.items[*]",
            "$['a']",
            "$.a-b",
            "a.b",
            "$.items[-1]",
            "$.1a",
        ] {
            assert!(simple(&doc, path).is_none(), "{path} is for the parser");
        }
    }

    #[test]
    fn definite_paths_give_one_value_and_indefinite_ones_a_list() {
        let doc = Json::parse(r#"{"items":[{"id":1},{"id":2}],"a":{"b":"c"}}"#).unwrap();
        assert!(matches!(query(&doc, "$.a.b"), Ok(Matched::One(Json::Str(s))) if s == "c"));
        assert!(matches!(
            query(&doc, "$.items[0].id"),
            Ok(Matched::One(Json::Int(1)))
        ));
        assert!(matches!(query(&doc, "$.missing"), Ok(Matched::Nothing)));
        assert!(matches!(query(&doc, "$.items[*].id"), Ok(Matched::Many(v)) if v.len() == 2));
        assert!(matches!(query(&doc, "$..b"), Ok(Matched::Many(v)) if v.len() == 1));
        assert!(query(&doc, "$.items[").is_err());
    }
}
