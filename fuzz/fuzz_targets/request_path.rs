//! Any method, host, path and Lambda result: routing, template substitution and result parsing
//! must answer or refuse, never panic.
//!
//!   cargo +nightly fuzz run request_path -- -max_total_time=60
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_crds::compile::{Resources, compile};
use tollgate_crds::load::load_str;
use tollgate_crds::table::PayloadFormatVersion;
use tollgate_proxy::dispatch::{Dispatch, ServedGateway};
use tollgate_proxy::lambda::result::parse_result;
use tollgate_proxy::template::{Vars, render};

const API: &str = include_str!("../../crds/tests/golden/integrations-all/input.yaml");
const DOMAINS: &str = include_str!("../../crds/tests/golden/domain-skipped-parts/input.yaml");

fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| {
        // Each golden case compiles on its own (they reuse names); their gateways differ.
        let gateways = [API, DOMAINS]
            .into_iter()
            .flat_map(|input| {
                let mut resources = Resources::default();
                load_str(input, "golden", &mut resources).expect("golden input loads");
                compile(&resources).tables.into_values()
            })
            .map(|t| ServedGateway::build(t).expect("golden tables build"))
            .collect();
        Dispatch::new(gateways, "localhost")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (method, host, path, rest) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET);
    if let Ok(target) = dispatch().resolve(host, path) {
        if let Some(found) = target.stage.router.find(&method, target.path) {
            let stage = target.gateway.stage_table(target.stage);
            let vars = Vars {
                params: &found.params,
                stage_variables: &stage.variables,
            };
            let _ = render(rest, &vars);
        }
    }
    for version in [PayloadFormatVersion::V1, PayloadFormatVersion::V2] {
        let _ = parse_result(version, None, data);
    }
});
