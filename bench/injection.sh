#!/usr/bin/env bash
# The cost of injection detection: Rampart against itself, same run, same upstream.
#
#   bash bench/injection.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# Two routes to the same upstream, `plain` (no inspect) and `inspected` (`inspect: {}`,
# paranoia 1), each sent: a search GET (four query fields, a browser User-Agent, a
# cookie), a typical 1 KB JSON order, and a 64 KB JSON array of such orders. One Rampart
# (1 worker, pinned to core 1); load and upstream on core 0. Reported: requests per
# second and per proxy CPU-second, and the ratio inspected / plain per request, rounds
# interleaved so drift affects every case alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-injection
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk python3:python3
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18381; RMP=18390

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
open(f"{sys.argv[1]}/small.json", "w").write(json.dumps(order, ensure_ascii=False))
open(f"{sys.argv[1]}/big.json", "w").write(json.dumps([order] * 64, ensure_ascii=False))
PY
for b in small big; do
  cat > "$OUT/$b.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$ABS_OUT/$b.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
done
cat > "$OUT/search.lua" <<'LUA'
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
wrk.headers["Cookie"] = "session=4f1c2b9a7d; theme=dark; lang=en-GB"
LUA
SEARCH="search?q=stainless+steel+water+bottle&category=kitchen&page=2&sort=-price"

cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: plain, match: { path_prefix: /plain }, upstream: up }
  - { name: inspected, match: { path_prefix: /inspected }, upstream: up, inspect: {} }
YAML
write_upstream_conf "$ABS_OUT" "$UP_PORT"

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for r in plain inspected; do
  [ "$(code -H 'Content-Type: application/json' --data-binary "@$OUT/big.json" "http://127.0.0.1:$RMP/$r/orders")" = 200 ] \
    || { echo "$r: the orders are not 200"; cat "$OUT/rampart.err"; exit 1; }
  [ "$(code "http://127.0.0.1:$RMP/$r/$SEARCH")" = 200 ] || { echo "$r: search not 200"; exit 1; }
done
# Detection is really on: an attack is refused on `inspected` only.
attack="search?q=1%27%20OR%20%271%27%3D%271"
[ "$(code "http://127.0.0.1:$RMP/inspected/$attack")" = 403 ] || { echo "inspect not applied"; exit 1; }
[ "$(code "http://127.0.0.1:$RMP/plain/$attack")" = 200 ] || { echo "plain route refused"; exit 1; }

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for case in search small big; do
    for route in plain inspected; do
      if [ $case = search ]; then url="http://127.0.0.1:$RMP/$route/$SEARCH"; script="$OUT/search.lua"
      else url="http://127.0.0.1:$RMP/$route/orders"; script="$OUT/$case.lua"; fi
      t0=$(cpu_ticks "$RMP_PID")
      reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "$url" -s "$script")
      t1=$(cpu_ticks "$RMP_PID")
      echo "$round $case $route $reqs $(( t1 - t0 ))" | tee -a "$OUT/raw.txt"
    done
  done
done
python3 - "$OUT/raw.txt" "$TICK" "$DURATION" "$ROUNDS" <<'PY' | tee "$OUT/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, secs, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("| request | inspect | requests/s | req per proxy CPU-s | inspected / plain (throughput) | inspected / plain (per CPU-s) |")
print("|---|---|---|---|---|---|")
labels = {"search": "GET, 4 query fields + UA + cookie", "small": "POST 1 KB JSON order", "big": "POST 64 KB JSON array"}
for case, label in labels.items():
    eff = {}
    for route in ("plain", "inspected"):
        rs = [r for r in rows if r[1] == case and r[2] == route]
        reqs = sum(int(r[3]) for r in rs)
        cpu = sum(int(r[4]) for r in rs) / tick
        eff[route] = (reqs / (secs * rounds), reqs / cpu)
    for route, (rps, e) in eff.items():
        print(f"| {label} | {'on' if route == 'inspected' else 'off'} | {rps:,.0f} | {e:,.0f} | {rps / eff['plain'][0]:.2f}x | {e / eff['plain'][1]:.2f}x |")
PY
