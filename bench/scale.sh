#!/usr/bin/env bash
# Rampart with many routes: load time, resident memory per route, and per-request cost
# against a 10-route config, for one or two builds in the same run.
#
#   bash bench/scale.sh BIN [BIN2]      # ROUTES=10000 ROUNDS=3 DURATION=4
#
# Each config has ROUTES path-prefix routes (`/r0/` ... ) to one nginx upstream, one
# worker pinned to core 0; wrk (core 1) asks for the last route, so the router walks
# the largest table. Memory is VmRSS after the first answer; "per route" is the
# difference to the 10-route config divided by the extra routes. Load is the time from
# exec to the first answer.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk curl:curl python3:python3
ROUTES=${ROUTES:-10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
DIR=$(mktemp -d -t rampart-scale.XXXXXX)
trap 'bench_cleanup; rm -rf "$DIR"' EXIT
UP_PORT=18382; PORT=18396

routes() {
  python3 - "$1" "$PORT" "$UP_PORT" <<'PY'
import sys
n, port, up = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"version: 1\nworkers: 1\naccess_log: {{ enabled: false }}")
print(f'listeners: [{{ name: http, bind: "127.0.0.1:{port}" }}]')
print("limits: { max_connections_per_ip: 100000, max_connections: 100000 }")
print(f'upstreams:\n  up: {{ targets: [{{ url: "http://127.0.0.1:{up}" }}] }}\nroutes:')
for i in range(n):
    print(f"  - {{ name: r{i}, match: {{ path_prefix: /r{i}/ }}, upstream: up }}")
PY
}
routes 10 > "$DIR/small.yaml"
routes "$ROUTES" > "$DIR/large.yaml"
write_upstream_conf "$DIR" "$UP_PORT"
taskset -c 1 nginx -c "$DIR/upstream.conf" -p "$DIR" & pids+=($!)
wait_ports $UP_PORT

# start BIN CONFIG: starts a gateway, waits for its first answer; sets GW, LOAD_MS, RSS_KB.
start() {
  local t0 t1
  t0=$(date +%s%N)
  RAMPART_LOG=error taskset -c 0 "$1" run --config "$2" & GW=$!
  until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do sleep 0.01; done
  t1=$(date +%s%N)
  LOAD_MS=$(( (t1 - t0) / 1000000 ))
  RSS_KB=$(awk '/VmRSS/{print $2}' "/proc/$GW/status")
}
stop() { kill "$GW"; wait "$GW" 2>/dev/null || true; }

echo "| build | routes | load (ms) | RSS (KB) | req/s, last route (median of $ROUNDS) |"
echo "|---|---|---|---|---|"
for bin in "$@"; do
  declare -A rss=() rate=()
  for cfg in small large; do
    start "$bin" "$DIR/$cfg.yaml"
    n=$([ $cfg = small ] && echo 10 || echo "$ROUTES")
    last=$((n - 1))
    wrk_requests 1 64 1 "http://127.0.0.1:$PORT/r$last/x" >/dev/null
    runs=()
    for _ in $(seq 1 "$ROUNDS"); do
      runs+=($(( $(wrk_requests 1 64 "$DURATION" "http://127.0.0.1:$PORT/r$last/x") / DURATION )))
    done
    med=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
    rss[$cfg]=$RSS_KB; rate[$cfg]=$med
    echo "| $(basename "$bin") | $n | $LOAD_MS | $RSS_KB | $med (${runs[*]}) |"
    stop
  done
  per=$(( (rss[large] - rss[small]) * 1024 / (ROUTES - 10) ))
  ratio=$(python3 -c "print(f'{${rate[large]}/${rate[small]}:.3f}')")
  echo "| $(basename "$bin") | per extra route | | $per bytes | ${ratio}x of the 10-route rate |"
done
