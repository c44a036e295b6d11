#!/usr/bin/env bash
# The cost of JSON body operations and XML <-> JSON: Rampart against itself, same run.
#
#   bash bench/body.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# Every request POSTs a 1 KB JSON order; the nginx upstream answers a 1 KB order as JSON
# (`/json`) or as XML (`/xml`). Routes: `plain` (no transform); `ops` (request body: a
# member removed, one renamed, a template value set, the body wrapped; response body: the
# answer unwrapped, a member renamed and one removed in every item); `xml` (the request
# sent as XML after wrapping it, the XML answer read back into JSON and unwrapped). One
# Rampart (1 worker, core 1), load and upstream on core 0. Reported: requests/s and
# requests per proxy CPU-second, and each route's ratio to `plain`, rounds interleaved.
# With INSTRUCTIONS=1, then instructions per request under callgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-body
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk python3:python3
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18581; RMP=18590
ROUTES="plain ops xml"

write_orders "$ABS_OUT"
# The answers: one order (as the service sends it) in JSON and in XML, without quotes
# nginx would have to escape.
python3 - "$ABS_OUT" "$UP_PORT" <<'PY'
import json, sys
out, port = sys.argv[1], sys.argv[2]
items = [{"sku": f"SKU-{i:04}", "title": "Stainless steel water bottle 750 ml", "qty": i % 3 + 1,
          "unit_price": 19.99 + i, "internal_cost": 7.5} for i in range(8)]
order = {"Result": {"Order": {"id": "ord_8f14e45fceea167a5a36dedd4bea2543", "status": "shipped",
         "customer_name": "Zoe Mueller", "items": items, "currency": "EUR", "total": 154.85}}}
js = json.dumps(order, separators=(",", ":"))
def xml(name, v):
    if isinstance(v, dict):
        return f"<{name}>" + "".join(xml(k, x) for k, x in v.items()) + f"</{name}>"
    if isinstance(v, list):
        return "".join(xml(name, x) for x in v)
    return f"<{name}>{v}</{name}>"
xs = '<?xml version="1.0" encoding="UTF-8"?>' + xml("Result", order["Result"])
print(f"answers: {len(js)} bytes of JSON, {len(xs)} of XML", file=sys.stderr)
conf = f"""worker_processes 1; daemon off; pid {out}/upstream.pid; error_log stderr error;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 10000000; client_max_body_size 1m;
  server {{ listen 127.0.0.1:{port} backlog=4096;
    location /json {{ default_type application/json; return 200 '{js}'; }}
    location /xml {{ default_type application/xml; return 200 '{xs}'; }} }} }}
"""
open(f"{out}/upstream.conf", "w").write(conf)
PY

cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: plain, match: { path_prefix: /plain }, upstream: up, rewrite: { replace_prefix: { from: /plain, to: /json } } }
  - name: ops
    match: { path_prefix: /ops }
    upstream: up
    rewrite: { replace_prefix: { from: /ops, to: /json } }
    transform:
      request_body:
        - remove: "$.coupon"
        - rename: { path: "$.customer", to: buyer }
        - set: { path: "$.channel", value: "{{ client_ip }}" }
        - move: { from: "$", to: "$.Request.Order" }
      response_body:
        - move: { from: "$.Result.Order", to: "$" }
        - rename: { path: "$.customer_name", to: customer }
        - remove: "$.items[*].internal_cost"
  - name: xml
    match: { path_prefix: /xml }
    upstream: up
    transform:
      xml: { request: true, response: true }
      request_body:
        - move: { from: "$", to: "$.Request.Order" }
      response_body:
        - move: { from: "$.Result.Order", to: "$" }
YAML

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
# Each route really answers what it should.
for r in $ROUTES; do
  body=$(curl -s -H 'content-type: application/json' --data-binary "@$OUT/small.json" "http://127.0.0.1:$RMP/$r")
  case $r in
    plain) grep -q '"Result"' <<<"$body" || { echo "plain: $body"; exit 1; } ;;
    *) python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["id"].startswith("ord_"), d' "$body" \
         || { echo "$r: $body"; exit 1; } ;;
  esac
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for route in $ROUTES; do
    t0=$(cpu_ticks "$RMP_PID")
    reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/$route" -s "$ABS_OUT/small.lua")
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
    read -r n per < <(callgrind_requests "$OUT/rampart.yaml" "http://127.0.0.1:$RMP/$route" -s "$ABS_OUT/small.lua")
    echo "| $route | $n | $per |" | tee -a "$OUT/results.md"
  done
fi
