#!/usr/bin/env bash
# IP lists at scale: a deny list of ENTRIES (default 1,000,000) CIDRs against one of 10,
# same build, same run: load time, memory, and the per-request cost of the lookup.
#
#   bash bench/iplists.sh [BIN]       # ENTRIES=1000000 ROUNDS=3 DURATION=5
#
# The large feed is random IPv4 networks (/16 to /32, so few merge) plus 10% IPv6 /48s,
# written as a block-list file with comments. Load: `rampart validate` on each config
# (parse, merge, compile; the same work a start or reload does), best of three; and the
# gateway's peak RSS (VmHWM) after start with each list. Per request: wrk (core 1) on a
# route denying with the list, the gateway (1 worker) on core 0; the client address is
# not on either list, so every request walks the whole binary search.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk curl:curl python3:python3
BIN=${1:-target/release/rampart}
ENTRIES=${ENTRIES:-1000000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
DIR=$(mktemp -d -t rampart-iplists.XXXXXX)
trap 'bench_cleanup; rm -rf "$DIR"' EXIT
UP_PORT=18383; PORT=18397

python3 - "$DIR" "$ENTRIES" <<'PY'
import random, sys
d, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
with open(f"{d}/large.txt", "w") as f:
    f.write("# generated feed\n")
    for i in range(n):
        if i % 10 == 9:
            f.write("2001:db8:%x:%x::/48\n" % (rnd.getrandbits(16), rnd.getrandbits(16)))
            continue
        length = rnd.randint(16, 32)
        ip = rnd.getrandbits(32)
        # Stay clear of loopback, where the load comes from.
        if ip >> 24 == 127:
            ip ^= 1 << 31
        ip &= (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
        f.write("%d.%d.%d.%d/%d ; SBL%d\n" % (ip >> 24, ip >> 16 & 255, ip >> 8 & 255, ip & 255, length, i))
with open(f"{d}/small.txt", "w") as f:
    for i in range(10):
        f.write("203.0.%d.0/24\n" % i)
PY
echo "feed: $(wc -l < "$DIR/large.txt") lines, $(du -h "$DIR/large.txt" | cut -f1)"
for size in small large; do
  cat > "$DIR/$size.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$PORT" }]
ip_lists:
  feed: { files: [$size.txt] }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: none, match: { path_prefix: /none }, upstream: up }
  - { name: listed, match: { path_prefix: /listed }, upstream: up, ip_rules: { deny: [feed] } }
YAML
done
write_upstream_conf "$DIR" "$UP_PORT"
taskset -c 1 nginx -c "$DIR/upstream.conf" -p "$DIR" & pids+=($!)
wait_ports $UP_PORT

echo "| list | validate (ms, best of 3) | peak RSS (KB) | route | req/s (median of $ROUNDS) |"
echo "|---|---|---|---|---|"
for size in small large; do
  best=
  for _ in 1 2 3; do
    t0=$(date +%s%N); "$BIN" validate --config "$DIR/$size.yaml" >/dev/null 2>&1; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 )); [ -z "$best" ] || [ "$ms" -lt "$best" ] && best=$ms
  done
  RAMPART_LOG=error taskset -c 0 "$BIN" run --config "$DIR/$size.yaml" & GW=$!
  until curl -s -o /dev/null "http://127.0.0.1:$PORT/none"; do sleep 0.01; done
  hwm=$(awk '/VmHWM/{print $2}' "/proc/$GW/status")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/listed")" = 200 ] || { echo "listed route refused loopback"; exit 1; }
  for route in none listed; do
    wrk_requests 1 64 1 "http://127.0.0.1:$PORT/$route" >/dev/null
    runs=()
    for _ in $(seq 1 "$ROUNDS"); do
      runs+=($(( $(wrk_requests 1 64 "$DURATION" "http://127.0.0.1:$PORT/$route") / DURATION )))
    done
    med=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
    echo "| $size ($(grep -vc '^#' "$DIR/$size.txt") entries) | $best | $hwm | $route | $med (${runs[*]}) |"
  done
  kill "$GW"; wait "$GW" 2>/dev/null || true
done
