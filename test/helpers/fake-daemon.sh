#!/bin/bash
# A stand-in for the node's checkpoint daemon, written independently of ckpt-run's code (bash,
# no shared modules) so that the integration tests check the wire protocol itself:
#   SPOOL/JOB.checkpoint "PID\nDIR\n": record PID's command line, kill its session, mark
#                                      DIR/checkpoint_ok (replacing it: a new file per dump);
#   SPOOL/JOB.resume "DIR\n":          start the recorded command again, write DIR/checkpoint/pidfile.
# It keeps no memory state (a restart, not a restore). Knobs for fault tests:
#   FAKE_FAIL_DUMP=1     leave the program running and write no checkpoint_ok
#   FAKE_IGNORE_RESUME=1 never answer resume requests
#   FAKE_DUMP_DELAY=S    sleep S seconds before dumping
#   FAKE_NO_HEARTBEAT=1  do not refresh SPOOL/ckpt-daemon.heartbeat
set -u
spool=$1
log() { echo "fake-daemon: $*" >&2; }

checkpoint() {
  local file=$1 pid dir
  pid=$(head -1 "$file"); dir=$(tail -1 "$file"); rm -f "$file"
  log "checkpoint pid=$pid dir=$dir"
  if [ -n "${FAKE_DUMP_DELAY:-}" ]; then sleep "$FAKE_DUMP_DELAY"; fi
  if [ -n "${FAKE_FAIL_DUMP:-}" ]; then log "dump failure simulated"; return; fi
  mkdir -p "$dir/checkpoint"
  cp "/proc/$pid/cmdline" "$dir/checkpoint/cmdline"
  readlink "/proc/$pid/cwd" > "$dir/checkpoint/cwd"
  readlink "/proc/$pid/fd/1" > "$dir/checkpoint/stdout"
  readlink "/proc/$pid/fd/2" > "$dir/checkpoint/stderr"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  while [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do sleep 0.01; done
  rm -f "$dir/checkpoint_ok"; touch "$dir/checkpoint_ok"
}

resume() {
  local file=$1 dir
  dir=$(tail -1 "$file"); rm -f "$file"
  log "resume dir=$dir"
  if [ -n "${FAKE_IGNORE_RESUME:-}" ]; then log "resume ignored"; return; fi
  local -a argv
  mapfile -d '' argv < "$dir/checkpoint/cmdline"
  (cd "$(cat "$dir/checkpoint/cwd")" && exec setsid "${argv[@]}" </dev/null \
      >>"$(cat "$dir/checkpoint/stdout")" 2>>"$(cat "$dir/checkpoint/stderr")") &
  echo $! > "$dir/checkpoint/pidfile.tmp"; mv "$dir/checkpoint/pidfile.tmp" "$dir/checkpoint/pidfile"
}

while :; do
  [ -n "${FAKE_NO_HEARTBEAT:-}" ] || touch "$spool/ckpt-daemon.heartbeat"
  for f in "$spool"/*.checkpoint; do [ -f "$f" ] && checkpoint "$f"; done
  for f in "$spool"/*.resume; do [ -f "$f" ] && resume "$f"; done
  sleep 0.05
done
