# Shared by the bench scripts (sourced, not run).

# bench_need CMD:PACKAGE...: installs the Debian packages of missing commands.
bench_need() {
  local need=() spec
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null || need+=("${spec#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
}

# write_upstream_conf DIR PORT: an nginx upstream answering 200 with a 100-byte body.
write_upstream_conf() {
  local dir=$1 port=$2 body
  body=$(printf 'x%.0s' $(seq 1 100))
  cat > "$dir/upstream.conf" <<NGX
worker_processes 1; daemon off; pid $dir/upstream.pid; error_log stderr error;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$port backlog=4096; location / { return 200 "$body"; } } }
NGX
}

# Background processes started with `pids+=($!)` are stopped on exit.
pids=()
bench_cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap bench_cleanup EXIT

# wait_ports PORT...: until each accepts connections (10 s each at most).
wait_ports() {
  local port
  for port in "$@"; do
    for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  done
  sleep 0.5
}

# cpu_ticks PID: user + system CPU of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wrk_requests CORE CONNS SECONDS URL [wrk args...]: the request count; fails on non-2xx.
wrk_requests() {
  local core=$1 conns=$2 secs=$3 url=$4 out
  shift 4
  out=$(taskset -c "$core" wrk -t1 -c"$conns" -d"${secs}s" "$@" "$url")
  if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; return 1; fi
  sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out"
}

# write_orders DIR: the JSON bodies the inspection benches POST: an order as a typical API
# receives it (small.json, about 1 KB) and 64 of them in an array (big.json), with a wrk
# script for each (small.lua, big.lua; DIR must be absolute).
write_orders() {
  local dir=$1 b
  python3 - "$dir" <<'PY'
import json, sys
order = {
    "id": "ord_8f14e45fceea167a5a36dedd4bea2543", "customer": {"id": "cus_42", "name": "Zoë Müller",
    "email": "zoe@example.com", "address": {"line1": "12 Rue de la Paix", "city": "Paris", "postcode": "75002", "country": "FR"}},
    "items": [{"sku": f"SKU-{i:04}", "title": "Stainless steel water bottle, 750 ml", "qty": i % 3 + 1,
               "unit_price": 19.99 + i, "tags": ["outdoor", "kitchen"]} for i in range(5)],
    "currency": "EUR", "total": 154.85, "paid": True, "coupon": None,
    "note": "Leave at the door \u2013 ring twice, please. \"Fragile\" items inside.",
}
small = json.dumps(order, ensure_ascii=False)
big = json.dumps([order] * 64, ensure_ascii=False)
open(f"{sys.argv[1]}/small.json", "w").write(small)
open(f"{sys.argv[1]}/big.json", "w").write(big)
print(f"bodies: {len(small.encode())} and {len(big.encode())} bytes", file=sys.stderr)
PY
  for b in small big; do
    cat > "$dir/$b.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$dir/$b.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
  done
}

# callgrind_requests CONFIG URL [wrk args...]: user-space instructions per request of
# Rampart on CONFIG under callgrind (repeatable where throughput drifts between runs):
# the gateway alone, its listener on $RMP, a 2 s warm-up, counters zeroed, then 5 s of
# wrk at 4 connections. Prints "REQUESTS INSTRUCTIONS_PER_REQUEST". Needs $BIN,
# $ABS_OUT and $LOAD_CORE.
callgrind_requests() {
  local config=$1 url=$2 vg n ir out="$ABS_OUT/cg.$$"
  shift 2
  RAMPART_LOG=error valgrind --tool=callgrind --callgrind-out-file="$out" \
    --dump-instr=no "$BIN" run --config "$config" 2>"$ABS_OUT/valgrind.err" &
  vg=$!
  for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$RMP) 2>/dev/null && break; sleep 0.2; done
  wrk_requests "$LOAD_CORE" 4 2 "$url" "$@" >/dev/null
  callgrind_control --zero "$vg" >/dev/null 2>&1
  n=$(wrk_requests "$LOAD_CORE" 4 5 "$url" "$@")
  callgrind_control --dump "$vg" >/dev/null 2>&1
  kill -INT "$vg"; wait "$vg" 2>/dev/null || true
  ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out".* | sort -n | tail -1)
  rm -f "$out"*
  echo "$n $(( ir / n ))"
}

# ratio_table RAW TICK SECONDS ROUNDS ROUTE...: from RAW's lines "round route requests
# cpu-ticks", each route's requests/s and requests per proxy CPU-second, and its ratio to
# the first route, as a Markdown table.
ratio_table() {
  python3 - "$@" <<'PY'
import sys
raw, tick, secs, rounds, routes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
rows = [l.split() for l in open(raw) if l.strip()]
eff = {}
for route in routes:
    rs = [r for r in rows if r[1] == route]
    reqs = sum(int(r[2]) for r in rs)
    cpu = sum(int(r[3]) for r in rs) / tick
    eff[route] = (reqs / (secs * rounds), reqs / cpu)
base = routes[0]
print(f"| route | requests/s | req per proxy CPU-s | ratio to {base} (throughput) | ratio to {base} (per CPU-s) |")
print("|---|---|---|---|---|")
for route, (rps, e) in eff.items():
    print(f"| {route} | {rps:,.0f} | {e:,.0f} | {rps / eff[base][0]:.2f}x | {e / eff[base][1]:.2f}x |")
PY
}

# curl_load PORT CONNS N ROUTE [curl args]: N requests over CONNS keep-alive connections
# (curl in parallel, each reusing one connection for its share).
curl_load() {
  local port=$1 conns=$2 n=$3 route=$4 per jobs=(); shift 4
  per=$(( n / conns ))
  for _ in $(seq 1 "$conns"); do
    (urls=(); for _ in $(seq 1 "$per"); do urls+=("http://127.0.0.1:$port/$route"); done
     curl -s --fail "$@" "${urls[@]}" >/dev/null) &
    jobs+=($!)
  done
  wait "${jobs[@]}"
}

# cg_sum FILES...: a callgrind run's user-space instructions over every thread's dump,
# and its calls to malloc/calloc/realloc, as "INSTRUCTIONS ALLOCATIONS".
cg_sum() {
  python3 - "$@" <<'PY'
import re, sys
ir = allocs = 0
ALLOC = {"malloc", "calloc", "realloc"}
for path in sys.argv[1:]:
    names, last_ir, callee = {}, 0, None
    for line in open(path, errors="replace"):
        if line.startswith("summary:"):
            last_ir = max(last_ir, int(line.split()[1]))
        elif line.startswith("cfn="):
            m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                callee = names.get(m.group(1))
        elif line.startswith("fn="):
            m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
            if m and m.group(2):
                names[m.group(1)] = m.group(2)
            callee = None
        elif line.startswith("calls=") and callee is not None:
            if callee.split("'")[0] in ALLOC:
                allocs += int(line.split("=")[1].split()[0])
            callee = None
    ir += last_ir
print(ir, allocs)
PY
}

# cg_run BIN CONFIG PORT OUTFILE REQUESTS CONNS ROUTE [curl args]: runs BIN under callgrind,
# warms ROUTE up, counts REQUESTS requests only; prints "INSTRUCTIONS ALLOCATIONS".
cg_run() {
  local bin=$1 cfg=$2 port=$3 out=$4 n=$5 conns=$6 route=$7 vg; shift 7
  RAMPART_LOG=error valgrind --tool=callgrind --callgrind-out-file="$out" \
    --dump-instr=no --collect-atstart=yes "$bin" run --config "$cfg" 2>"$out-err" &
  vg=$!
  for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
  curl_load "$port" "$conns" 400 "$route" "$@"
  callgrind_control --zero "$vg" >/dev/null
  curl_load "$port" "$conns" "$n" "$route" "$@"
  callgrind_control --dump "$vg" >/dev/null
  kill -INT "$vg"; wait "$vg" 2>/dev/null || true
  cg_sum "$out".*
  rm -f "$out" "$out".* "$out-err"
}
