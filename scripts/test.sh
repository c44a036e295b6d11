#!/usr/bin/env bash
# Runs everything CI checks: formatting, lints, the supply-chain policy and the whole test
# suite. On a fresh Debian machine it first installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
# The dashboard's tests drive a real headless browser.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing system packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "== installing cargo-deny"
  cargo install --locked cargo-deny
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo deny"
# cargo-deny reads the full dependency graph (every platform's crates): fetch them all.
cargo fetch --locked
# cargo-deny wants <db-path>/advisory-db-3157b0e258782691 as a git repository. Where the
# project's shared copy of the RustSec database exists (no network path to it here), use
# it offline; elsewhere fetch it as usual.
shared_db="$(pwd)/../shared/advisory-db"
if [ -d "$shared_db" ]; then
  db_root="$(pwd)/target/advisory-dbs"
  db="$db_root/advisory-db-3157b0e258782691"
  if [ ! -d "$db/.git" ]; then
    rm -rf "$db"
    mkdir -p "$db_root"
    cp -r "$shared_db" "$db"
    chmod -R u+w "$db"
    git -C "$db" init -q
    git -C "$db" -c user.name=rampart -c user.email=rampart@localhost add -A
    git -C "$db" -c user.name=rampart -c user.email=rampart@localhost commit -qm "local advisory-db copy"
  fi
  sed "s|^\[advisories\]|[advisories]\ndb-path = \"$db_root\"|" deny.toml > target/deny-offline.toml
  cargo deny --offline --config target/deny-offline.toml check
else
  cargo deny check
fi

echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
echo "== injection corpus"
# The detectors against real attack payloads and benign text from registry packages
# (docs/injection-corpus.md): fails if detection or false positives miss their targets.
corpus_ok=1
if python3 -W ignore scripts/injection-corpus.py target/injection-corpus; then
  cargo run -q --locked -p rampart-inspect --example injection_corpus -- target/injection-corpus --check \
    || corpus_ok=0
else
  echo "!! could not fetch the corpus packages (registry unreachable?): corpus check skipped"
fi
# Surface the totals (cargo prints one line per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' target/test-output.txt
[ "$corpus_ok" = 1 ] || { echo "injection corpus targets missed"; exit 1; }
