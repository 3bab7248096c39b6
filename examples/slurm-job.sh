#!/bin/bash
# A complete Slurm job script that survives its time limit with ckpt-run. Submit it from a
# directory on a shared filesystem (the checkpoint lives there, under .ckpt-run/):
#
#   sbatch ./examples/slurm-job.sh
#
# --requeue: after a checkpoint ckpt-run runs "scontrol requeue" (an exit code alone does not
#   resubmit under Slurm); Slurm runs the job again, same job id, 2 minutes later (cred_expire).
# --signal=B:USR2@120: SIGUSR2 to the batch shell 120 s before the time limit (sbatch(1): up to
#   60 s earlier). It must cover the dump time, about 3 s per GB of memory.
# --open-mode=append: the requeued job appends to the output file instead of truncating it.
#
#SBATCH --job-name=ckpt-run-example
#SBATCH --requeue
#SBATCH --signal=B:USR2@120
#SBATCH --open-mode=append
#SBATCH --time=01:00:00
#SBATCH --output=ckpt-run.%j.out

# Slurm signals this script's shell only: "exec" makes ckpt-run that process. Without it the
# shell dies of the signal and the job is not requeued.
# Put your program and its arguments after "--" (here: the script's arguments, if any, else a
# counter that takes an hour).
if [ $# -gt 0 ]; then
  exec ckpt-run -- "$@"
fi
exec ckpt-run -- ./examples/counter.sh 3600 1
