#!/usr/bin/env bash
# Does route lookup cost grow with the number of routes? The same request against a table of
# 1 route and one of 10,000 routes (same shape mix: literals, parameters, greedy), through
# tollgate-proxy (one worker, pinned) to the same backend. Prints RPS of each and the ratio,
# the proxy's memory per route, and compile and router-build times.
#
#   bench/routes.sh [routes, default 10000] [seconds per run, default 10]
source "$(dirname "$0")/lib.sh"

ROUTES=${1:-10000}
SECONDS_PER_RUN=${2:-10}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl

cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/tollgate-proxy"
BACKEND=$(free_port)
start_backend "$BACKEND"
wait_http "http://127.0.0.1:$BACKEND/hello"

# A gateway with N routes: /svc{i}/items, /svc{i}/items/{id}, /svc{i}/files/{path+}, ...
write_api() { # folder routes
    mkdir -p "$1"
    python3 - "$1/api.yaml" "$2" "$BACKEND" <<'PY'
import sys
path, n, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
shapes = ["/svc{i}/items", "/svc{i}/items/{{id}}", "/svc{i}/files/{{path+}}", "/svc{i}/items/{{id}}/parts/{{part}}"]
with open(path, "w") as f:
    # The gateway throttle is above Amazon's default 10,000/s, which would otherwise be measured.
    f.write("apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: bench}\nspec:\n  stages: [{name: bench}]\n  throttle: {rateLimit: 1000000, burstLimit: 1000000}\n")
    # The measured route is always the same and present in both tables.
    f.write(f"---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {{name: measured}}\nspec:\n  gatewayRef: {{name: bench}}\n  method: GET\n  path: /hello/{{name}}\n  integration:\n    http: {{url: \"http://127.0.0.1:{backend}/hello\"}}\n")
    for k in range(n - 1):
        shape = shapes[k % len(shapes)].format(i=k // len(shapes))
        f.write(f"---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {{name: r{k}}}\nspec:\n  gatewayRef: {{name: bench}}\n  method: GET\n  path: {shape}\n  integration:\n    mock: {{statusCode: 200, body: r{k}}}\n")
PY
}

measure() { # routes -> prints "RPS P99 RSS_KB COMPILE_MS BUILD_MS"
    local dir="$WORK/api-$1" port admin pid log
    write_api "$dir" "$1"
    port=$(free_port); admin=$(free_port); log="$WORK/proxy-$1.log"
    taskset -c "$PROXY_CPU" "$BIN" --config "$dir" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --worker-threads 1 --access-log off --log-level info --log-format json 2>"$log" &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/bench/hello/world" >/dev/null
    run_wrk "http://127.0.0.1:$port/bench/hello/world" 2 50 >/dev/null
    read -r rps p99 cpu _ < <(MEASURE=$pid run_wrk "http://127.0.0.1:$port/bench/hello/world" "$SECONDS_PER_RUN" 50)
    local rss compile build
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    compile=$(grep -o '"compile_ms":"[0-9.]*"' "$log" | head -1 | grep -o '[0-9.]*')
    build=$(grep -o '"build_ms":"[0-9.]*"' "$log" | head -1 | grep -o '[0-9.]*')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$rps $p99 $cpu $rss $compile $build"
}

read -r rps1 p991 cpu1 rss1 compile1 build1 < <(measure 1)
read -r rpsn p99n cpun rssn compilen buildn < <(measure "$ROUTES")
printf '%-8s %12s %10s %12s %10s %12s %10s\n' routes requests/s p99_ms cpu_us/req rss_kb compile_ms build_ms
printf '%-8s %12s %10s %12s %10s %12s %10s\n' 1 "$rps1" "$p991" "$cpu1" "$rss1" "$compile1" "$build1"
printf '%-8s %12s %10s %12s %10s %12s %10s\n' "$ROUTES" "$rpsn" "$p99n" "$cpun" "$rssn" "$compilen" "$buildn"
echo
echo "throughput ratio ${ROUTES} routes / 1 route: $(ratio "$rpsn" "$rps1")x, CPU/request $(ratio "$cpun" "$cpu1")x"
echo "memory per route: $(awk -v a="$rssn" -v b="$rss1" -v n="$ROUTES" 'BEGIN { printf "%.2f KiB", (a - b) / (n - 1) }')"
echo "compile ${compilen} ms, router build ${buildn} ms for ${ROUTES} routes"
