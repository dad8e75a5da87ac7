//! Parse errors with their place, the limits, and no panic whatever the template.

mod common;

use common::{parse_err, render_err};
use tollgate_vtl::{Input, Options, RenderError, Template, Vars};

#[test]
fn parse_errors_say_where_and_what() {
    let cases = [
        ("ok\n  #if($a)\nnever closed", 2, 3, "#if without #end"),
        ("#foreach($x in [1])", 1, 1, "#foreach without #end"),
        ("text #end", 1, 6, "#end without #if or #foreach"),
        ("#else", 1, 1, "#else without #if"),
        ("a\nb #sett($x = 1)", 2, 3, "unknown directive #sett"),
        ("#macro(x)#end", 1, 1, "unsupported directive #macro"),
        ("#set($x = 'abc)", 1, 11, "unclosed string"),
        ("#set($x = \"abc)", 1, 11, "unclosed string"),
        ("#set($x = )", 1, 11, "unexpected ')' in an expression"),
        ("#set($x 1)", 1, 9, "expected = in #set"),
        ("#if($a", 1, 7, "expected ) to close #if"),
        ("#set($x = (1 + 2)", 1, 18, "expected ) to close #set"),
        ("$a.b(1, 2", 1, 5, "method call without closing )"),
        ("#* never closed", 1, 1, "#* comment without *#"),
        ("#foreach($x of $l)#end", 1, 13, "expected `in` in #foreach"),
        (
            "#set($x = foo)",
            1,
            11,
            "expected an expression (a reference needs a $)",
        ),
    ];
    for (template, line, column, message) in cases {
        let error = parse_err(template);
        assert_eq!(
            (error.line, error.column, error.message.as_str()),
            (line, column, message),
            "{template:?}"
        );
    }
    assert_eq!(
        parse_err("\n\n  #if(true)").to_string(),
        "line 3, column 3: #if without #end"
    );
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let parens = format!("#set($x = {}1{})", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_err(&parens).message.contains("nesting deeper than"));
    let ifs = "#if(true)".repeat(10_000);
    assert!(parse_err(&ifs).message.contains("nesting deeper than"));
    let nots = format!("#if({}true)#end", "!".repeat(10_000));
    assert!(parse_err(&nots).message.contains("nesting deeper than"));
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let error = render_err("$input.json('$')", &Input::new(&body), &Options::default());
    assert!(matches!(error, RenderError::InvalidJsonBody(_)), "{error}");
}

#[test]
fn each_foreach_stops_at_1000_iterations() {
    let template = Template::parse("#foreach($i in [1..5000])x#end").unwrap();
    let rendered = template.render(&Input::new(""), &Vars::default()).unwrap();
    assert_eq!(rendered.body.len(), 1000);
}

#[test]
fn total_iterations_are_capped() {
    let template = "#foreach($a in [1..1000])#foreach($b in [1..1000])#end#end";
    let error = render_err(template, &Input::new(""), &Options::default());
    assert!(
        error
            .to_string()
            .contains("more than 100000 #foreach iterations"),
        "{error}"
    );
    let error = render_err(
        "#set($r = [1..100000000])",
        &Input::new(""),
        &Options::default(),
    );
    assert!(error.to_string().contains("range"), "{error}");
}

#[test]
fn output_and_strings_are_capped() {
    let small = Options {
        max_output_bytes: 1000,
        ..Options::default()
    };
    let error = render_err("#foreach($i in [1..999])xx#end", &Input::new(""), &small);
    assert!(
        error.to_string().contains("output larger than 1000 bytes"),
        "{error}"
    );
    let doubling = "#set($s = 'x')#foreach($i in [1..64])#set($s = \"$s$s\")#end";
    let error = render_err(doubling, &Input::new(""), &Options::default());
    assert!(matches!(error, RenderError::LimitExceeded(_)), "{error}");
}

#[test]
fn json_work_is_capped() {
    let body = format!("[{}]", vec!["1"; 10_000].join(","));
    let small = Options {
        max_json_work: 100_000,
        ..Options::default()
    };
    let template = "#foreach($i in [1..100])#set($x = $input.json('$'))#end";
    let error = render_err(template, &Input::new(&body), &small);
    assert!(error.to_string().contains("JSON work"), "{error}");
    // The same path read again costs nothing: it is the same object.
    let template = "#foreach($i in [1..100])#set($x = $input.path('$'))#end$x.size()";
    let rendered = Template::parse(template)
        .unwrap()
        .render_with(&Input::new(&body), &Vars::default(), &small)
        .unwrap();
    assert_eq!(rendered.body, "10000");
}

/// Real templates, cut and mutated every which way: parsing and rendering must never panic.
#[test]
fn no_panic_on_mangled_templates() {
    let seeds = [
        include_str!("../README.md"),
        "#set($inputRoot = $input.path('$'))\n{\n#foreach($elem in $inputRoot.photos.photo)\n\"id\": \"$elem.id\"#if($foreach.hasNext),#end\n#end\n}",
        "#set($allParams = $input.params())#foreach($type in $allParams.keySet())#set($params = $allParams.get($type))\"$type\" : {#foreach($paramName in $params.keySet())\"$paramName\" : \"$util.escapeJavaScript($params.get($paramName))\"#end}#end",
        "#if($a == 1 && !($b.c[0] > 2.5) || $d eq 'x')${e.f('g', [1..3], {\"k\": $v})}#elseif(true)\\$x#{else}#*c*###\n#end",
        "$util.base64Decode($util.base64Encode($input.json('$..id'))).split(',').get(0)",
    ];
    let body = r#"{"photos": {"photo": [{"id": 1}, {"id": "two"}]}, "a": [1, 2]}"#;
    let input = Input::new(body).path_param("p", "1").header("h", "v");
    let options = Options {
        max_output_bytes: 100_000,
        max_total_iterations: 10_000,
        ..Options::default()
    };
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "$#!{}()[]'\".,=<>&|+-*/%\\ \n0123456789abcxyz@?:"
        .chars()
        .collect();
    let mut parsed = 0;
    for seed in seeds {
        let chars: Vec<char> = seed.chars().collect();
        for _ in 0..400 {
            let mut mutated = chars.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (mutated.len() + 1);
                match next() % 3 {
                    0 if at < mutated.len() => {
                        mutated.remove(at);
                    }
                    1 => mutated.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                    _ => mutated.truncate(at),
                }
            }
            let text: String = mutated.into_iter().collect();
            if let Ok(template) = Template::parse(&text) {
                parsed += 1;
                let _ = template.render_with(&input, &Vars::default(), &options);
            }
        }
    }
    assert!(
        parsed > 100,
        "the mutations should mostly still parse ({parsed})"
    );
}

#[test]
fn templates_are_shareable_across_threads() {
    fn assert_shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_shareable::<Template>();
    let template = Template::parse("$input.params('n')").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let template = template.clone();
            std::thread::spawn(move || {
                let input = Input::new("").query_param("n", n.to_string());
                template.render(&input, &Vars::default()).unwrap().body
            })
        })
        .collect();
    let outputs: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outputs, ["0", "1", "2", "3"]);
}
