#!/usr/bin/env bash
# What the tenancy chain costs: the same request (with its API key and JWT) through a proxy
# that checks the key, the JWT (RS256, JWKS fetched once and cached) and the key's usage plan
# (throttle + quota, Local mode) on every request, and through a plain proxy with the same
# 1,000 routes and nothing to check; same backend, same run. Each proxy has one worker pinned to CPU 0; the backend and
# wrk share CPU 1. Runs alternate (plain, chain, plain, ...). Prints RPS and p99 per run, the
# medians, and the chain's ratio to the plain proxy.
#
#   bench/chain.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
ROUTES=1000
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl openssl

cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/tollgate-proxy"

BACKEND=$(free_port); JWKS=$(free_port)
PLAIN=$(free_port); PLAIN_ADMIN=$(free_port); CHAIN=$(free_port); CHAIN_ADMIN=$(free_port)
start_backend "$BACKEND"

# An RSA key, its JWKS (served by a tiny static server) and a token valid for an hour.
mkdir -p "$WORK/jwks" "$WORK/plain" "$WORK/chain"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/key.pem" 2>/dev/null
API_KEY=bench-key-0123456789abcdef0123456789abcdef
TOKEN=$(python3 - "$WORK/key.pem" "$WORK/jwks/jwks.json" "http://127.0.0.1:$JWKS" <<'PY'
import base64, json, subprocess, sys, time
key, jwks, issuer = sys.argv[1:4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"],
                         capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
n = bytes.fromhex(modulus)
json.dump({"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                     "n": b64(n), "e": "AQAB"}]}, open(jwks, "w"))
header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
now = int(time.time())
claims = {"iss": issuer, "aud": "bench", "sub": "bench-user", "iat": now, "exp": now + 3600,
          "scope": "pets:read"}
payload = b64(json.dumps(claims).encode())
signing_input = f"{header}.{payload}".encode()
signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                           capture_output=True, check=True).stdout
print(f"{header}.{payload}.{b64(signature)}")
PY
)
(cd "$WORK/jwks" && exec taskset -c "$BACKEND_CPU" python3 -m http.server "$JWKS" --bind 127.0.0.1 >/dev/null 2>&1) &
PIDS+=($!)

# The same 1,000 routes in both; the chain's need a key, a JWT with a scope, and a plan.
write_api() { # file chain(0|1)
    python3 - "$1" "$2" "$ROUTES" "$BACKEND" "$JWKS" "$API_KEY" <<'PY'
import sys
path, chain, n, backend, jwks, api_key = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
# Above Amazon's default account limit (10,000/s), which would otherwise be what is measured.
out = ["apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: bench}\nspec:\n  stages: [{name: bench}]\n"
       "  throttle: {rateLimit: 1000000, burstLimit: 1000000}\n"]
if chain:
    out[0] += (f"  authorizers:\n  - name: jwt\n    type: JWT\n    jwt:\n      issuer: http://127.0.0.1:{jwks}\n"
               f"      audiences: [bench]\n      jwksUri: http://127.0.0.1:{jwks}/jwks.json\n")
def route(name, path, integration):
    r = f"apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n  gatewayRef: {{name: bench}}\n  method: GET\n  path: {path}\n  integration:\n    {integration}\n"
    if chain:
        r += "  apiKeyRequired: true\n  authorizer: jwt\n  authorizationScopes: [pets:read]\n"
    return r
out.append(route("measured", "/hello/{name}", f'http: {{url: "http://127.0.0.1:{backend}/hello"}}'))
shapes = ["/svc{i}/items", "/svc{i}/items/{{id}}", "/svc{i}/files/{{path+}}", "/svc{i}/items/{{id}}/parts/{{part}}"]
for k in range(n - 1):
    out.append(route(f"r{k}", shapes[k % 4].format(i=k // 4), f"mock: {{statusCode: 200, body: r{k}}}"))
if chain:
    out.append(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: bench-tenant}}\ntype: tollgate.dev/api-key\nstringData: {{key: {api_key}}}\n")
    out.append("apiVersion: tollgate.dev/v1alpha1\nkind: UsagePlan\nmetadata: {name: bench}\nspec:\n"
               "  apiStages: [{gatewayRef: {name: bench}, stage: bench}]\n"
               "  throttle: {rateLimit: 1000000, burstLimit: 1000000}\n"
               "  quota: {limit: 1000000000000, period: MONTH}\n"
               "  apiKeys: {names: [bench-tenant]}\n")
open(path, "w").write("---\n".join(out))
PY
}
write_api "$WORK/plain/api.yaml" 0
write_api "$WORK/chain/api.yaml" 1

start_proxy() { # folder port admin
    taskset -c "$PROXY_CPU" "$BIN" --config "$1" --listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$3" \
        --worker-threads 1 --access-log off --log-level warn &
    PIDS+=($!)
}
start_proxy "$WORK/plain" "$PLAIN" "$PLAIN_ADMIN"
PLAIN_PID=${PIDS[-1]}
start_proxy "$WORK/chain" "$CHAIN" "$CHAIN_ADMIN"
CHAIN_PID=${PIDS[-1]}

wait_http "http://127.0.0.1:$BACKEND/hello"
wait_http "http://127.0.0.1:$JWKS/jwks.json"
wait_http "http://127.0.0.1:$PLAIN/bench/hello/x"
wait_http "http://127.0.0.1:$PLAIN_ADMIN/readyz"
wait_http "http://127.0.0.1:$CHAIN_ADMIN/readyz"

# The chain must really admit the request (200), and refuse it without the key or the token.
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
AUTH=(-H "x-api-key: $API_KEY" -H "Authorization: Bearer $TOKEN")
CHAIN_URL="http://127.0.0.1:$CHAIN/bench/hello/x"
[ "$(status "${AUTH[@]}" "$CHAIN_URL")" = 200 ] || { echo "bench: the chain refused a good request: $(curl -s "${AUTH[@]}" "$CHAIN_URL")" >&2; exit 1; }
[ "$(status -H "Authorization: Bearer $TOKEN" "$CHAIN_URL")" = 403 ] || { echo "bench: the chain admitted a request without its key" >&2; exit 1; }
[ "$(status -H "x-api-key: $API_KEY" "$CHAIN_URL")" = 401 ] || { echo "bench: the chain admitted a request without its token" >&2; exit 1; }

PLAIN_URL="http://127.0.0.1:$PLAIN/bench/hello/x"
chain_wrk() { run_wrk "$CHAIN_URL" "$1" "$CONNECTIONS" -H "x-api-key: $API_KEY" -H "Authorization: Bearer $TOKEN"; }
# The plain proxy gets the same request, headers included: the ratio is the cost of checking
# them, not of carrying them.
plain_wrk() { run_wrk "$PLAIN_URL" "$1" "$CONNECTIONS" -H "x-api-key: $API_KEY" -H "Authorization: Bearer $TOKEN"; }

# Warm both.
plain_wrk 2 >/dev/null
chain_wrk 2 >/dev/null

printf '%-8s %-10s %12s %10s %12s\n' round proxy requests/s p99_ms cpu_us/req
PLAIN_RPS=() PLAIN_P99=() PLAIN_CPU=() CHAIN_RPS=() CHAIN_P99=() CHAIN_CPU=()
for round in $(seq 1 "$ROUNDS"); do
    read -r rps p99 cpu _ < <(MEASURE=$PLAIN_PID plain_wrk "$SECONDS_PER_RUN")
    printf '%-8s %-10s %12s %10s %12s\n' "$round" plain "$rps" "$p99" "$cpu"
    PLAIN_RPS+=("$rps"); PLAIN_P99+=("$p99"); PLAIN_CPU+=("$cpu")
    read -r rps p99 cpu _ < <(MEASURE=$CHAIN_PID chain_wrk "$SECONDS_PER_RUN")
    printf '%-8s %-10s %12s %10s %12s\n' "$round" chain "$rps" "$p99" "$cpu"
    CHAIN_RPS+=("$rps"); CHAIN_P99+=("$p99"); CHAIN_CPU+=("$cpu")
done

p_rps=$(median "${PLAIN_RPS[@]}"); p_p99=$(median "${PLAIN_P99[@]}"); p_cpu=$(median "${PLAIN_CPU[@]}")
c_rps=$(median "${CHAIN_RPS[@]}"); c_p99=$(median "${CHAIN_P99[@]}"); c_cpu=$(median "${CHAIN_CPU[@]}")
echo
echo "median plain: ${p_rps} req/s, p99 ${p_p99} ms, ${p_cpu} µs CPU/request ($ROUTES routes, no checks)"
echo "median chain: ${c_rps} req/s, p99 ${c_p99} ms, ${c_cpu} µs CPU/request (API key + JWT RS256 + plan throttle and quota)"
echo "ratio chain/plain: throughput $(ratio "$c_rps" "$p_rps")x, p99 $(ratio "$c_p99" "$p_p99")x, CPU/request $(ratio "$c_cpu" "$p_cpu")x"
