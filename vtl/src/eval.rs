//! Rendering: walks the nodes with the variables of one request.

use crate::ast::{BinOp, Expr, Node, Part, Pos, Reference};
use crate::error::RenderError;
use crate::input::{Input, Vars};
use crate::json::Json;
use crate::value::{LoopState, MapKind, Value, arithmetic};
use crate::{Options, Overrides, Rendered};
use regex::Regex;
use std::collections::HashMap;
use std::rc::Rc;

/// How a block ended: normally, by `#break` (leaves the loop), or by `#stop` (leaves all).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Stop,
}

pub(crate) struct Renderer<'r> {
    pub(crate) input: &'r Input<'r>,
    pub(crate) options: &'r Options,
    vars: HashMap<String, Value>,
    out: String,
    iterations: usize,
    work: usize,
    /// The body parsed as JSON, once, when first asked for.
    body: Option<Result<Rc<Json>, String>>,
    /// `$input.path(p)` results: the same objects on every call, as Jayway's.
    pub(crate) paths: HashMap<String, Value>,
    pub(crate) params: Option<Value>,
    pub(crate) regexes: HashMap<String, Regex>,
    /// Containers a template put a container into: cleared after the render, which breaks any
    /// reference cycle (`$list.add($list)`) so nothing leaks.
    mutated: Vec<Value>,
}

pub(crate) fn render(
    nodes: &[Node],
    input: &Input,
    vars: &Vars,
    options: &Options,
) -> Result<Rendered, RenderError> {
    let context = context_with_overrides(&vars.context);
    let stage = Value::map(
        vars.stage_variables
            .iter()
            .map(|(k, v)| (k.clone(), Value::str(v.as_str())))
            .collect(),
        MapKind::Plain,
    );
    let mut renderer = Renderer {
        input,
        options,
        vars: HashMap::from([
            ("input".to_owned(), Value::Input),
            ("util".to_owned(), Value::Util),
            ("context".to_owned(), context.clone()),
            ("stageVariables".to_owned(), stage),
        ]),
        out: String::new(),
        iterations: 0,
        work: 0,
        body: None,
        paths: HashMap::new(),
        params: None,
        regexes: HashMap::new(),
        mutated: Vec::new(),
    };
    let result = renderer.nodes(nodes);
    let overrides = Overrides::from_context(&context);
    renderer.break_cycles();
    result?;
    Ok(Rendered {
        body: std::mem::take(&mut renderer.out),
        overrides,
    })
}

/// `$context` with the override maps in place, so `#set($context.responseOverride.status =
/// 400)` has a map to write into.
fn context_with_overrides(context: &serde_json::Value) -> Value {
    let context = match context {
        serde_json::Value::Object(_) => Value::from_serde(context),
        _ => Value::map(Vec::new(), MapKind::Plain),
    };
    let Value::Map(map) = &context else {
        return context;
    };
    let mut map = map.borrow_mut();
    for (name, sections) in [
        ("requestOverride", &["header", "querystring", "path"][..]),
        ("responseOverride", &["header"][..]),
    ] {
        if !matches!(map.get(name), Some(Value::Map(_))) {
            map.put(name.to_owned(), Value::map(Vec::new(), MapKind::Plain));
        }
        if let Some(Value::Map(section_map)) = map.get(name) {
            let mut section_map = section_map.borrow_mut();
            for section in sections {
                if !matches!(section_map.get(section), Some(Value::Map(_))) {
                    section_map.put(
                        (*section).to_owned(),
                        Value::map(Vec::new(), MapKind::Plain),
                    );
                }
            }
        }
    }
    drop(map);
    context
}

impl Renderer<'_> {
    fn nodes(&mut self, nodes: &[Node]) -> Result<Flow, RenderError> {
        for node in nodes {
            let flow = self.node(node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, node: &Node) -> Result<Flow, RenderError> {
        match node {
            Node::Text(text) => self.write(text)?,
            Node::Ref(reference) => {
                let value = self.reference(reference)?;
                self.write_value(reference, &value)?;
            }
            Node::Set { target, value } => {
                let value = self.expr(value)?;
                // Velocity 1.7 (`directive.set.null.allowed` off): a null leaves the target as it was.
                if !value.is_null() {
                    self.assign(target, value)?;
                }
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (condition, body) in branches {
                    if self.expr(condition)?.truthy() {
                        return self.nodes(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.nodes(body);
                }
            }
            Node::Foreach {
                var,
                iterable,
                body,
                pos,
            } => return self.foreach(var, iterable, body, *pos),
            Node::Break => return Ok(Flow::Break),
            Node::Stop => return Ok(Flow::Stop),
        }
        Ok(Flow::Normal)
    }

    fn write(&mut self, text: &str) -> Result<(), RenderError> {
        self.out.push_str(text);
        if self.out.len() > self.options.max_output_bytes {
            return Err(RenderError::LimitExceeded(format!(
                "output larger than {} bytes",
                self.options.max_output_bytes
            )));
        }
        Ok(())
    }

    /// A null renders as nothing (Amazon; and Velocity's `$!ref`), or, with
    /// `strict_null_references`, as the reference's source text (plain Velocity).
    fn write_value(&mut self, reference: &Reference, value: &Value) -> Result<(), RenderError> {
        match value {
            Value::Null if reference.quiet || !self.options.strict_null_references => Ok(()),
            Value::Null => self.write(&reference.source),
            Value::Str(s) => self.write(s),
            other => self.write(&other.to_java_string()),
        }
    }

    fn foreach(
        &mut self,
        var: &str,
        iterable: &Expr,
        body: &[Node],
        pos: Pos,
    ) -> Result<Flow, RenderError> {
        let items = match self.expr(iterable)? {
            Value::List(list) => list.borrow().items.clone(),
            // Velocity iterates a map's values.
            Value::Map(map) => map
                .borrow()
                .entries
                .iter()
                .map(|(_, v)| v.clone())
                .collect(),
            _ => Vec::new(),
        };
        let saved: Vec<(&str, Option<Value>)> =
            [var, "foreach", "velocityCount", "velocityHasNext"]
                .into_iter()
                .map(|name| (name, self.vars.get(name).cloned()))
                .collect();
        // Velocity's `directive.foreach.maxloops`: the loop ends quietly at the limit.
        let count = items.len().min(self.options.max_foreach_iterations);
        let mut flow = Flow::Normal;
        for (index, item) in items.into_iter().take(count).enumerate() {
            self.iterations += 1;
            if self.iterations > self.options.max_total_iterations {
                return Err(RenderError::LimitExceeded(format!(
                    "more than {} #foreach iterations in one render (the #foreach at line {}, column {})",
                    self.options.max_total_iterations, pos.line, pos.column
                )));
            }
            let has_next = index + 1 < count;
            self.vars.insert(var.to_owned(), item);
            self.vars
                .insert("foreach".into(), Value::Loop(LoopState { index, has_next }));
            self.vars
                .insert("velocityCount".into(), Value::Int(index as i64 + 1));
            self.vars
                .insert("velocityHasNext".into(), Value::Bool(has_next));
            match self.nodes(body)? {
                Flow::Normal => {}
                Flow::Break => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
        }
        for (name, value) in saved {
            match value {
                Some(value) => self.vars.insert(name.to_owned(), value),
                None => self.vars.remove(name),
            };
        }
        Ok(flow)
    }

    pub(crate) fn reference(&mut self, reference: &Reference) -> Result<Value, RenderError> {
        let mut value = self
            .vars
            .get(&reference.root)
            .cloned()
            .unwrap_or(Value::Null);
        for part in &reference.parts {
            if value.is_null() {
                return Ok(Value::Null);
            }
            value = self.part(&value, part, reference.pos)?;
        }
        Ok(value)
    }

    fn part(&mut self, value: &Value, part: &Part, pos: Pos) -> Result<Value, RenderError> {
        match part {
            Part::Property(name) => Ok(self.property(value, name)),
            Part::Index(index) => {
                let index = self.expr(index)?;
                Ok(index_into(value, &index))
            }
            Part::Method(name, args) => {
                let args = args
                    .iter()
                    .map(|arg| self.expr(arg))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call(value, name, &args, pos)
            }
        }
    }

    /// `$a.name`: a map's entry, or one of the few Java getters templates use as properties.
    fn property(&mut self, value: &Value, name: &str) -> Value {
        match (value, name) {
            (Value::Map(map), _) => map.borrow().get(name).cloned().unwrap_or(Value::Null),
            (Value::Input, "body") => Value::str(self.body_text()),
            (Value::Loop(state), _) => loop_property(*state, name),
            (Value::List(list), "empty") => Value::Bool(list.borrow().items.is_empty()),
            (Value::Str(s), "empty") => Value::Bool(s.is_empty()),
            _ => Value::Null,
        }
    }

    /// `#set($a = v)`, `#set($a.b.c = v)`, `#set($a[i] = v)`.
    fn assign(&mut self, target: &Reference, value: Value) -> Result<(), RenderError> {
        let Some((last, path)) = target.parts.split_last() else {
            self.vars.insert(target.root.clone(), value);
            return Ok(());
        };
        let mut container = self.vars.get(&target.root).cloned().unwrap_or(Value::Null);
        for part in path {
            if container.is_null() {
                return Ok(());
            }
            container = self.part(&container, part, target.pos)?;
        }
        let key = match last {
            Part::Property(name) => Value::str(name.as_str()),
            Part::Index(index) => self.expr(index)?,
            Part::Method(..) => return Ok(()),
        };
        self.store(&container, &key, value);
        Ok(())
    }

    /// Puts `value` into a map under `key`, or into a list at index `key`.
    pub(crate) fn store(&mut self, container: &Value, key: &Value, value: Value) {
        let holds_container = matches!(value, Value::List(_) | Value::Map(_));
        match container {
            Value::Map(map) => {
                map.borrow_mut().put(key.to_java_string(), value);
            }
            Value::List(list) => {
                let mut list = list.borrow_mut();
                let slot = key
                    .as_index()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| list.items.get_mut(i));
                match slot {
                    Some(slot) => *slot = value,
                    None => return,
                }
            }
            _ => return,
        }
        if holds_container {
            self.note_mutation(container);
        }
    }

    pub(crate) fn note_mutation(&mut self, container: &Value) {
        self.mutated.push(container.clone());
    }

    fn break_cycles(&mut self) {
        for container in std::mem::take(&mut self.mutated) {
            match container {
                Value::List(list) => {
                    let items = std::mem::take(&mut list.borrow_mut().items);
                    drop(items);
                }
                Value::Map(map) => {
                    let entries = std::mem::take(&mut map.borrow_mut().entries);
                    drop(entries);
                }
                _ => {}
            }
        }
    }

    pub(crate) fn expr(&mut self, expr: &Expr) -> Result<Value, RenderError> {
        let value = match expr {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(i) => Value::Int(*i),
            Expr::Float(f) => Value::Float(*f),
            Expr::Str(s) => Value::str(s.as_str()),
            Expr::Interpolated(nodes) => Value::str(self.render_to_string(nodes)?),
            Expr::Ref(reference) => self.reference(reference)?,
            Expr::List(items) => Value::list(
                items
                    .iter()
                    .map(|item| self.expr(item))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Range(from, to) => self.range(from, to)?,
            Expr::Map(entries) => {
                let mut map = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    map.push((self.expr(key)?.to_java_string(), self.expr(value)?));
                }
                Value::map(map, MapKind::Plain)
            }
            Expr::Not(operand) => Value::Bool(!self.expr(operand)?.truthy()),
            Expr::Neg(operand) => match self.expr(operand)? {
                Value::Int(i) => i
                    .checked_neg()
                    .map_or(Value::Float(-(i as f64)), Value::Int),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Expr::Binary(op, left, right) => self.binary(*op, left, right)?,
        };
        if let Value::Str(s) = &value
            && s.len() > self.options.max_output_bytes
        {
            return Err(RenderError::LimitExceeded(format!(
                "a string longer than {} bytes",
                self.options.max_output_bytes
            )));
        }
        Ok(value)
    }

    fn binary(&mut self, op: BinOp, left: &Expr, right: &Expr) -> Result<Value, RenderError> {
        let left = self.expr(left)?;
        let result = match op {
            BinOp::And => left.truthy() && self.expr(right)?.truthy(),
            BinOp::Or => left.truthy() || self.expr(right)?.truthy(),
            _ => {
                let right = self.expr(right)?;
                match op {
                    BinOp::Eq => left.loose_eq(&right),
                    BinOp::Ne => !left.loose_eq(&right),
                    BinOp::Lt => left.compare(&right).is_some_and(|o| o.is_lt()),
                    BinOp::Le => left.compare(&right).is_some_and(|o| o.is_le()),
                    BinOp::Gt => left.compare(&right).is_some_and(|o| o.is_gt()),
                    BinOp::Ge => left.compare(&right).is_some_and(|o| o.is_ge()),
                    _ => return Ok(arithmetic(op, &left, &right)),
                }
            }
        };
        Ok(Value::Bool(result))
    }

    /// `[1..3]` is `[1, 2, 3]`, `[3..1]` is `[3, 2, 1]`.
    fn range(&mut self, from: &Expr, to: &Expr) -> Result<Value, RenderError> {
        let (Some(from), Some(to)) = (self.expr(from)?.as_index(), self.expr(to)?.as_index())
        else {
            return Ok(Value::Null);
        };
        let len = from.abs_diff(to).saturating_add(1);
        if len > self.options.max_total_iterations as u64 {
            return Err(RenderError::LimitExceeded(format!(
                "range [{from}..{to}] longer than {}",
                self.options.max_total_iterations
            )));
        }
        let items: Vec<Value> = if from <= to {
            (from..=to).map(Value::Int).collect()
        } else {
            (to..=from).rev().map(Value::Int).collect()
        };
        Ok(Value::list(items))
    }

    /// Renders nodes (a double-quoted string's contents) to a string of their own.
    fn render_to_string(&mut self, nodes: &[Node]) -> Result<String, RenderError> {
        let outer = std::mem::take(&mut self.out);
        let result = self.nodes(nodes);
        let rendered = std::mem::replace(&mut self.out, outer);
        result.map(|_| rendered)
    }

    /// `$input.body`: the body as received (`{}` when empty, as Amazon's).
    pub(crate) fn body_text(&self) -> &str {
        if self.input.body.is_empty() {
            "{}"
        } else {
            self.input.body
        }
    }

    pub(crate) fn body_json(&mut self) -> Result<Rc<Json>, RenderError> {
        let input = self.input;
        let parsed = self
            .body
            .get_or_insert_with(|| input.body_json().map(Rc::new));
        parsed.clone().map_err(RenderError::InvalidJsonBody)
    }

    /// Charges JSON conversion and serialization to the render's work budget.
    pub(crate) fn charge(&mut self, units: usize) -> Result<(), RenderError> {
        self.work = self.work.saturating_add(units);
        if self.work > self.options.max_json_work {
            return Err(RenderError::LimitExceeded(format!(
                "more than {} units of JSON work (conversions and serializations) in one render",
                self.options.max_json_work
            )));
        }
        Ok(())
    }
}

fn loop_property(state: LoopState, name: &str) -> Value {
    match name {
        "hasNext" => Value::Bool(state.has_next),
        "index" => Value::Int(state.index as i64),
        "count" => Value::Int(state.index as i64 + 1),
        "first" => Value::Bool(state.index == 0),
        "last" => Value::Bool(!state.has_next),
        _ => Value::Null,
    }
}

pub(crate) fn loop_method(state: LoopState, name: &str) -> Value {
    let property = match name {
        "hasNext" | "getHasNext" => "hasNext",
        "getIndex" => "index",
        "getCount" => "count",
        "isFirst" => "first",
        "isLast" => "last",
        _ => return Value::Null,
    };
    loop_property(state, property)
}

/// `$a[i]` on a list, `$a["key"]` on a map; anything out of range is null.
fn index_into(value: &Value, index: &Value) -> Value {
    match value {
        Value::List(list) => index
            .as_index()
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| list.borrow().items.get(i).cloned())
            .unwrap_or(Value::Null),
        Value::Map(map) => map
            .borrow()
            .get(&index.to_java_string())
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

pub(crate) fn evaluation_error(pos: Pos, message: impl Into<String>) -> RenderError {
    RenderError::Evaluation {
        line: pos.line,
        column: pos.column,
        message: message.into(),
    }
}
