#!/usr/bin/env bash
# What the tenancy chain costs: the same request (with its API key and JWT) through a proxy
# that checks the key, the JWT (RS256, JWKS fetched once and cached) and the key's usage plan
# (throttle + quota) on every request, and through a plain proxy with the same 1,000 routes
# and nothing to check; same backend, same run. The plan's counters are in memory (`local`,
# Local mode) and, for each of REDIS_MODES (default "server tls cluster sentinel"; empty for
# none), in Redis mode on that deployment: one server, one over TLS with client certificates
# as an ACL user, a 3x2 Redis Cluster, a primary and replica under Sentinel. Each proxy has
# one worker pinned to CPU 0; the backend, Redis and wrk share CPU 1. Runs alternate. Prints
# RPS, p99 and the proxy's CPU per request per run (and, as `side`, its Redis processes': a
# cluster's six, replication included), the medians, and each variant's ratio to `local`.
#
#   bench/chain.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
ROUTES=1000
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl openssl redis-server
REDIS_MODES=${REDIS_MODES-server tls cluster sentinel}

cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/tollgate-proxy"

BACKEND=$(free_port); JWKS=$(free_port)
start_backend "$BACKEND"

# An RSA key, its JWKS (served by a tiny static server) and a token valid for an hour.
mkdir -p "$WORK/jwks"
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

# The same 1,000 routes in all; the chain's need a key, a JWT with a scope, and a plan, whose
# counters are where the rate-limiting spec (YAML flow; empty: Local) says.
write_api() { # file chain(0|1) [rate-limiting spec] [extra YAML documents]
    python3 - "$1" "$2" "$ROUTES" "$BACKEND" "$JWKS" "$API_KEY" "${3:-}" "${4:-}" <<'PY'
import sys
path, chain, n, backend, jwks, api_key, limiting, extra = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
# Above Amazon's default account limit (10,000/s), which would otherwise be what is measured.
out = ["apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: bench}\nspec:\n  stages: [{name: bench}]\n"
       "  throttle: {rateLimit: 1000000, burstLimit: 1000000}\n"]
if limiting:
    out[0] += f"  rateLimiting: {limiting}\n"
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
if extra:
    out.append(extra + "\n")
open(path, "w").write("---\n".join(out))
PY
}
start_proxy() { # folder port admin
    taskset -c "$PROXY_CPU" "$BIN" --config "$1" --listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$3" \
        --worker-threads 1 --access-log off --log-level warn &
    PIDS+=($!)
}

# One proxy per variant: NAMES, URLS and MEASURED for alternate_runs.
NAMES=() URLS=() MEASURED=() SIDE=() ADMINS=()
variant() { # name chain(0|1) [rate-limiting spec] [extra documents] [its Redis processes]
    local port admin
    port=$(free_port) admin=$(free_port)
    mkdir -p "$WORK/$1"
    write_api "$WORK/$1/api.yaml" "$2" "${3:-}" "${4:-}"
    start_proxy "$WORK/$1" "$port" "$admin"
    NAMES+=("$1") URLS+=("http://127.0.0.1:$port/bench/hello/x") ADMINS+=("$admin")
    MEASURED+=("${PIDS[-1]}") SIDE+=("${5:-}")
}
variant plain 0
variant local 1
for mode in $REDIS_MODES; do
    "start_redis_$mode"
    variant "$mode" 1 "{mode: Redis, redis: $(sed 's/}$//' <<<"$REDIS_SPEC"), onFailure: FailClosed}}" \
        "$REDIS_DOCS" "${REDIS_PIDS[*]}"
done

wait_http "http://127.0.0.1:$BACKEND/hello"
wait_http "http://127.0.0.1:$JWKS/jwks.json"
for admin in "${ADMINS[@]}"; do wait_http "http://127.0.0.1:$admin/readyz"; done

# Each chain must really admit the request (200), and refuse it without the key or the token.
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
AUTH=(-H "x-api-key: $API_KEY" -H "Authorization: Bearer $TOKEN")
for i in "${!NAMES[@]}"; do
    [ "${NAMES[$i]}" = plain ] && continue
    url=${URLS[$i]}
    [ "$(status "${AUTH[@]}" "$url")" = 200 ] || { echo "bench: ${NAMES[$i]} refused a good request: $(curl -s "${AUTH[@]}" "$url")" >&2; exit 1; }
    [ "$(status -H "Authorization: Bearer $TOKEN" "$url")" = 403 ] || { echo "bench: ${NAMES[$i]} admitted a request without its key" >&2; exit 1; }
    [ "$(status -H "x-api-key: $API_KEY" "$url")" = 401 ] || { echo "bench: ${NAMES[$i]} admitted a request without its token" >&2; exit 1; }
done

# The plain proxy gets the same request, headers included: the ratio is the cost of checking
# them, not of carrying them.
WRK_ARGS=(-H "x-api-key: $API_KEY" -H "Authorization: Bearer $TOKEN")
for url in "${URLS[@]}"; do run_wrk "$url" 2 "$CONNECTIONS" "${WRK_ARGS[@]}" >/dev/null; done

alternate_runs variant
echo "ratio local/plain: throughput $(ratio "${M_RPS[local]}" "${M_RPS[plain]}")x," \
    "p99 $(ratio "${M_P99[local]}" "${M_P99[plain]}")x, CPU/request $(ratio "${M_CPU[local]}" "${M_CPU[plain]}")x" \
    "(API key + JWT RS256 + plan throttle and quota, in memory)"
for mode in $REDIS_MODES; do
    echo "ratio $mode/local: throughput $(ratio "${M_RPS[$mode]}" "${M_RPS[local]}")x," \
        "p99 $(ratio "${M_P99[$mode]}" "${M_P99[local]}")x, proxy CPU/request $(ratio "${M_CPU[$mode]}" "${M_CPU[local]}")x," \
        "proxy + Redis CPU/request $(ratio "$(awk -v a="${M_CPU[$mode]}" -v b="${M_SIDE[$mode]}" 'BEGIN {print a + b}')" "${M_CPU[local]}")x"
done
