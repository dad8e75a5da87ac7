#!/usr/bin/env bash
# What REST API transformations cost, and what the stage cache saves: one Tollgate proxy (one
# worker pinned to CPU 0) serving three routes to the same nginx backend, and nginx proxying to
# that backend, in the same run:
#   plain      GET  /bench/hello   proxied as it is;
#   transform  POST /bench/orders  body validated against a JSON Schema model, reshaped by a
#                                  request template, the answer by a response template;
#   cached     GET  /bench/cached  answered from the stage cache (every request a hit);
#   nginx      GET  /bench/hello   nginx proxying to the backend (keepalive pool).
# The backend and wrk share CPU 1. Runs alternate (nginx, plain, transform, cached, ...).
# Prints RPS, p99 and CPU time per request per run, the medians, and the ratios.
#
#   bench/transform.sh [seconds per run, default 10] [rounds, default 3] [connections, default 50]
source "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${3:-50}
PROXY_CPU=0 BACKEND_CPU=1 LOAD_CPU=1
need nginx wrk curl

cargo build --release -q -p tollgate-proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/tollgate-proxy"

BACKEND=$(free_port) NGINX=$(free_port) PROXY=$(free_port) ADMIN=$(free_port)
# The backend answers every path with the same JSON (the response template reads it).
start_nginx backend "$BACKEND_CPU" <<CONF
    server {
        listen 127.0.0.1:$BACKEND reuseport;
        location / {
            default_type application/json;
            return 200 '{"id": "o-1", "item": "B-1", "count": 2, "status": "accepted"}';
        }
    }
CONF
NGINX_PID=${PIDS[-1]}
start_nginx_proxy "$BACKEND" "        listen 127.0.0.1:$NGINX reuseport;"
NGINX_PROXY_PID=${PIDS[-1]}

mkdir -p "$WORK/api"
cat >"$WORK/api/api.yaml" <<YAML
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {name: bench}
spec:
  stages: [{name: bench, cache: {ttlSeconds: 3600}}]
  # Above Amazon's default account limit (10,000/s), which would otherwise be measured.
  throttle: {rateLimit: 1000000, burstLimit: 1000000}
  models:
    Order:
      schema:
        type: object
        required: [sku, quantity]
        additionalProperties: false
        properties:
          sku: {type: string, pattern: "^[A-Z]-[0-9]+\$"}
          quantity: {type: integer, minimum: 1, maximum: 100}
          note: {type: string, maxLength: 200}
  requestValidators:
    body: {validateRequestBody: true, validateRequestParameters: true}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: plain}
spec:
  gatewayRef: {name: bench}
  method: GET
  path: /hello
  cache: {enabled: false}
  integration:
    http: {url: "http://127.0.0.1:$BACKEND/hello"}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: cached}
spec:
  gatewayRef: {name: bench}
  method: GET
  path: /cached
  integration:
    http: {url: "http://127.0.0.1:$BACKEND/hello"}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: transform}
spec:
  gatewayRef: {name: bench}
  method: POST
  path: /orders
  requestValidator: body
  requestModels: {application/json: Order}
  requestParameters: {method.request.header.x-tenant: true}
  integration:
    http:
      url: "http://127.0.0.1:$BACKEND/legacy/orders"
      requestTemplates:
        application/json: |
          #set(\$order = \$input.path('\$'))
          {"item": "\$order.sku", "count": \$order.quantity, "note": "\$util.escapeJavaScript(\$!order.note)", "tenant": "\$input.params('x-tenant')", "reference": "\$context.requestId"}
      integrationResponses:
        - statusCode: 201
          responseTemplates:
            application/json: '{"order": {"id": "\$input.path(''\$.id'')", "status": "\$input.path(''\$.status'')"}}'
YAML

taskset -c "$PROXY_CPU" "$BIN" --config "$WORK/api" --listen "127.0.0.1:$PROXY" --admin-listen "127.0.0.1:$ADMIN" \
    --worker-threads 1 --access-log off --log-level warn &
PIDS+=($!)
PROXY_PID=${PIDS[-1]}

wait_http "http://127.0.0.1:$BACKEND/hello"
wait_http "http://127.0.0.1:$NGINX/bench/hello"
wait_http "http://127.0.0.1:$ADMIN/readyz"
wait_http "http://127.0.0.1:$PROXY/bench/hello"

ORDER='{"sku": "B-1", "quantity": 2, "note": "gift \"wrap\""}'
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$ORDER]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "acme"
LUA

# Each route must really do its work: the transform answers 201 with the mapped order, and
# refuses a bad body; the cached route answers from the cache.
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
ORDERS="http://127.0.0.1:$PROXY/bench/orders"
mapped=$(curl -s -X POST -H 'content-type: application/json' -H 'x-tenant: acme' -d "$ORDER" "$ORDERS")
[ "$mapped" = '{"order": {"id": "o-1", "status": "accepted"}}' ] || { echo "bench: the transform answered $mapped" >&2; exit 1; }
[ "$(status -X POST -H 'content-type: application/json' -H 'x-tenant: acme' -d '{"sku": "x"}' "$ORDERS")" = 400 ] \
    || { echo "bench: the transform let an invalid body through" >&2; exit 1; }
curl -s -o /dev/null "http://127.0.0.1:$PROXY/bench/cached"
[ "$(curl -s -o /dev/null -D - "http://127.0.0.1:$PROXY/bench/cached" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache" {print $2}')" = Hit ] \
    || { echo "bench: the cached route missed" >&2; exit 1; }

nginx_wrk() { run_wrk "http://127.0.0.1:$NGINX/bench/hello" "$1" "$CONNECTIONS"; }
plain_wrk() { run_wrk "http://127.0.0.1:$PROXY/bench/hello" "$1" "$CONNECTIONS"; }
transform_wrk() { run_wrk "$ORDERS" "$1" "$CONNECTIONS" -s "$WORK/post.lua"; }
cached_wrk() { run_wrk "http://127.0.0.1:$PROXY/bench/cached" "$1" "$CONNECTIONS"; }

# Warm all.
for w in nginx_wrk plain_wrk transform_wrk cached_wrk; do "$w" 2 >/dev/null; done

printf '%-8s %-10s %12s %10s %12s\n' round path requests/s p99_ms cpu_us/req
declare -A RPS P99 CPU
for round in $(seq 1 "$ROUNDS"); do
    for path in nginx plain transform cached; do
        pid=$PROXY_PID
        [ "$path" = nginx ] && pid=$NGINX_PROXY_PID
        read -r rps p99 cpu _ < <(MEASURE=$pid "${path}_wrk" "$SECONDS_PER_RUN")
        printf '%-8s %-10s %12s %10s %12s\n' "$round" "$path" "$rps" "$p99" "$cpu"
        RPS[$path]+="$rps " P99[$path]+="$p99 " CPU[$path]+="$cpu "
    done
done

echo
for path in nginx plain transform cached; do
    # shellcheck disable=SC2086
    printf 'median %-10s %10s req/s, p99 %7s ms, %6s µs CPU/request\n' "$path" \
        "$(median ${RPS[$path]})" "$(median ${P99[$path]})" "$(median ${CPU[$path]})"
done
m() { # shellcheck disable=SC2086
    median ${1}; }
echo "transform/plain: throughput $(ratio "$(m "${RPS[transform]}")" "$(m "${RPS[plain]}")")x, CPU/request $(ratio "$(m "${CPU[transform]}")" "$(m "${CPU[plain]}")")x (validation + request and response templates)"
echo "cached/plain:    throughput $(ratio "$(m "${RPS[cached]}")" "$(m "${RPS[plain]}")")x, CPU/request $(ratio "$(m "${CPU[cached]}")" "$(m "${CPU[plain]}")")x"
echo "cached/nginx:    throughput $(ratio "$(m "${RPS[cached]}")" "$(m "${RPS[nginx]}")")x, CPU/request $(ratio "$(m "${CPU[cached]}")" "$(m "${CPU[nginx]}")")x (the cache's hit path against nginx proxying to the backend)"
