//! What a render reads: the body and parameters (`$input`), `$context`, `$stageVariables`.

use crate::json::Json;

/// The request (or integration response) a template transforms.
///
/// ```
/// let input = tollgate_vtl::Input::new(r#"{"name":"Rex"}"#)
///     .path_param("petId", "7")
///     .query_param("verbose", "true")
///     .header("Content-Type", "application/json");
/// # let _ = input;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// The body as received (`$input.body`); parsed as JSON only if the template asks.
    pub body: &'a str,
    pub path: Vec<(String, String)>,
    pub querystring: Vec<(String, String)>,
    /// Looked up without regard to case, as by API Gateway.
    pub header: Vec<(String, String)>,
}

impl<'a> Input<'a> {
    pub fn new(body: &'a str) -> Self {
        Input {
            body,
            ..Input::default()
        }
    }

    pub fn path_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.path.push((name.into(), value.into()));
        self
    }

    pub fn query_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.querystring.push((name.into(), value.into()));
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.push((name.into(), value.into()));
        self
    }

    /// `$input.params(name)`: the path, then the query string, then the headers.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        find(&self.path, |k| k == name)
            .or_else(|| find(&self.querystring, |k| k == name))
            .or_else(|| find(&self.header, |k| k.eq_ignore_ascii_case(name)))
    }

    /// The body as JSON, the way Amazon reads it: an empty body is `{}`; a body that starts
    /// like an object or an array must parse (Amazon answers 400 otherwise); anything else
    /// that is not JSON is one string (so `$input.path('$')` of `a=b` is `a=b` and
    /// `$input.json('$')` is `"a=b"`).
    pub(crate) fn body_json(&self) -> Result<Json, String> {
        let trimmed = self.body.trim();
        if trimmed.is_empty() {
            return Ok(Json::Object(Vec::new()));
        }
        match Json::parse(trimmed) {
            Ok(json) => Ok(json),
            Err(e) if trimmed.starts_with(['{', '[']) => Err(e.to_string()),
            Err(_) => Ok(Json::Str(self.body.to_owned())),
        }
    }
}

fn find(params: &[(String, String)], matches: impl Fn(&str) -> bool) -> Option<&str> {
    params
        .iter()
        .find(|(k, _)| matches(k))
        .map(|(_, v)| v.as_str())
}

/// The rest of what a template sees.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `$context`: an object, nested as Amazon's (`identity.sourceIp`, `authorizer.claims.sub`,
    /// `error.message`, ...). Anything else is taken as an empty object.
    pub context: serde_json::Value,
    /// `$stageVariables`.
    pub stage_variables: Vec<(String, String)>,
}

impl Vars {
    pub fn new(context: serde_json::Value) -> Self {
        Vars {
            context,
            stage_variables: Vec::new(),
        }
    }

    pub fn stage_variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.stage_variables.push((name.into(), value.into()));
        self
    }
}
