#!/bin/sh
# A job script's kind of program: each step forks short-lived children (a command substitution,
# date, tr, sleep), ~100 a second, and its progress lives only in a shell variable. Prints
# 1..N, one per step; exits CODE.
n=$1 code=$2
i=1
while [ "$i" -le "$n" ]; do
  stamp=$(date +%N | tr 0-9 a-j)
  [ -n "$stamp" ] || exit 3
  echo "$i"
  i=$((i + 1))
  sleep 0.02
done
exit "$code"
