#!/usr/bin/env bash
# Two tollgate-proxy builds side by side, in front of the same backend, in the same run: for
# telling a change from the machine's drift, which moves both alike. Both proxies are pinned
# to CPU 0 (one worker each, only one under load at a time), the backend (nginx) and wrk to
# CPU 1; runs alternate A, B, A, B... Prints requests/s, p99 and CPU time per request per
# run, the medians, and B's ratios to A.
#
#   A=path/to/tollgate-proxy B=path/to/tollgate-proxy bench/ab.sh [seconds per run, default 5] \
#       [rounds, default 4] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-5}
ROUNDS=${2:-4}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl
: "${A:?A= the first tollgate-proxy binary}" "${B:?B= the second tollgate-proxy binary}"

BACKEND=$(free_port)
start_backend "$BACKEND"
write_bench_api "$WORK/tollgate" "$BACKEND"
declare -A URL PID
for name in A B; do
    port=$(free_port) admin=$(free_port)
    taskset -c "$PROXY_CPU" "${!name}" --config "$WORK/tollgate" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin" --worker-threads 1 --access-log off --log-level warn &
    PIDS+=($!)
    PID[$name]=$!
    URL[$name]="http://127.0.0.1:$port/bench/hello"
done
wait_http "http://127.0.0.1:$BACKEND/hello"
for name in A B; do
    wait_http "${URL[$name]}"
    run_wrk "${URL[$name]}" 2 "$CONNECTIONS" >/dev/null
done

printf '%-8s %-6s %12s %10s %12s %12s\n' round build requests/s p99_ms cpu_us/req kernel_us/req
declare -A RPS P99 CPU SYS
for round in $(seq 1 "$ROUNDS"); do
    for name in A B; do
        read -r rps p99 cpu sys < <(MEASURE=${PID[$name]} run_wrk "${URL[$name]}" "$SECONDS_PER_RUN" "$CONNECTIONS")
        printf '%-8s %-6s %12s %10s %12s %12s\n' "$round" "$name" "$rps" "$p99" "$cpu" "$sys"
        RPS[$name]+="$rps " P99[$name]+="$p99 " CPU[$name]+="$cpu " SYS[$name]+="$sys "
    done
done

echo
declare -A M_RPS M_P99 M_CPU M_SYS
for name in A B; do
    # shellcheck disable=SC2086
    M_RPS[$name]=$(median ${RPS[$name]}) M_P99[$name]=$(median ${P99[$name]}) M_CPU[$name]=$(median ${CPU[$name]})
    # shellcheck disable=SC2086
    M_SYS[$name]=$(median ${SYS[$name]})
    printf 'median %-3s %10s req/s, p99 %s ms, %s µs CPU/request (kernel %s) (%s)\n' "$name:" "${M_RPS[$name]}" \
        "${M_P99[$name]}" "${M_CPU[$name]}" "${M_SYS[$name]}" "${!name}"
done
echo "ratio B/A: throughput $(ratio "${M_RPS[B]}" "${M_RPS[A]}")x," \
    "p99 $(ratio "${M_P99[B]}" "${M_P99[A]}")x, CPU/request $(ratio "${M_CPU[B]}" "${M_CPU[A]}")x"
