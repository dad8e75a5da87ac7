//! Amazon API Gateway mapping templates: the Velocity Template Language (VTL) as API Gateway
//! runs it, with `$input`, `$util`, `$context` and `$stageVariables`.
//!
//! A pure library: no I/O, no clock, no global state. Parse a template once ([`Template`] is
//! `Send + Sync` and cheap to clone) and render it for each request:
//!
//! ```
//! use tollgate_vtl::{Input, Template, Vars};
//!
//! let template = Template::parse(r#"{"id": "$input.params('id')", "name": $input.json('$.name')}"#)?;
//! let input = Input::new(r#"{"name": "Rex"}"#).path_param("id", "7");
//! let rendered = template.render(&input, &Vars::default())?;
//! assert_eq!(rendered.body, r#"{"id": "7", "name": "Rex"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate's README lists what of the language is supported and where it differs from
//! Amazon.

mod ast;
mod error;
mod eval;
mod input;
mod json;
mod jsonpath;
mod methods;
mod parser;
mod util;
mod value;

pub use error::{ParseError, RenderError};
pub use input::{Input, Vars};

use std::sync::Arc;
use value::Value;

/// A parsed mapping template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Arc<[ast::Node]>,
}

impl Template {
    /// Parses a template. Errors carry the 1-based line and column.
    pub fn parse(source: &str) -> Result<Template, ParseError> {
        Ok(Template {
            nodes: parser::parse(source)?.into(),
        })
    }

    /// Renders with the default [`Options`].
    pub fn render(&self, input: &Input, vars: &Vars) -> Result<Rendered, RenderError> {
        self.render_with(input, vars, &Options::default())
    }

    pub fn render_with(
        &self,
        input: &Input,
        vars: &Vars,
        options: &Options,
    ) -> Result<Rendered, RenderError> {
        eval::render(&self.nodes, input, vars, options)
    }
}

/// Limits (request bodies drive loops) and the one behaviour that can be switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The rendered body, and any string a template builds, at most this long. 10 MiB, the
    /// largest payload API Gateway accepts.
    pub max_output_bytes: usize,
    /// Each `#foreach` stops quietly after this many iterations (Velocity's
    /// `directive.foreach.maxloops`); 1000, as Amazon's.
    pub max_foreach_iterations: usize,
    /// All `#foreach` iterations of one render (nested loops multiply), and the length of a
    /// range `[a..b]`; past it the render fails.
    pub max_total_iterations: usize,
    /// JSON nodes converted (`$input.path`, `$util.parseJson`) plus bytes serialized
    /// (`$input.json`) in one render; past it the render fails.
    pub max_json_work: usize,
    /// Render a null reference as its source text (`$foo` stays `$foo`), as plain Velocity
    /// does. Off by default: API Gateway renders it as nothing.
    pub strict_null_references: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_output_bytes: 10 * 1024 * 1024,
            max_foreach_iterations: 1000,
            max_total_iterations: 100_000,
            max_json_work: 50_000_000,
            strict_null_references: false,
        }
    }
}

/// The output of a render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub body: String,
    pub overrides: Overrides,
}

/// What the template set under `$context.requestOverride` / `$context.responseOverride`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `$context.responseOverride.status`, when set to a number or a numeric string in
    /// 100..=599.
    pub status: Option<u16>,
    /// `$context.responseOverride.header.<name>`.
    pub headers: Vec<(String, String)>,
    /// `$context.requestOverride.header.<name>`.
    pub request_headers: Vec<(String, String)>,
    /// `$context.requestOverride.querystring.<name>`.
    pub request_querystring: Vec<(String, String)>,
    /// `$context.requestOverride.path.<name>`.
    pub request_path: Vec<(String, String)>,
}

impl Overrides {
    fn from_context(context: &Value) -> Overrides {
        let section = |name: &str, part: &str| -> Vec<(String, String)> {
            let Some(Value::Map(map)) = lookup(context, &[name, part]) else {
                return Vec::new();
            };
            map.borrow()
                .entries
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.to_java_string()))
                .collect()
        };
        let status = lookup(context, &["responseOverride", "status"]).and_then(|status| {
            let code = match status {
                Value::Str(s) => s.trim().parse::<u16>().ok(),
                other => other.as_index().and_then(|i| u16::try_from(i).ok()),
            };
            code.filter(|c| (100..=599).contains(c))
        });
        Overrides {
            status,
            headers: section("responseOverride", "header"),
            request_headers: section("requestOverride", "header"),
            request_querystring: section("requestOverride", "querystring"),
            request_path: section("requestOverride", "path"),
        }
    }
}

fn lookup(value: &Value, path: &[&str]) -> Option<Value> {
    let mut current = value.clone();
    for key in path {
        let next = match &current {
            Value::Map(map) => map.borrow().get(key).cloned()?,
            _ => return None,
        };
        current = next;
    }
    Some(current)
}
