//! Route path templates (`/pets/{petId}`, `/files/{proxy+}`) and the `{param}` references in
//! integration templates.

use std::collections::BTreeSet;

/// A segment of a route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path, at least one segment.
    Greedy(String),
}

/// A parsed and checked route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    pub segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a route path, refusing anything the router could not serve unambiguously.
    pub fn parse(path: &str) -> Result<Self, String> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(format!("path {path:?} must start with '/'"));
        };
        if path.len() > 1024 {
            return Err("path is longer than 1,024 characters".into());
        }
        if rest.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let mut segments = Vec::new();
        let mut names = BTreeSet::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment =
                parse_segment(part).map_err(|e| format!("segment {} ({part:?}): {e}", i + 1))?;
            if let Segment::Param(name) | Segment::Greedy(name) = &segment
                && !names.insert(name.clone())
            {
                return Err(format!(
                    "parameter {{{name}}} appears twice: give each parameter its own name"
                ));
            }
            if matches!(segment, Segment::Greedy(_)) && i + 1 != parts.len() {
                return Err(format!("greedy parameter {part} must be the last segment"));
            }
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// Names of the path parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The path with parameter names erased: two routes with the same shape and method
    /// conflict whatever their parameters are called.
    pub fn shape(&self) -> String {
        if self.segments.is_empty() {
            return "/".into();
        }
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => format!("/{l}"),
                Segment::Param(_) => "/{}".into(),
                Segment::Greedy(_) => "/{+}".into(),
            })
            .collect()
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    if part.is_empty() {
        return Err("empty segment: remove the doubled or trailing '/'".into());
    }
    if let Some(inner) = part.strip_prefix('{') {
        let Some(inner) = inner.strip_suffix('}') else {
            return Err("a parameter segment must be the whole segment, as {name}".into());
        };
        let (name, greedy) = match inner.strip_suffix('+') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if !is_identifier(name) {
            return Err(
                "parameter names start with a letter or '_' and use letters, digits and '_'".into(),
            );
        }
        return Ok(if greedy {
            Segment::Greedy(name.to_string())
        } else {
            Segment::Param(name.to_string())
        });
    }
    if let Some(c) = part.chars().find(|c| !is_literal_char(*c)) {
        return Err(format!("character {c:?} is not allowed in a path segment"));
    }
    Ok(Segment::Literal(part.to_string()))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// RFC 3986 `pchar` without percent-encoding: unreserved, sub-delims, ':' and '@'.
fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*,;=:@".contains(c)
}

/// The `{name}` references in an integration template, skipping `${stageVariables.x}`.
pub fn template_params(template: &str) -> Vec<&str> {
    let mut params = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while let Some(open) = template[i..].find('{').map(|o| o + i) {
        let Some(close) = template[open..].find('}').map(|c| c + open) else {
            break;
        };
        let is_stage_variable = open > 0 && bytes[open - 1] == b'$';
        if !is_stage_variable {
            params.push(&template[open + 1..close]);
        }
        i = close + 1;
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_params_and_greedy() {
        let t = PathTemplate::parse("/pets/{petId}/files/{proxy+}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Literal("pets".into()),
                Segment::Param("petId".into()),
                Segment::Literal("files".into()),
                Segment::Greedy("proxy".into()),
            ]
        );
        assert_eq!(t.shape(), "/pets/{}/files/{+}");
        assert_eq!(PathTemplate::parse("/").unwrap().shape(), "/");
    }

    #[test]
    fn refuses_what_the_router_cannot_serve() {
        for (path, why) in [
            ("pets", "must start with '/'"),
            ("/pets//toys", "empty segment"),
            ("/pets/", "empty segment"),
            ("/pets/{id}/{id}", "appears twice"),
            ("/a/{rest+}/b", "must be the last segment"),
            ("/pets/{id", "whole segment"),
            ("/pets/x{id}", "not allowed"),
            ("/pets/{1d}", "parameter names"),
            ("/pets/a b", "not allowed"),
        ] {
            let err = PathTemplate::parse(path).unwrap_err();
            assert!(err.contains(why), "{path}: {err}");
        }
    }

    #[test]
    fn finds_template_params_but_not_stage_variables() {
        assert_eq!(
            template_params("http://${stageVariables.host}/pets/{petId}?q={proxy}"),
            vec!["petId", "proxy"]
        );
    }
}
