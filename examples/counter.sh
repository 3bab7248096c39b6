#!/bin/sh
# Prints 1..N, one per tick. Keeps its progress only in memory (a shell variable), so a
# resumed run that continues where it stopped proves the checkpoint restored its state.
n=${1:-30}; tick=${2:-0.2}; code=${3:-0}
i=1
while [ "$i" -le "$n" ]; do echo "$i"; i=$((i + 1)); sleep "$tick"; done
exit "$code"
