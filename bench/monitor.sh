#!/usr/bin/env bash
# The cost of live monitoring: anomaly detection and tracing together, at their
# defaults. Three Rampart processes from one build, measured alternately in one run:
#
#   off   - neither;
#   on    - `anomaly: {}` (shadow: every exchange counted into its caller's window) and
#           `tracing` at its default sampling (1%) with spans exported over OTLP/HTTP to
#           an nginx that answers 200;
#   all   - the same with every exchange sampled and exported (`sample: 1`): the
#           worst case of tracing.
#
#   bash bench/monitor.sh [BIN]     # ROUNDS=3 DURATION=10 CONNS="64 1000"
#
# Routes on each: `open` (no policy; the caller is the client address) and `orders`
# (`/orders/{id}` behind an API key: the caller is the consumer, the id counted).
# Each gateway runs 1 worker on core 1; wrk and nginx (the upstream and the OTLP
# receiver) share core 0. Reported: requests per second and per proxy CPU-second, and
# each mode's ratio to `off`. Then the same under callgrind (CALLGRIND=0 skips it):
# user-space instructions and allocations per request of every gateway thread (the
# telemetry thread included), REQUESTS=20000 over 16 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk curl:curl python3:python3 openssl:openssl
BIN=${1:-target/release/rampart}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64 1000}
TICK=$(getconf CLK_TCK)
DIR=$(mktemp -d -t rampart-monitor.XXXXXX)
trap 'bench_cleanup; rm -rf "$DIR"' EXIT
UP_PORT=18581; OTLP_PORT=18582
declare -A PORT=([off]=18590 [on]=18591 [all]=18592) ADMIN=([off]=18595 [on]=18596 [all]=18597)
MODES="off on all"

openssl rand -hex 32 > "$DIR/pepper.txt"
cat > "$DIR/keygen.yaml" <<YAML
version: 1
identity: { api_keys: { pepper: { file: pepper.txt } } }
listeners: [{ name: http, bind: "127.0.0.1:1" }]
YAML
KEYGEN=$("$BIN" keys new --consumer bench --config "$DIR/keygen.yaml" 2>/dev/null)
API_KEY=$(sed -n 's/^key: //p' <<<"$KEYGEN")
ENTRY=$(sed -n 's/^config: - //p' <<<"$KEYGEN")

for mode in $MODES; do
  monitor=""
  case $mode in
    on) monitor="anomaly: {}
tracing: { otlp: { endpoint: \"http://127.0.0.1:$OTLP_PORT/v1/traces\" } }" ;;
    all) monitor="anomaly: {}
tracing: { sample: 1, otlp: { endpoint: \"http://127.0.0.1:$OTLP_PORT/v1/traces\" } }" ;;
  esac
  cat > "$DIR/$mode.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:${PORT[$mode]}" }]
admin: { bind: "127.0.0.1:${ADMIN[$mode]}" }
identity: { api_keys: { pepper: { file: pepper.txt } } }
consumers:
  - { id: bench, api_keys: [$ENTRY] }
$monitor
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: open, match: { path_prefix: /open }, upstream: up }
  - { name: orders, match: { path: "/orders/{id}" }, upstream: up, authenticate: [api_key] }
YAML
done
write_upstream_conf "$DIR" "$UP_PORT"
# The OTLP receiver: a second server in the same nginx, answering every export 200.
sed -i "s|^  server {|  server { listen 127.0.0.1:$OTLP_PORT; client_max_body_size 64m; location / { return 200; } }\n  server {|" "$DIR/upstream.conf"
ulimit -n 65536 2>/dev/null || true
taskset -c 0 nginx -c "$DIR/upstream.conf" -p "$DIR" & pids+=($!)
declare -A GW
for mode in $MODES; do
  RAMPART_LOG=error taskset -c 1 "$BIN" run --config "$DIR/$mode.yaml" 2>"$DIR/$mode.err" & pids+=($!)
  GW[$mode]=$!
done
wait_ports $UP_PORT $OTLP_PORT ${PORT[off]} ${PORT[on]} ${PORT[all]}
HDR=(-H "X-API-Key: $API_KEY")
path() { case $1 in open) echo open ;; orders) echo orders/42 ;; esac; }
for mode in $MODES; do
  for r in open orders; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${HDR[@]}" "http://127.0.0.1:${PORT[$mode]}/$(path $r)")" = 200 ] || { echo "$mode/$r: not 200"; cat "$DIR/$mode.err"; exit 1; }
  done
done

: > "$DIR/raw.txt"
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for route in open orders; do
      for mode in $MODES; do
        t0=$(cpu_ticks "${GW[$mode]}")
        reqs=$(wrk_requests 0 "$conns" "$DURATION" "http://127.0.0.1:${PORT[$mode]}/$(path $route)" "${HDR[@]}")
        t1=$(cpu_ticks "${GW[$mode]}")
        echo "$conns $round $route $mode $reqs $(( t1 - t0 ))" | tee -a "$DIR/raw.txt" >&2
      done
    done
  done
done
for mode in on all; do
  echo "$mode: $(curl -s "http://127.0.0.1:${ADMIN[$mode]}/metrics" | grep -E '^rampart_(tracing_spans_total|anomaly_tracked)' | tr '\n' ' ')"
done
python3 - "$DIR/raw.txt" "$TICK" "$DURATION" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, dur = int(sys.argv[2]), int(sys.argv[3])
print("| conns | route | off req/s | on req/s | on/off | all req/s | all/off | off req/CPU-s | on req/CPU-s | on/off | all req/CPU-s | all/off |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for conns in dict.fromkeys(r[0] for r in rows):
    for route in ("open", "orders"):
        v = {}
        for mode in ("off", "on", "all"):
            rs = [r for r in rows if r[0] == conns and r[2] == route and r[3] == mode]
            reqs = sum(int(r[4]) for r in rs)
            cpu = sum(int(r[5]) for r in rs) / tick
            v[mode] = (reqs / (dur * len(rs)), reqs / cpu)
        o = v["off"]
        print(f"| {conns} | {route} | {o[0]:,.0f} | {v['on'][0]:,.0f} | {v['on'][0] / o[0]:.3f}x | {v['all'][0]:,.0f} | {v['all'][0] / o[0]:.3f}x "
              f"| {o[1]:,.0f} | {v['on'][1]:,.0f} | {v['on'][1] / o[1]:.3f}x | {v['all'][1]:,.0f} | {v['all'][1] / o[1]:.3f}x |")
PY

[ "${CALLGRIND:-1}" = 1 ] || exit 0
bench_need valgrind:valgrind
CG=18594
for mode in $MODES; do
  sed -e "s/127.0.0.1:${PORT[$mode]}/127.0.0.1:$CG/" -e "/^admin:/d" "$DIR/$mode.yaml" > "$DIR/cg-$mode.yaml"
done
echo
echo "| route | off instructions/request | on | on/off | all | all/off | off allocations/request | on | all |"
echo "|---|---|---|---|---|---|---|---|---|"
for route in open orders; do
  declare -A IR AL
  for mode in $MODES; do
    read -r ir al < <(cg_run "$BIN" "$DIR/cg-$mode.yaml" "$CG" "$DIR/cg.$mode.$route" "${REQUESTS:-20000}" 16 "$(path $route)" "${HDR[@]}")
    IR[$mode]=$ir; AL[$mode]=$al
  done
  python3 - "$route" "${REQUESTS:-20000}" "${IR[off]}" "${IR[on]}" "${IR[all]}" "${AL[off]}" "${AL[on]}" "${AL[all]}" <<'PY'
import sys
route, n, i0, i1, i2, a0, a1, a2 = sys.argv[1], *map(int, sys.argv[2:])
print(f"| {route} | {i0 / n:,.0f} | {i1 / n:,.0f} | {i1 / i0:.3f}x | {i2 / n:,.0f} | {i2 / i0:.3f}x | {a0 / n:.1f} | {a1 / n:.1f} | {a2 / n:.1f} |")
PY
done
