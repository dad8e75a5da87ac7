#!/usr/bin/env bash
# tollgate-proxy against nginx, in front of the same backend, in the same run.
#
# Both proxies get one worker pinned to CPU 0; the backend (nginx, one worker) and wrk share
# CPU 1. Runs alternate (nginx, tollgate, nginx, ...) so drift hits both. Prints RPS and p99
# per run, the medians, and tollgate's ratio to nginx.
#
#   bench/proxy.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl

cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/tollgate-proxy"

BACKEND=$(free_port); NGINX=$(free_port); TOLLGATE=$(free_port); ADMIN=$(free_port)
start_backend "$BACKEND"

start_nginx_proxy "$BACKEND" "        listen 127.0.0.1:$NGINX;"
write_bench_api "$WORK/tollgate" "$BACKEND"
taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/tollgate" --listen "127.0.0.1:$TOLLGATE" \
    --admin-listen "127.0.0.1:$ADMIN" --worker-threads 1 --access-log off --log-level warn &
PIDS+=($!)

wait_http "http://127.0.0.1:$BACKEND/hello"
wait_http "http://127.0.0.1:$NGINX/bench/hello"
wait_http "http://127.0.0.1:$TOLLGATE/bench/hello"

# Warm both (connection pools, caches).
run_wrk "http://127.0.0.1:$NGINX/bench/hello" 2 "$CONNECTIONS" >/dev/null
run_wrk "http://127.0.0.1:$TOLLGATE/bench/hello" 2 "$CONNECTIONS" >/dev/null

printf '%-8s %-10s %12s %10s\n' round proxy requests/s p99_ms
NGINX_RPS=() NGINX_P99=() TG_RPS=() TG_P99=()
for round in $(seq 1 "$ROUNDS"); do
    read -r rps p99 < <(run_wrk "http://127.0.0.1:$NGINX/bench/hello" "$SECONDS_PER_RUN" "$CONNECTIONS")
    printf '%-8s %-10s %12s %10s\n' "$round" nginx "$rps" "$p99"; NGINX_RPS+=("$rps"); NGINX_P99+=("$p99")
    read -r rps p99 < <(run_wrk "http://127.0.0.1:$TOLLGATE/bench/hello" "$SECONDS_PER_RUN" "$CONNECTIONS")
    printf '%-8s %-10s %12s %10s\n' "$round" tollgate "$rps" "$p99"; TG_RPS+=("$rps"); TG_P99+=("$p99")
done

n_rps=$(median "${NGINX_RPS[@]}"); n_p99=$(median "${NGINX_P99[@]}")
t_rps=$(median "${TG_RPS[@]}"); t_p99=$(median "${TG_P99[@]}")
echo
echo "median nginx:    ${n_rps} req/s, p99 ${n_p99} ms"
echo "median tollgate: ${t_rps} req/s, p99 ${t_p99} ms"
echo "ratio tollgate/nginx: throughput $(ratio "$t_rps" "$n_rps")x, p99 $(ratio "$t_p99" "$n_p99")x"
