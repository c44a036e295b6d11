#!/usr/bin/env bash
# The cost of identity and access: Rampart against itself, same run, same upstream.
#
#   bash bench/auth.sh           # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# Three routes on one Rampart (1 worker, pinned to core 1), load and upstream on core 0:
#   none  - no authentication;
#   key   - an API key (peppered HMAC lookup) plus a role check;
#   jwt   - an RS256 bearer token (verified once, then served from the per-worker cache)
#           plus a scope check.
# Reported: requests per proxy CPU-second per route and the ratio to `none`, with the
# rounds interleaved so drift affects all three alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-auth
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk openssl:openssl
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=target/release/rampart
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18181; RMP=18190

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# Key material: a pepper, an API key (via `rampart keys new`), an RSA key and a token.
openssl rand -hex 32 > "$OUT/pepper.txt"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/idp.key" 2>/dev/null
openssl pkey -in "$OUT/idp.key" -pubout -out "$OUT/idp.pem"
cat > "$OUT/rampart.yaml" <<YAML
version: 1
identity: { api_keys: { pepper: { file: pepper.txt } } }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
YAML
KEYGEN=$("$BIN" keys new --consumer bench --config "$OUT/rampart.yaml" 2>/dev/null)
API_KEY=$(sed -n 's/^key: //p' <<<"$KEYGEN")
ENTRY=$(sed -n 's/^config: - //p' <<<"$KEYGEN")
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
payload=$(printf '{"iss":"https://idp.bench","aud":"bench","sub":"u1","scope":"read","iat":%d,"exp":%d}' "$now" $((now + 3600)) | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$OUT/idp.key" -binary | b64url)
TOKEN="$header.$payload.$sig"

cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
identity:
  api_keys: { pepper: { file: pepper.txt } }
  jwt:
    bench: { issuer: "https://idp.bench", audiences: [bench], algorithms: [RS256], jwks_file: idp.pem }
consumers:
  - { id: bench, roles: [reader], api_keys: [$ENTRY] }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: none, match: { path_prefix: /none }, upstream: up }
  - { name: key, match: { path_prefix: /key }, upstream: up, authenticate: [api_key], authorize: { roles_any: [reader] } }
  - { name: jwt, match: { path_prefix: /jwt }, upstream: up, authenticate: ["jwt:bench"], authorize: { scopes_any: [read] } }
YAML
write_upstream_conf "$ABS_OUT" "$UP_PORT"

ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
check() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$@")" = 200 ] || { echo "not 200: $*"; cat "$OUT/rampart.err"; exit 1; }; }
check "http://127.0.0.1:$RMP/none"
check -H "X-API-Key: $API_KEY" "http://127.0.0.1:$RMP/key"
check -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$RMP/jwt"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RMP/key")" = 401 ] || { echo "key route open"; exit 1; }

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for route in none key jwt; do
    hdr=()
    [ $route = key ] && hdr=(-H "X-API-Key: $API_KEY")
    [ $route = jwt ] && hdr=(-H "Authorization: Bearer $TOKEN")
    t0=$(cpu_ticks "$RMP_PID")
    reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/$route" "${hdr[@]}")
    t1=$(cpu_ticks "$RMP_PID")
    echo "$round $route $reqs $(( t1 - t0 ))" | tee -a "$OUT/raw.txt"
  done
done
python3 - "$OUT/raw.txt" "$TICK" <<'PY' | tee "$OUT/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick = int(sys.argv[2])
eff = {}
for route in ("none", "key", "jwt"):
    rs = [r for r in rows if r[1] == route]
    reqs = sum(int(r[2]) for r in rs)
    cpu = sum(int(r[3]) for r in rs) / tick
    eff[route] = (reqs, cpu, reqs / cpu)
print("| route | requests | proxy CPU s | req per proxy CPU-s | ratio to no auth |")
print("|---|---|---|---|---|")
for route, label in (("none", "no authentication"), ("key", "API key + role check"), ("jwt", "cached RS256 JWT + scope check")):
    reqs, cpu, e = eff[route]
    print(f"| {label} | {reqs:,} | {cpu:.2f} | {e:,.0f} | {e / eff['none'][2]:.2f}x |")
PY
