#!/bin/bash
# An OAR besteffort job that survives preemption with ckpt-run: it runs on idle resources and
# gives them up whenever a job with priority needs them. Submit it from a directory on a
# shared filesystem (the checkpoint lives there, under .ckpt-run/):
#
#   oarsub -S ./examples/oar-besteffort-job.sh
#
# -t besteffort: the job runs in the besteffort queue and is preempted when its resources
#   are needed. With --checkpoint N, OAR first sends SIGUSR2 (its "User oar (metasched)"
#   CHECKPOINT event) and kills the job no sooner than N s after the first one (at its next
#   scheduling pass: on a quiet cluster up to 60 s later).
# -t idempotent: OAR resubmits the job (new job id, same array id) either way: when ckpt-run
#   exits 99 after the checkpoint (the job ran more than 60 s), or when OAR killed it after N
#   s (BESTEFFORT_KILL). The resubmitted job resumes the checkpoint once resources are free.
# --checkpoint 60: the dump must be done within N s of OAR's signal (about 3 s per GB of
#   memory); the same N also asks for the signal N s before the walltime.
#
#OAR -n ckpt-run-besteffort
#OAR -t besteffort
#OAR -t idempotent
#OAR --checkpoint 60
#OAR -l /nodes=1,walltime=04:00:00
#OAR -O ckpt-run.%jobid%.stdout
#OAR -E ckpt-run.%jobid%.stderr

# OAR signals this script's shell only: "exec" makes ckpt-run that process.
if [ $# -gt 0 ]; then
  exec ckpt-run -- "$@"
fi
exec ckpt-run -- ./examples/counter.sh 3600 1
