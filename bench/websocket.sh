#!/usr/bin/env bash
# WebSockets passed through tollgate-proxy and through nginx, to the same echo backend, in the
# same run.
#
# 1. Echo round trips: CONNECTIONS clients each send a 64-byte message and wait for its echo,
#    again and again (`ws_bench load`, tungstenite on one thread); messages/s, the round
#    trip's p99, and each proxy's CPU time per round trip (all of it, and the kernel's part).
# 2. Idle connections: IDLE WebSockets opened through each proxy and held; the proxy's
#    resident memory per connection (VmRSS after, less before, over IDLE).
#
# (WebSocket APIs' @connections across a fleet, and their idle connections' memory:
# bench/connections.sh.)
#
# Each proxy gets one worker pinned to CPU 0 (nginx `worker_processes 1`, tollgate
# `--worker-threads 1`); the backend and the clients share CPU 1. Rounds alternate.
#
#   bench/websocket.sh [seconds per run, default 10] [rounds, default 3]
#                      [connections, default 50] [idle connections, default 10000]
#
# Each idle WebSocket holds two descriptors in a proxy (client and backend): the idle count is
# lowered to what the open files limit allows (a hard limit of 20,000 allows 9,000).
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
IDLE=${4:-10000}
# Raise the open files limit as far as allowed; fit the idle count in it.
ulimit -n "$((2 * IDLE + 4096))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$((2 * IDLE + 2000))" -gt "$(ulimit -n)" ]; then
    IDLE=$((($(ulimit -n) - 2000) / 2000 * 1000))
    echo "bench: the open files limit ($(ulimit -n)) holds $IDLE idle WebSockets per proxy" >&2
fi
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx curl

# NO_BUILD=1 measures the release binaries as they are.
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -q -p tollgate-proxy --bin tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
    cargo build --release -q -p tollgate-tests --example ws_bench --manifest-path "$ROOT/Cargo.toml"
fi
BIN=${BIN:-"$ROOT/target/release/tollgate-proxy"}
WS=${WS:-"$ROOT/target/release/examples/ws_bench"}

NGINX_CONNECTIONS=$((2 * IDLE + 1024))

BACKEND=$(free_port); NGINX=$(free_port); TOLLGATE=$(free_port); ADMIN=$(free_port)
taskset -c "$BACKEND_CPU" "$WS" echo "127.0.0.1:$BACKEND" &
PIDS+=($!)

NGINX_CONNECTIONS=$NGINX_CONNECTIONS start_nginx nginx "$PROXY_CPU" <<CONF
    server {
        listen 127.0.0.1:$NGINX;
        location = /bench/chat {
            proxy_pass http://127.0.0.1:$BACKEND/chat;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }
    }
CONF
NGINX_PID=${PIDS[-1]}

write_bench_api "$WORK/tollgate" "$BACKEND" /chat
taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/tollgate" --listen "127.0.0.1:$TOLLGATE" \
    --admin-listen "127.0.0.1:$ADMIN" --worker-threads 1 --access-log off --log-level warn \
    --max-connections "$((2 * IDLE + 1024))" &
PIDS+=($!)
TOLLGATE_PID=$!

NAMES=(nginx tollgate)
URLS=("ws://127.0.0.1:$NGINX/bench/chat" "ws://127.0.0.1:$TOLLGATE/bench/chat")
MEASURED=("$NGINX_PID" "$TOLLGATE_PID")
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$TOLLGATE/" && curl -s -o /dev/null "http://127.0.0.1:$NGINX/" && break
    sleep 0.1
done

# One run of echo round trips through proxy i: "MESSAGES/S P99_MS CPU_US SYS_US".
echo_run() { # index seconds
    local pid=${MEASURED[$1]} before sys_before after sys_after out
    before=$(cpu_ticks "$pid") sys_before=$(SYS_ONLY=1 cpu_ticks "$pid")
    out=$(taskset -c "$LOAD_CPU" "$WS" load "${URLS[$1]}" "$CONNECTIONS" "$2")
    after=$(cpu_ticks "$pid") sys_after=$(SYS_ONLY=1 cpu_ticks "$pid")
    read -r rate p99 count <<<"$out"
    awk -v r="$rate" -v p="$p99" -v n="$count" -v t="$((after - before))" \
        -v s="$((sys_after - sys_before))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%s %s %.1f %.1f\n", r, p, t / hz * 1e6 / n, s / hz * 1e6 / n }'
}

# Warm both (the backend pool, lazily built state).
for i in "${!NAMES[@]}"; do echo_run "$i" 2 >/dev/null; done

printf '%-8s %-10s %12s %10s %12s %12s\n' round proxy messages/s p99_ms cpu_us/msg kernel_us/msg
declare -A RATE P99 CPU SYS
for round in $(seq 1 "$ROUNDS"); do
    for i in "${!NAMES[@]}"; do
        read -r rate p99 cpu sys < <(echo_run "$i" "$SECONDS_PER_RUN")
        printf '%-8s %-10s %12s %10s %12s %12s\n' "$round" "${NAMES[$i]}" "$rate" "$p99" "$cpu" "$sys"
        RATE[${NAMES[$i]}]+="$rate " P99[${NAMES[$i]}]+="$p99 " CPU[${NAMES[$i]}]+="$cpu " SYS[${NAMES[$i]}]+="$sys "
    done
done

# The resident memory (KiB) of a proxy: nginx's worker, tollgate's process.
rss_kib() { # pid
    local pid=$1 child
    child=$(pgrep -P "$pid" | head -1 || true)
    awk '/^VmRSS/ {print $2}' "/proc/${child:-$pid}/status"
}

echo
printf '%-10s %12s %12s %14s\n' proxy rss_before rss_open kib_per_conn
declare -A PER_CONN
for i in "${!NAMES[@]}"; do
    before=$(rss_kib "${MEASURED[$i]}")
    fifo="$WORK/hold-$i"
    mkfifo "$fifo"
    taskset -c "$LOAD_CPU" "$WS" idle "${URLS[$i]}" "$IDLE" <"$fifo" >"$WORK/idle-$i.out" &
    holder=$!
    exec 3>"$fifo"
    for _ in $(seq 1 1200); do grep -q open "$WORK/idle-$i.out" 2>/dev/null && break; sleep 0.1; done
    grep -q open "$WORK/idle-$i.out" || { echo "bench: $IDLE connections through ${NAMES[$i]} never opened" >&2; exit 1; }
    sleep 1
    open=$(rss_kib "${MEASURED[$i]}")
    exec 3>&-
    wait "$holder" || true
    PER_CONN[${NAMES[$i]}]=$(awk -v a="$open" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }')
    printf '%-10s %12s %12s %14s\n' "${NAMES[$i]}" "$before" "$open" "${PER_CONN[${NAMES[$i]}]}"
done

echo
declare -A M_RATE M_P99 M_CPU M_SYS
for name in "${NAMES[@]}"; do
    # shellcheck disable=SC2086
    M_RATE[$name]=$(median ${RATE[$name]}) M_P99[$name]=$(median ${P99[$name]}) M_CPU[$name]=$(median ${CPU[$name]})
    # shellcheck disable=SC2086
    M_SYS[$name]=$(median ${SYS[$name]})
    printf 'median %-9s %10s messages/s, p99 %s ms, %s µs CPU/message (kernel %s), %s KiB per idle connection\n' \
        "$name:" "${M_RATE[$name]}" "${M_P99[$name]}" "${M_CPU[$name]}" "${M_SYS[$name]}" "${PER_CONN[$name]}"
done
echo "ratio tollgate/nginx: messages/s $(ratio "${M_RATE[tollgate]}" "${M_RATE[nginx]}")x," \
    "p99 $(ratio "${M_P99[tollgate]}" "${M_P99[nginx]}")x, CPU/message $(ratio "${M_CPU[tollgate]}" "${M_CPU[nginx]}")x," \
    "memory per idle connection $(ratio "${PER_CONN[tollgate]}" "${PER_CONN[nginx]}")x"
