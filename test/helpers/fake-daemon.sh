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
#   FAKE_LEAVE_RUNNING=1 say "features: leave-running" in the heartbeat, and serve a checkpoint
#                        whose DIR/checkpoint_mode says leave-running by marking checkpoint_ok
#                        with the program left running (a periodic checkpoint, minus the images)
set -u
spool=$1
log() { echo "fake-daemon: $*" >&2; }

checkpoint() {
  local file=$1 pid dir
  pid=$(head -1 "$file"); dir=$(tail -1 "$file"); rm -f "$file"
  log "checkpoint pid=$pid dir=$dir"
  if [ -n "${FAKE_DUMP_DELAY:-}" ]; then sleep "$FAKE_DUMP_DELAY"; fi
  if [ -n "${FAKE_FAIL_DUMP:-}" ]; then log "dump failure simulated"; return; fi
  if [ -n "${FAKE_LEAVE_RUNNING:-}" ] && [ "$(cat "$dir/checkpoint_mode" 2>/dev/null)" = leave-running ]; then
    log "periodic checkpoint pid=$pid: left running"
    rm -f "$dir/checkpoint_ok"; touch "$dir/checkpoint_ok"
    return
  fi
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
  if [ -n "${FAKE_LEAVE_RUNNING:-}" ]; then
    printf '%s\nfeatures: leave-running\n' $$ > "$spool/.heartbeat.tmp" && mv -f "$spool/.heartbeat.tmp" "$spool/ckpt-daemon.heartbeat"
  elif [ -z "${FAKE_NO_HEARTBEAT:-}" ]; then touch "$spool/ckpt-daemon.heartbeat"; fi
  for f in "$spool"/*.checkpoint; do [ -f "$f" ] && checkpoint "$f"; done
  for f in "$spool"/*.resume; do [ -f "$f" ] && resume "$f"; done
  sleep 0.05
done
