//! Any bytes as a resource file: the YAML loader, then the compiler when it loads, as
//! standalone mode reads `--config`.
//!
//! Properties, beyond "never panics":
//! - the compiler is deterministic: compiling the same resources twice, and loading the text
//!   again into fresh resources and compiling that, give byte-identical JSON output;
//! - no API key value of the input reaches the output (tables and diagnostics);
//! - every table passes the proxy's `verify` (its version is its content's hash), survives the
//!   wire format (JSON back to the same JSON), and builds into a `ServedGateway`: a table the
//!   compiler emits is one the proxy can serve.
//!
//!   fuzz/run 60   (or: cargo +nightly fuzz run compile -- -max_total_time=60)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_crds::compile::{Resources, compile};
use tollgate_crds::load::load_str;
use tollgate_crds::snapshot::verify;
use tollgate_crds::table::GatewayTable;
use tollgate_proxy::dispatch::ServedGateway;

/// `API_KEY_SECRET_TYPE` in the compiler.
const API_KEY_TYPE: &str = "tollgate.dev/api-key";
/// The compiler's `MIN_KEY_LENGTH` (private to it): shorter values are refused, and short
/// strings turn up in any output by chance.
const MIN_KEY_LENGTH: usize = 30;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut resources = Resources::default();
    if load_str(text, "fuzz.yaml", &mut resources).is_err() {
        return;
    }
    let compiled = compile(&resources);
    let output = serde_json::to_string(&compiled).expect("compiled output serializes");
    let again = serde_json::to_string(&compile(&resources)).expect("compiled output serializes");
    assert!(output == again, "the same resources compiled twice differ");

    let mut reloaded = Resources::default();
    load_str(text, "fuzz.yaml", &mut reloaded).expect("text that loaded once loads again");
    let reloaded = serde_json::to_string(&compile(&reloaded)).expect("serializes");
    assert!(
        output == reloaded,
        "the same text loaded and compiled twice differs"
    );

    for (key, written) in api_keys(&resources) {
        // A value also written elsewhere in the input (a path, a name) may be in the output
        // from there: only a value written nowhere but in its Secret is checked.
        if text.matches(key.as_str()).count() > usize::from(written) {
            continue;
        }
        let escaped = serde_json::to_string(&key).expect("serializes");
        let escaped = &escaped[1..escaped.len() - 1];
        assert!(
            !output.contains(key.as_str()) && !output.contains(escaped),
            "API key value {key:?} is in the output"
        );
    }

    for table in compiled.tables.into_values() {
        verify(&table).expect("a compiled table verifies");
        let json = serde_json::to_string(&table).expect("serializes");
        let back: GatewayTable = serde_json::from_str(&json).expect("a table reads back");
        assert!(
            serde_json::to_string(&back).expect("serializes") == json,
            "a table changes through the wire format"
        );
        if let Err(e) = ServedGateway::build(table) {
            panic!("the proxy refuses a compiled table: {e}");
        }
    }
});

/// The `key` of every API key Secret long enough to be one, and whether it is written as is
/// in the text (`stringData`) rather than base64-encoded (`data`).
fn api_keys(resources: &Resources) -> Vec<(String, bool)> {
    resources
        .secrets
        .values()
        .filter(|s| s.type_.as_deref() == Some(API_KEY_TYPE))
        .flat_map(|s| {
            let written = s.string_data.as_ref().and_then(|d| d.get("key")).cloned();
            let encoded = s
                .data
                .as_ref()
                .and_then(|d| d.get("key"))
                .and_then(|b| String::from_utf8(b.0.clone()).ok());
            [written.map(|v| (v, true)), encoded.map(|v| (v, false))]
        })
        .flatten()
        .filter(|(v, _)| v.chars().count() >= MIN_KEY_LENGTH)
        .collect()
}
