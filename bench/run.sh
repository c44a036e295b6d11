#!/usr/bin/env bash
# Rampart vs nginx, same machine, same upstream, same run.
#
#   bash bench/run.sh            # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# Layout on 2 cores: the proxy under test (nginx with 1 worker, or Rampart with 1 worker)
# is pinned to core 1; the load generator and the upstream (a separate nginx returning a
# 100-byte body) share core 0. Targets are interleaved round by round so drift affects
# both alike. Access logs are off for both proxies (like with like).
#
# Reported per proxy and protocol (HTTP/1.1 keep-alive, TLS 1.3 keep-alive): requests/s,
# p50/p99 latency (wrk), proxy CPU (utime+stime from /proc), requests per proxy
# CPU-second, and the ratio to nginx. Memory: idle RSS, peak RSS under load (before the
# connection test), and RSS per idle keep-alive connection at 1,000 connections. With `oha` installed: p99 at a fixed
# 5,000 req/s, minus the p99 of the upstream hit directly (added latency).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.pid

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=target/release/rampart
TICK=$(getconf CLK_TCK)

UP_PORT=18081; NGX_HTTP=18080; NGX_TLS=18443; RMP_HTTP=18090; RMP_TLS=18453
ABS_OUT=$(cd "$OUT" && pwd)

# Certificates for both proxies (the same key and certificate).
if [ ! -f "$OUT/cert.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
fi
BODY=$(printf 'x%.0s' $(seq 1 100))

cat > "$OUT/upstream.conf" <<NGX
worker_processes 1; daemon off; pid $ABS_OUT/upstream.pid; error_log stderr error;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$UP_PORT backlog=4096; location / { return 200 "$BODY"; } } }
NGX
cat > "$OUT/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $ABS_OUT/nginx.pid; error_log stderr error;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; keepalive_timeout 60s;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$NGX_HTTP backlog=4096;
           listen 127.0.0.1:$NGX_TLS ssl backlog=4096;
           ssl_certificate $ABS_OUT/cert.pem; ssl_certificate_key $ABS_OUT/key.pem;
           ssl_protocols TLSv1.3;
           location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners:
  - { name: http, bind: "127.0.0.1:$RMP_HTTP" }
  - name: tls
    bind: "127.0.0.1:$RMP_TLS"
    tls: { certificates: [{ cert_file: cert.pem, key_file: key.pem }], min_version: "1.3" }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: all, match: { path_prefix: / }, upstream: up }
YAML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
taskset -c "$PROXY_CORE" nginx -c "$ABS_OUT/nginx.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
for port in $UP_PORT $NGX_HTTP $NGX_TLS $RMP_HTTP $RMP_TLS; do
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
sleep 0.5
# The nginx master forks its worker: measure the worker (the process doing the work).
NGX_PID=$(pgrep -P "$(cat "$OUT/nginx.pid")" | head -n1)
curl -sf "http://127.0.0.1:$RMP_HTTP/" -o /dev/null || { echo "rampart is not answering"; cat "$OUT/rampart.err"; exit 1; }
curl -sf "http://127.0.0.1:$NGX_HTTP/" -o /dev/null || { echo "nginx is not answering"; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
IDLE_NGX=$(rss_kb "$NGX_PID"); IDLE_RMP=$(rss_kb "$RMP_PID")

# Per idle keep-alive connection: open 1,000, send one request on each, hold them.
conn_kb() {
  local pid=$1 port=$2 before after
  before=$(rss_kb "$pid")
  taskset -c "$LOAD_CORE" python3 - "$port" "$OUT/hold.flag" <<'PY' &
import socket, sys, time, os
port = int(sys.argv[1]); flag = sys.argv[2]
socks = []
# One at a time: each connection makes one request, reads the answer, then stays open
# and idle. (Opening them all at once would also make the proxy open up to 1,000
# upstream connections for the burst, which is not what this figure is about.)
for _ in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    s.recv(4096)
    socks.append(s)
open(flag, "w").close()
time.sleep(5)
PY
  local hp=$!
  for _ in $(seq 1 100); do [ -f "$OUT/hold.flag" ] && break; sleep 0.1; done
  sleep 0.5
  after=$(rss_kb "$pid")
  wait "$hp" 2>/dev/null || true
  rm -f "$OUT/hold.flag"
  echo $(( (after - before) * 1024 / 1000 ))
}

# One wrk run: prints "rps p50_ms p99_ms cpu_s requests".
run_wrk() {
  local pid=$1 url=$2 t0 t1 out
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url")
  t1=$(cpu_ticks "$pid")
  python3 - "$out" "$t0" "$t1" "$TICK" <<'PY'
import re, sys
out, t0, t1, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
reqs = int(re.search(r"(\d+) requests in", out).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"non-2xx responses: {errors.group(1)}\n{out}")
print(rps, p50, p99, (t1 - t0) / tick, reqs)
PY
}

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for proto in http tls; do
    for proxy in nginx rampart; do
      if [ $proxy = nginx ]; then pid=$NGX_PID; port=$([ $proto = http ] && echo $NGX_HTTP || echo $NGX_TLS);
      else pid=$RMP_PID; port=$([ $proto = http ] && echo $RMP_HTTP || echo $RMP_TLS); fi
      scheme=$([ $proto = http ] && echo http || echo https)
      line=$(run_wrk "$pid" "$scheme://127.0.0.1:$port/")
      echo "$round $proto $proxy $line" | tee -a "$OUT/raw.txt"
    done
  done
done
PEAK_NGX=$(hwm_kb "$NGX_PID"); PEAK_RMP=$(hwm_kb "$RMP_PID")
CONN_NGX=$(conn_kb "$NGX_PID" $NGX_HTTP); CONN_RMP=$(conn_kb "$RMP_PID" $RMP_HTTP)

FIXED=""
if command -v oha >/dev/null; then
  fixed_p99() {
    taskset -c "$LOAD_CORE" oha --no-tui --output-format json -z "${DURATION}s" -q 5000 -c 50 --latency-correction "$1" 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["latencyPercentiles"]["p99"]*1000)'
  }
  for round in $(seq 1 "$ROUNDS"); do
    for t in direct:$UP_PORT nginx:$NGX_HTTP rampart:$RMP_HTTP; do
      FIXED+="$round ${t%%:*} $(fixed_p99 "http://127.0.0.1:${t##*:}/")"$'\n'
    done
  done
fi

python3 - "$OUT/raw.txt" "$IDLE_NGX" "$IDLE_RMP" "$PEAK_NGX" "$PEAK_RMP" "$CONN_NGX" "$CONN_RMP" "$FIXED" <<'PY' | tee "$OUT/results.md"
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
idle_n, idle_r, peak_n, peak_r, conn_n, conn_r = map(int, sys.argv[2:8])
fixed = [l.split() for l in sys.argv[8].splitlines() if l.strip()]
def agg(proto, proxy):
    rs = [r for r in rows if r[1] == proto and r[2] == proxy]
    rps = st.median(float(r[3]) for r in rs)
    p50 = st.median(float(r[4]) for r in rs)
    p99 = st.median(float(r[5]) for r in rs)
    cpu = sum(float(r[6]) for r in rs)
    reqs = sum(int(r[7]) for r in rs)
    return rps, p50, p99, cpu, reqs / cpu if cpu else 0.0
print("| protocol | proxy | req/s (median) | p50 ms | p99 ms | proxy CPU s | req per proxy CPU-s | ratio to nginx |")
print("|---|---|---|---|---|---|---|---|")
for proto in ("http", "tls"):
    base = agg(proto, "nginx")[4]
    for proxy in ("nginx", "rampart"):
        rps, p50, p99, cpu, eff = agg(proto, proxy)
        name = "HTTP/1.1 keep-alive" if proto == "http" else "TLS 1.3 keep-alive"
        print(f"| {name} | {proxy} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu:.2f} | {eff:,.0f} | {eff / base:.2f}x |")
print()
print("| memory | nginx (worker) | rampart | ratio |")
print("|---|---|---|---|")
print(f"| idle RSS | {idle_n/1024:.1f} MB | {idle_r/1024:.1f} MB | {idle_r/idle_n:.2f}x |")
print(f"| peak RSS under load | {peak_n/1024:.1f} MB | {peak_r/1024:.1f} MB | {peak_r/peak_n:.2f}x |")
print(f"| per idle keep-alive connection (1,000 open) | {conn_n/1024:.1f} KB | {conn_r/1024:.1f} KB | {(conn_r/conn_n if conn_n else 0):.2f}x |")
if fixed:
    print()
    med = {t: st.median(float(r[2]) for r in fixed if r[1] == t) for t in ("direct", "nginx", "rampart")}
    print("| at a fixed 5,000 req/s (oha, 50 conns) | p99 ms | p99 added over direct, ms |")
    print("|---|---|---|")
    for t in ("direct", "nginx", "rampart"):
        print(f"| {t} | {med[t]:.3f} | {med[t] - med['direct']:.3f} |")
PY
