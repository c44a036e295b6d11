#!/usr/bin/env bash
# The cost of response masking: Rampart against itself, same run, same upstream.
#
#   bash bench/mask.sh        # ROUNDS=3 DURATION=10 CONNS=50 by default
#
# An nginx upstream serves JSON lists of customer records (about 1 KB, 10 KB and 100 KB,
# each record with a name, an e-mail, a phone number, a card and an address) to two
# routes: `plain` passes them through, `fields` masks by path only (card numbers to their
# last four, SSNs redacted), `masked` masks as the issue's example does (by path, and
# by detector: card numbers to their last four, e-mails hashed with the keyed HMAC,
# phone numbers redacted). One Rampart (1 worker, pinned to core 1); load and upstream on core 0.
# Reported: requests/s and requests per proxy CPU-second per size and route, and the
# ratio masked / plain, with the rounds interleaved so drift affects every case alike.
# With INSTRUCTIONS=1, then instructions per request of each case under callgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-mask
mkdir -p "$OUT/files"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk python3:python3
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=${RAMPART_BIN:-target/release/rampart}
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18381; RMP=18390

python3 - "$OUT/files" <<'PY'
import json, sys
def record(i):
    return {"id": f"cus_{i:06}", "name": "Zoë Müller", "email": f"zoe.{i}@example.com",
            "phone": "+33 1 42 68 53 00", "ssn": "078-05-1120",
            "card": {"number": "4111 1111 1111 1111", "brand": "visa", "expires": "12/29"},
            "address": {"line1": "12 Rue de la Paix", "city": "Paris", "postcode": "75002", "country": "FR"},
            "note": "Prefers e-mail contact; call before delivery.", "balance": 1520.75 + i, "active": True}
for name, n in (("1k", 3), ("10k", 27), ("100k", 270)):
    doc = json.dumps({"data": [record(i) for i in range(n)], "page": 1, "total": n}, ensure_ascii=False)
    open(f"{sys.argv[1]}/{name}.json", "w").write(doc)
    print(f"{name}: {len(doc.encode())} bytes", file=sys.stderr)
PY

cat > "$OUT/upstream.conf" <<NGX
worker_processes 1; daemon off; pid $ABS_OUT/upstream.pid; error_log stderr error;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; types { application/json json; }
  server { listen 127.0.0.1:$UP_PORT backlog=4096; etag off;
    location / { root $ABS_OUT/files; } } }
NGX

cat > "$OUT/rampart.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: plain, match: { path_prefix: /plain }, upstream: up, rewrite: { strip_prefix: /plain } }
  - name: fields
    match: { path_prefix: /fields }
    upstream: up
    rewrite: { strip_prefix: /fields }
    mask:
      fields: [{ path: "\$..card.number", action: last4 }, { path: "\$..ssn", action: redact }]
  - name: masked
    match: { path_prefix: /masked }
    upstream: up
    rewrite: { strip_prefix: /masked }
    mask:
      fields: [{ path: "\$..card.number", action: last4 }, { path: "\$..ssn", action: redact }]
      detect: [{ kind: card, action: last4 }, { kind: email, action: hash }, { kind: phone, action: redact }]
      hash_key: { env: BENCH_MASK_KEY }
YAML

ulimit -n 65536 2>/dev/null || true
export BENCH_MASK_KEY=bench-mask-key-0123456789
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/rampart.yaml" 2>"$OUT/rampart.err" & pids+=($!)
RMP_PID=$!
wait_ports $UP_PORT $RMP
# Masking is really applied: no card number, e-mail or SSN comes back whole.
for size in 1k 10k 100k; do
  plain=$(curl -s "http://127.0.0.1:$RMP/plain/$size.json")
  masked=$(curl -s "http://127.0.0.1:$RMP/masked/$size.json")
  grep -q '4111 1111 1111 1111' <<<"$plain" || { echo "plain $size: no card"; exit 1; }
  if grep -qE '4111 1111 1111 1111|@example.com|078-05-1120' <<<"$masked"; then echo "masked $size: not masked"; exit 1; fi
  python3 -c 'import json,sys; json.loads(sys.argv[1])' "$masked" || { echo "masked $size: not JSON"; exit 1; }
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for size in 1k 10k 100k; do
    for route in plain fields masked; do
      t0=$(cpu_ticks "$RMP_PID")
      reqs=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/$route/$size.json")
      t1=$(cpu_ticks "$RMP_PID")
      echo "$round $size $route $reqs $(( t1 - t0 ))" | tee -a "$OUT/raw.txt"
    done
  done
done
python3 - "$OUT/raw.txt" "$TICK" "$DURATION" "$ROUNDS" <<'PY' | tee "$OUT/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tick, secs, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("| response | route | requests/s | req per proxy CPU-s | ratio to plain (throughput) | ratio to plain (per CPU-s) |")
print("|---|---|---|---|---|---|")
for size in ("1k", "10k", "100k"):
    eff = {}
    for route in ("plain", "fields", "masked"):
        rs = [r for r in rows if r[1] == size and r[2] == route]
        reqs = sum(int(r[3]) for r in rs)
        cpu = sum(int(r[4]) for r in rs) / tick
        eff[route] = (reqs / (secs * rounds), reqs / cpu)
    p = eff["plain"]
    print(f"| {size.upper()}B JSON | plain | {p[0]:,.0f} | {p[1]:,.0f} | | |")
    for route in ("fields", "masked"):
        m = eff[route]
        print(f"| {size.upper()}B JSON | {route} | {m[0]:,.0f} | {m[1]:,.0f} | {m[0] / p[0]:.2f}x | {m[1] / p[1]:.2f}x |")
PY

# INSTRUCTIONS=1: user-space instructions per request of each case under callgrind (the
# gateway alone, restarted per case, counters zeroed after a warm-up, 5 s at 4 connections).
if [ -n "${INSTRUCTIONS:-}" ]; then
  bench_need valgrind:valgrind
  kill "$RMP_PID" 2>/dev/null || true; wait "$RMP_PID" 2>/dev/null || true
  printf '\n| response, route | requests | instructions per request |\n|---|---|---|\n' | tee -a "$OUT/results.md"
  for size in 1k 10k 100k; do
    for route in plain fields masked; do
      read -r n per < <(callgrind_requests "$OUT/rampart.yaml" "http://127.0.0.1:$RMP/$route/$size.json")
      echo "| ${size} $route | $n | $per |" | tee -a "$OUT/results.md"
    done
  done
fi
