#!/usr/bin/env bash
# What tracing costs bench/proxy.sh's request (GET through the proxy to an nginx backend): the
# same tollgate-proxy binary serving the same API four ways, beside nginx proxying, in the same
# run: not traced, and traced with `samplingRatio` 0, 0.01 and 1. The traced ones send spans
# over OTLP/gRPC to a real OpenTelemetry Collector (tests/otelcol, built by scripts/setup),
# which shares CPU 1 with the backend and wrk, as the backend does. Prints, per variant,
# requests/s, p99 and CPU time per request of the proxy process, and the ratios to the
# untraced proxy.
#
#   bench/tracing.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl

[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p tollgate-proxy --bin tollgate-proxy \
    --manifest-path "$ROOT/Cargo.toml"
BIN=${BIN:-"$ROOT/target/release/tollgate-proxy"}
COLLECTOR_BIN=$("$ROOT/tests/otelcol/build")

BACKEND=$(free_port); NGINX=$(free_port); OTLP=$(free_port)
start_backend "$BACKEND"
start_nginx_proxy "$BACKEND" "        listen 127.0.0.1:$NGINX;"
NGINX_PID=${PIDS[-1]}

# The collector: OTLP in, spans counted and dropped (the file exporter writes to /dev/null).
mkdir -p "$WORK/collector"
cat >"$WORK/collector/config.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:$OTLP}
exporters:
  file: {path: /dev/null}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], exporters: [file]}
YAML
taskset -c "$BACKEND_CPU" "$COLLECTOR_BIN" --config "$WORK/collector/config.yaml" \
    >"$WORK/collector/log" 2>&1 &
PIDS+=($!)

NAMES=(nginx untraced ratio-0 ratio-0.01 ratio-1)
URLS=("http://127.0.0.1:$NGINX/bench/hello")
MEASURED=("$NGINX_PID")
ADMINS=()
for variant in untraced 0 0.01 1; do
    port=$(free_port) admin=$(free_port)
    write_bench_api "$WORK/$variant" "$BACKEND"
    if [ "$variant" != untraced ]; then
        sed -i "s|^  stages: \[{name: bench}\]|  stages: [{name: bench}]\n  tracing: {endpoint: \"http://127.0.0.1:$OTLP\", samplingRatio: $variant}|" \
            "$WORK/$variant/api.yaml"
    fi
    taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/$variant" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin" --worker-threads 1 --access-log off --log-level warn &
    PIDS+=($!)
    MEASURED+=($!)
    URLS+=("http://127.0.0.1:$port/bench/hello")
    ADMINS+=("$admin")
done
wait_http "http://127.0.0.1:$BACKEND/hello"
for url in "${URLS[@]}"; do wait_http "$url"; done
for url in "${URLS[@]}"; do run_wrk "$url" 2 "$CONNECTIONS" >/dev/null; done

alternate_runs variant
for name in ratio-0 ratio-0.01 ratio-1; do
    echo "ratio $name/untraced: throughput $(ratio "${M_RPS[$name]}" "${M_RPS[untraced]}")x," \
        "CPU/request $(ratio "${M_CPU[$name]}" "${M_CPU[untraced]}")x"
done
echo "ratio untraced/nginx: throughput $(ratio "${M_RPS[untraced]}" "${M_RPS[nginx]}")x," \
    "CPU/request $(ratio "${M_CPU[untraced]}" "${M_CPU[nginx]}")x"
# Spans the ratio-1 proxy exported and dropped: a collector that kept up drops none.
curl -fsS "http://127.0.0.1:${ADMINS[3]}/metrics" | grep '^tollgate_trace_spans_total' || true
