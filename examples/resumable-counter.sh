#!/bin/sh
# Like counter.sh, but saves its own progress in ./counter.progress after every step and
# resumes from it: a program that checkpoints itself. On SIGTERM (the restart engine's stop,
# or a scheduler's) it finishes the current step and leaves, so no step is lost or repeated.
# It survives even the restart engine, which starts programs again from scratch.
n=${1:-30}; tick=${2:-0.2}; code=${3:-0}
stop=0
trap 'stop=1' TERM
# Builtins only around the progress file (read, echo >): see below.
read -r i < counter.progress 2>/dev/null || i=1
while [ "$stop" = 0 ] && [ "$i" -le "$n" ]; do
  echo "$i"
  i=$((i + 1))
  # The shell's own redirection, not `mv`: a stop signals every process of the job, and an mv
  # (or a cat) killed halfway would lose the progress, and steps would be printed again.
  echo "$i" > counter.progress
  sleep "$tick"
done
[ "$stop" = 1 ] && exit 143
rm -f counter.progress
exit "$code"
