# Shared by the benchmark scripts: ports, process cleanup, wrk parsing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

need() {
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "bench: installing $tool" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
        fi
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: $1 never answered" >&2
    return 1
}

# Starts one nginx worker in $WORK/NAME pinned to CPU, in the foreground, no access log: the
# http block's own lines come on standard input.
start_nginx() { # name cpu
    local dir="$WORK/$1"
    mkdir -p "$dir"
    {
        cat <<CONF
worker_processes 1;
${NGINX_CONNECTIONS:+worker_rlimit_nofile $NGINX_CONNECTIONS;}
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections ${NGINX_CONNECTIONS:-4096}; }
http {
    access_log off;
    keepalive_requests 1000000;
CONF
        cat
        echo "}"
    } >"$dir/nginx.conf"
    taskset -c "$2" nginx -c "$dir/nginx.conf" &
    PIDS+=($!)
}

# An nginx that answers every request with a small body: the backend both proxies share.
start_backend() { # port
    start_nginx backend "$BACKEND_CPU" <<CONF
    server {
        listen 127.0.0.1:$1 reuseport;
        location / { return 200 "hello from the backend\n"; }
    }
CONF
}

# wrk's requests/s, p99 latency (ms) and the measured processes' CPU time per request (µs),
# all of it and the kernel's part, for one run: prints "RPS P99 CPU_US SYS_US". The processes
# are the pids in $MEASURE (and their children: an nginx master's worker); without it the
# CPU figures are "-". Fails on any non-2xx. CPU time per request is far less noisy than
# requests/s on a shared machine.
run_wrk() { # url seconds connections [wrk args, such as -H "name: value"...]
    local url=$1 seconds=$2 connections=$3 out before after sys_before sys_after side_before side_after
    shift 3
    before=$(cpu_ticks ${MEASURE:-}) sys_before=$(SYS_ONLY=1 cpu_ticks ${MEASURE:-})
    side_before=$(cpu_ticks ${MEASURE_SIDE:-})
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$connections" -d"$seconds"s --latency "$@" "$url")
    after=$(cpu_ticks ${MEASURE:-}) sys_after=$(SYS_ONLY=1 cpu_ticks ${MEASURE:-})
    side_after=$(cpu_ticks ${MEASURE_SIDE:-})
    # A 429 or 403 is not what is being measured.
    if grep -q "Non-2xx" <<<"$out"; then
        echo "bench: $url answered non-2xx under load:" >&2; echo "$out" >&2; exit 1
    fi
    local rps p99 requests cpu=- sys=- side=-
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    if [ -n "${MEASURE:-}" ]; then
        cpu=$(awk -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
            'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
        sys=$(awk -v t="$((sys_after - sys_before))" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
            'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    fi
    if [ -n "${MEASURE_SIDE:-}" ]; then
        side=$(awk -v t="$((side_after - side_before))" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
            'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    fi
    echo "$rps $(to_ms "$p99") $cpu $sys $side"
}

# User + system CPU ticks of the given processes and their children, summed; with SYS_ONLY
# set, system (kernel) ticks only.
cpu_ticks() { # pid...
    local total=0 pid
    for pid in "$@" $(for p in "$@"; do pgrep -P "$p" || true; done); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk -v sys="${SYS_ONLY:-}" '{print (sys ? 0 : $14) + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

to_ms() { # "1.23ms" | "456.00us" | "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}

# The median of the numbers given.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# Rounds of runs that alternate over NAMES (URLS to load, MEASURED the process whose CPU is
# counted, SIDE other processes whose CPU is counted apart, WRK_ARGS extra wrk arguments for
# all), so drift hits all alike: prints each run and each name's medians, and leaves the
# medians in M_RPS, M_P99, M_CPU, M_SYS and M_SIDE for the caller's ratios. The first column's
# title is the argument (proxy, variant, ...).
declare -A M_RPS M_P99 M_CPU M_SYS M_SIDE
alternate_runs() { # column-title
    local round i name rps p99 cpu sys side
    local -A rpss p99s cpus syss sides
    printf '%-8s %-11s %12s %10s %12s %12s %12s\n' round "$1" requests/s p99_ms cpu_us/req kernel_us/req side_us/req
    for round in $(seq 1 "$ROUNDS"); do
        for i in "${!NAMES[@]}"; do
            read -r rps p99 cpu sys side < <(MEASURE=${MEASURED[$i]} MEASURE_SIDE=${SIDE[$i]:-} \
                run_wrk "${URLS[$i]}" "$SECONDS_PER_RUN" "$CONNECTIONS" ${WRK_ARGS[@]+"${WRK_ARGS[@]}"})
            printf '%-8s %-11s %12s %10s %12s %12s %12s\n' "$round" "${NAMES[$i]}" "$rps" "$p99" "$cpu" "$sys" "$side"
            name=${NAMES[$i]}
            rpss[$name]+="$rps " p99s[$name]+="$p99 " cpus[$name]+="$cpu " syss[$name]+="$sys " sides[$name]+="$side "
        done
    done
    echo
    for name in "${NAMES[@]}"; do
        # shellcheck disable=SC2086
        M_RPS[$name]=$(median ${rpss[$name]}) M_P99[$name]=$(median ${p99s[$name]})
        # shellcheck disable=SC2086
        M_CPU[$name]=$(median ${cpus[$name]}) M_SYS[$name]=$(median ${syss[$name]})
        # shellcheck disable=SC2086
        M_SIDE[$name]=$( [ "${sides[$name]%% *}" = - ] && echo - || median ${sides[$name]})
        printf 'median %-11s %10s req/s, p99 %s ms, %s µs CPU/request (kernel %s, side %s)\n' "$name:" \
            "${M_RPS[$name]}" "${M_P99[$name]}" "${M_CPU[$name]}" "${M_SYS[$name]}" "${M_SIDE[$name]}"
    done
}

# nginx proxying /bench/hello to the backend, one worker pinned to $PROXY_CPU. The second
# argument is the server block's own lines (listen, ssl_*).
start_nginx_proxy() { # backend-port server-lines
    start_nginx nginx "$PROXY_CPU" <<CONF
    upstream backend { server 127.0.0.1:$1; keepalive 128; }
    server {
$2
        location = /bench/hello {
            proxy_pass http://backend/hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
}

# HAProxy proxying /bench/hello to the backend's /hello, one thread pinned to $PROXY_CPU,
# connections to the backend kept and reused (as nginx's keepalive pool).
start_haproxy() { # backend-port listen-port
    local dir="$WORK/haproxy"
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend bench
    bind 127.0.0.1:$2
    http-request deny unless { path /bench/hello }
    http-request set-path /hello
    default_backend backend
backend backend
    http-reuse always
    server b 127.0.0.1:$1
CONF
    taskset -c "$PROXY_CPU" haproxy -db -f "$dir/haproxy.cfg" &
    PIDS+=($!)
}

# tollgate's side of the same: gateway bench, stage bench, GET /hello (or the path given) to
# the backend's same path.
write_bench_api() { # folder backend-port [path, default /hello]
    local path=${3:-/hello}
    mkdir -p "$1"
    cat >"$1/api.yaml" <<YAML
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {name: bench}
spec:
  stages: [{name: bench}]
  # Above Amazon's default account limit (10,000/s), which would otherwise be measured.
  throttle: {rateLimit: 1000000, burstLimit: 1000000}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: ${path#/}}
spec:
  gatewayRef: {name: bench}
  method: GET
  path: $path
  integration:
    http: {url: "http://127.0.0.1:$2$path"}
YAML
}

# Redis deployments for the shared-state benchmarks, on loopback, pinned to $BACKEND_CPU, no
# persistence. Each sets REDIS_SPEC (the gateway's rateLimiting.redis, YAML flow), REDIS_DOCS
# (the Secrets it names, YAML documents) and REDIS_PIDS (its processes).
redis_node() { # dir port [config lines...]: one redis-server with its config file
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    { echo "port $port"; echo "bind 127.0.0.1"; echo "dir $dir"; echo 'save ""'
      echo "appendonly no"; echo "logfile $dir/redis.log"; printf '%s\n' "$@"; } >"$dir/redis.conf"
    taskset -c "$BACKEND_CPU" redis-server "$dir/redis.conf" &
    PIDS+=($!) REDIS_PIDS+=($!)
    for _ in $(seq 1 100); do
        # shellcheck disable=SC2086
        redis-cli -p "$port" ${REDIS_CLI_ARGS:-} ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    echo "bench: redis on $port never answered: $(tail -5 "$dir/redis.log")" >&2
    return 1
}

start_redis_server() {
    local port; port=$(free_port)
    REDIS_PIDS=()
    redis_node "$WORK/redis-server" "$port"
    REDIS_SPEC="{url: 'redis://127.0.0.1:$port/0'}" REDIS_DOCS=""
}

# TLS only, client certificates required, an ACL user and the default user off.
start_redis_tls() {
    local dir="$WORK/redis-tls" port password
    port=$(free_port) password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    for who in server client; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
            -keyout "$dir/$who.key" -out "$dir/$who.csr" 2>/dev/null
        openssl x509 -req -in "$dir/$who.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
            -days 2 -extfile <(echo "subjectAltName=IP:127.0.0.1") -out "$dir/$who.crt" 2>/dev/null
    done
    REDIS_PIDS=()
    # redis_node pings with these (the later -p wins over its plain port 0).
    REDIS_CLI_ARGS="--tls --cacert $dir/ca.crt --cert $dir/client.crt --key $dir/client.key --user tollgate --pass $password -p $port" \
        redis_node "$dir" 0 "tls-port $port" "tls-cert-file $dir/server.crt" "tls-key-file $dir/server.key" \
        "tls-ca-cert-file $dir/ca.crt" "tls-auth-clients yes" "user default off" \
        "user tollgate on >$password ~tollgate:* &* +@all"
    REDIS_SPEC="{url: 'rediss://127.0.0.1:$port/0', tls: {caSecretRef: {name: redis-ca}, clientCertificateSecretRef: {name: redis-client}}, authSecretRef: {name: redis-auth}}"
    REDIS_DOCS=$(python3 - "$dir" "$password" <<'PY'
import json, sys
d, password = sys.argv[1:3]
read = lambda n: open(f"{d}/{n}").read()
docs = [
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-ca"}, "type": "tollgate.dev/truststore",
     "stringData": {"ca.crt": read("ca.crt")}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-client"}, "type": "kubernetes.io/tls",
     "stringData": {"tls.crt": read("client.crt"), "tls.key": read("client.key")}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"}, "type": "tollgate.dev/redis-auth",
     "stringData": {"username": "tollgate", "password": password}},
]
print("\n---\n".join(json.dumps(doc) for doc in docs))
PY
)
}

# Three primaries and three replicas, made a cluster by redis-cli.
start_redis_cluster() {
    local ports=() port i nodes=()
    REDIS_PIDS=()
    for i in 1 2 3 4 5 6; do
        # The cluster bus takes port + 10000.
        while :; do port=$(free_port); [ "$port" -lt 55000 ] && break; done
        ports+=("$port")
        redis_node "$WORK/redis-cluster-$i" "$port" "cluster-enabled yes" \
            "cluster-config-file $WORK/redis-cluster-$i/nodes.conf" "cluster-node-timeout 2000"
        nodes+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    for _ in $(seq 1 200); do
        redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_state:ok' && break
        sleep 0.05
    done
    REDIS_SPEC="{cluster: {nodes: [$(printf "'redis://%s'," "${nodes[@]}" | sed 's/,$//')]}}" REDIS_DOCS=""
}

# A primary, a replica and one sentinel (quorum 1).
start_redis_sentinel() {
    local primary replica sentinel dir="$WORK/redis-sentinel"
    primary=$(free_port) replica=$(free_port) sentinel=$(free_port)
    REDIS_PIDS=()
    redis_node "$dir/primary" "$primary"
    redis_node "$dir/replica" "$replica" "replicaof 127.0.0.1 $primary"
    mkdir -p "$dir/sentinel"
    printf '%s\n' "port $sentinel" "bind 127.0.0.1" "logfile $dir/sentinel/sentinel.log" \
        "sentinel monitor bench 127.0.0.1 $primary 1" "sentinel down-after-milliseconds bench 2000" \
        >"$dir/sentinel/sentinel.conf"
    taskset -c "$BACKEND_CPU" redis-server "$dir/sentinel/sentinel.conf" --sentinel &
    PIDS+=($!) REDIS_PIDS+=($!)
    for _ in $(seq 1 100); do
        redis-cli -p "$sentinel" sentinel get-master-addr-by-name bench 2>/dev/null | grep -q "$primary" && break
        sleep 0.05
    done
    REDIS_SPEC="{sentinel: {masterName: bench, nodes: ['redis://127.0.0.1:$sentinel']}}" REDIS_DOCS=""
}
