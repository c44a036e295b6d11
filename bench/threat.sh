#!/usr/bin/env bash
# The cost of the threat-protection filters: Rampart against itself, same run, same
# upstream.
#
#   bash bench/threat.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# Routes to the same upstream, each with one filter, against a plain route:
#   - a search GET (four query fields, a browser User-Agent, a cookie) on `plain`,
#     `inspected` (injection detection, paranoia 1), `bots` (five bot rules) and `geo`
#     (a country deny rule, MaxMind's test database);
#   - a typical 1 KB JSON order and a 64 KB JSON array of orders POSTed to `plain` and
#     `inspected`;
#   - a GET answered with a 1 KB JSON document on `validated` (OpenAPI request
#     validation, responses off), `shadow` and `enforce` (responses validated).
# One Rampart (1 worker, pinned to core 1); load and upstream on core 0. Reported:
# requests per second and per proxy CPU-second, and the ratio to the case's baseline,
# rounds interleaved so drift affects every case alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-threat
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk python3:python3
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18381; RMP=18390

write_orders "$ABS_OUT"
cat > "$OUT/search.lua" <<'LUA'
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
wrk.headers["Accept"] = "text/html,application/xhtml+xml"
wrk.headers["Accept-Language"] = "en-GB,en;q=0.5"
wrk.headers["Cookie"] = "session=4f1c2b9a7d; theme=dark; lang=en-GB"
LUA
: > "$OUT/get.lua"
SEARCH="search?q=stainless+steel+water+bottle&category=kitchen&page=2&sort=-price"

cp crates/rampart/tests/data/GeoIP2-Country-Test.mmdb "$OUT/country.mmdb"
python3 - "$OUT" <<'PY'
import json, sys
user = {"type": "object", "required": ["id", "name", "email"], "additionalProperties": False, "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string", "format": "email"},
    "roles": {"type": "array", "items": {"type": "string"}}, "address": {"type": "object"},
    "bio": {"type": "string"}, "password": {"type": "string", "writeOnly": True}}}
spec = {"openapi": "3.0.3", "info": {"title": "Users", "version": "1"}, "paths": {"/users/{id}": {"get": {
    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": user}}}}}}}}
open(f"{sys.argv[1]}/users.json", "w").write(json.dumps(spec))
doc = {"id": 42, "name": "Zoë Müller", "email": "zoe@example.com", "roles": ["admin", "billing", "support"],
       "address": {"line1": "12 Rue de la Paix", "city": "Paris", "postcode": "75002", "country": "FR"},
       "bio": "Engineer. Likes long walks, short meetings and well-documented APIs. " * 12}
open(f"{sys.argv[1]}/user.json", "w").write(json.dumps(doc, ensure_ascii=False))
PY
cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
geoip: { database: country.mmdb }
bot_rules:
  web:
    - { name: scripted, user_agent: "(?i)^(python-requests|curl|wget|go-http-client)/", action: deny }
    - { name: no-accept, missing: [accept], action: score, points: 3 }
    - { name: no-language, missing: [accept-language], action: score, points: 3 }
    - { name: crawler, user_agent: "(?i)bot|spider|crawl", action: tag }
    - { name: scanner, user_agent: "(?i)nikto|sqlmap|nuclei", action: limit, rate: 10/min }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: plain, match: { path_prefix: /plain }, upstream: up }
  - { name: inspected, match: { path_prefix: /inspected }, upstream: up, inspect: {} }
  - { name: bots, match: { path_prefix: /bots }, upstream: up, bots: { rules: [web] } }
  - { name: geo, match: { path_prefix: /geo }, upstream: up, ip_rules: { deny_countries: [CN] } }
  - { name: validated, match: { path_prefix: /validated }, upstream: up, validate: { openapi: users.json, base_path: /validated } }
  - { name: shadow, match: { path_prefix: /shadow }, upstream: up, validate: { openapi: users.json, base_path: /shadow, responses: shadow } }
  - { name: enforce, match: { path_prefix: /enforce }, upstream: up, validate: { openapi: users.json, base_path: /enforce, responses: enforce } }
YAML
body=$(printf 'x%.0s' $(seq 1 100))
cat > "$OUT/upstream.conf" <<NGX
worker_processes 1; daemon off; pid $ABS_OUT/upstream.pid; error_log stderr error;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$UP_PORT backlog=4096;
    location / { return 200 "$body"; }
    location ~ /users/ { default_type application/json; root $ABS_OUT; try_files /user.json =404; }
  } }
NGX

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for r in plain inspected; do
  [ "$(code -H 'Content-Type: application/json' --data-binary "@$OUT/big.json" "http://127.0.0.1:$RMP/$r/orders")" = 200 ] \
    || { echo "$r: the orders are not 200"; cat "$OUT/rampart.err"; exit 1; }
done
for r in plain inspected bots geo; do
  [ "$(code -H 'Accept: text/html' -H 'Accept-Language: en' -A 'Mozilla/5.0' "http://127.0.0.1:$RMP/$r/$SEARCH")" = 200 ] \
    || { echo "$r: search not 200"; cat "$OUT/rampart.err"; exit 1; }
done
for r in validated shadow enforce; do
  [ "$(code "http://127.0.0.1:$RMP/$r/users/42")" = 200 ] || { echo "$r: user not 200"; cat "$OUT/rampart.err"; exit 1; }
done
# The filters are really on: a script is refused on `bots`, a bad id on `validated`.
[ "$(code -A 'python-requests/2.32' "http://127.0.0.1:$RMP/bots/$SEARCH")" = 403 ] || { echo "bots not applied"; exit 1; }
[ "$(code "http://127.0.0.1:$RMP/validated/users/x")" = 400 ] || { echo "validation not applied"; exit 1; }
# Detection is really on: an attack is refused on `inspected` only.
attack="search?q=1%27%20OR%20%271%27%3D%271"
[ "$(code "http://127.0.0.1:$RMP/inspected/$attack")" = 403 ] || { echo "inspect not applied"; exit 1; }
[ "$(code "http://127.0.0.1:$RMP/plain/$attack")" = 200 ] || { echo "plain route refused"; exit 1; }

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for case in search small big user; do
    case $case in
      search) routes="plain inspected bots geo" ;;
      user) routes="validated shadow enforce" ;;
      *) routes="plain inspected" ;;
    esac
    for route in $routes; do
      case $case in
        search) url="http://127.0.0.1:$RMP/$route/$SEARCH"; script="$OUT/search.lua" ;;
        user) url="http://127.0.0.1:$RMP/$route/users/42"; script="$OUT/get.lua" ;;
        *) url="http://127.0.0.1:$RMP/$route/orders"; script="$OUT/$case.lua" ;;
      esac
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
print("| request | route (filter) | requests/s | req per proxy CPU-s | ratio to baseline (throughput) | ratio to baseline (per CPU-s) |")
print("|---|---|---|---|---|---|")
labels = {"search": "GET, 4 query fields + UA + cookie", "small": "POST 1 KB JSON order",
          "big": "POST 64 KB JSON array", "user": "GET, 1 KB JSON response"}
names = {"plain": "plain (baseline)", "inspected": "inspect (paranoia 1)", "bots": "bots (5 rules)",
         "geo": "ip_rules deny_countries", "validated": "validate, responses off (baseline)",
         "shadow": "validate, responses shadow", "enforce": "validate, responses enforce"}
for case, label in labels.items():
    eff = {}
    for route in names:
        rs = [r for r in rows if r[1] == case and r[2] == route]
        if not rs:
            continue
        reqs = sum(int(r[3]) for r in rs)
        cpu = sum(int(r[4]) for r in rs) / tick
        eff[route] = (reqs / (secs * rounds), reqs / cpu)
    base = eff.get("plain") or eff["validated"]
    for route, (rps, e) in eff.items():
        print(f"| {label} | {names[route]} | {rps:,.0f} | {e:,.0f} | {rps / base[0]:.2f}x | {e / base[1]:.2f}x |")
PY
