#!/bin/bash
# The benchmark's program, the same for both tools: a small idle process tree (bash + sleep).
# First action: record when it started, on the bench's clock ($EPOCHREALTIME, no fork). On
# SIGTERM it records when it ends and exits 42 (a code no wrapper uses for itself).
#   bash bench/program.sh STAMP_FILE      (a restarted/restored copy appends a new "start" line)
# The PID recorded is the one in the node's PID namespace (where the bench runs), read from
# /proc/self/stat with a builtin: $$ would be the PID inside ckpt-run's own namespace.
stamps=$1
at=$EPOCHREALTIME
read -r -d ' ' pid </proc/self/stat
printf 'start %s %s\n' "$at" "$pid" >>"$stamps"
trap 'kill "$child" 2>/dev/null; printf "exit %s %s\n" "$EPOCHREALTIME" "$pid" >>"$stamps"; exit 42' TERM
sleep infinity &
child=$!
wait "$child"
