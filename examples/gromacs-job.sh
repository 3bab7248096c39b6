#!/bin/bash
# GROMACS under ckpt-run --engine app: mdrun saves itself, ckpt-run handles the scheduler.
# An example to read, not a test: Debian 12's gmx mdrun refuses to start on the machines where
# this project's tests run ("compiled to use the rdtscp CPU instruction … not supported by the
# current hardware").
#
#   oarsub -S ./examples/gromacs-job.sh        (from the folder that holds md.tpr)
#
# On its first SIGTERM mdrun stops at the next neighbour-search step, writes its checkpoint
# (md.cpt) and its usual output, and exits 0. So: --app-signal TERM, and --app-any-exit-saved,
# since 0 is also what it exits with when the run is complete. The risk that comes with it: an
# mdrun that finished at the very moment of the signal is started once more; with -cpi it then
# finds its last step done and ends at once.
# -cpi md.cpt continues from the checkpoint when it exists, and starts from md.tpr when it does
# not (the first job); -append keeps one set of output files across the jobs.
# --checkpoint 300 and --app-grace 240: mdrun needs up to a neighbour-search interval (and, on
# many nodes, the last step's communication) plus the checkpoint's write; ckpt-run kills an
# mdrun that has not exited after 240 s (exit 16, never 99), before OAR's walltime would.
#
#OAR -n gromacs
#OAR -t idempotent
#OAR --checkpoint 300
#OAR -l /nodes=1/core=8,walltime=12:00:00
#OAR -O gromacs.%jobid%.stdout
#OAR -E gromacs.%jobid%.stderr
#
# Under Slurm, the same exec line with:
#   #SBATCH --requeue
#   #SBATCH --signal=B:USR2@300
#   #SBATCH --open-mode=append

# "exec": the scheduler's signal goes to this shell, which ckpt-run must be.
exec ckpt-run --engine app --app-signal TERM --app-any-exit-saved --app-grace 240 -- \
  gmx mdrun -deffnm md -cpi md.cpt -append -ntomp 8
