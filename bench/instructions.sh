#!/usr/bin/env bash
# Instructions per request of two Rampart builds, under callgrind: repeatable where
# wall-clock throughput on this shared machine moves by ±10% between rounds.
#
#   bash bench/instructions.sh BEFORE_BIN AFTER_BIN     # REQUESTS=20000 CONNS=16
#
# Each build serves the plain route and the API-key route of bench/compare.sh's config.
# Counters are zeroed after start-up and a warm-up, so only the requests are counted
# (user-space instructions of the gateway; the kernel's share is not included).
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?before binary}
AFTER=${2:?after binary}
REQUESTS=${REQUESTS:-20000}
CONNS=${CONNS:-16}
OUT=bench/out-instructions
mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light valgrind:valgrind curl:curl python3:python3
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18381; PORT=18390

openssl rand -hex 32 > "$OUT/pepper.txt"
config() {
  cat <<YAML
version: 1
workers: 1
access_log: { enabled: false }
listeners: [{ name: http, bind: "127.0.0.1:$PORT" }]
identity: { api_keys: { pepper: { file: pepper.txt } } }
consumers:
  - { id: bench, roles: [reader], api_keys: [$1] }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }], pool: { max_idle_per_target: 1024 } }
routes:
  - { name: none, match: { path_prefix: /none }, upstream: up }
  - { name: key, match: { path_prefix: /key }, upstream: up, authenticate: [api_key], authorize: { roles_any: [reader] } }
YAML
}
config "{ id: x, hash: \"hmac-sha256:$(printf '0%.0s' $(seq 1 64))\" }" > "$OUT/keygen.yaml"
KEYGEN=$("$AFTER" keys new --consumer bench --config "$OUT/keygen.yaml" 2>/dev/null)
API_KEY=$(sed -n 's/^key: //p' <<<"$KEYGEN")
config "$(sed -n 's/^config: - //p' <<<"$KEYGEN")" > "$OUT/rampart.yaml"
write_upstream_conf "$ABS_OUT" "$UP_PORT"
nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
wait_ports $UP_PORT

# load N ROUTE [curl args]: N requests over CONNS keep-alive connections (curl in
# parallel, each reusing one connection for its share).
load() {
  local n=$1 route=$2 per jobs=(); shift 2
  per=$(( n / CONNS ))
  for _ in $(seq 1 "$CONNS"); do
    (urls=(); for _ in $(seq 1 "$per"); do urls+=("http://127.0.0.1:$PORT/$route"); done
     curl -s --fail "$@" "${urls[@]}" >/dev/null) &
    jobs+=($!)
  done
  wait "${jobs[@]}"
}

: > "$OUT/raw.txt"
for build in before after; do
  bin=$BEFORE; [ $build = after ] && bin=$AFTER
  for route in none key; do
    hdr=(); [ $route = key ] && hdr=(-H "X-API-Key: $API_KEY")
    RAMPART_LOG=error valgrind --tool=callgrind --callgrind-out-file="$ABS_OUT/cg.$build.$route" \
      --dump-instr=no --collect-atstart=yes "$bin" run --config "$OUT/rampart.yaml" 2>"$OUT/valgrind.$build.$route.err" &
    vg=$!
    for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.2; done
    load 400 "$route" "${hdr[@]}"
    callgrind_control --zero "$vg" >/dev/null
    load "$REQUESTS" "$route" "${hdr[@]}"
    callgrind_control --dump "$vg" >/dev/null
    kill -INT "$vg"; wait "$vg" 2>/dev/null || true
    ir=$(for f in "$ABS_OUT"/cg.$build.$route.*; do grep -h '^summary:' "$f" | awk '{print $2}'; done | sort -n | tail -1)
    echo "$build $route $REQUESTS $ir" | tee -a "$OUT/raw.txt"
    rm -f "$ABS_OUT"/cg.$build.$route*
  done
done
python3 - "$OUT/raw.txt" <<'PY' | tee "$OUT/results.md"
import sys
rows = {(r[0], r[1]): int(r[3]) / int(r[2]) for r in (l.split() for l in open(sys.argv[1]) if l.strip())}
print("| route | before instructions/request | after instructions/request | after / before |")
print("|---|---|---|---|")
for route, label in (("none", "plain"), ("key", "API key + role")):
    b, a = rows[("before", route)], rows[("after", route)]
    print(f"| {label} | {b:,.0f} | {a:,.0f} | {a / b:.3f}x |")
PY
