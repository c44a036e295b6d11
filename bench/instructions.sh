#!/usr/bin/env bash
# Instructions and heap allocations per request of two Rampart builds, under callgrind:
# repeatable where wall-clock throughput on this shared machine moves by ±10% between
# rounds. The regression guard for the hot path.
#
#   bash bench/instructions.sh BEFORE_BIN AFTER_BIN     # REQUESTS=20000 CONNS=16
#   bash bench/instructions.sh BIN BIN                  # one build's figures
#   CASES="none key" KEEP_CG=1 bash bench/instructions.sh ...  # some routes; keep the callgrind files
#
# Routes: plain (access log off), API key + role (log off), plain with the access log on,
# and the full chain (API key + role + local rate limit + access log). Counters are zeroed
# after start-up and a warm-up, so only the requests are counted: user-space instructions
# of every gateway thread (the access log writer's included; the kernel's share is not),
# and calls to malloc/calloc/realloc.
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
access_log: { enabled: \${LOG:-false}, output: $ABS_OUT/access.log }
listeners: [{ name: http, bind: "127.0.0.1:$PORT" }]
identity: { api_keys: { pepper: { file: pepper.txt } } }
consumers:
  - { id: bench, roles: [reader], api_keys: [$1] }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }], pool: { max_idle_per_target: 1024 } }
routes:
  - { name: none, match: { path_prefix: /none }, upstream: up }
  - { name: key, match: { path_prefix: /key }, upstream: up, authenticate: [api_key], authorize: { roles_any: [reader] } }
  - { name: chain, match: { path_prefix: /chain }, upstream: up, authenticate: [api_key], authorize: { roles_any: [reader] }, rate_limit: { by: ip, headers: false, limits: [{ rate: 100000000/s, burst: 100000000 }] } }
YAML
}
config "{ id: x, hash: \"hmac-sha256:$(printf '0%.0s' $(seq 1 64))\" }" | sed 's/\${LOG:-false}/false/' > "$OUT/keygen.yaml"
KEYGEN=$("$AFTER" keys new --consumer bench --config "$OUT/keygen.yaml" 2>/dev/null)
API_KEY=$(sed -n 's/^key: //p' <<<"$KEYGEN")
config "$(sed -n 's/^config: - //p' <<<"$KEYGEN")" > "$OUT/rampart.tmpl"
sed 's/\${LOG:-false}/false/' "$OUT/rampart.tmpl" > "$OUT/rampart-nolog.yaml"
sed 's/\${LOG:-false}/true/' "$OUT/rampart.tmpl" > "$OUT/rampart-log.yaml"
write_upstream_conf "$ABS_OUT" "$UP_PORT"
nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
wait_ports $UP_PORT

load() { curl_load "$PORT" "$CONNS" "$@"; }

: > "$OUT/raw.txt"
for build in before after; do
  bin=$BEFORE; [ $build = after ] && bin=$AFTER
  for case in ${CASES:-none key none-log chain-log}; do
    route=${case%-log}; cfg=$OUT/rampart-nolog.yaml; [ "$route" != "$case" ] && cfg=$OUT/rampart-log.yaml
    hdr=(); [ $route != none ] && hdr=(-H "X-API-Key: $API_KEY")
    RAMPART_LOG=error valgrind --tool=callgrind --callgrind-out-file="$ABS_OUT/cg.$build.$case" \
      --dump-instr=no --collect-atstart=yes "$bin" run --config "$cfg" 2>"$OUT/valgrind.$build.$case.err" &
    vg=$!
    for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.2; done
    load 400 "$route" "${hdr[@]}"
    callgrind_control --zero "$vg" >/dev/null
    load "$REQUESTS" "$route" "${hdr[@]}"
    callgrind_control --dump "$vg" >/dev/null
    kill -INT "$vg"; wait "$vg" 2>/dev/null || true
    # Threads dump to separate files: sum them (instructions, and calls to the allocator).
    read -r ir allocs < <(cg_sum "$ABS_OUT"/cg.$build.$case.*)
    echo "$build $case $REQUESTS $ir $allocs" | tee -a "$OUT/raw.txt"
    [ -n "${KEEP_CG:-}" ] || rm -f "$ABS_OUT"/cg.$build.$case*
  done
done
python3 - "$OUT/raw.txt" <<'PY' | tee "$OUT/results.md"
import sys
rows = {(r[0], r[1]): (int(r[3]) / int(r[2]), int(r[4]) / int(r[2]))
        for r in (l.split() for l in open(sys.argv[1]) if l.strip())}
print("| route | before instructions/request | after instructions/request | after / before | before allocations/request | after allocations/request |")
print("|---|---|---|---|---|---|")
for case, label in ((c, l) for c, l in (("none", "plain"), ("key", "API key + role"), ("none-log", "plain + access log"),
                    ("chain-log", "API key + role + local limit + access log")) if ("after", c) in rows):
    (b, ba), (a, aa) = rows[("before", case)], rows[("after", case)]
    print(f"| {label} | {b:,.0f} | {a:,.0f} | {a / b:.3f}x | {ba:.1f} | {aa:.1f} |")
PY
