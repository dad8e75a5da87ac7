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
