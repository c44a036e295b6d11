#!/usr/bin/env bash
# The consumer store at scale: a million consumers with one key each against ten, in the
# embedded store (and the Redis one for load time and memory).
#
#   bash bench/consumers.sh          # KEYS=1000000 ROUNDS=3 DURATION=10 CONNS=50
#
# For each store: the import time (`rampart consumers import`, hashing every plain key
# with the pepper), the gateway's time from exec to ready (`/readyz` 200: the whole store
# read into the key index), its resident memory then (VmRSS) against a gateway whose
# store is empty, and the throughput of an API-key route whose requests each carry a key
# drawn at random: `small` from the 10-key store, `big10` from 10 keys of the big store
# (the index's size alone), `big` from 1,000 of them (a larger working set as well),
# `file` from the same 1,000 keys written in the config file (no store), rounds
# interleaved. One Rampart worker pinned to core 1; nginx and wrk on core 0.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
OUT=bench/out-consumers
rm -rf "$OUT"; mkdir -p "$OUT"
source bench/lib.sh
bench_need nginx:nginx-light wrk:wrk curl:curl python3:python3 redis-server:redis-server
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p rampart
BIN=$(pwd)/target/release/rampart
TICK=$(getconf CLK_TCK)
ABS_OUT=$(cd "$OUT" && pwd)
UP_PORT=18281; RMP=18290; ADM=18291; REDIS_PORT=18292

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$OUT/pepper.txt"

# NAME COUNT: NAME.jsonl with COUNT consumers and a plain key each, NAME.keys with up to
# 1,000 of those keys (the ones wrk sends).
python3 - "$ABS_OUT" "$KEYS" <<'PY'
import base64, os, sys
out = sys.argv[1]
def write(name, n):
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    with open(f"{out}/{name}.jsonl", "w") as f, open(f"{out}/{name}.keys", "w") as k:
        step = max(1, n // 1000)
        for i in range(n):
            pid = "".join(alphabet[b % 32] for b in os.urandom(8))
            key = "rpk_" + pid + "_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
            f.write('{"consumer":{"id":"c%07d","plan":null,"roles":["reader"]}}\n' % i)
            f.write('{"key":{"id":"%s","consumer":"c%07d","key":"%s"}}\n' % (pid, i, key))
            if i % step == 0:
                k.write(key + "\n")
write("small", 10)
write("big", int(sys.argv[2]))
# The big store, asked with ten of its keys only: the index's size alone, without the
# larger working set a thousand active consumers bring.
with open(f"{out}/big.keys") as k, open(f"{out}/big10.keys", "w") as t:
    t.writelines(k.readlines()[:10])
open(f"{out}/empty.jsonl", "w").close()
PY

# config NAME STORE: a gateway config using consumer store STORE ("embedded" or "redis").
config() {
  local name=$1 kind=$2 store
  if [ "$kind" = embedded ]; then store="consumer_store: { kind: embedded, path: $name.redb }"
  else store="redis: { url: \"redis://127.0.0.1:$REDIS_PORT\", timeout: 2s }
consumer_store: { kind: redis, prefix: $name }"; fi
  cat > "$OUT/$name.yaml" <<YAML
version: 1
workers: 1
access_log: { enabled: false }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
listeners: [{ name: http, bind: "127.0.0.1:$RMP" }]
admin: { bind: "127.0.0.1:$ADM" }
identity: { api_keys: { pepper: { file: pepper.txt } } }
$store
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:$UP_PORT" }] }
routes:
  - { name: key, match: { path_prefix: /key }, upstream: up, authenticate: [api_key], authorize: { roles_any: [reader] } }
YAML
}

write_upstream_conf "$ABS_OUT" "$UP_PORT"
ulimit -n 65536 2>/dev/null || true
taskset -c "$LOAD_CORE" nginx -c "$ABS_OUT/upstream.conf" -p "$ABS_OUT" & pids+=($!)
taskset -c "$LOAD_CORE" redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null & pids+=($!)
wait_ports $UP_PORT $REDIS_PORT

for name in empty small big; do
  for kind in embedded redis; do
    config "$name-$kind" "$kind"
    t0=$(date +%s.%N)
    "$BIN" consumers import --config "$OUT/$name-$kind.yaml" "$OUT/$name.jsonl" 2>>"$OUT/import.err"
    echo "$name $kind import $(awk "BEGIN { print $(date +%s.%N) - $t0 }")" >> "$OUT/load.txt"
  done
done

# start NAME: starts the gateway (GW holds its pid; call it without a subshell); prints
# "seconds-to-ready rss-kB".
start() {
  local t0 t1
  t0=$(date +%s.%N)
  RAMPART_LOG=error taskset -c "$PROXY_CORE" "$BIN" run --config "$OUT/$1.yaml" 2>"$OUT/$1.err" &
  GW=$!
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM/readyz" 2>/dev/null)" = 200 ] && break
    sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "$(awk "BEGIN { print $t1 - $t0 }") $(awk '/VmRSS/{print $2}' "/proc/$GW/status")"
}
stop() { kill -INT "$GW"; wait "$GW" 2>/dev/null || true; }

for name in empty small big; do
  for kind in embedded redis; do
    start "$name-$kind" > "$OUT/ready.tmp"
    read -r secs rss < "$OUT/ready.tmp"
    echo "$name $kind ready $secs $rss" >> "$OUT/load.txt"
    stop
  done
done

# The same 1,000 keys written in a config file instead (no store): what serving a
# thousand distinct consumers costs whatever holds their keys.
python3 - "$ABS_OUT" <<'PY'
import hashlib, hmac, re, sys
out = sys.argv[1]
pepper = open(f"{out}/pepper.txt", "rb").read()
cfg = open(f"{out}/empty-embedded.yaml").read()
cfg = re.sub(r"(?m)^consumer_store:.*\n", "", cfg)
lines = ["consumers:"]
for i, key in enumerate(open(f"{out}/big.keys").read().split()):
    h = hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
    lines.append(f"  - {{ id: f{i:04d}, roles: [reader], api_keys: [{{ id: k{i:04d}, hash: \"hmac-sha256:{h}\" }}] }}")
open(f"{out}/file-embedded.yaml", "w").write(cfg + "\n".join(lines) + "\n")
PY
cp "$OUT/big.keys" "$OUT/file.keys"

# wrk's script: a random key of NAME.keys per request.
for name in small big10 big file; do
  cat > "$OUT/$name.lua" <<LUA
local keys = {}
for line in io.lines("$ABS_OUT/$name.keys") do keys[#keys + 1] = line end
request = function()
  return wrk.format("GET", "/key", { ["X-API-Key"] = keys[math.random(#keys)] })
end
LUA
done

: > "$OUT/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
  for name in small big10 big file; do
    start "${name%10}-embedded" >/dev/null
    c0=$(cpu_ticks "$GW")
    n=$(wrk_requests "$LOAD_CORE" "$CONNS" "$DURATION" "http://127.0.0.1:$RMP/key" -s "$OUT/$name.lua")
    c1=$(cpu_ticks "$GW")
    echo "$round $name $n $((c1 - c0))" >> "$OUT/raw.txt"
    stop
  done
done

python3 - "$OUT/load.txt" "$KEYS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
imp = {(r[0], r[1]): float(r[3]) for r in rows if r[2] == "import"}
ready = {(r[0], r[1]): (float(r[3]), int(r[4])) for r in rows if r[2] == "ready"}
print("| store | keys | import (s) | start to ready (s) | VmRSS (MiB) | over an empty store, per key (bytes) |")
print("|---|---|---|---|---|---|")
for kind in ("embedded", "redis"):
    base = ready[("empty", kind)][1]
    for name, count in (("small", 10), ("big", n)):
        s, rss = ready[(name, kind)]
        per = (rss - base) * 1024 / count
        print(f"| {kind} | {count:,} | {imp[(name, kind)]:.1f} | {s:.2f} | {rss / 1024:.0f} | {per:,.0f} |")
PY
echo
ratio_table "$OUT/raw.txt" "$TICK" "$DURATION" "$ROUNDS" small big10 big file
