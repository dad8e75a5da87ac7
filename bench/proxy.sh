#!/usr/bin/env bash
# tollgate-proxy against nginx and HAProxy, in front of the same backend, in the same run.
#
# Each proxy gets one worker pinned to CPU 0 (nginx `worker_processes 1`, HAProxy `nbthread 1`,
# tollgate `--worker-threads 1`); the backend (nginx, one worker) and wrk share CPU 1. Runs
# alternate (nginx, haproxy, tollgate, nginx, ...) so drift hits all. Prints requests/s, p99
# and CPU time per request (from /proc/PID/stat over the run) per run, the medians, and
# tollgate's ratios to each peer.
#
#   bench/proxy.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx haproxy wrk curl

# NO_BUILD=1 measures the release binary as it is.
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN=${BIN:-"$ROOT/target/release/tollgate-proxy"}

BACKEND=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port); TOLLGATE=$(free_port)
ADMIN=$(free_port)
start_backend "$BACKEND"

start_nginx_proxy "$BACKEND" "        listen 127.0.0.1:$NGINX;"
NGINX_PID=${PIDS[-1]}
start_haproxy "$BACKEND" "$HAPROXY"
HAPROXY_PID=${PIDS[-1]}
write_bench_api "$WORK/tollgate" "$BACKEND"
taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/tollgate" --listen "127.0.0.1:$TOLLGATE" \
    --admin-listen "127.0.0.1:$ADMIN" --worker-threads 1 --access-log off --log-level warn &
PIDS+=($!)
TOLLGATE_PID=$!

NAMES=(nginx haproxy tollgate)
URLS=("http://127.0.0.1:$NGINX/bench/hello" "http://127.0.0.1:$HAPROXY/bench/hello"
      "http://127.0.0.1:$TOLLGATE/bench/hello")
MEASURED=("$NGINX_PID" "$HAPROXY_PID" "$TOLLGATE_PID")
wait_http "http://127.0.0.1:$BACKEND/hello"
for url in "${URLS[@]}"; do wait_http "$url"; done

# Warm every proxy (connection pools, caches).
for url in "${URLS[@]}"; do run_wrk "$url" 2 "$CONNECTIONS" >/dev/null; done

printf '%-8s %-10s %12s %10s %12s\n' round proxy requests/s p99_ms cpu_us/req
declare -A RPS P99 CPU
for round in $(seq 1 "$ROUNDS"); do
    for i in "${!NAMES[@]}"; do
        read -r rps p99 cpu < <(MEASURE=${MEASURED[$i]} run_wrk "${URLS[$i]}" "$SECONDS_PER_RUN" "$CONNECTIONS")
        printf '%-8s %-10s %12s %10s %12s\n' "$round" "${NAMES[$i]}" "$rps" "$p99" "$cpu"
        RPS[${NAMES[$i]}]+="$rps " P99[${NAMES[$i]}]+="$p99 " CPU[${NAMES[$i]}]+="$cpu "
    done
done

echo
declare -A M_RPS M_P99 M_CPU
for name in "${NAMES[@]}"; do
    # shellcheck disable=SC2086
    M_RPS[$name]=$(median ${RPS[$name]}) M_P99[$name]=$(median ${P99[$name]}) M_CPU[$name]=$(median ${CPU[$name]})
    printf 'median %-9s %10s req/s, p99 %s ms, %s µs CPU/request\n' "$name:" "${M_RPS[$name]}" "${M_P99[$name]}" "${M_CPU[$name]}"
done
for peer in nginx haproxy; do
    echo "ratio tollgate/$peer: throughput $(ratio "${M_RPS[tollgate]}" "${M_RPS[$peer]}")x," \
        "p99 $(ratio "${M_P99[tollgate]}" "${M_P99[$peer]}")x, CPU/request $(ratio "${M_CPU[tollgate]}" "${M_CPU[$peer]}")x"
done
