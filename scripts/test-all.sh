#!/bin/bash
# The whole test run, exactly as CI runs it on a fresh machine: installs what each suite needs
# (npm packages; as root also CRIU, stress, and a one-node OAR cluster), then runs every suite.
# Real-part suites (test/e2e) run only as root; with CI=true they fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test-all: $*"; }

say "npm ci"
npm ci --no-audit --no-fund
say "build"
npm run build

if [ "$(id -u)" = 0 ]; then
  if ! command -v stress >/dev/null; then
    say "installing stress (the seed's example process tree)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress >/dev/null
  fi
  say "installing CRIU"
  bash scripts/install-criu.sh --with-prlimit-shim
  say "starting the local OAR cluster"
  bash scripts/oar-local.sh start
  trap 'bash scripts/oar-local.sh stop || true' EXIT
else
  say "not root: the real CRIU and OAR suites will be skipped (they need root)"
fi

say "vitest"
npx vitest run "$@"
