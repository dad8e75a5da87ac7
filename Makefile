# One entry point for humans and CI. `make test` does its own set-up on a fresh machine.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: test setup lint unit crds docs golden quickstart chart

## Everything CI runs: set-up, formatting, lints and every test.
test: setup lint unit

## Installs what the tests need (idempotent; fast when everything is there).
setup:
	scripts/setup

## The standalone quickstart, as README.md runs it. The same build as `make test`'s (whole
## workspace, debug), so after the tests it starts at once: `cargo run -p tollgate-proxy` would
## resolve the dependencies' features for the proxy alone, and rebuild 76 crates.
quickstart:
	cargo run --bin tollgate-proxy -- --config deploy/examples/quickstart

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit:
	cargo build --workspace --bins --locked
	cargo test --workspace --locked

## Regenerates crds/yaml from the Rust types, and what is made from them: the field reference
## and the chart's copy of the CRDs (with deploy/tollgate.yaml).
crds:
	cargo run -q -p tollgate-crds --bin crdgen
	$(MAKE) docs chart

## Regenerates docs/reference.md from the CRD schemas.
docs:
	cargo run -q -p tollgate-crds --bin docgen

## Copies crds/yaml into charts/tollgate/crds and renders deploy/tollgate.yaml from the chart
## (helm template, default values); review the diff.
chart:
	UPDATE_CHART=1 cargo test -q -p tollgate-tests --test helm_chart -- up_to_date

## Rewrites the compiler's golden expected files; review the diff.
golden:
	UPDATE_GOLDEN=1 cargo test -q -p tollgate-crds --test golden
