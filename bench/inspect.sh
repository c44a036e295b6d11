#!/usr/bin/env bash
# The cost of request inspection: Rampart against itself, same run, same upstream.
#
#   bash bench/inspect.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# JSON threat limits: routes with the limits off and on (the defaults), each POSTed a
# typical 1 KB JSON document and a 64 KB one (an array of such documents). One Rampart
# (1 worker, pinned to core 1); load and upstream on core 0. Reported: requests per
# proxy CPU-second per case and the ratio to the same body with the limits off, with the
# rounds interleaved so drift affects every case alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-inspect
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk python3:python3
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18281; RMP=18290

# The bodies: an order as a typical API receives it, and 64 of them in an array.
python3 - "$OUT" <<'PY'
import json, sys
order = {
    "id": "ord_8f14e45fceea167a5a36dedd4bea2543", "customer": {"id": "cus_42", "name": "Zoë Müller",
    "email": "zoe@example.com", "address": {"line1": "12 Rue de la Paix", "city": "Paris", "postcode": "75002", "country": "FR"}},
    "items": [{"sku": f"SKU-{i:04}", "title": "Stainless steel water bottle, 750 ml", "qty": i % 3 + 1,
               "unit_price": 19.99 + i, "tags": ["outdoor", "kitchen"]} for i in range(5)],
    "currency": "EUR", "total": 154.85, "paid": True, "coupon": None,
    "note": "Leave at the door \u2013 ring twice, please. \"Fragile\" items inside.",
}
small = json.dumps(order, ensure_ascii=False)
big = json.dumps([order] * 64, ensure_ascii=False)
open(f"{sys.argv[1]}/small.json", "w").write(small)
open(f"{sys.argv[1]}/big.json", "w").write(big)
print(f"bodies: {len(small.encode())} and {len(big.encode())} bytes", file=sys.stderr)
PY
for b in small big; do
  cat > "$OUT/$b.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$ABS_OUT/$b.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
done

cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: off, match: { path_prefix: /off }, upstream: up, json_limits: { enabled: false } }
  - { name: json, match: { path_prefix: /json }, upstream: up }
YAML
write_upstream_conf "$ABS_OUT" "$UP_PORT"

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
post() { curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$@"; }
for r in off json; do
  [ "$(post "@$OUT/big.json" "http://127.0.0.1:$RMP/$r")" = 200 ] || { echo "$r: not 200"; cat "$OUT/rampart.err"; exit 1; }
done
# The limits are really on: a body nested too deep is refused on `json` only.
deep=$(printf '[%.0s' $(seq 1 100))$(printf ']%.0s' $(seq 1 100))
[ "$(post "$deep" "http://127.0.0.1:$RMP/json")" = 413 ] || { echo "json limits not applied"; exit 1; }
[ "$(post "$deep" "http://127.0.0.1:$RMP/off")" = 200 ] || { echo "off route refused"; exit 1; }

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for body in small big; do
    for route in off json; do
      t0=$(cpu_ticks "$RMP_PID")
      reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/$route" -s "$OUT/$body.lua")
      t1=$(cpu_ticks "$RMP_PID")
      echo "$round $body $route $reqs $(( t1 - t0 ))" | tee -a "$OUT/raw.txt"
    done
  done
done
python3 - "$OUT/raw.txt" "$TICK" "$DURATION" "$ROUNDS" <<'PY' | tee "$OUT/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, secs, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("| body | JSON limits | requests/s | req per proxy CPU-s | ratio to off (throughput) | ratio to off (per CPU-s) |")
print("|---|---|---|---|---|---|")
for body, label in (("small", "1 KB order"), ("big", "64 KB array of orders")):
    eff = {}
    for route in ("off", "json"):
        rs = [r for r in rows if r[1] == body and r[2] == route]
        reqs = sum(int(r[3]) for r in rs)
        cpu = sum(int(r[4]) for r in rs) / tick
        eff[route] = (reqs / (secs * rounds), reqs / cpu)
    for route in ("off", "json"):
        rps, e = eff[route]
        print(f"| {label} | {route} | {rps:,.0f} | {e:,.0f} | {rps / eff['off'][0]:.2f}x | {e / eff['off'][1]:.2f}x |")
PY
