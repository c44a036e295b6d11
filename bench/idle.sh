#!/usr/bin/env bash
# Memory per idle client connection: nginx and one or two Rampart builds, each holding
# CONNS (default 1,000) client connections that are open and idle, measured as the growth
# of the proxy's PSS (all its processes).
#
#   bash bench/idle.sh BIN [BIN2]
#
# Two figures per proxy: connections that never sent a byte (accepted, waiting for a
# first head), and keep-alive connections idle after one answered request each (their
# upstream connections back in the pool).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_need nginx:nginx-light curl:curl python3:python3
CONNS=${CONNS:-1000}
DIR=$(mktemp -d -t rampart-idle.XXXXXX)
trap 'bench_cleanup; rm -rf "$DIR"' EXIT
UP_PORT=18383; PORT=18397
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

write_upstream_conf "$DIR" "$UP_PORT"
taskset -c 1 nginx -c "$DIR/upstream.conf" -p "$DIR" & pids+=($!)
cat > "$DIR/proxy.conf" <<NGX
worker_processes 1; daemon off; pid $DIR/proxy.pid; error_log stderr error;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 1024; }
  server { listen 127.0.0.1:$PORT backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
cat > "$DIR/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
listeners: [{ name: http, bind: "127.0.0.1:$PORT" }]
limits: { max_connections_per_ip: 100000, max_connections: 100000, idle_timeout: 300s, header_timeout: 300s }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: all, match: { path_prefix: / }, upstream: up }
YAML
wait_ports $UP_PORT

# pss PID: PSS in KB of the process and its children.
pss() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup") ))
  done
  echo "$total"
}

# hold MODE: opens CONNS connections (MODE idle: no bytes; MODE kept: one request each),
# prints "ready", waits for a line on stdin, then closes them.
cat > "$DIR/hold.py" <<'PY'
import socket, sys
mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
if mode == "kept":
    for s in socks:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n")
    for s in socks:
        got = b""
        while b"\r\n\r\n" not in got or not got.endswith(b"x" * 100):
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("closed")
            got += chunk
print("ready", flush=True)
sys.stdin.readline()
PY

measure() { # measure NAME CMD...
  local name=$1 gw base after; shift
  taskset -c 0 "$@" & gw=$!
  wait_ports $PORT
  curl -s -o /dev/null "http://127.0.0.1:$PORT/warm"
  sleep 0.5
  base=$(pss $gw)
  for mode in idle kept; do
    coproc HOLD { python3 "$DIR/hold.py" "$mode" "$PORT" "$CONNS"; }
    read -r _ <&"${HOLD[0]}"
    sleep 0.5
    after=$(pss $gw)
    echo "| $name | $mode | $base | $after | $(( (after - base) * 1024 / CONNS )) |"
    echo >&"${HOLD[1]}"; wait "$HOLD_PID" 2>/dev/null || true
    sleep 0.5
    base=$(pss $gw)
  done
  kill $gw; wait $gw 2>/dev/null || true
}

echo "| proxy | connections ($CONNS) | PSS before (KB) | PSS with them (KB) | bytes per connection |"
echo "|---|---|---|---|---|"
measure nginx nginx -c "$DIR/proxy.conf" -p "$DIR"
for bin in "$@"; do
  measure "$(basename "$bin")" env RAMPART_LOG=error "$bin" run --config "$DIR/rampart.yaml"
done
