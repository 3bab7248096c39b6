#!/bin/bash
# An Open MPI program on one node under ckpt-run: an OAR job script. `mpirun`, its helpers and
# every rank are dumped and restored as one tree. The #OAR lines and `exec` are explained in
# examples/oar-job.sh; submit from a shared filesystem:
#
#   oarsub -S ./examples/mpi-job.sh
#
# One node: ranks on other nodes are outside the tree. Nothing else to set: Open MPI's session
# directory (/tmp) and shared-memory segments (/dev/shm) travel with the checkpoint to the node
# that runs the next job (README, "Use it under OAR"; the job's log says what travelled).
#
#OAR -n mpi-ckpt
#OAR -t idempotent
#OAR --checkpoint 120
#OAR -l /nodes=1/core=2,walltime=01:00:00
#OAR -O mpi.%jobid%.stdout
#OAR -E mpi.%jobid%.stderr
set -e
[ -x mpi-ring ] || mpicc -O2 -o mpi-ring examples/mpi-ring.c
exec ckpt-run -- mpirun -np 2 ./mpi-ring 100000
