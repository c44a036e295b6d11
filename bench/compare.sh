#!/usr/bin/env bash
# Two Rampart builds side by side in one run: the cost (or gain) of a change on the plain
# route and on an API-key route, at 64 and 1,000 keep-alive connections.
#
#   bash bench/compare.sh BEFORE_BIN AFTER_BIN      # ROUNDS=3 DURATION=10 by default
#   BEFORE_EXTRA='response_headers: { ... }' bash bench/compare.sh BIN BIN   # a feature off vs on
#
# Both gateways get the same config (1 worker, pinned to core 1; load and upstream on
# core 0) and are measured in turn, rounds interleaved (before, after, after, before, ...)
# so drift affects both alike. Reported: requests per proxy CPU-second per build, route
# and connection count, and the after/before ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?before binary}
AFTER=${2:?after binary}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-compare
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk openssl:openssl
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18281; PORT_BEFORE=18290; PORT_AFTER=18291

openssl rand -hex 32 > "$OUT/pepper.txt"
config() {
  cat <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$1" }]
identity: { api_keys: { pepper: { file: pepper.txt } } }
consumers:
  - { id: bench, roles: [reader], api_keys: [$2] }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }], pool: { max_idle_per_target: 1024 } }
routes:
  - { name: none, match: { path_prefix: /none }, upstream: up }
  - { name: key, match: { path_prefix: /key }, upstream: up, authenticate: [api_key], authorize: { roles_any: [reader] } }
YAML
}
config $PORT_AFTER "{ id: x, hash: \"hmac-sha256:$(printf '0%.0s' $(seq 1 64))\" }" > "$OUT/keygen.yaml"
KEYGEN=$("$AFTER" keys new --consumer bench --config "$OUT/keygen.yaml" 2>/dev/null)
API_KEY=$(sed -n 's/^key: //p' <<<"$KEYGEN")
ENTRY=$(sed -n 's/^config: - //p' <<<"$KEYGEN")
config $PORT_BEFORE "$ENTRY" > "$OUT/before.yaml"
config $PORT_AFTER "$ENTRY" > "$OUT/after.yaml"
# Optional top-level YAML for one side only: the same build with a feature off vs on.
if [ -n "${BEFORE_EXTRA:-}" ]; then echo "$BEFORE_EXTRA" >> "$OUT/before.yaml"; fi
if [ -n "${AFTER_EXTRA:-}" ]; then echo "$AFTER_EXTRA" >> "$OUT/after.yaml"; fi
write_upstream_conf "$ABS_OUT" "$UP_PORT"

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BEFORE" run --config "$OUT/before.yaml" 2>"$OUT/before.err" & pids+=($!)
PID_BEFORE=$!
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$AFTER" run --config "$OUT/after.yaml" 2>"$OUT/after.err" & pids+=($!)
PID_AFTER=$!
wait_ports $UP_PORT $PORT_BEFORE $PORT_AFTER
for port in $PORT_BEFORE $PORT_AFTER; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/none")" = 200 ] || { echo "not 200 on $port"; exit 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $API_KEY" "http://127.0.0.1:$port/key")" = 200 ] || { echo "key not 200 on $port"; exit 1; }
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  order="before after"; [ $((round % 2)) = 0 ] && order="after before"
  for conns in 64 1000; do
    for route in none key; do
      for build in $order; do
        if [ $build = before ]; then port=$PORT_BEFORE; pid=$PID_BEFORE; else port=$PORT_AFTER; pid=$PID_AFTER; fi
        hdr=()
        [ $route = key ] && hdr=(-H "X-API-Key: $API_KEY")
        t0=$(cpu_ticks "$pid")
        reqs=$(wrk_requests "$LOAD_CORE" "$conns" "$DURATION" "http://127.0.0.1:$port/$route" "${hdr[@]}")
        t1=$(cpu_ticks "$pid")
        echo "$round $conns $route $build $reqs $(( t1 - t0 ))" | tee -a "$OUT/raw.txt"
      done
    done
  done
done
python3 - "$OUT/raw.txt" "$TICK" "$DURATION" <<'PY' | tee "$OUT/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, secs = int(sys.argv[2]), int(sys.argv[3])
print("| connections | route | before req/s | after req/s | before req per CPU-s | after req per CPU-s | after / before (per CPU-s) |")
print("|---|---|---|---|---|---|---|")
for conns in ("64", "1000"):
    for route, label in (("none", "plain"), ("key", "API key + role")):
        eff = {}
        for build in ("before", "after"):
            rs = [r for r in rows if r[1] == conns and r[2] == route and r[3] == build]
            reqs = sum(int(r[4]) for r in rs)
            cpu = sum(int(r[5]) for r in rs) / tick
            eff[build] = (reqs / (secs * len(rs)), reqs / cpu)
        print(f"| {conns} | {label} | {eff['before'][0]:,.0f} | {eff['after'][0]:,.0f} | {eff['before'][1]:,.0f} | {eff['after'][1]:,.0f} | {eff['after'][1] / eff['before'][1]:.2f}x |")
PY
