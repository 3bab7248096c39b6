#!/bin/sh
# Like counter.sh, but saves its own progress in ./counter.progress after every step and
# resumes from it: a program that checkpoints itself. It survives even the restart engine
# (which starts programs again from scratch), as long as the file survives.
n=${1:-30}; tick=${2:-0.2}; code=${3:-0}
i=$(cat counter.progress 2>/dev/null || echo 1)
while [ "$i" -le "$n" ]; do
  echo "$i"
  i=$((i + 1))
  echo "$i" > counter.progress.tmp && mv counter.progress.tmp counter.progress
  sleep "$tick"
done
rm -f counter.progress
exit "$code"
