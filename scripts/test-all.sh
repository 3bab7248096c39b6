#!/bin/bash
# The whole test run, exactly as CI runs it on a fresh machine: installs what each suite needs
# (npm packages; as root also CRIU, stress, systemd-analyze, and one-node OAR and Slurm clusters), then runs every suite.
# Real-part suites (test/e2e) run only as root; with CI=true they fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test-all: $*"; }

say "npm ci"
npm ci --no-audit --no-fund
say "build"
npm run build
say "typecheck (src, tests, bench)"
npm run typecheck

# Installs PACKAGE unless COMMAND is there already (root only).
need() {
  local command=$1 package=$2 why=$3
  command -v "$command" >/dev/null && return
  say "installing $package ($why)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
}

if [ "$(id -u)" = 0 ]; then
  need stress stress "the seed's example process tree"
  # systemd-analyze verify needs no running systemd: CI's PID 1 is not systemd.
  need systemd-analyze systemd "systemd-analyze verifies scripts/ckpt-daemon.service"
  # The real-programs suite's Debian packages, and what the zdtm suite needs to build CRIU's own
  # tests (a C compiler and make; xz for the source tarball), in one apt-get call, bounded (~30 s
  # here when the package lists are fresh); only the missing ones, so a prepared machine pays nothing.
  missing=$(cat test/e2e/real-programs/packages.txt test/e2e/zdtm/packages.txt | while read -r pkg; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done)
  if [ -n "$missing" ]; then
    say "installing the real programs' packages:" $missing
    started=$SECONDS
    timeout 120 apt-get update -qq
    # shellcheck disable=SC2086 # one package per word
    DEBIAN_FRONTEND=noninteractive timeout 420 apt-get install -y -qq --no-install-recommends $missing >/dev/null
    say "packages installed in $((SECONDS - started)) s"
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
  command -v systemd-analyze >/dev/null || say "no systemd-analyze: the systemd unit check will be skipped (as root this script installs it)"
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
