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
else
  say "not root: the real CRIU and OAR suites will be skipped (they need root)"
  command -v systemd-analyze >/dev/null || say "no systemd-analyze: the systemd unit check will be skipped (as root this script installs it)"
fi

# CKPT_RUN_TEST_STRESS=N: N busy loops beside the whole run, as other jobs on a shared node. Started
# here once for all the lanes (vitest's own global setup would start N per lane).
stress=${CKPT_RUN_TEST_STRESS:-0}
[[ "$stress" =~ ^[0-9]+$ ]] || { echo "test-all: CKPT_RUN_TEST_STRESS=$stress: a whole number of busy loops is expected" >&2; exit 2; }
loads=()
for ((i = 0; i < stress; i++)); do
  sh -c 'while :; do :; done' &
  loads+=($!)
done
[ "$stress" = 0 ] || say "under load: $stress busy loop(s) beside the whole run (PIDs ${loads[*]})"
export CKPT_RUN_TEST_STRESS=0
stop_loads() { [ ${#loads[@]} = 0 ] || kill "${loads[@]}" 2>/dev/null || true; }
trap 'stop_loads; [ "$(id -u)" != 0 ] || { bash scripts/oar-local.sh stop || true; bash scripts/slurm-local.sh stop || true; }' EXIT

# The lanes of vitest.config.ts, side by side, each a vitest of its own (one vitest runs its
# projects' one-file-at-a-time lanes one after the other); each line says its lane.
reports=$(mktemp -d)
lanes=(schedulers node unit)
pids=()
say "vitest: lanes ${lanes[*]} side by side"
started=$SECONDS
for lane in "${lanes[@]}"; do
  (npx vitest run --project "$lane" --passWithNoTests --reporter=default --reporter=json \
    --outputFile.json="$reports/$lane.json" "$@" 2>&1 | sed -u "s/^/[$lane] /") &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
say "vitest: all lanes done in $((SECONDS - started)) s"
# One plain closing line that any CI can read, whatever the runner's own summary looks like.
node -e 'const fs = require("fs");
  const reports = process.argv.slice(1).filter((file) => fs.existsSync(file)).map((file) => JSON.parse(fs.readFileSync(file, "utf8")));
  const sum = (key) => reports.reduce((total, report) => total + report[key], 0);
  const failed = reports.flatMap((report) => report.testResults.flatMap((file) => file.assertionResults.filter((test) => test.status === "failed").map((test) => `  failed: ${file.name.replace(process.cwd() + "/", "")} > ${test.fullName}`)));
  console.log(`tests: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed, ${sum("numPendingTests") + sum("numTodoTests")} skipped` + (failed.length ? "\n" + failed.join("\n") : ""));' \
  "$reports"/*.json 2>/dev/null || true
rm -rf "$reports"
exit "$status"
