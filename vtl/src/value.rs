//! Runtime values and the Java behaviour templates observe: `toString()`, `equals`, numbers.
//!
//! Lists and maps are shared and mutable (`$list.add(...)`, `$map.put(...)` change the one
//! object every variable holding it sees), as in Java.

use crate::json::{Json, write_json_string};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::rc::Rc;

/// Containers nested deeper than this print as `...`: only a template that nests its own
/// lists in a loop gets there, and printing must not exhaust the stack.
const MAX_PRINT_DEPTH: usize = 200;

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<RefCell<List>>),
    Map(Rc<RefCell<Map>>),
    /// `$input`.
    Input,
    /// `$util`.
    Util,
    /// `$foreach` inside a loop.
    Loop(LoopState),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopState {
    pub index: usize,
    pub has_next: bool,
}

#[derive(Debug, Default)]
pub(crate) struct List {
    pub items: Vec<Value>,
    /// A JSON array from the body or `$util.parseJson` (json-smart's `JSONArray`): prints as
    /// JSON. Other lists are `ArrayList`s and print as `[a, b]`.
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MapKind {
    #[default]
    Plain,
    /// Header names: looked up without regard to case.
    Headers,
    /// A `Map.Entry` from `entrySet()`: `key` and `value`, prints as `key=value`.
    Entry,
}

#[derive(Debug, Default)]
pub(crate) struct Map {
    pub entries: Vec<(String, Value)>,
    pub kind: MapKind,
}

impl Map {
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        match self.kind {
            MapKind::Headers => self
                .entries
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(key)),
            _ => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// Java's `put`: returns the previous value.
    pub(crate) fn put(&mut self, key: String, value: Value) -> Value {
        match self.position(&key) {
            Some(i) => std::mem::replace(&mut self.entries[i].1, value),
            None => {
                self.entries.push((key, value));
                Value::Null
            }
        }
    }
}

// Dropping is iterative: a template can nest lists deeper than the stack allows to recurse.
impl Drop for List {
    fn drop(&mut self) {
        drop_iteratively(std::mem::take(&mut self.items));
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        drop_iteratively(self.entries.drain(..).map(|(_, v)| v).collect());
    }
}

fn drop_iteratively(mut pending: Vec<Value>) {
    while let Some(value) = pending.pop() {
        match value {
            Value::List(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    pending.append(&mut cell.borrow_mut().items);
                }
            }
            Value::Map(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    pending.extend(cell.borrow_mut().entries.drain(..).map(|(_, v)| v));
                }
            }
            _ => {}
        }
    }
}

impl Value {
    pub(crate) fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(RefCell::new(List { items, json: false })))
    }

    pub(crate) fn map(entries: Vec<(String, Value)>, kind: MapKind) -> Value {
        Value::Map(Rc::new(RefCell::new(Map { entries, kind })))
    }

    pub(crate) fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::Int(*i),
            Json::Float(f) => Value::Float(*f),
            Json::Str(s) => Value::str(s.as_str()),
            Json::Array(items) => Value::List(Rc::new(RefCell::new(List {
                items: items.iter().map(Value::from_json).collect(),
                json: true,
            }))),
            Json::Object(members) => Value::map(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
                MapKind::Plain,
            ),
        }
    }

    pub(crate) fn from_serde(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::str(s.as_str()),
            serde_json::Value::Array(items) => Value::List(Rc::new(RefCell::new(List {
                items: items.iter().map(Value::from_serde).collect(),
                json: true,
            }))),
            serde_json::Value::Object(members) => Value::map(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from_serde(v)))
                    .collect(),
                MapKind::Plain,
            ),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Velocity 1.7: only null and `false` are false; an empty string, list or map is true
    /// (Velocity 2's `directive.if.emptycheck` is not what Amazon runs).
    pub(crate) fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// An index or count argument: an integer, or an integral float.
    pub(crate) fn as_index(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    /// Java's `String.valueOf(value)`, as the value renders in the output.
    pub(crate) fn to_java_string(&self) -> String {
        let mut out = String::new();
        self.write_java(&mut out, 0);
        out
    }

    fn write_java(&self, out: &mut String, depth: usize) {
        if depth > MAX_PRINT_DEPTH {
            out.push_str("...");
            return;
        }
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&java_double(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(list) => {
                let list = list.borrow();
                if list.json {
                    write_json_items(&list.items, out, depth);
                    return;
                }
                out.push('[');
                for (i, item) in list.items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_java(out, depth + 1);
                }
                out.push(']');
            }
            Value::Map(map) => {
                let map = map.borrow();
                let entry = map.kind == MapKind::Entry;
                if !entry {
                    out.push('{');
                }
                for (i, (key, value)) in map.entries.iter().enumerate() {
                    if entry {
                        if key == "value" {
                            out.push('=');
                        }
                    } else {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(key);
                        out.push('=');
                    }
                    value.write_java(out, depth + 1);
                }
                if !entry {
                    out.push('}');
                }
            }
            // What Amazon prints for `$input` and `$util` themselves.
            Value::Input | Value::Util | Value::Loop(_) => out.push_str("{}"),
        }
    }

    /// JSON text, as json-smart prints the members of a JSON array.
    fn write_json(&self, out: &mut String, depth: usize) {
        if depth > MAX_PRINT_DEPTH {
            out.push_str("null");
            return;
        }
        match self {
            Value::Str(s) => write_json_string(s, out),
            Value::List(list) => write_json_items(&list.borrow().items, out, depth),
            Value::Map(map) => {
                out.push('{');
                for (i, (key, value)) in map.borrow().entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(key, out);
                    out.push(':');
                    value.write_json(out, depth + 1);
                }
                out.push('}');
            }
            Value::Float(f) if !f.is_finite() => out.push_str("null"),
            other => other.write_java(out, depth),
        }
    }

    /// Velocity 1.7's `==`: numbers by value, the same class by `equals`, and otherwise the
    /// `toString()`s, so `"5" == 5` is true.
    pub(crate) fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::List(a), Value::List(b)) if Rc::ptr_eq(a, b) => true,
            (Value::Map(a), Value::Map(b)) if Rc::ptr_eq(a, b) => true,
            _ => match (self.as_f64(), other.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => self.to_java_string() == other.to_java_string(),
            },
        }
    }

    /// `<`, `>`, ...: numbers, or strings (Comparable); anything else does not compare.
    pub(crate) fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            _ => self.as_f64()?.partial_cmp(&other.as_f64()?),
        }
    }
}

fn write_json_items(items: &[Value], out: &mut String, depth: usize) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item.write_json(out, depth + 1);
    }
    out.push(']');
}

/// Java's `Double.toString`: `100.0`, `0.5`, `1.0E10`, `1.0E-5`.
pub(crate) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = f.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let plain = format!("{f}");
        return if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        };
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// `+ - * / %` on two values. Velocity's rules: `+` with a string on either side
/// concatenates; integers stay integers (widening to a double on overflow); a division by
/// zero, a null or a non-number gives null.
pub(crate) fn arithmetic(op: crate::ast::BinOp, left: &Value, right: &Value) -> Value {
    use crate::ast::BinOp;
    if left.is_null() || right.is_null() {
        return Value::Null;
    }
    if op == BinOp::Add && (matches!(left, Value::Str(_)) || matches!(right, Value::Str(_))) {
        let mut joined = left.to_java_string();
        joined.push_str(&right.to_java_string());
        return Value::str(joined);
    }
    if let (Value::Int(a), Value::Int(b)) = (left, right) {
        let (a, b) = (*a, *b);
        let exact = match op {
            BinOp::Add => a.checked_add(b),
            BinOp::Sub => a.checked_sub(b),
            BinOp::Mul => a.checked_mul(b),
            BinOp::Div if b == 0 => return Value::Null,
            BinOp::Div => a.checked_div(b),
            BinOp::Rem if b == 0 => return Value::Null,
            BinOp::Rem => a.checked_rem(b),
            _ => return Value::Null,
        };
        if let Some(result) = exact {
            return Value::Int(result);
        }
    }
    let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) else {
        return Value::Null;
    };
    match op {
        BinOp::Add => Value::Float(a + b),
        BinOp::Sub => Value::Float(a - b),
        BinOp::Mul => Value::Float(a * b),
        BinOp::Div | BinOp::Rem if b == 0.0 => Value::Null,
        BinOp::Div => Value::Float(a / b),
        BinOp::Rem => Value::Float(a % b),
        _ => Value::Null,
    }
}

/// Java's `equals`, for `contains`, `indexOf` and `.equals()`: the same kind and the same
/// value (`1` does not equal `1.0` nor `"1"`).
pub(crate) fn java_equals(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::List(a), Value::List(b)) => {
            Rc::ptr_eq(a, b) || left.to_java_string() == right.to_java_string()
        }
        (Value::Map(a), Value::Map(b)) => {
            Rc::ptr_eq(a, b) || left.to_java_string() == right.to_java_string()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(249.99), "249.99");
        assert_eq!(java_double(1e10), "1.0E10");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
        assert_eq!(java_double(-0.0), "-0.0");
    }

    #[test]
    fn json_objects_print_as_java_maps_and_json_arrays_as_json() {
        let doc = Json::parse(r#"{"a":1,"b":[{"c":"x"}],"d":{"e":null}}"#).unwrap();
        assert_eq!(
            Value::from_json(&doc).to_java_string(),
            r#"{a=1, b=[{"c":"x"}], d={e=null}}"#
        );
        let list = Value::list(vec![Value::Int(1), Value::str("a")]);
        assert_eq!(list.to_java_string(), "[1, a]");
    }

    #[test]
    fn equality_follows_velocity() {
        assert!(Value::str("5").loose_eq(&Value::Int(5)));
        assert!(Value::Int(2).loose_eq(&Value::Float(2.0)));
        assert!(!Value::Null.loose_eq(&Value::str("")));
        assert!(Value::Null.loose_eq(&Value::Null));
    }

    #[test]
    fn deep_nesting_drops_without_recursion() {
        let mut value = Value::list(Vec::new());
        for _ in 0..200_000 {
            value = Value::list(vec![value]);
        }
        let printed = value.to_java_string();
        assert!(printed.starts_with("[[[") && printed.contains("[...]"));
        assert!(printed.len() < 1000, "printing stops at the depth limit");
        drop(value);
    }
}
