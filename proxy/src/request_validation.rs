//! Request validation (REST APIs), between the throttle and the integration, as Amazon API
//! Gateway's request validators: the route's required parameters present and not blank, then
//! the body against the model for its content type. Schemas are compiled once per table
//! ([`Models::build`]); a request only runs them.
//!
//! Where Amazon API Gateway lets a body through unchecked because its content type has no
//! model (a client that sends `text/plain` skips a JSON model), Tollgate refuses it with 415
//! (UNSUPPORTED_MEDIA_TYPE): a validator that a header can switch off protects nothing.

use std::collections::BTreeMap;

use jsonschema::Validator;
use tollgate_crds::compile::validation::build_validators;
use tollgate_crds::table::{GatewayTable, ParameterLocation, ValidationTable};

use crate::errors::GatewayError;
use crate::lambda::event::parse_query;
use crate::request_ctx::RouteCtx;

/// Most schema violations listed in `$context.error.validationErrorString` (and the log).
const MAX_LISTED_ERRORS: usize = 10;

/// A gateway's models, compiled.
#[derive(Default)]
pub struct Models(BTreeMap<String, Validator>);

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Models {
    /// Every model of the table; the compiler checked them, so one that does not build means
    /// a table from an incompatible writer, and the table is refused.
    pub fn build(table: &GatewayTable) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (name, built) in build_validators(&table.models) {
            let validator = built.map_err(|e| format!("model {name}: {e}"))?;
            out.insert(name, validator);
        }
        Ok(Self(out))
    }
}

/// Whether the route checks the body (which must then be read whole first).
pub fn checks_body(ctx: &RouteCtx<'_>) -> bool {
    ctx.route_table()
        .validation
        .as_ref()
        .is_some_and(|v| v.validate_body && !v.body_models.is_empty())
}

/// The route's required parameters, present and not blank (before the body is read).
pub fn parameters(ctx: &RouteCtx<'_>) -> Result<(), GatewayError> {
    match ctx.route_table().validation.as_deref() {
        Some(validation) => check_parameters(ctx, validation),
        None => Ok(()),
    }
}

/// The body, read whole, against the model for its content type (when the route checks
/// bodies).
pub fn body(ctx: &RouteCtx<'_>, models: &Models, body: &[u8]) -> Result<(), GatewayError> {
    match ctx.route_table().validation.as_deref() {
        Some(validation) if validation.validate_body && !validation.body_models.is_empty() => {
            check_body(ctx, validation, models, body)
        }
        _ => Ok(()),
    }
}

fn check_parameters(ctx: &RouteCtx<'_>, validation: &ValidationTable) -> Result<(), GatewayError> {
    if validation.required_parameters.is_empty() {
        return Ok(());
    }
    let query = parse_query(ctx.query);
    let missing: Vec<String> = validation
        .required_parameters
        .iter()
        .filter(|p| {
            let present = match p.location {
                ParameterLocation::Header => ctx
                    .parts
                    .headers
                    .get_all(p.name.as_str())
                    .iter()
                    .any(|v| !v.as_bytes().trim_ascii().is_empty()),
                ParameterLocation::Querystring => query
                    .iter()
                    .any(|(n, v)| *n == p.name && !v.trim().is_empty()),
                ParameterLocation::Path => ctx
                    .params
                    .iter()
                    .any(|(n, v)| *n == p.name && !v.is_empty()),
            };
            !present
        })
        .map(|p| p.name.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GatewayError::MissingParameters(missing))
    }
}

fn check_body(
    ctx: &RouteCtx<'_>,
    validation: &ValidationTable,
    models: &Models,
    body: &[u8],
) -> Result<(), GatewayError> {
    let content_type = ctx
        .parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(model) = validation.model_for(content_type) else {
        return Err(GatewayError::UnsupportedMediaType);
    };
    let Some(validator) = models.0.get(model) else {
        // The compiler only places routes whose models compiled.
        return Err(GatewayError::Configuration(format!(
            "model {model} is not loaded"
        )));
    };
    // An empty body is checked as `{}`, as Amazon API Gateway does.
    let instance: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| GatewayError::InvalidBody(format!("[the body is not JSON: {e}]")))?
    };
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(MAX_LISTED_ERRORS)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(GatewayError::InvalidBody(format!(
            "[{}]",
            errors.join(", ")
        )))
    }
}
