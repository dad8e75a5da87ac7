#![allow(dead_code)]

use tollgate_vtl::{Input, Options, ParseError, RenderError, Rendered, Template, Vars};

pub fn render(template: &str, input: &Input) -> String {
    render_full(template, input, &Vars::default()).body
}

pub fn render_full(template: &str, input: &Input, vars: &Vars) -> Rendered {
    Template::parse(template)
        .unwrap_or_else(|e| panic!("{template:?} does not parse: {e}"))
        .render(input, vars)
        .unwrap_or_else(|e| panic!("{template:?} does not render: {e}"))
}

pub fn render_err(template: &str, input: &Input, options: &Options) -> RenderError {
    Template::parse(template)
        .unwrap_or_else(|e| panic!("{template:?} does not parse: {e}"))
        .render_with(input, &Vars::default(), options)
        .expect_err("the render should fail")
}

pub fn parse_err(template: &str) -> ParseError {
    Template::parse(template).expect_err("the template should not parse")
}

/// Just the template, no body or parameters.
pub fn eval(template: &str) -> String {
    render(template, &Input::new(""))
}
