#!/usr/bin/env bash
# The cost of rate limiting: Rampart against itself, same run, same upstream.
#
#   bash bench/limits.sh         # ROUNDS=3 DURATION=10 CONNS=50 by default
#   RAMPART_BIN=/path/to/rampart bash bench/limits.sh     # another build (before/after)
#
# Four routes on one Rampart (1 worker, pinned to core 1); wrk, the nginx upstream and
# redis-server share core 0:
#   none     - no limit;
#   local    - a per-process limit by client IP (high enough never to refuse);
#   batched  - the same limit on Redis, batched (lease 100);
#   exact    - the same limit on Redis, exact (one script per request).
# Reported: requests per proxy CPU-second and the ratio to `none`. Redis's own CPU is
# reported separately (it is the cost the cluster pays elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-limits
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk redis-server:redis-server
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18281; RMP=18290; REDIS_PORT=18279

LIMIT='limits: [{ rate: 10000000/s, burst: 10000000 }]'
cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
redis: { url: "redis://127.0.0.1:$REDIS_PORT", timeout: 100ms }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: none, match: { path_prefix: /none }, upstream: up }
  - { name: local, match: { path_prefix: /local }, upstream: up, rate_limit: { by: ip, headers: false, $LIMIT } }
  - { name: batched, match: { path_prefix: /batched }, upstream: up, rate_limit: { by: ip, headers: false, store: redis, consistency: batched, lease: 100, $LIMIT } }
  - { name: exact, match: { path_prefix: /exact }, upstream: up, rate_limit: { by: ip, headers: false, store: redis, consistency: exact, $LIMIT } }
YAML
write_upstream_conf "$ABS_OUT" "$UP_PORT"

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null & pids+=($!)
REDIS_PID=$!
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP $REDIS_PORT
for r in none local batched exact; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RMP/$r")" = 200 ] || { echo "$r: not 200"; cat "$OUT/rampart.err"; exit 1; }
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for route in none local batched exact; do
    t0=$(cpu_ticks "$RMP_PID"); r0=$(cpu_ticks "$REDIS_PID")
    reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/$route")
    t1=$(cpu_ticks "$RMP_PID"); r1=$(cpu_ticks "$REDIS_PID")
    echo "$round $route $reqs $(( t1 - t0 )) $(( r1 - r0 ))" | tee -a "$OUT/raw.txt"
  done
done
python3 - "$OUT/raw.txt" "$TICK" <<'PY' | tee "$OUT/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick = int(sys.argv[2])
eff = {}
for route in ("none", "local", "batched", "exact"):
    rs = [r for r in rows if r[1] == route]
    reqs = sum(int(r[2]) for r in rs)
    cpu = sum(int(r[3]) for r in rs) / tick
    rcpu = sum(int(r[4]) for r in rs) / tick
    eff[route] = (reqs, cpu, reqs / cpu, rcpu)
print("| route | requests | proxy CPU s | req per proxy CPU-s | ratio to no limit | redis CPU s |")
print("|---|---|---|---|---|---|")
labels = {"none": "no limit", "local": "local limit (by IP)", "batched": "Redis, batched (lease 100)", "exact": "Redis, exact"}
for route, label in labels.items():
    reqs, cpu, e, rcpu = eff[route]
    print(f"| {label} | {reqs:,} | {cpu:.2f} | {e:,.0f} | {e / eff['none'][2]:.2f}x | {rcpu:.2f} |")
PY
