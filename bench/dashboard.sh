#!/usr/bin/env bash
# The cost of the dashboard: an open dashboard with live updates against none. Two
# Rampart processes from one build, measured alternately in one run:
#
#   off   - admin API with a token, `admin.ui.enabled: false` (no dashboard, no ring);
#   on    - the dashboard on, with a signed-in viewer holding both live streams open
#           (the overview's one-second frames and the live decisions) for the whole run.
#
#   bash bench/dashboard.sh [BIN]     # ROUNDS=3 DURATION=10 CONNS="64 1000"
#
# Routes on each: `open` (answered 200: the ring is not written) and `walled` (every
# request refused 403 by an IP rule: each one is written to the live decisions ring,
# the dashboard's worst case). Each gateway runs 1 worker on core 1; wrk, nginx and the
# viewer's streams share core 0. Reported: requests per second and per proxy CPU-second,
# and on/off. Then the same under callgrind (CALLGRIND=0 skips it): user-space
# instructions and allocations per request of every gateway thread (the admin thread
# with its sampler and streams included), REQUESTS=20000 over 16 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk curl:curl python3:python3 openssl:openssl
BIN=${1:-target/release/rampart}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64 1000}
TICK=$(getconf CLK_TCK)
DIR=$(mktemp -d -t rampart-dashboard.XXXXXX)
trap 'bench_cleanup; rm -rf "$DIR"' EXIT
UP_PORT=18681
declare -A PORT=([off]=18690 [on]=18691) ADMIN=([off]=18695 [on]=18696)
MODES="off on"
TOKEN=$(openssl rand -hex 32)
printf '%s' "$TOKEN" > "$DIR/admin-token"
echo "127.0.0.1" > "$DIR/blocked.txt"

config() { # MODE PORT ADMIN_PORT
  local ui=false
  [ "$1" = on ] && ui=true
  cat <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$2" }]
admin: { bind: "127.0.0.1:$3", token: { file: admin-token }, ui: { enabled: $ui } }
ip_lists: { blocked: { files: [blocked.txt] } }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: open, match: { path_prefix: /open }, upstream: up }
  - { name: walled, match: { path_prefix: /walled }, upstream: up, ip_rules: { deny: [blocked] } }
YAML
}
for mode in $MODES; do config "$mode" "${PORT[$mode]}" "${ADMIN[$mode]}" > "$DIR/$mode.yaml"; done

# viewer ADMIN_PORT: signs in and holds the overview and live decisions streams open
# (on core 0) until the script ends.
viewer() {
  local jar="$DIR/jar.$1"
  curl -s -c "$jar" -o /dev/null --data-urlencode "token=$TOKEN" "http://127.0.0.1:$1/ui/login"
  taskset -c 0 curl -s -N -b "$jar" "http://127.0.0.1:$1/ui/live/overview" > "$DIR/overview.$1" & pids+=($!)
  taskset -c 0 curl -s -N -b "$jar" "http://127.0.0.1:$1/ui/live/decisions" > "$DIR/decisions.$1" & pids+=($!)
}

# load_any PORT CONNS N ROUTE: N requests over CONNS keep-alive connections, any status.
load_any() {
  local port=$1 conns=$2 n=$3 route=$4 per jobs=()
  per=$(( n / conns ))
  for _ in $(seq 1 "$conns"); do
    (urls=(); for _ in $(seq 1 "$per"); do urls+=("http://127.0.0.1:$port/$route"); done
     curl -s "${urls[@]}" > /dev/null) &
    jobs+=($!)
  done
  wait "${jobs[@]}"
}

# admin_ticks PID: CPU of the process's admin thread (its sampler and live streams).
admin_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm")" = rampart-admin ]; then awk '{print $14 + $15}' "$t/stat"; return; fi
  done
  echo 0
}

# wrk_any CORE CONNS SECONDS URL: the request count, whatever the status.
wrk_any() {
  taskset -c "$1" wrk -t1 -c"$2" -d"${3}s" "$4" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p'
}

write_upstream_conf "$DIR" "$UP_PORT"
ulimit -n 65536 2>/dev/null || true
taskset -c 0 nginx -c "$DIR/upstream.conf" -p "$DIR" & pids+=($!)
declare -A GW
for mode in $MODES; do
  RAMPART_LOG=error taskset -c 1 "$BIN" run --config "$DIR/$mode.yaml" 2>"$DIR/$mode.err" & pids+=($!)
  GW[$mode]=$!
done
wait_ports $UP_PORT ${PORT[off]} ${PORT[on]} ${ADMIN[on]}
for mode in $MODES; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$mode]}/open")" = 200 ] || { echo "$mode/open: not 200"; cat "$DIR/$mode.err"; exit 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$mode]}/walled")" = 403 ] || { echo "$mode/walled: not 403"; exit 1; }
done
viewer "${ADMIN[on]}"
sleep 2
grep -q '^event: overview' "$DIR/overview.${ADMIN[on]}" || { echo "the viewer's overview stream is not flowing"; exit 1; }

: > "$DIR/raw.txt"
for conns in $CONNS; do
  for round in $(seq 1 "$ROUNDS"); do
    for route in open walled; do
      for mode in $MODES; do
        t0=$(cpu_ticks "${GW[$mode]}"); a0=$(admin_ticks "${GW[$mode]}")
        reqs=$(wrk_any 0 "$conns" "$DURATION" "http://127.0.0.1:${PORT[$mode]}/$route")
        t1=$(cpu_ticks "${GW[$mode]}"); a1=$(admin_ticks "${GW[$mode]}")
        echo "$conns $round $route $mode $reqs $(( t1 - t0 )) $(( a1 - a0 ))" | tee -a "$DIR/raw.txt" >&2
      done
    done
  done
done
echo "viewer received: $(grep -c '^event: overview' "$DIR/overview.${ADMIN[on]}") overview frames, $(grep -o '"seq"' "$DIR/decisions.${ADMIN[on]}" | wc -l) live decisions"
python3 - "$DIR/raw.txt" "$TICK" "$DURATION" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, dur = int(sys.argv[2]), int(sys.argv[3])
print("| conns | route | off req/s | on req/s | on/off | off req/CPU-s | on req/CPU-s | on/off | on: admin thread's share of the process CPU |")
print("|---|---|---|---|---|---|---|---|---|")
for conns in dict.fromkeys(r[0] for r in rows):
    for route in ("open", "walled"):
        v = {}
        for mode in ("off", "on"):
            rs = [r for r in rows if r[0] == conns and r[2] == route and r[3] == mode]
            reqs = sum(int(r[4]) for r in rs)
            cpu = sum(int(r[5]) for r in rs) / tick
            admin = sum(int(r[6]) for r in rs) / tick
            v[mode] = (reqs / (dur * len(rs)), reqs / cpu, admin / cpu)
        o, n = v["off"], v["on"]
        print(f"| {conns} | {route} | {o[0]:,.0f} | {n[0]:,.0f} | {n[0] / o[0]:.3f}x | {o[1]:,.0f} | {n[1]:,.0f} | {n[1] / o[1]:.3f}x | {n[2] * 100:.2f}% |")
PY

[ "${CALLGRIND:-1}" = 1 ] || exit 0
bench_need valgrind:valgrind
CG=18694; CGA=18699
for mode in $MODES; do
  config "$mode" "$CG" "$CGA" > "$DIR/cg-$mode.yaml"
done
echo
# `on` is counted twice: without a viewer (the request path's own cost: the ring), and
# with one (everything; under callgrind the proxy runs ~50x slower, so the streams'
# per-second work weighs ~50x more per request than at full speed: see the admin thread's
# share above for that at full speed).
echo "| route | off instructions/request | on, no viewer | on/off | on, viewer | on/off | off allocations/request | on, no viewer | on, viewer |"
echo "|---|---|---|---|---|---|---|---|---|"
N=${REQUESTS:-20000}
for route in open walled; do
  declare -A IR AL
  for mode in off on viewer; do
    cfg=$mode; [ "$mode" = viewer ] && cfg=on
    out="$DIR/cg.$mode.$route"
    RAMPART_LOG=error valgrind --tool=callgrind --callgrind-out-file="$out" \
      --dump-instr=no --collect-atstart=yes "$BIN" run --config "$DIR/cg-$cfg.yaml" 2>"$out-err" &
    vg=$!
    wait_ports $CG $CGA
    streams=()
    if [ "$mode" = viewer ]; then
      jar="$DIR/cg-jar"
      curl -s -c "$jar" -o /dev/null --data-urlencode "token=$TOKEN" "http://127.0.0.1:$CGA/ui/login"
      curl -s -N -b "$jar" "http://127.0.0.1:$CGA/ui/live/overview" > /dev/null & streams+=($!)
      curl -s -N -b "$jar" "http://127.0.0.1:$CGA/ui/live/decisions" > /dev/null & streams+=($!)
    fi
    load_any "$CG" 16 400 "$route"
    callgrind_control --zero "$vg" >/dev/null
    load_any "$CG" 16 "$N" "$route"
    callgrind_control --dump "$vg" >/dev/null
    for s in "${streams[@]}"; do kill "$s" 2>/dev/null || true; done
    kill -INT "$vg"; wait "$vg" 2>/dev/null || true
    read -r ir al < <(cg_sum "$out".*)
    rm -f "$out" "$out".* "$out-err"
    IR[$mode]=$ir; AL[$mode]=$al
  done
  python3 - "$route" "$N" "${IR[off]}" "${IR[on]}" "${IR[viewer]}" "${AL[off]}" "${AL[on]}" "${AL[viewer]}" <<'PY'
import sys
route, n, i0, i1, i2, a0, a1, a2 = sys.argv[1], *map(int, sys.argv[2:])
print(f"| {route} | {i0 / n:,.0f} | {i1 / n:,.0f} | {i1 / i0:.3f}x | {i2 / n:,.0f} | {i2 / i0:.3f}x | {a0 / n:.1f} | {a1 / n:.1f} | {a2 / n:.1f} |")
PY
done
