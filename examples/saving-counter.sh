#!/bin/sh
# A program that saves itself, for ckpt-run --engine app (no daemon, no root needed):
#   ckpt-run simulate --engine app --every 3 -- examples/saving-counter.sh 30 0.2 7
# Counts 1..N, one line per tick. On SIGUSR2 (ckpt-run's save signal, sent to its whole process
# group) it writes the next number into its run folder and exits 85, the agreed "saved, run me
# again"; started again with CKPT_RUN_RESUMED=1, it goes on from there: every number once.
# On SIGUSR1 (ckpt-run --interval N --app-periodic-signal USR1) it saves the same way and runs on:
# a crash then costs only the numbers since the last save.
n=${1:-30}; tick=${2:-0.2}; code=${3:-0}
state=${CKPT_RUN_DIR:-.}/counter.state
save=0
trap 'save=1' USR2
trap 'save=periodic' USR1
i=1
# Resumed: from the last save; none finished yet (a crash right after the first periodic signal): from 1.
if [ -n "${CKPT_RUN_RESUMED:-}" ] && [ -f "$state" ]; then read -r i < "$state"; fi
echo "saving-counter: from $i (restarts: ${CKPT_RUN_RESTARTS:-none}, previous stop: ${CKPT_RUN_REASON:-none})" >&2
while [ "$i" -le "$n" ]; do
  # Saved only here, between two steps: the state always says which number comes next.
  if [ "$save" = periodic ]; then
    echo "$i" > "$state.tmp" && mv "$state.tmp" "$state"
    echo "saving-counter: periodic save at $i" >&2
    save=0
  fi
  if [ "$save" = 1 ]; then
    echo "$i" > "$state.tmp" && mv "$state.tmp" "$state"
    echo "saving-counter: saved at $i ($(cat "${CKPT_RUN_REASON_FILE:-/dev/null}"))" >&2
    exit 85
  fi
  echo "$i"
  i=$((i + 1))
  # In the background and waited for: the trap interrupts the wait (the sleep gets the signal too).
  sleep "$tick" & wait $!
done
exit "$code"
