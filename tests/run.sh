#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need when it is missing
# (redis-server for the multi-replica tests, PostgreSQL for the ledger tests, Chromium and its
# WebDriver for the dashboard's browser test; each test starts its own server on a free port),
# then runs `cargo test --locked`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]} (needed by the replica, ledger and dashboard tests)" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec cargo test --locked "$@"
