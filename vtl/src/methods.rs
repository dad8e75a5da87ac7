//! Method calls: `$input.*`, `$util.*`, and the Java methods templates call on strings, lists,
//! maps and numbers. An unknown method gives null, as in Velocity.

use crate::ast::Pos;
use crate::error::RenderError;
use crate::eval::{Renderer, evaluation_error, loop_method};
use crate::json::Json;
use crate::jsonpath::{self, Matched};
use crate::util;
use crate::value::{List, MapKind, Value, java_equals};
use regex::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::rc::Rc;

type Outcome = Result<Value, RenderError>;

impl Renderer<'_> {
    pub(crate) fn call(&mut self, target: &Value, name: &str, args: &[Value], pos: Pos) -> Outcome {
        if name == "toString" && args.is_empty() {
            return Ok(Value::str(target.to_java_string()));
        }
        if name == "equals" && args.len() == 1 {
            return Ok(Value::Bool(java_equals(target, &args[0])));
        }
        match target {
            Value::Input => self.input_method(name, args, pos),
            Value::Util => self.util_method(name, args, pos),
            Value::Str(s) => self.string_method(s, name, args, pos),
            Value::List(list) => self.list_method(target, list, name, args, pos),
            Value::Map(_) => self.map_method(target, name, args),
            Value::Loop(state) => Ok(loop_method(*state, name)),
            Value::Int(_) | Value::Float(_) => Ok(number_method(target, name)),
            Value::Bool(b) if name == "booleanValue" => Ok(Value::Bool(*b)),
            _ => Ok(Value::Null),
        }
    }

    fn input_method(&mut self, name: &str, args: &[Value], pos: Pos) -> Outcome {
        match (name, args) {
            ("json", [path]) => self.input_json(&path.to_java_string(), pos),
            ("path", [path]) => self.input_path(&path.to_java_string(), pos),
            ("params", []) => Ok(self.all_params()),
            ("params", [name]) => {
                let value = self.input.param(&name.to_java_string()).unwrap_or("");
                Ok(Value::str(value))
            }
            _ => Ok(Value::Null),
        }
    }

    /// `$input.json(p)`: the JSON text of what the path selects; a list for an indefinite
    /// path; `""` when a definite path selects nothing.
    fn input_json(&mut self, path: &str, pos: Pos) -> Outcome {
        let doc = self.body_json()?;
        let text = match jsonpath::query(&doc, path).map_err(|e| evaluation_error(pos, e))? {
            Matched::One(value) => value.to_text(),
            Matched::Many(values) => {
                let texts: Vec<String> = values.iter().map(|v| v.to_text()).collect();
                format!("[{}]", texts.join(","))
            }
            Matched::Nothing => "\"\"".to_owned(),
        };
        self.charge(text.len())?;
        Ok(Value::str(text))
    }

    /// `$input.path(p)`: what the path selects, as a value to navigate; null when a definite
    /// path selects nothing. The same path gives the same object for the whole render.
    fn input_path(&mut self, path: &str, pos: Pos) -> Outcome {
        if let Some(value) = self.paths.get(path) {
            return Ok(value.clone());
        }
        let doc = self.body_json()?;
        let value = match jsonpath::query(&doc, path).map_err(|e| evaluation_error(pos, e))? {
            Matched::One(value) => {
                self.charge(value.weight())?;
                Value::from_json(value)
            }
            Matched::Many(values) => {
                self.charge(values.iter().map(|v| v.weight()).sum())?;
                Value::List(Rc::new(RefCell::new(List {
                    items: values.into_iter().map(Value::from_json).collect(),
                    json: true,
                })))
            }
            Matched::Nothing => Value::Null,
        };
        self.paths.insert(path.to_owned(), value.clone());
        Ok(value)
    }

    /// `$input.params()`: `path`, `querystring` and `header` maps (header names case-blind).
    fn all_params(&mut self) -> Value {
        if let Some(params) = &self.params {
            return params.clone();
        }
        let section = |params: &[(String, String)], kind| {
            Value::map(
                params
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::str(v.as_str())))
                    .collect(),
                kind,
            )
        };
        let params = Value::map(
            vec![
                ("path".into(), section(&self.input.path, MapKind::Plain)),
                (
                    "querystring".into(),
                    section(&self.input.querystring, MapKind::Plain),
                ),
                (
                    "header".into(),
                    section(&self.input.header, MapKind::Headers),
                ),
            ],
            MapKind::Plain,
        );
        self.params = Some(params.clone());
        params
    }

    fn util_method(&mut self, name: &str, args: &[Value], pos: Pos) -> Outcome {
        let [arg] = args else {
            return Ok(Value::Null);
        };
        if arg.is_null() {
            return Ok(Value::Null);
        }
        let text = arg.to_java_string();
        let failed = |e: String| evaluation_error(pos, e);
        Ok(match name {
            "escapeJavaScript" => Value::str(util::escape_javascript(&text)),
            "urlEncode" => Value::str(util::url_encode(&text)),
            "urlDecode" => Value::str(util::url_decode(&text).map_err(failed)?),
            "base64Encode" => Value::str(util::base64_encode(&text)),
            "base64Decode" => Value::str(util::base64_decode(&text).map_err(failed)?),
            "parseJson" => {
                let json = Json::parse(&text)
                    .map_err(|e| evaluation_error(pos, format!("parseJson: {e}")))?;
                self.charge(json.weight())?;
                Value::from_json(&json)
            }
            _ => Value::Null,
        })
    }

    fn string_method(&mut self, s: &str, name: &str, args: &[Value], pos: Pos) -> Outcome {
        let text = |i: usize| args.get(i).map(Value::to_java_string).unwrap_or_default();
        let int = |i: usize| args.get(i).and_then(Value::as_index);
        Ok(match (name, args.len()) {
            ("length" | "size", 0) => Value::Int(s.chars().count() as i64),
            ("isEmpty", 0) => Value::Bool(s.is_empty()),
            ("toLowerCase", 0) => Value::str(s.to_lowercase()),
            ("toUpperCase", 0) => Value::str(s.to_uppercase()),
            ("trim", 0) => Value::str(s.trim_matches(|c: char| c <= ' ')),
            ("contains", 1) => Value::Bool(s.contains(&text(0))),
            ("startsWith", 1) => Value::Bool(s.starts_with(&text(0))),
            ("endsWith", 1) => Value::Bool(s.ends_with(&text(0))),
            ("equalsIgnoreCase", 1) => Value::Bool(s.to_lowercase() == text(0).to_lowercase()),
            ("concat", 1) => Value::str(format!("{s}{}", text(0))),
            ("indexOf", 1 | 2) => Value::Int(index_of(s, &text(0), int(1).unwrap_or(0))),
            ("lastIndexOf", 1) => Value::Int(
                s.rfind(&text(0))
                    .map_or(-1, |b| s[..b].chars().count() as i64),
            ),
            ("charAt", 1) => {
                let c = int(0)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| s.chars().nth(i))
                    .ok_or_else(|| evaluation_error(pos, "charAt: index out of range"))?;
                Value::str(c.to_string())
            }
            ("substring", 1 | 2) => Value::str(substring(s, int(0), int(1), args.len(), pos)?),
            ("replace", 2) => Value::str(s.replace(&text(0), &text(1))),
            ("replaceAll", 2) => {
                let regex = self.regex(&text(0), pos)?;
                Value::str(
                    regex
                        .replace_all(s, java_replacement(&text(1)))
                        .into_owned(),
                )
            }
            ("replaceFirst", 2) => {
                let regex = self.regex(&text(0), pos)?;
                Value::str(regex.replace(s, java_replacement(&text(1))).into_owned())
            }
            ("matches", 1) => {
                let regex = self.regex(&format!("^(?:{})$", text(0)), pos)?;
                Value::Bool(regex.is_match(s))
            }
            ("split", 1 | 2) => {
                let regex = self.regex(&text(0), pos)?;
                let parts = java_split(&regex, s, int(1).unwrap_or(0));
                Value::list(parts.into_iter().map(Value::str).collect())
            }
            _ => Value::Null,
        })
    }

    /// A compiled regular expression, compiled once per render. Java's syntax is mostly the
    /// `regex` crate's; look-around and back-references are not supported.
    fn regex(&mut self, pattern: &str, pos: Pos) -> Result<Regex, RenderError> {
        if let Some(regex) = self.regexes.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| evaluation_error(pos, format!("bad regular expression: {e}")))?;
        self.regexes.insert(pattern.to_owned(), regex.clone());
        Ok(regex)
    }

    fn list_method(
        &mut self,
        target: &Value,
        list: &Rc<RefCell<List>>,
        name: &str,
        args: &[Value],
        pos: Pos,
    ) -> Outcome {
        let position = |items: &[Value], needle: &Value| {
            items.iter().position(|item| java_equals(item, needle))
        };
        let out_of_range = || evaluation_error(pos, format!("{name}: index out of range"));
        let holds_container = args
            .iter()
            .any(|arg| matches!(arg, Value::List(_) | Value::Map(_)));
        let result = {
            let mut list = list.borrow_mut();
            let items = &mut list.items;
            let index = |i: usize| {
                args.get(i)
                    .and_then(Value::as_index)
                    .and_then(|i| usize::try_from(i).ok())
            };
            match (name, args) {
                ("size", []) => Value::Int(items.len() as i64),
                ("isEmpty", []) => Value::Bool(items.is_empty()),
                ("get", [_]) => index(0)
                    .and_then(|i| items.get(i).cloned())
                    .ok_or_else(out_of_range)?,
                ("contains", [needle]) => Value::Bool(position(items, needle).is_some()),
                ("indexOf", [needle]) => {
                    Value::Int(position(items, needle).map_or(-1, |i| i as i64))
                }
                ("add", [item]) => {
                    items.push(item.clone());
                    Value::Bool(true)
                }
                ("add", [_, item]) => {
                    let i = index(0)
                        .filter(|&i| i <= items.len())
                        .ok_or_else(out_of_range)?;
                    items.insert(i, item.clone());
                    Value::Null
                }
                ("addAll", [Value::List(other)]) => {
                    let other = if Rc::ptr_eq(other, list_rc(target)) {
                        items.clone()
                    } else {
                        other.borrow().items.clone()
                    };
                    items.extend(other);
                    Value::Bool(true)
                }
                ("set", [_, item]) => {
                    let slot = index(0)
                        .and_then(|i| items.get_mut(i))
                        .ok_or_else(out_of_range)?;
                    std::mem::replace(slot, item.clone())
                }
                ("remove", [Value::Int(_)]) => {
                    let i = index(0)
                        .filter(|&i| i < items.len())
                        .ok_or_else(out_of_range)?;
                    items.remove(i)
                }
                ("remove", [needle]) => match position(items, needle) {
                    Some(i) => {
                        items.remove(i);
                        Value::Bool(true)
                    }
                    None => Value::Bool(false),
                },
                ("clear", []) => {
                    items.clear();
                    Value::Null
                }
                _ => Value::Null,
            }
        };
        if holds_container {
            self.note_mutation(target);
        }
        Ok(result)
    }

    fn map_method(&mut self, target: &Value, name: &str, args: &[Value]) -> Outcome {
        let Value::Map(map) = target else {
            return Ok(Value::Null);
        };
        let key = |i: usize| args.get(i).map(Value::to_java_string).unwrap_or_default();
        let result = {
            let mut map = map.borrow_mut();
            match (name, args.len()) {
                ("get", 1) => map.get(&key(0)).cloned().unwrap_or(Value::Null),
                ("containsKey", 1) => Value::Bool(map.position(&key(0)).is_some()),
                ("size", 0) => Value::Int(map.entries.len() as i64),
                ("isEmpty", 0) => Value::Bool(map.entries.is_empty()),
                ("keySet", 0) => Value::list(
                    map.entries
                        .iter()
                        .map(|(k, _)| Value::str(k.as_str()))
                        .collect(),
                ),
                ("values", 0) => Value::list(map.entries.iter().map(|(_, v)| v.clone()).collect()),
                ("entrySet", 0) => Value::list(
                    map.entries
                        .iter()
                        .map(|(k, v)| {
                            Value::map(
                                vec![
                                    ("key".into(), Value::str(k.as_str())),
                                    ("value".into(), v.clone()),
                                ],
                                MapKind::Entry,
                            )
                        })
                        .collect(),
                ),
                ("getKey", 0) if map.kind == MapKind::Entry => {
                    map.get("key").cloned().unwrap_or(Value::Null)
                }
                ("getValue", 0) if map.kind == MapKind::Entry => {
                    map.get("value").cloned().unwrap_or(Value::Null)
                }
                ("put", 2) => map.put(key(0), args[1].clone()),
                ("remove", 1) => match map.position(&key(0)) {
                    Some(i) => map.entries.remove(i).1,
                    None => Value::Null,
                },
                ("putAll", 1) => {
                    if let Value::Map(other) = &args[0] {
                        let entries = if Rc::ptr_eq(other, map_rc(target)) {
                            Vec::new()
                        } else {
                            other.borrow().entries.clone()
                        };
                        for (k, v) in entries {
                            map.put(k, v);
                        }
                    }
                    Value::Null
                }
                ("clear", 0) => {
                    map.entries.clear();
                    Value::Null
                }
                _ => Value::Null,
            }
        };
        if args
            .iter()
            .any(|arg| matches!(arg, Value::List(_) | Value::Map(_)))
        {
            self.note_mutation(target);
        }
        Ok(result)
    }
}

fn list_rc(value: &Value) -> &Rc<RefCell<List>> {
    match value {
        Value::List(list) => list,
        _ => unreachable!("called with a list"),
    }
}

fn map_rc(value: &Value) -> &Rc<RefCell<crate::value::Map>> {
    match value {
        Value::Map(map) => map,
        _ => unreachable!("called with a map"),
    }
}

fn number_method(target: &Value, name: &str) -> Value {
    match (name, target) {
        ("intValue" | "longValue", Value::Float(f)) => Value::Int(*f as i64),
        ("doubleValue" | "floatValue", Value::Int(i)) => Value::Float(*i as f64),
        ("intValue" | "longValue" | "doubleValue" | "floatValue", _) => target.clone(),
        _ => Value::Null,
    }
}

/// Java's `indexOf(str, fromIndex)`, in characters.
fn index_of(s: &str, needle: &str, from: i64) -> i64 {
    let from = usize::try_from(from).unwrap_or(0);
    let Some((start, _)) = s
        .char_indices()
        .nth(from)
        .or((from == 0).then_some((0, ' ')))
    else {
        return -1;
    };
    s[start..]
        .find(needle)
        .map_or(-1, |b| (from + s[start..start + b].chars().count()) as i64)
}

/// Java's `substring(begin[, end])`, in characters; out of range is an error, as Java's
/// `StringIndexOutOfBoundsException`.
fn substring(
    s: &str,
    begin: Option<i64>,
    end: Option<i64>,
    argc: usize,
    pos: Pos,
) -> Result<String, RenderError> {
    let len = s.chars().count() as i64;
    let begin = begin.unwrap_or(-1);
    let end = if argc == 2 { end.unwrap_or(-1) } else { len };
    if begin < 0 || end > len || begin > end {
        return Err(evaluation_error(
            pos,
            format!("substring({begin}, {end}) out of range for a string of length {len}"),
        ));
    }
    Ok(s.chars()
        .skip(begin as usize)
        .take((end - begin) as usize)
        .collect())
}

/// A Java replacement string (`$1`, `\$`) in the `regex` crate's syntax (`${1}`, `$$`).
fn java_replacement(java: &str) -> String {
    let mut out = String::with_capacity(java.len());
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    chars.next();
                    out.push(d);
                }
                out.push('}');
            }
            '$' if chars.peek() == Some(&'{') => out.push('$'),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// Java's `String.split(regex, limit)`: no leading empty string for a zero-width match at
/// the start; with limit 0, no trailing empty strings; a positive limit caps the parts.
fn java_split(regex: &Regex, s: &str, limit: i64) -> Vec<String> {
    let mut parts = Vec::new();
    let mut last = 0;
    for found in regex.find_iter(s) {
        if found.end() == 0 {
            continue;
        }
        if limit > 0 && parts.len() as i64 == limit - 1 {
            break;
        }
        parts.push(s[last..found.start()].to_owned());
        last = found.end();
    }
    parts.push(s[last..].to_owned());
    if limit == 0 {
        while parts.len() > 1 && parts.last().is_some_and(String::is_empty) {
            parts.pop();
        }
        if parts.len() == 1 && parts[0].is_empty() && !s.is_empty() {
            parts.clear();
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_java() {
        let comma = Regex::new(",").unwrap();
        assert_eq!(java_split(&comma, "a,b,,", 0), ["a", "b"]);
        assert_eq!(java_split(&comma, "a,b,,", -1), ["a", "b", "", ""]);
        assert_eq!(java_split(&comma, "a,b,c", 2), ["a", "b,c"]);
        assert_eq!(java_split(&comma, "", 0), [""]);
        assert_eq!(java_split(&comma, ",a", 0), ["", "a"]);
        assert!(java_split(&comma, ",,", 0).is_empty());
        let empty = Regex::new("").unwrap();
        assert_eq!(java_split(&empty, "abc", 0), ["a", "b", "c"]);
    }

    #[test]
    fn replacement_strings_follow_java() {
        assert_eq!(java_replacement("$1-$2"), "${1}-${2}");
        assert_eq!(java_replacement("\\$5"), "$$5");
        assert_eq!(java_replacement("'"), "'");
    }

    #[test]
    fn index_of_counts_characters() {
        assert_eq!(index_of("héllo", "l", 0), 2);
        assert_eq!(index_of("héllo", "l", 3), 3);
        assert_eq!(index_of("héllo", "z", 0), -1);
        assert_eq!(index_of("abc", "a", 9), -1);
    }
}
