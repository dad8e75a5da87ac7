#!/usr/bin/env bash
# tollgate-proxy against nginx and HAProxy, in front of the same backend, in the same run, with
# the floor a hyper-based proxy stands on (`proxy/examples/hyper_floor.rs`: hyper's server and
# hyper-util's pooled client, nothing else) as a third peer.
#
# Each proxy gets one worker pinned to CPU 0 (nginx `worker_processes 1`, HAProxy `nbthread 1`,
# tollgate `--worker-threads 1`, the floor a current-thread runtime); the backend (nginx, one
# worker) and wrk share CPU 1. Runs alternate (nginx, haproxy, hyper, tollgate, nginx, ...) so
# drift hits all. Prints requests/s, p99 and CPU time per request (from /proc/PID/stat over
# the run), all of it and the kernel's part, per run, the medians, and tollgate's ratios to
# each peer.
#
#   bench/proxy.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx haproxy wrk curl

# NO_BUILD=1 measures the release binary as it is.
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p tollgate-proxy --bin tollgate-proxy --example hyper_floor \
    --manifest-path "$ROOT/Cargo.toml"
BIN=${BIN:-"$ROOT/target/release/tollgate-proxy"}
FLOOR=${FLOOR:-"$ROOT/target/release/examples/hyper_floor"}

BACKEND=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port); HYPER=$(free_port); TOLLGATE=$(free_port)
ADMIN=$(free_port)
start_backend "$BACKEND"

start_nginx_proxy "$BACKEND" "        listen 127.0.0.1:$NGINX;"
NGINX_PID=${PIDS[-1]}
start_haproxy "$BACKEND" "$HAPROXY"
HAPROXY_PID=${PIDS[-1]}
taskset -c "$PROXY_CPU" "$FLOOR" "127.0.0.1:$HYPER" "127.0.0.1:$BACKEND" &
PIDS+=($!)
HYPER_PID=$!
write_bench_api "$WORK/tollgate" "$BACKEND"
taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/tollgate" --listen "127.0.0.1:$TOLLGATE" \
    --admin-listen "127.0.0.1:$ADMIN" --worker-threads 1 --access-log off --log-level warn &
PIDS+=($!)
TOLLGATE_PID=$!

NAMES=(nginx haproxy hyper tollgate)
URLS=("http://127.0.0.1:$NGINX/bench/hello" "http://127.0.0.1:$HAPROXY/bench/hello"
      "http://127.0.0.1:$HYPER/bench/hello" "http://127.0.0.1:$TOLLGATE/bench/hello")
MEASURED=("$NGINX_PID" "$HAPROXY_PID" "$HYPER_PID" "$TOLLGATE_PID")
wait_http "http://127.0.0.1:$BACKEND/hello"
for url in "${URLS[@]}"; do wait_http "$url"; done

# Warm every proxy (connection pools, caches).
for url in "${URLS[@]}"; do run_wrk "$url" 2 "$CONNECTIONS" >/dev/null; done

alternate_runs proxy
for peer in nginx haproxy hyper; do
    echo "ratio tollgate/$peer: throughput $(ratio "${M_RPS[tollgate]}" "${M_RPS[$peer]}")x," \
        "p99 $(ratio "${M_P99[tollgate]}" "${M_P99[$peer]}")x, CPU/request $(ratio "${M_CPU[tollgate]}" "${M_CPU[$peer]}")x"
done
