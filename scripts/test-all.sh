#!/bin/bash
# The whole test run, exactly as CI runs it on a fresh machine: installs what each suite needs
# (npm packages; as root also CRIU, stress, and one-node OAR and Slurm clusters), then runs every suite.
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
  say "starting the local Slurm cluster"
  bash scripts/slurm-local.sh start
  trap 'bash scripts/oar-local.sh stop || true; bash scripts/slurm-local.sh stop || true' EXIT
else
  say "not root: the real CRIU and OAR suites will be skipped (they need root)"
fi

say "vitest"
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI can read, whatever the runner's own summary looks like.
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$report" || true
rm -f "$report"
exit "$status"
