//! Templates from Amazon's API Gateway developer guide, with the output the guide shows.

mod common;

use common::{render, render_full};
use serde_json::{Value, json};
use tollgate_vtl::{Input, Vars};

const PHOTOS: &str = r#"{
  "photos": {
    "page": 1,
    "pages": "1234",
    "perpage": 100,
    "total": "123398",
    "photo": [
      {
        "id": "12345678901",
        "owner": "23456789@A12",
        "photographer_first_name" : "Saanvi",
        "photographer_last_name" : "Sarkar",
        "secret": "abc123d456",
        "server": "1234",
        "farm": 1,
        "title": "Sample photo 1",
        "ispublic": true,
        "isfriend": false,
        "isfamily": false
      },
      {
        "id": "23456789012",
        "owner": "34567890@B23",
        "photographer_first_name" : "Richard",
        "photographer_last_name" : "Roe",
        "secret": "bcd234e567",
        "server": "2345",
        "farm": 2,
        "title": "Sample photo 2",
        "ispublic": true,
        "isfriend": false,
        "isfamily": false
      }
    ]
  }
}"#;

// https://docs.aws.amazon.com/apigateway/latest/developerguide/models-mappings.html
// ("Mapping template transformations for REST APIs": the photos request template), output
// exactly as the guide prints it, whitespace included.
#[test]
fn photos_request_template_gives_the_guides_output() {
    let template = r#"#set($inputRoot = $input.path('$'))
{
  "photos": [
#foreach($elem in $inputRoot.photos.photo)
    {
      "id": "$elem.id",
      "photographedBy": "$elem.photographer_first_name $elem.photographer_last_name",
      "title": "$elem.title",
      "ispublic": $elem.ispublic,
      "isfriend": $elem.isfriend,
      "isfamily": $elem.isfamily
    }#if($foreach.hasNext),#end

#end
  ]
}"#;
    let expected = r#"{
  "photos": [
    {
      "id": "12345678901",
      "photographedBy": "Saanvi Sarkar",
      "title": "Sample photo 1",
      "ispublic": true,
      "isfriend": false,
      "isfamily": false
    },
    {
      "id": "23456789012",
      "photographedBy": "Richard Roe",
      "title": "Sample photo 2",
      "ispublic": true,
      "isfriend": false,
      "isfamily": false
    }
  ]
}"#;
    assert_eq!(render(template, &Input::new(PHOTOS)), expected);
}

// https://docs.aws.amazon.com/apigateway/latest/developerguide/example-photos.html
// ("Input mapping template (photos example)"): numbers unquoted, strings quoted, tabs on the
// blank line kept.
#[test]
fn photos_input_mapping_template_gives_json() {
    let template = "#set($inputRoot = $input.path('$'))
{
  \"photos\": {
    \"page\": $inputRoot.photos.page,
    \"pages\": \"$inputRoot.photos.pages\",
    \"perpage\": $inputRoot.photos.perpage,
    \"total\": \"$inputRoot.photos.total\",
    \"photo\": [
#foreach($elem in $inputRoot.photos.photo)
      {
        \"id\": \"$elem.id\",
        \"owner\": \"$elem.owner\",
        \"secret\": \"$elem.secret\",
        \"server\": \"$elem.server\",
        \"farm\": $elem.farm,
        \"title\": \"$elem.title\",
        \"ispublic\": $elem.ispublic,
        \"isfriend\": $elem.isfriend,
        \"isfamily\": $elem.isfamily
      }#if($foreach.hasNext),#end
\t\t\t
#end
    ]
  }
}";
    let output = render(template, &Input::new(PHOTOS));
    let parsed: Value = serde_json::from_str(&output).expect("the output is JSON");
    assert_eq!(parsed["photos"]["page"], json!(1));
    assert_eq!(parsed["photos"]["pages"], json!("1234"));
    assert_eq!(parsed["photos"]["photo"][1]["farm"], json!(2));
    assert_eq!(parsed["photos"]["photo"][1]["owner"], json!("34567890@B23"));
    assert!(output.contains("},\t\t\t\n      {"), "{output}");
}

// https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
// ("Parameter mapping template example"): every parameter, by type.
#[test]
fn all_parameters_template_passes_every_parameter() {
    let template = r#"#set($allParams = $input.params())
{
  "params" : {
    #foreach($type in $allParams.keySet())
    #set($params = $allParams.get($type))
    "$type" : {
      #foreach($paramName in $params.keySet())
      "$paramName" : "$util.escapeJavaScript($params.get($paramName))"
      #if($foreach.hasNext),#end
      #end
    }
    #if($foreach.hasNext),#end
    #end
  }
}"#;
    let input = Input::new("")
        .path_param("petId", "7")
        .query_param("q", "dog \"rex\"")
        .header("Accept", "application/json")
        .header("X-Trace", "abc");
    let output = render(template, &input);
    let parsed: Value = serde_json::from_str(&output).expect("the output is JSON");
    assert_eq!(
        parsed,
        json!({"params": {
            "path": {"petId": "7"},
            "querystring": {"q": "dog \"rex\""},
            "header": {"Accept": "application/json", "X-Trace": "abc"},
        }})
    );
}

// Same page, "Example request and response using $input".
#[test]
fn input_example_counts_things() {
    let template = r#"{
    "id" : "$input.params('id')",
    "count" : "$input.path('$.things').size()",
    "things" : $input.json('$.things')
}"#;
    let body = r#"{"things" : {"1" : {}, "2" : {}, "3" : {}}}"#;
    let output = render(template, &Input::new(body).path_param("id", "abc"));
    let parsed: Value = serde_json::from_str(&output).expect("the output is JSON");
    assert_eq!(
        parsed,
        json!({"id": "abc", "count": "3", "things": {"1": {}, "2": {}, "3": {}}})
    );
}

// Same page, `$util.parseJson`.
#[test]
fn parse_json_example_reads_a_nested_document() {
    let template = r#"#set ($errorMessageObj = $util.parseJson($input.path('$.errorMessage')))
{
   "errorMessageObjKey2ArrVal" : $errorMessageObj.key2.arr[0]
}"#;
    let body = r#"{"errorMessage":"{\"key1\":\"var1\",\"key2\":{\"arr\":[1,2,3]}}"}"#;
    assert_eq!(
        render(template, &Input::new(body)),
        "{\n   \"errorMessageObjKey2ArrVal\" : 1\n}"
    );
}

// Same page, "$context variable template example".
#[test]
fn context_example_maps_context_variables() {
    let template = r#"{
    "stage" : "$context.stage",
    "request_id" : "$context.requestId",
    "source_ip" : "$context.identity.sourceIp",
    "user-agent" : "$context.identity.userAgent",
    "api_key" : "$context.identity.apiKey",
    "sub" : "$context.authorizer.claims.sub"
}"#;
    let vars = Vars::new(json!({
        "stage": "prod",
        "requestId": "abcdefg-000-000-0000-abcdefg",
        "identity": {"sourceIp": "192.0.2.1", "userAgent": "curl/7.84.0"},
        "authorizer": {"claims": {"sub": "user-1"}},
    }));
    let output = render_full(template, &Input::new(""), &vars).body;
    let parsed: Value = serde_json::from_str(&output).expect("the output is JSON");
    assert_eq!(
        parsed,
        json!({
            "stage": "prod",
            "request_id": "abcdefg-000-000-0000-abcdefg",
            "source_ip": "192.0.2.1",
            "user-agent": "curl/7.84.0",
            // Null (no API key) renders as nothing on API Gateway.
            "api_key": "",
            "sub": "user-1",
        })
    );
}

// https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-override-request-response-parameters.html
// ("Override an API's response status code").
#[test]
fn response_status_override_tutorial() {
    let template = r#"#set($inputRoot = $input.path('$'))
$input.json("$")
#if($inputRoot.toString().contains("error"))
#set($context.responseOverride.status = 400)
#end
"#;
    let body =
        r#"{"errors": [{"key": "GetPetRequest.petId", "message": "The value is out of range."}]}"#;
    let rendered = render_full(template, &Input::new(body), &Vars::default());
    assert_eq!(rendered.overrides.status, Some(400));
    assert_eq!(
        rendered.body,
        "{\"errors\":[{\"key\":\"GetPetRequest.petId\",\"message\":\"The value is out of range.\"}]}\n"
    );
    let fine = render_full(template, &Input::new(r#"{"id": 1}"#), &Vars::default());
    assert_eq!(fine.overrides.status, None);
}

// Same page, "Override an API's request parameters and headers".
#[test]
fn request_header_override_tutorial() {
    let template = r#"#set($header1Override = "foo")
#set($header3Value = "$input.params('header1')$input.params('header2')")
$input.json("$")
#set($context.requestOverride.header.header3 = $header3Value)
#set($context.requestOverride.header.header1 = $header1Override)
"#;
    let input = Input::new("{}")
        .header("header1", "header1Val")
        .header("header2", "header2Val");
    let rendered = render_full(template, &input, &Vars::default());
    assert_eq!(rendered.body, "{}\n");
    assert_eq!(
        rendered.overrides.request_headers,
        [
            ("header3".to_owned(), "header1Valheader2Val".to_owned()),
            ("header1".to_owned(), "foo".to_owned()),
        ]
    );
}

// https://github.com/ToQoz/api-gateway-mapping-template/blob/master/test/_.md: outputs
// recorded from API Gateway for bodies that are not JSON objects.
#[test]
fn bodies_that_are_not_json_objects_behave_as_on_api_gateway() {
    let cases = [
        (r#""$input.path('$')""#, "a=b", r#""a=b""#),
        (r#""$input.path('$')""#, r#""a=b""#, r#""a=b""#),
        ("$input.json('$')", "a=b", r#""a=b""#),
        ("$input.json('$')", r#""a=b""#, r#""a=b""#),
        (r#""$input.path('$')""#, "{}", r#""{}""#),
        ("$input.json('$')", "{}", "{}"),
        ("$input.json('$')", "", "{}"),
        (
            r#"{"name": "$input.path('$')"}"#,
            "name=toqoz",
            r#"{"name": "name=toqoz"}"#,
        ),
        (r#""$input.path('$')""#, "a{b", r#""a{b""#),
        (r#""$input.path('$')""#, "null{", r#""null{""#),
        ("$input", "", "{}"),
        ("$util", "", "{}"),
    ];
    for (template, body, expected) in cases {
        assert_eq!(
            render(template, &Input::new(body)),
            expected,
            "{template} on {body:?}"
        );
    }
}
