#!/usr/bin/env bash
# The @connections API across a fleet: three tollgate-proxy processes serving one WebSocket API
# with a real Redis as their bus. CLIENTS WebSocket clients connect; each message is POSTed
# (SigV4-signed, 64 bytes) to proxy A's @connections API and timed until the client receives
# it, one at a time (`ws_bench deliver`):
#
#   same proxy    clients on proxy A: the call stays in the proxy
#   across        clients on proxies B and C: the call crosses the bus (A -> Redis -> B or C,
#                 and the outcome back)
#
# Then IDLE connections are opened to proxy A and held: its resident memory per connection
# (VmRSS after, less before, over IDLE), as bench/websocket.sh measures pass-through's.
#
#   bench/connections.sh [messages per run, default 2000] [clients, default 20] [rounds, default 3]
#                        [idle connections, default 10000]
source "$(dirname "$0")/lib.sh"

MESSAGES=${1:-2000}
CLIENTS=${2:-20}
ROUNDS=${3:-3}
IDLE=${4:-10000}
ulimit -n "$((IDLE + 4096))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
need redis-server curl

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -q -p tollgate-proxy --bin tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
    cargo build --release -q -p tollgate-tests --example ws_bench --manifest-path "$ROOT/Cargo.toml"
fi
BIN=${BIN:-"$ROOT/target/release/tollgate-proxy"}
WS=${WS:-"$ROOT/target/release/examples/ws_bench"}
KEY=AKIATOLLGATEBENCH001
SECRET=bench-secret-not-for-production

REDIS=$(free_port)
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    >/dev/null 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/api"
cat >"$WORK/api/api.yaml" <<YAML
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: bench
spec:
  protocol: WEBSOCKET
  websocket:
    redisUrl: redis://127.0.0.1:$REDIS
    managementCredentials:
      - name: bench-keys
  stages:
    - name: bench
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-keys
type: tollgate.dev/aws-credentials
stringData:
  accessKeyId: $KEY
  secretAccessKey: $SECRET
YAML

PORTS=()
for name in a b c; do
    port=$(free_port) admin=$(free_port)
    "$BIN" --config "$WORK/api" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --worker-threads 1 --access-log off --log-level warn --max-connections "$((IDLE + 1024))" &
    PIDS+=($!)
    [ "$name" = a ] && A_PID=$!
    PORTS+=("$port")
    wait_http "http://127.0.0.1:$admin/readyz"
done
A="ws://127.0.0.1:${PORTS[0]}/bench"
B="ws://127.0.0.1:${PORTS[1]}/bench"
C="ws://127.0.0.1:${PORTS[2]}/bench"
ENDPOINT="http://127.0.0.1:${PORTS[0]}/bench"

declare -A P50 P99
for round in $(seq 1 "$ROUNDS"); do
    for run in same across; do
        urls=$A
        [ "$run" = across ] && urls="$B,$C"
        read -r p50 p99 n < <("$WS" deliver "$ENDPOINT" "$urls" "$CLIENTS" "$MESSAGES" "$KEY" "$SECRET")
        echo "round $round $run: p50 ${p50} ms, p99 ${p99} ms over $n messages" >&2
        P50[$run]+="$p50 " P99[$run]+="$p99 "
    done
done

printf '\n%-12s %10s %10s\n' "@connections" "p50 ms" "p99 ms"
for run in same across; do
    # shellcheck disable=SC2086
    printf '%-12s %10s %10s\n' "$run" "$(median ${P50[$run]})" "$(median ${P99[$run]})"
done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss_kib "$A_PID")
mkfifo "$WORK/hold"
"$WS" idle "$A" "$IDLE" <"$WORK/hold" >"$WORK/idle.out" &
holder=$!
exec 3>"$WORK/hold"
for _ in $(seq 1 1200); do grep -q open "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
grep -q open "$WORK/idle.out" || { echo "bench: $IDLE connections never opened" >&2; exit 1; }
sleep 1
open=$(rss_kib "$A_PID")
exec 3>&-
wait "$holder" || true
printf '\nidle: %s connections held by proxy A: %s KiB before, %s KiB open, %s KiB per connection\n' \
    "$IDLE" "$before" "$open" "$(awk -v a="$open" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }')"
