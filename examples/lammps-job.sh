#!/bin/bash
# LAMMPS (Debian's `lammps` package, `lmp`) under ckpt-run: an OAR job script. The #OAR lines
# and `exec` are explained in examples/oar-job.sh; submit from a shared filesystem:
#
#   oarsub -S ./examples/lammps-job.sh
#
# Debian's lmp is built with Open MPI: even a serial run holds TCP connections (its MPI
# runtime's), which ckpt-daemon dumps and restores established (README, "Verified on real
# programs"). lmp writes log.lammps as it goes; CRIU restores it at the size it had at the
# checkpoint, which holds as long as nothing writes it between the checkpoint and the resume.
#
#OAR -n lammps-ckpt
#OAR -t idempotent
#OAR --checkpoint 120
#OAR -l /nodes=1/core=1,walltime=01:00:00
#OAR -O lammps.%jobid%.stdout
#OAR -E lammps.%jobid%.stderr
exec ckpt-run -- lmp -in examples/lj-melt.in -var steps 1000000 -nocite
