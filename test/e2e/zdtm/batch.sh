#!/bin/sh
# batch.sh STATIC_DIR TESTS STOP_FILE: zdtm static tests as ONE program for ckpt-run (or plain
# criu) to checkpoint and restore, for test/e2e/zdtm.e2e.test.ts.
#
# TESTS holds lines "NAME<TAB>COMMAND" (build.sh's output: the command as zdtm's Makefile starts
# the test, "./NAME --pidfile=... --outfile=..."). Each test runs in its own folder NAME/ of the
# working directory. A zdtm test daemonizes: its first process exits once the test has set up
# its state and written its pidfile; the daemon then waits for SIGTERM, checks that its state
# survived, writes PASS or FAIL to its .out file and exits. This script starts every test, says
# "zdtm: N started" on stdout, waits until STOP_FILE exists (the suite creates it once the
# checkpoint has been restored), sends each test SIGTERM and prints one line per test:
# "zdtm NAME PASS" or "zdtm NAME FAIL <the end of its .out>".
#
# The tests' daemons are orphans: this shell makes itself their child subreaper (prctl through
# perl's syscall(); the attribute survives exec) so that they stay in the dumped tree instead of
# being adopted by the node's init.
set -u
if [ -z "${ZDTM_BATCH_SUBREAPER:-}" ]; then
  # 157: SYS_prctl on x86_64; 36: PR_SET_CHILD_SUBREAPER
  ZDTM_BATCH_SUBREAPER=1 exec perl -e 'syscall(157, 36, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_CHILD_SUBREAPER): $!\n"; exec @ARGV or die "exec: $!\n"' sh "$0" "$@"
fi
static=$1 tests=$2 stop=$3
names=$(cut -f1 "$tests")
n=0
tab=$(printf '\t')
while IFS="$tab" read -r name command; do
  mkdir -p "$name"
  # the command line is zdtm's own (./NAME --opt=value ...): no quoting in it to keep
  # all at once: some take seconds to set up their state (one after the other, 26 s for 155)
  (cd "$name" && eval "timeout 30 \"$static/\"${command#./}") || echo "zdtm: $name did not start (exit $?)" >&2 &
  n=$((n + 1))
done <"$tests"
# The first process of a test exits only after its daemon wrote the pidfile (or failed), or
# timeout killed it after 30 s.
wait
for name in $names; do
  [ -s "$name/$name.pid" ] || echo "zdtm: $name wrote no pidfile" >&2
done
echo "zdtm: $n started"
waited=0
until [ -e "$stop" ]; do
  sleep 0.1
  waited=$((waited + 1))
  [ "$waited" -lt 9000 ] || { echo "zdtm: $stop did not appear within 900 s" >&2; break; }
done
for name in $names; do
  [ -s "$name/$name.pid" ] && kill -TERM "$(cat "$name/$name.pid")" 2>/dev/null
done
# A test renames NAME.out.inprogress to NAME.out as it exits; 30 s for all of them.
waited=0
for name in $names; do
  while [ ! -e "$name/$name.out" ] && [ "$waited" -lt 300 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  # zdtm's own verdict: the last word of the .out file ("HH:MM:SS.mmm: PID: PASS")
  if [ "$(grep -v '^ *$' "$name/$name.out" 2>/dev/null | tail -n 1 | awk '{ print $NF }')" = PASS ]; then
    echo "zdtm $name PASS"
  elif [ -e "$name/$name.out" ]; then
    echo "zdtm $name FAIL $(grep -v '^ *$' "$name/$name.out" | tail -n 3 | tr '\n' ' ')"
  else
    echo "zdtm $name FAIL no $name.out: the test did not exit after SIGTERM $(tail -n 3 "$name/$name.out.inprogress" 2>/dev/null | tr '\n' ' ')"
  fi
done
