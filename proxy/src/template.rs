//! Substitution in integration templates: `{param}` takes a path parameter (`{proxy}` the
//! greedy one) and `${stageVariables.name}` a stage variable. Anything else in braces is left
//! as written, so JSON in a mock body survives.

use std::collections::BTreeMap;

pub struct Vars<'a> {
    pub params: &'a [(String, String)],
    pub stage_variables: &'a BTreeMap<String, String>,
}

/// The text at a dotted path into JSON (`error.responseType`, `items.0` is not an index):
/// strings as they are, other values as their JSON; `None` for null or nothing. What a
/// gateway response header reads from `$context` and an integration response header from the
/// answer's body.
pub fn json_text_at(value: &serde_json::Value, dotted: &str) -> Option<String> {
    let mut at = value;
    for key in dotted.split('.') {
        at = at.get(key)?;
    }
    match at {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub fn render(template: &str, vars: &Vars<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let is_stage_var = rest[..open].ends_with('$');
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + len];
        let value = if is_stage_var {
            name.strip_prefix("stageVariables.").map(|v| {
                vars.stage_variables
                    .get(v)
                    .map(String::as_str)
                    .unwrap_or("")
            })
        } else {
            vars.params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        match value {
            Some(value) => {
                let literal_end = if is_stage_var { open - 1 } else { open };
                out.push_str(&rest[..literal_end]);
                out.push_str(value);
                rest = &rest[open + len + 1..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_params_and_stage_variables_and_leaves_the_rest() {
        let params = vec![
            ("petId".to_string(), "42".to_string()),
            ("proxy".to_string(), "a/b".to_string()),
        ];
        let stage_variables = BTreeMap::from([("host".to_string(), "backend:8080".to_string())]);
        let vars = Vars {
            params: &params,
            stage_variables: &stage_variables,
        };
        assert_eq!(
            render(
                "http://${stageVariables.host}/pets/{petId}/{proxy}?x=1",
                &vars
            ),
            "http://backend:8080/pets/42/a/b?x=1"
        );
        assert_eq!(render("${stageVariables.missing}-", &vars), "-");
        assert_eq!(
            render(r#"{"id":"{petId}","n":{unknown}}"#, &vars),
            r#"{"id":"42","n":{unknown}}"#
        );
        assert_eq!(render("no braces {", &vars), "no braces {");
    }
}
