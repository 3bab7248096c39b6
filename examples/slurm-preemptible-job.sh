#!/bin/bash
# A Slurm job in a preemptible partition (PreemptMode=REQUEUE with a GraceTime) that survives
# preemption with ckpt-run. Submit it from a directory on a shared filesystem:
#
#   sbatch --partition=lowprio ./examples/slurm-preemptible-job.sh
#
# Slurm 22.05 tells a preempted job's batch shell nothing until the partition's GraceTime is
# over (then, some 30 s later, SIGTERM, and SIGKILL KillWait later), even with
# SchedulerParameters=preempt_send_user_signal. Without a poll ckpt-run checkpoints at that
# late SIGTERM (it asks Slurm, which says it preempts the job), within KillWait (30 s by
# default): enough for a small program. Sooner: --preemption-poll 10 runs "scontrol show job"
# every 10 s and checkpoints as soon as it shows a PreemptTime. Keep the poll period plus the
# dump time (about 3 s per GB of memory) well under the GraceTime.
# --requeue: after the checkpoint ckpt-run runs "scontrol requeue"; the job runs again, same
#   job id, once the preemptor left room, and resumes.
# --signal=B:USR2@120: the checkpoint before the time limit, as in slurm-job.sh.
# --open-mode=append: the requeued job appends to the output file instead of truncating it.
#
#SBATCH --job-name=ckpt-run-preemptible
#SBATCH --requeue
#SBATCH --signal=B:USR2@120
#SBATCH --open-mode=append
#SBATCH --time=04:00:00
#SBATCH --output=ckpt-run.%j.out

if [ $# -gt 0 ]; then
  exec ckpt-run --preemption-poll 10 -- "$@"
fi
exec ckpt-run --preemption-poll 10 -- ./examples/counter.sh 3600 1
