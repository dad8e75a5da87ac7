//! `$input`, `$util`, `$stageVariables` and the overrides.

mod common;

use common::{eval, render, render_err, render_full};
use serde_json::json;
use tollgate_vtl::{Input, Options, RenderError, Vars};

const STORE: &str = r#"{"store": {"name": "Pets", "items": [
    {"id": 1, "type": "dog", "price": 249.99, "tags": ["a", "b"]},
    {"id": 2, "type": "cat", "price": 124.99, "tags": []}
], "user-agent": "x"}}"#;

#[test]
fn input_json_gives_json_text() {
    let input = Input::new(STORE);
    assert_eq!(render("$input.json('$.store.name')", &input), r#""Pets""#);
    assert_eq!(
        render("$input.json('$.store.items[0].price')", &input),
        "249.99"
    );
    assert_eq!(
        render("$input.json('$.store.items[1]')", &input),
        r#"{"id":2,"type":"cat","price":124.99,"tags":[]}"#
    );
    // Indefinite paths give a list, even of one match.
    assert_eq!(
        render("$input.json('$.store.items[*].id')", &input),
        "[1,2]"
    );
    assert_eq!(render("$input.json('$..name')", &input), r#"["Pets"]"#);
    assert_eq!(
        render(
            "$input.json('$.store.items[?(@.price < 200)].type')",
            &input
        ),
        r#"["cat"]"#
    );
    assert_eq!(
        render("$input.json(\"$.store['user-agent']\")", &input),
        r#""x""#
    );
    assert_eq!(
        render("$input.json('$.store.user-agent')", &input),
        r#""x""#
    );
    assert_eq!(render("$input.json('$.missing')", &input), r#""""#);
}

#[test]
fn input_path_gives_values_to_navigate() {
    let input = Input::new(STORE);
    let template = "#set($items = $input.path('$.store.items'))$items.size() $items.get(1).type $items[0].tags $input.path('$.store.items[0]') #foreach($i in $items)$i.id:$i.price #end$input.path('$.store.items[*].type')";
    assert_eq!(
        render(template, &input),
        r#"2 cat ["a","b"] {id=1, type=dog, price=249.99, tags=["a","b"]} 1:249.99 2:124.99 ["dog","cat"]"#
    );
}

#[test]
fn input_path_gives_the_same_object_each_time() {
    let input = Input::new(r#"{"a": {"n": 1}}"#);
    assert_eq!(
        render(
            "#set($x = $input.path('$.a').put('m', 2))$input.path('$.a')",
            &input
        ),
        "{n=1, m=2}"
    );
}

#[test]
fn input_body_is_the_raw_body() {
    assert_eq!(render("$input.body", &Input::new("a=1&b=2")), "a=1&b=2");
    assert_eq!(render("$input.body", &Input::new("")), "{}");
    assert_eq!(render("$input.body.length()", &Input::new("{ }")), "3");
}

#[test]
fn a_body_that_starts_like_json_but_is_not_fails_only_when_read_as_json() {
    let input = Input::new("{not json");
    assert_eq!(render("$input.body", &input), "{not json");
    let error = render_err("$input.json('$')", &input, &Options::default());
    assert!(matches!(error, RenderError::InvalidJsonBody(_)), "{error}");
}

#[test]
fn input_params_searches_path_then_querystring_then_headers() {
    let input = Input::new("")
        .path_param("id", "from-path")
        .query_param("id", "from-query")
        .query_param("q", "search")
        .header("Content-Type", "application/json")
        .header("q", "from-header");
    let template = "$input.params('id') $input.params('q') $input.params('content-type') [$input.params('none')] $input.params().header.get('CONTENT-TYPE') $input.params().querystring.keySet() $input.params().path";
    assert_eq!(
        render(template, &input),
        "from-path search application/json [] application/json [id, q] {id=from-path}"
    );
}

#[test]
fn util_escape_javascript_escapes_quotes_the_javascript_way() {
    let input = Input::new(r#"{"msg": "It's \"quoted\"\nline/2 é"}"#);
    assert_eq!(
        render("$util.escapeJavaScript($input.path('$.msg'))", &input),
        r#"It\'s \"quoted\"\nline\/2 \u00E9"#
    );
    // Amazon's documented fix for JSON output.
    assert_eq!(
        render(
            r#"$util.escapeJavaScript($input.path('$.msg')).replaceAll("\\'","'")"#,
            &input
        ),
        r#"It's \"quoted\"\nline\/2 \u00E9"#
    );
}

#[test]
fn util_url_and_base64_functions() {
    assert_eq!(
        eval(
            "$util.urlEncode('a b&c=d/é') $util.urlDecode('a+b%26c') $util.base64Encode('hello') $util.base64Decode('aGVsbG8=')"
        ),
        "a+b%26c%3Dd%2F%C3%A9 a b&c aGVsbG8= hello"
    );
    let error = render_err(
        "$util.base64Decode('%%%')",
        &Input::new(""),
        &Options::default(),
    );
    assert!(
        matches!(
            error,
            RenderError::Evaluation {
                line: 1,
                column: 1,
                ..
            }
        ),
        "{error}"
    );
    let error = render_err(
        "\n  $util.urlDecode('100%')",
        &Input::new(""),
        &Options::default(),
    );
    assert!(
        matches!(
            error,
            RenderError::Evaluation {
                line: 2,
                column: 3,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn util_parse_json_gives_navigable_values() {
    assert_eq!(
        eval(
            r#"#set($o = $util.parseJson('{"a": [1, {"b": true}], "c": "d"}'))$o.a[1].b $o.c $o.a $o"#
        ),
        r#"true d [1,{"b":true}] {a=[1,{"b":true}], c=d}"#
    );
    let error = render_err("$util.parseJson('{')", &Input::new(""), &Options::default());
    assert!(error.to_string().contains("parseJson"), "{error}");
}

#[test]
fn stage_variables_and_context() {
    let vars = Vars::new(
        json!({"error": {"message": "Missing token"}, "authorizer": {"principalId": "u1"}}),
    )
    .stage_variable("env", "prod")
    .stage_variable("url", "https://x");
    let template = "$stageVariables.env $stageVariables['url'] ${stageVariables['env']} $context.error.message $context.authorizer.principalId";
    assert_eq!(
        render_full(template, &Input::new(""), &vars).body,
        "prod https://x prod Missing token u1"
    );
}

#[test]
fn response_and_request_overrides_are_returned_typed() {
    let template = r#"#set($context.responseOverride.status = "201")
#set($context.responseOverride.header.X-Custom = "v1")
#set($context.requestOverride.querystring.page = 2)
#set($context.requestOverride.path.id = "abc")
ok"#;
    let rendered = render_full(template, &Input::new(""), &Vars::default());
    assert_eq!(rendered.body, "ok");
    assert_eq!(rendered.overrides.status, Some(201));
    assert_eq!(
        rendered.overrides.headers,
        [("X-Custom".to_owned(), "v1".to_owned())]
    );
    assert_eq!(
        rendered.overrides.request_querystring,
        [("page".to_owned(), "2".to_owned())]
    );
    assert_eq!(
        rendered.overrides.request_path,
        [("id".to_owned(), "abc".to_owned())]
    );
    let bad = render_full(
        "#set($context.responseOverride.status = 42)",
        &Input::new(""),
        &Vars::default(),
    );
    assert_eq!(bad.overrides.status, None);
}
