#!/usr/bin/env bash
# What TLS costs tollgate-proxy, against what it costs nginx, in front of the same backend.
#
# Each proxy serves the same route over plain HTTP and over HTTPS (TLS 1.3, HTTP/1.1
# keep-alive: wrk offers no ALPN) with one self-signed ECDSA P-256 certificate made by openssl.
# HTTPS URLs name localhost, so wrk sends SNI `localhost` as a browser would (given an IP
# address, wrk sends that as SNI, which RFC 6066 forbids and rustls logs a warning for).
# As in proxy.sh, both proxies get one worker pinned to CPU 0; the backend (nginx, one worker)
# and wrk share CPU 1. Runs alternate (nginx http, tollgate http, nginx https, tollgate https,
# then again) so drift hits all four. Prints RPS and p99 per run, the medians, and for each
# proxy its ratio HTTPS/plain, then whether tollgate keeps at least nginx's share.
#
#   bench/tls.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl openssl

cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/tollgate-proxy"
if ! "$BIN" --help 2>&1 | grep -q -- '--tls-listen'; then
    echo "bench: $BIN has no --tls-listen" >&2
    exit 1
fi

BACKEND=$(free_port); NGINX=$(free_port); NGINX_TLS=$(free_port)
TOLLGATE=$(free_port); TOLLGATE_TLS=$(free_port); ADMIN=$(free_port)
start_backend "$BACKEND"

# The certificate both proxies serve; curl checks it (CURL_CA_BUNDLE) while waiting.
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null

start_nginx_proxy "$BACKEND" "        listen 127.0.0.1:$NGINX;
        listen 127.0.0.1:$NGINX_TLS ssl;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;"
NGINX_PID=${PIDS[-1]}
write_bench_api "$WORK/tollgate" "$BACKEND"
taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/tollgate" --listen "127.0.0.1:$TOLLGATE" \
    --tls-listen "127.0.0.1:$TOLLGATE_TLS" --tls-default-certificate "$WORK/tls/cert.pem" \
    --tls-default-key "$WORK/tls/key.pem" \
    --admin-listen "127.0.0.1:$ADMIN" --worker-threads 1 --access-log off --log-level warn &
PIDS+=($!)
TOLLGATE_PID=$!

wait_http "http://127.0.0.1:$BACKEND/hello"
wait_http "http://127.0.0.1:$NGINX/bench/hello"
wait_http "http://127.0.0.1:$TOLLGATE/bench/hello"
CURL_CA_BUNDLE="$WORK/tls/cert.pem" wait_http "https://127.0.0.1:$NGINX_TLS/bench/hello"
CURL_CA_BUNDLE="$WORK/tls/cert.pem" wait_http "https://127.0.0.1:$TOLLGATE_TLS/bench/hello"

# What a client without ALPN (as wrk) negotiates with each: protocol and cipher.
negotiated() { # port
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        awk '/^New, / {sub(/,$/, "", $2); printf "%s %s", $2, $NF}'
}
echo "TLS with nginx:    $(negotiated "$NGINX_TLS")"
echo "TLS with tollgate: $(negotiated "$TOLLGATE_TLS")"
echo

URLS=(
    "http://127.0.0.1:$NGINX/bench/hello"
    "http://127.0.0.1:$TOLLGATE/bench/hello"
    "https://localhost:$NGINX_TLS/bench/hello"
    "https://localhost:$TOLLGATE_TLS/bench/hello"
)
NAMES=(nginx tollgate nginx tollgate)
MEASURED=("$NGINX_PID" "$TOLLGATE_PID" "$NGINX_PID" "$TOLLGATE_PID")
SCHEMES=(http http https https)

# Warm all four (connection pools, caches, TLS sessions).
for url in "${URLS[@]}"; do run_wrk "$url" 2 "$CONNECTIONS" >/dev/null; done

printf '%-8s %-10s %-7s %12s %10s %12s\n' round proxy scheme requests/s p99_ms cpu_us/req
declare -A RPS P99 CPU
for round in $(seq 1 "$ROUNDS"); do
    for i in "${!URLS[@]}"; do
        read -r rps p99 cpu _ < <(MEASURE=${MEASURED[$i]} run_wrk "${URLS[$i]}" "$SECONDS_PER_RUN" "$CONNECTIONS")
        printf '%-8s %-10s %-7s %12s %10s %12s\n' "$round" "${NAMES[$i]}" "${SCHEMES[$i]}" "$rps" "$p99" "$cpu"
        key="${NAMES[$i]}-${SCHEMES[$i]}"
        RPS[$key]+="$rps "; P99[$key]+="$p99 "; CPU[$key]+="$cpu "
    done
done

echo
declare -A MED_RPS MED_P99 MED_CPU
for key in nginx-http tollgate-http nginx-https tollgate-https; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    MED_RPS[$key]=$(median ${RPS[$key]}); MED_P99[$key]=$(median ${P99[$key]}); MED_CPU[$key]=$(median ${CPU[$key]})
    printf 'median %-15s %12s req/s, p99 %s ms, %s µs CPU/request\n' "$key:" "${MED_RPS[$key]}" "${MED_P99[$key]}" "${MED_CPU[$key]}"
done
n_ratio=$(ratio "${MED_RPS[nginx-https]}" "${MED_RPS[nginx-http]}")
t_ratio=$(ratio "${MED_RPS[tollgate-https]}" "${MED_RPS[tollgate-http]}")
echo
echo "ratio https/http nginx:    throughput ${n_ratio}x, p99 $(ratio "${MED_P99[nginx-https]}" "${MED_P99[nginx-http]}")x"
echo "ratio https/http tollgate: throughput ${t_ratio}x, p99 $(ratio "${MED_P99[tollgate-https]}" "${MED_P99[tollgate-http]}")x"
if awk -v t="$t_ratio" -v n="$n_ratio" 'BEGIN { exit !(t >= n) }'; then
    echo "tollgate keeps at least nginx's share over TLS (${t_ratio}x >= ${n_ratio}x)"
else
    echo "tollgate keeps less than nginx's share over TLS (${t_ratio}x < ${n_ratio}x)"
fi
