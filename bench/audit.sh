#!/usr/bin/env bash
# The cost of the audit trail at its defaults: two Rampart processes from one build, one
# without `audit` and one with it (defaults: fsync always, security events at `high`,
# at most 100 a second), measured alternately in one run.
#
#   bash bench/audit.sh [BIN]     # ROUNDS=3 DURATION=10 CONNS="64 1000"
#
# Routes on each:
#   open    - no policy: nothing is added to its chain (a route without filters makes
#             no decisions to audit);
#   guarded - an IP allow rule matching the client: a route with a policy, whose chain
#             gets the security-event observer (its log phase runs on every request);
#   watched - an IP deny rule in shadow mode matching the client: every request is a
#             high-level security event (the worst case: the per-second budget of 100,
#             then counting; the answer is still 200).
# Both gateways run 1 worker on core 1; wrk and the nginx upstream share core 0.
# Reported: requests per second and per proxy CPU-second, and the ratio on/off. Then,
# because wall-clock throughput here moves by ±10% between identical runs, the same
# routes under callgrind (CALLGRIND=0 skips it): user-space instructions and allocations
# per request of every gateway thread (the trail's writer threads included), audit off
# and on, REQUESTS=20000 over 16 connections each.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk curl:curl python3:python3
BIN=${1:-target/release/rampart}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64 1000}
TICK=$(getconf CLK_TCK)
DIR=$(mktemp -d -t rampart-audit.XXXXXX)
trap 'bench_cleanup; rm -rf "$DIR"' EXIT
UP_PORT=18481; OFF=18490; ON=18491

"$BIN" audit keygen --out "$DIR/audit-key" >/dev/null
for mode in off on; do
  port=$OFF; audit=""
  if [ "$mode" = on ]; then port=$ON; audit="audit: { path: $DIR/audit.jsonl, signing_key: { file: $DIR/audit-key } }"; fi
  cat > "$DIR/$mode.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$port" }]
$audit
ip_lists: { me: { cidrs: [127.0.0.1/32] } }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: open, match: { path_prefix: /open }, upstream: up }
  - { name: guarded, match: { path_prefix: /guarded }, upstream: up, ip_rules: { allow: [me] } }
  - { name: watched, match: { path_prefix: /watched }, upstream: up, ip_rules: { deny: [me], mode: shadow } }
YAML
done
write_upstream_conf "$DIR" "$UP_PORT"
ulimit -n 65536 2>/dev/null || true
taskset -c 0 nginx -c "$DIR/upstream.conf" -p "$DIR" & pids+=($!)
declare -A GW
for mode in off on; do
  RAMPART_LOG=error taskset -c 1 "$BIN" run --config "$DIR/$mode.yaml" 2>"$DIR/$mode.err" & pids+=($!)
  GW[$mode]=$!
done
wait_ports $UP_PORT $OFF $ON
for mode in off on; do
  port=$OFF; [ "$mode" = on ] && port=$ON
  for r in open guarded watched; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/$r")" = 200 ] || { echo "$mode/$r: not 200"; cat "$DIR/$mode.err"; exit 1; }
  done
done

: > "$DIR/raw.txt"
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for route in open guarded watched; do
      for mode in off on; do
        port=$OFF; [ "$mode" = on ] && port=$ON
        t0=$(cpu_ticks "${GW[$mode]}")
        reqs=$(wrk_requests 0 "$conns" "$DURATION" "http://127.0.0.1:$port/$route")
        t1=$(cpu_ticks "${GW[$mode]}")
        echo "$conns $round $route $mode $reqs $(( t1 - t0 ))" | tee -a "$DIR/raw.txt" >&2
      done
    done
  done
done
echo "trail: $(wc -l < "$DIR/audit.jsonl") entries; $(grep -c '"kind":"security"' "$DIR/audit.jsonl") security, $(grep -c '"kind":"security_suppressed"' "$DIR/audit.jsonl") security_suppressed"
"$BIN" audit verify "$DIR/audit.jsonl" || true
python3 - "$DIR/raw.txt" "$TICK" "$DURATION" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, dur = int(sys.argv[2]), int(sys.argv[3])
print("| conns | route | audit off req/s | audit on req/s | on/off | off req/CPU-s | on req/CPU-s | on/off |")
print("|---|---|---|---|---|---|---|---|")
for conns in dict.fromkeys(r[0] for r in rows):
    for route in ("open", "guarded", "watched"):
        v = {}
        for mode in ("off", "on"):
            rs = [r for r in rows if r[0] == conns and r[2] == route and r[3] == mode]
            reqs = sum(int(r[4]) for r in rs)
            cpu = sum(int(r[5]) for r in rs) / tick
            v[mode] = (reqs / (dur * len(rs)), reqs / cpu)
        print(f"| {conns} | {route} | {v['off'][0]:,.0f} | {v['on'][0]:,.0f} | {v['on'][0] / v['off'][0]:.3f}x "
              f"| {v['off'][1]:,.0f} | {v['on'][1]:,.0f} | {v['on'][1] / v['off'][1]:.3f}x |")
PY

[ "${CALLGRIND:-1}" = 1 ] || exit 0
bench_need valgrind:valgrind
CG=18494
for mode in off on; do
  port=$OFF; [ "$mode" = on ] && port=$ON
  sed -e "s/127.0.0.1:$port/127.0.0.1:$CG/" -e "s|$DIR/audit.jsonl|$DIR/cg-audit.jsonl|" "$DIR/$mode.yaml" > "$DIR/cg-$mode.yaml"
done
echo
echo "| route | audit off instructions/request | audit on instructions/request | on/off | off allocations/request | on allocations/request |"
echo "|---|---|---|---|---|---|"
for route in open guarded watched; do
  declare -A IR AL
  for mode in off on; do
    read -r ir al < <(cg_run "$BIN" "$DIR/cg-$mode.yaml" "$CG" "$DIR/cg.$mode.$route" "${REQUESTS:-20000}" 16 "$route")
    IR[$mode]=$ir; AL[$mode]=$al
  done
  python3 - "$route" "${REQUESTS:-20000}" "${IR[off]}" "${IR[on]}" "${AL[off]}" "${AL[on]}" <<'PY'
import sys
route, n, i0, i1, a0, a1 = sys.argv[1], *map(int, sys.argv[2:])
print(f"| {route} | {i0 / n:,.0f} | {i1 / n:,.0f} | {i1 / i0:.3f}x | {a0 / n:.1f} | {a1 / n:.1f} |")
PY
done
