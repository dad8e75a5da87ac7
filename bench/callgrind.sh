#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: unlike requests/s, the count does
# not move with the machine's load. tollgate-proxy (release build, one worker) runs under
# callgrind in front of an nginx backend; counters are zeroed after a warm-up, wrk sends
# requests for a while on a few connections, and the count is divided by the requests wrk saw
# complete. Prints the figure and the functions with the most inclusive cost.
#
#   bench/callgrind.sh [seconds, default 10] [connections, default 4]
#
# FLOOR=1 counts the floor instead (`proxy/examples/hyper_floor.rs`: hyper's server and
# hyper-util's pooled client, nothing else), the figure Tollgate's own work is counted above.
# CALLGRIND_KEEP=FILE keeps the profile there, for `callgrind_annotate` (`--inclusive=no`
# for each function's own cost, `--tree=caller` for who calls it).
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-4}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl valgrind

# TRACING_RATIO=0 (or 0.01, 1) counts a traced API's requests at that sampling ratio.
# NO_BUILD=1 measures the release binary as it is.
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p tollgate-proxy --bin tollgate-proxy --example hyper_floor \
    --manifest-path "$ROOT/Cargo.toml"
BIN=${BIN:-"$ROOT/target/release/tollgate-proxy"}

BACKEND=$(free_port); TOLLGATE=$(free_port); ADMIN=$(free_port)
start_backend "$BACKEND"
write_bench_api "$WORK/tollgate" "$BACKEND"
# TRACING_RATIO=R traces the API at sampling ratio R (spans to an OTLP port nobody listens on:
# the exporter's failures are counted, not waited for; bench/tracing.sh measures with a real
# collector).
if [ -n "${TRACING_RATIO:-}" ]; then
    sed -i "s|^  stages: \[{name: bench}\]|  stages: [{name: bench}]\n  tracing: {endpoint: \"http://127.0.0.1:$(free_port)\", samplingRatio: $TRACING_RATIO}|" \
        "$WORK/tollgate/api.yaml"
fi
OUT="$WORK/callgrind.out"
if [ -n "${FLOOR:-}" ]; then
    COMMAND=("${FLOOR_BIN:-"$ROOT/target/release/examples/hyper_floor"}" "127.0.0.1:$TOLLGATE" "127.0.0.1:$BACKEND")
else
    COMMAND=("$BIN" --config "$WORK/tollgate" --listen "127.0.0.1:$TOLLGATE" --admin-listen "127.0.0.1:$ADMIN"
        --worker-threads 1 --access-log off --log-level warn)
fi
taskset -c "$PROXY_CPU" valgrind --tool=callgrind --callgrind-out-file="$OUT" "${COMMAND[@]}" \
    2>"$WORK/valgrind.log" &
PIDS+=($!)
VG=$!

wait_http "http://127.0.0.1:$BACKEND/hello"
for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://127.0.0.1:$TOLLGATE/bench/hello" 2>/dev/null && break; sleep 0.1; done
# Warm: connection pools, lazily built state.
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$TOLLGATE/bench/hello" >/dev/null
callgrind_control -z "$VG" >/dev/null
out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$SECONDS_PER_RUN"s "http://127.0.0.1:$TOLLGATE/bench/hello")
callgrind_control -d "$VG" >/dev/null
requests=$(awk '/requests in/ {print $1}' <<<"$out")
dump=$(ls -t "$OUT".* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "requests: $requests"
echo "instructions: $total"
awk -v t="$total" -v n="$requests" 'BEGIN { printf "instructions per request: %.0f\n", t / n }'
[ -z "${CALLGRIND_KEEP:-}" ] || cp "$dump" "$CALLGRIND_KEEP"
echo
echo "inclusive cost per request, top functions:"
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null |
    awk -v n="$requests" '/^ *[0-9,]+ \(/ { c = $1; gsub(",", "", c); $1 = ""; $2 = ""; printf "%10.0f %s\n", c / n, substr($0, 1, 140) }' |
    head -"${TOP:-40}" || true
