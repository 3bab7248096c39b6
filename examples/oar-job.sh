#!/bin/bash
# A complete OAR job script that survives its walltime with ckpt-run. Submit it from a
# directory on a shared filesystem (the checkpoint lives there, under .ckpt-run/):
#
#   oarsub -S ./examples/oar-job.sh
#
# -t idempotent: OAR resubmits the job when it exits with code 99.
# --checkpoint 120: OAR sends SIGUSR2 120 s before the walltime. It must cover the dump time
#   (about 3 s per GB of memory) plus up to 15 s of lateness: OAR checks every 10 s and
#   re-sends the signal every 10-16 s until the job ends.
# A job that ran less than 60 s is not resubmitted: ckpt-run waits until 62 s before exit 99.
#
#OAR -n ckpt-run-example
#OAR -t idempotent
#OAR --checkpoint 120
#OAR -l /nodes=1/core=1,walltime=01:00:00
#OAR -O ckpt-run.%jobid%.stdout
#OAR -E ckpt-run.%jobid%.stderr

# OAR sends the checkpoint signal to this script's shell only: "exec" makes ckpt-run that
# process. Without it the shell dies of the signal and the job is not resubmitted.
# Put your program and its arguments after "--" (here: the script's arguments, if any, else a
# counter that takes an hour).
if [ $# -gt 0 ]; then
  exec ckpt-run -- "$@"
fi
exec ckpt-run -- ./examples/counter.sh 3600 1
