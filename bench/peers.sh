#!/usr/bin/env bash
# Rampart side by side with nginx (and HAProxy) through the shared harness
# (../shared/bench/run.sh): one worker each, pinned to the same core, same upstream, same
# run, ratios against nginx.
#
#   bash bench/peers.sh plain         # logs off for all: nginx haproxy rampart
#   bash bench/peers.sh logs          # access logs on for nginx and Rampart, plus the
#                                     # full chain (API key + role + local limit + log)
#   bash bench/peers.sh tls           # TLS 1.3 keep-alive
#   bash bench/peers.sh conns         # 1,000 keep-alive connections
#   bash bench/peers.sh rate          # fixed 5,000 req/s, latency (needs oha)
#
# RAMPART_BIN (default target/release/rampart) is the build measured; BEFORE_BIN adds a
# second Rampart build as one more target (`rampart-before`), to compare builds in the
# same run. Other knobs (ROUNDS, DURATION, NICE, ...) pass through to the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:?plain | logs | tls | conns | rate}
BIN=$(realpath "${RAMPART_BIN:-target/release/rampart}")
BEFORE=${BEFORE_BIN:+$(realpath "$BEFORE_BIN")}
HARNESS=../shared/bench/run.sh
export NICE=${NICE:--10} ROUNDS=${ROUNDS:-3}
DIR=$(mktemp -d -t rampart-peers.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" \
  -out "$DIR/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
openssl rand -hex 32 > "$DIR/pepper.txt"

# config PORT TLS_PORT LOG [route extras]: one worker, a plain and a TLS listener, the
# harness's upstream; LOG is true or false.
config() {
  local port=$1 tls=$2 log=$3
  cat <<YAML
version: 1
workers: 1
access_log: { enabled: $log, output: $DIR/access-$port.log }
listeners:
  - { name: http, bind: "127.0.0.1:$port" }
  - { name: https, bind: "127.0.0.1:$tls", tls: { certificates: [{ cert_file: cert.pem, key_file: key.pem }] } }
limits: { max_connections_per_ip: 100000, max_connections: 100000 }
identity: { api_keys: { pepper: { file: pepper.txt } } }
consumers:
  - { id: bench, roles: [reader], api_keys: [KEY] }
upstreams:
  up: { targets: [{ url: "http://127.0.0.1:18080" }] }
routes:
YAML
  shift 3
  echo "  - { name: all, match: { path_prefix: / }, upstream: up $* }"
}

CHAIN=', authenticate: [api_key], authorize: { roles_any: [reader] }, rate_limit: { by: ip, headers: false, limits: [{ rate: 100000000/s, burst: 100000000 }] }'
config 19000 19443 false | sed "s/KEY/{ id: x, hash: \"hmac-sha256:$(printf '0%.0s' $(seq 1 64))\" }/" > "$DIR/keygen.yaml"
KEYGEN=$("$BIN" keys new --consumer bench --config "$DIR/keygen.yaml" 2>/dev/null)
API_KEY=$(sed -n 's/^key: //p' <<<"$KEYGEN")
KEY_ENTRY=$(sed -n 's/^config: - //p' <<<"$KEYGEN")
mk() { config "$@" | sed "s|KEY|$KEY_ENTRY|" > "$DIR/r-$1.yaml"; "$BIN" validate --config "$DIR/r-$1.yaml" >/dev/null; }

targets=() starts=()
add() { # add NAME BIN PORT TLS_PORT LOG [extras]
  local name=$1 bin=$2 port=$3; shift 2
  mk "$@"
  starts+=(--start "$name=$bin run --config $DIR/r-$port.yaml")
  case $WHAT in tls) targets+=("$name=127.0.0.1:$2") ;; *) targets+=("$name=127.0.0.1:$port") ;; esac
}

case $WHAT in
  plain|tls|conns|rate)
    add rampart "$BIN" 19000 19443 false
    [ -n "$BEFORE" ] && add rampart-before "$BEFORE" 19100 19543 false
    peers=(nginx haproxy)
    [ "$WHAT" = conns ] && peers=(nginx)
    MODE=$([ "$WHAT" = plain ] && echo http || echo "$WHAT")
    ;;
  logs)
    add rampart-log "$BIN" 19000 19443 true
    add rampart-chain "$BIN" 19010 19453 true "$CHAIN"
    [ -n "$BEFORE" ] && add before-log "$BEFORE" 19100 19543 true
    [ -n "$BEFORE" ] && add before-chain "$BEFORE" 19110 19553 true "$CHAIN"
    peers=(nginx)
    export NGINX_ACCESS_LOG=1 WRK_HEADER="X-API-Key: $API_KEY"
    MODE=http
    ;;
  *) echo "unknown: $WHAT" >&2; exit 2 ;;
esac
cd "$DIR"
MODE=$MODE LABEL=${LABEL:-rampart-$WHAT} bash "$OLDPWD/$HARNESS" "${starts[@]}" "${peers[@]}" "${targets[@]}"
