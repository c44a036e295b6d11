#!/usr/bin/env bash
# The cost of request inspection: Rampart against itself, same run, same upstream.
#
#   bash bench/inspect.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# JSON threat limits: routes with the limits off and on (the defaults), each POSTed a
# typical 1 KB JSON document and a 64 KB one (an array of such documents); OpenAPI
# validation: a route validating the 1 KB document against its schema (limits on too),
# and, to show where its cost goes, the same operation with no body schema (head checks
# only, the body streams) and with an empty one (the body read whole and parsed).
# One Rampart (1 worker, pinned to core 1); load and upstream on core 0. Reported:
# requests per proxy CPU-second per case and the ratio to the same body with the limits
# off, with the rounds interleaved so drift affects every case alike. With INSTRUCTIONS=1,
# then instructions per request of the 1 KB routes under callgrind. Then the load time of
# GitHub's whole REST API description (npm @octokit/openapi, 1,223 operations).
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

# The bodies (an order, and 64 of them in an array), and the order's contract.
write_orders "$ABS_OUT"
python3 - "$OUT" <<'PY'
import json, sys
# The order's contract, as an API team would write it.
addr = {"type": "object", "required": ["line1", "city", "country"], "properties": {
    "line1": {"type": "string", "maxLength": 200}, "city": {"type": "string", "maxLength": 100},
    "postcode": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"}, "country": {"type": "string", "minLength": 2, "maxLength": 2}}}
spec = {"openapi": "3.0.3", "info": {"title": "Orders", "version": "1"}, "paths": {"/validated/orders": {"post": {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
    "responses": {"200": {"description": "ok"}}}}},
  "components": {"schemas": {"Order": {"type": "object", "additionalProperties": False,
    "required": ["id", "customer", "items", "currency", "total"], "properties": {
      "id": {"type": "string", "pattern": "^ord_[0-9a-f]{32}$"},
      "customer": {"type": "object", "required": ["id", "email"], "properties": {
          "id": {"type": "string"}, "name": {"type": "string", "maxLength": 200},
          "email": {"type": "string", "format": "email"}, "address": addr}},
      "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"$ref": "#/components/schemas/Item"}},
      "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
      "total": {"type": "number", "minimum": 0}, "paid": {"type": "boolean"},
      "coupon": {"type": "string", "nullable": True}, "note": {"type": "string", "maxLength": 1000}}},
    "Item": {"type": "object", "required": ["sku", "qty", "unit_price"], "properties": {
      "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"}, "title": {"type": "string"},
      "qty": {"type": "integer", "format": "int32", "minimum": 1},
      "unit_price": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
      "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}}}}
open(f"{sys.argv[1]}/orders.json", "w").write(json.dumps(spec))
# Where the cost goes: the same operation with an empty body schema (the body is read
# whole and parsed, then checked against nothing), and with no body schema (the head
# checks only; the body streams).
op = spec["paths"].pop("/validated/orders")
for name, content in (("parsed", {"application/json": {"schema": {}}}), ("head", {"application/json": {}})):
    doc = dict(spec, paths={f"/{name}/orders": {"post": dict(op["post"], requestBody={"required": True, "content": content})}})
    open(f"{sys.argv[1]}/orders-{name}.json", "w").write(json.dumps(doc))
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
  - { name: off, match: { path_prefix: /off }, upstream: up, json_limits: { enabled: false } }
  - { name: json, match: { path_prefix: /json }, upstream: up }
  - { name: validated, match: { path_prefix: /validated }, upstream: up, validate: { openapi: orders.json } }
  - { name: parsed, match: { path_prefix: /parsed }, upstream: up, validate: { openapi: orders-parsed.json } }
  - { name: head, match: { path_prefix: /head }, upstream: up, validate: { openapi: orders-head.json } }
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
# The contract is really checked: the order passes, a broken one is refused.
[ "$(post "@$OUT/small.json" "http://127.0.0.1:$RMP/validated/orders")" = 200 ] || { echo "valid order refused"; cat "$OUT/rampart.err"; exit 1; }
[ "$(post '{"id":"x"}' "http://127.0.0.1:$RMP/validated/orders")" = 400 ] || { echo "validation not applied"; exit 1; }
for r in head parsed; do
  [ "$(post "@$OUT/small.json" "http://127.0.0.1:$RMP/$r/orders")" = 200 ] || { echo "$r: not 200"; cat "$OUT/rampart.err"; exit 1; }
  [ "$(post "@$OUT/small.json" "http://127.0.0.1:$RMP/$r/other")" = 404 ] || { echo "$r: validation not applied"; exit 1; }
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for body in small big; do
    routes="off json"; [ $body = small ] && routes="off json head parsed validated"
    for route in $routes; do
      path=$route; case $route in validated|parsed|head) path=$route/orders;; esac
      t0=$(cpu_ticks "$RMP_PID")
      reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/$path" -s "$OUT/$body.lua")
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
    for route in ("off", "json", "head", "parsed", "validated"):
        rs = [r for r in rows if r[1] == body and r[2] == route]
        if not rs:
            continue
        reqs = sum(int(r[3]) for r in rs)
        cpu = sum(int(r[4]) for r in rs) / tick
        eff[route] = (reqs / (secs * rounds), reqs / cpu)
    for route, (rps, e) in eff.items():
        name = {"off": "off", "json": "limits on", "head": "limits on + OpenAPI head checks (no body schema)",
                "parsed": "limits on + OpenAPI, body parsed (empty schema)", "validated": "limits on + OpenAPI schema"}[route]
        print(f"| {label} | {name} | {rps:,.0f} | {e:,.0f} | {rps / eff['off'][0]:.2f}x | {e / eff['off'][1]:.2f}x |")
    for route in ("head", "parsed", "validated"):
        if route in eff:
            print(f"| {label} | {route} / limits on | | | {eff[route][0] / eff['json'][0]:.2f}x | {eff[route][1] / eff['json'][1]:.2f}x |")
# Each round's ratio to the limits-on route of the same round, and their median: a round
# in which one route alone drops (this machine's noise) moves the median less than the
# totals above.
import statistics
for route in ("head", "parsed", "validated"):
    per = []
    for r in sorted({r[0] for r in rows}, key=int):
        got = {x[2]: int(x[3]) for x in rows if x[0] == r and x[1] == "small"}
        if route in got and got.get("json"):
            per.append(got[route] / got["json"])
    if per:
        print(f"| 1 KB order | {route} / limits on, median of {len(per)} rounds | | | {statistics.median(per):.2f}x "
              f"({', '.join(f'{p:.2f}' for p in per)}) | |")
PY

# INSTRUCTIONS=1: user-space instructions per request of each 1 KB route under callgrind
# (repeatable where throughput drifts between runs): the gateway alone, restarted per
# route, counters zeroed after a warm-up, 5 s of wrk at 4 connections.
if [ -n "${INSTRUCTIONS:-}" ]; then
  bench_need valgrind:valgrind
  kill "$RMP_PID" 2>/dev/null || true; wait "$RMP_PID" 2>/dev/null || true
  printf '\n| 1 KB order, route | requests | instructions per request |\n|---|---|---|\n' | tee -a "$OUT/results.md"
  for route in json head parsed validated; do
    path=$route; [ $route != json ] && path=$route/orders
    read -r n per < <(callgrind_requests "$OUT/rampart.yaml" "http://127.0.0.1:$RMP/$path" -s "$OUT/small.lua")
    echo "| $route | $n | $per |" | tee -a "$OUT/results.md"
  done
fi

# Load time of a large real document: GitHub's REST API description.
if command -v npm >/dev/null; then
  (cd "$OUT" && [ -f package/generated/api.github.com.json ] || { npm pack -q @octokit/openapi@23.0.2 >/dev/null && tar xzf octokit-openapi-23.0.2.tgz; })
  cat > "$OUT/github.yaml" <<YAML
version: 1
listeners: [{ name: http, bind: "127.0.0.1:0" }]
upstreams: { up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] } }
routes: [{ name: gh, match: { path_prefix: / }, upstream: up, validate: { openapi: package/generated/api.github.com.json } }]
YAML
  best=
  for _ in 1 2 3; do
    t0=$(date +%s%N); "$BIN" validate --config "$OUT/github.yaml" >/dev/null 2>&1; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 )); { [ -z "$best" ] || [ "$ms" -lt "$best" ]; } && best=$ms
  done
  echo "GitHub REST API description (13 MB, 1,223 operations): rampart validate in $best ms (best of 3)" | tee -a "$OUT/results.md"
fi
