#!/usr/bin/env bash
# Signs one request the way Rampart's `signature` authentication checks it, and sends it
# with curl. The canonical string is documented in docs/identity.md.
#
#   KEY_ID=machine-1 SECRET="$(cat machine-1.secret)" \
#     examples/sign-request.sh POST 'http://127.0.0.1:8080/v1/jobs?dry_run=1' '{"n":1}'
#
# Needs bash, openssl and curl. Prints the response body; exits non-zero on HTTP errors.
set -euo pipefail

method=${1:?usage: sign-request.sh METHOD URL [BODY]}
url=${2:?usage: sign-request.sh METHOD URL [BODY]}
body=${3-}
: "${KEY_ID:?set KEY_ID}" "${SECRET:?set SECRET}"

rest=${url#*://}
hostport=${rest%%/*}
if [[ $rest == */* ]]; then pathq=/${rest#*/}; else pathq=/; fi
path=${pathq%%\?*}
query=""
if [[ $pathq == *\?* ]]; then query=${pathq#*\?}; fi

ts=$(date +%s)
nonce=$(openssl rand -hex 16)
body_hash=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
canonical=$(printf 'Rampart-HMAC-SHA256\n%s\n%s\n%s\n%s\n%s\nhost:%s\n%s' \
  "$method" "$path" "$query" "$ts" "$nonce" "$hostport" "$body_hash")
signature=$(printf '%s' "$canonical" | openssl dgst -sha256 -hmac "$SECRET" -binary | openssl base64 -A)

args=(-sS --fail-with-body -X "$method"
  -H "Authorization: Rampart-HMAC-SHA256 keyId=\"$KEY_ID\", timestamp=\"$ts\", nonce=\"$nonce\", headers=\"host\", signature=\"$signature\"")
if [[ -n $body ]]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
curl "${args[@]}" "$url"
