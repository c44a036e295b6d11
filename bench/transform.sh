#!/usr/bin/env bash
# The cost of the request/response shaping filters: Rampart against itself, same run.
#
#   bash bench/transform.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# Routes in front of the same nginx upstream (a 100-byte answer): `plain`; `cors` (an
# allowed Origin on every request: the CORS headers added); `headers` (request headers
# set from templates and removed, response headers removed and renamed); `credentials`
# (the upstream's own API key set on every request); `rewrite` (the target built from a
# path parameter, query parameters removed, set and added); `oauth2` (the upstream's
# OAuth2 client-credentials token, fetched once from a token endpoint on the same nginx,
# then served from the cache). One Rampart (1 worker, core 1),
# load and upstream on core 0. Reported: requests/s and requests per proxy CPU-second,
# and each route's ratio to `plain`, rounds interleaved. With INSTRUCTIONS=1, then
# instructions per request of each route under callgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-transform
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk python3:python3
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18481; RMP=18490
ROUTES="plain cors headers credentials rewrite oauth2"

cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
  partner:
    targets: [{ url: "http://127.0.0.1:$UP_PORT" }]
    credentials: { header: { name: X-Partner-Key, value: { env: BENCH_PARTNER_KEY } } }
  oauth:
    targets: [{ url: "http://127.0.0.1:$UP_PORT" }]
    credentials:
      oauth2: { token_url: "http://127.0.0.1:$UP_PORT/oauth/token", client_id: bench, client_secret: { env: BENCH_PARTNER_KEY } }
routes:
  - { name: plain, match: { path_prefix: /plain }, upstream: up }
  - name: cors
    match: { path_prefix: /cors }
    upstream: up
    cors: { origins: ["https://app.example.com", "https://*.example.org"], credentials: true }
  - name: headers
    match: { path_prefix: /headers }
    upstream: up
    transform:
      request_headers:
        set: { x-client: "{{ client_ip }}", x-trace: "{{ request_id }} {{ route }}" }
        remove: [x-debug]
      response_headers: { remove: [server], rename: { x-a: x-b } }
  - { name: credentials, match: { path_prefix: /credentials }, upstream: partner }
  - name: rewrite
    match: { path: "/rewrite/{id}" }
    upstream: up
    rewrite: { template: "/legacy/get?uid={id}" }
    transform:
      query: { remove: [debug], set: { v: "2", caller: "{{ client_ip }}" } }
  - { name: oauth2, match: { path_prefix: /oauth2 }, upstream: oauth }
YAML
write_upstream_conf "$ABS_OUT" "$UP_PORT"
# The token endpoint of the oauth2 route, on the same nginx.
python3 - "$ABS_OUT/upstream.conf" <<'PY'
import sys
p = sys.argv[1]
token = '{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}'
s = open(p).read().replace("location / {", "location = /oauth/token { default_type application/json; return 200 '" + token + "'; }\n    location / {", 1)
open(p, "w").write(s)
PY
cat > "$OUT/origin.lua" <<'LUA'
wrk.headers["Origin"] = "https://app.example.com"
LUA

ulimit -n 65536 2>/dev/null || true
export BENCH_PARTNER_KEY=bench-partner-key-0123456789
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
# Each filter really acts.
curl -s -D - -o /dev/null -H 'Origin: https://app.example.com' "http://127.0.0.1:$RMP/cors" \
  | grep -qi '^access-control-allow-origin: https://app.example.com' || { echo "cors: no header"; exit 1; }
url_of() { case $1 in rewrite) echo "http://127.0.0.1:$RMP/rewrite/42?debug=1&q=x" ;; *) echo "http://127.0.0.1:$RMP/$1" ;; esac; }
for r in $ROUTES; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$(url_of "$r")")" = 200 ] || { echo "$r: not 200"; exit 1; }
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for route in $ROUTES; do
    t0=$(cpu_ticks "$RMP_PID")
    reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "$(url_of "$route")" -s "$OUT/origin.lua")
    t1=$(cpu_ticks "$RMP_PID")
    echo "$round $route $reqs $(( t1 - t0 ))" | tee -a "$OUT/raw.txt"
  done
done
ratio_table "$OUT/raw.txt" "$TICK" "$DURATION" "$ROUNDS" $ROUTES | tee "$OUT/results.md"

if [ -n "${INSTRUCTIONS:-}" ]; then
  bench_need valgrind:valgrind
  kill "$RMP_PID" 2>/dev/null || true; wait "$RMP_PID" 2>/dev/null || true
  printf '\n| route | requests | instructions per request |\n|---|---|---|\n' | tee -a "$OUT/results.md"
  for route in $ROUTES; do
    read -r n per < <(callgrind_requests "$OUT/rampart.yaml" "$(url_of "$route")" -s "$OUT/origin.lua")
    echo "| $route | $n | $per |" | tee -a "$OUT/results.md"
  done
fi
