#!/bin/bash
# An Open MPI program on one node under ckpt-run: an OAR job script. `mpirun`, its helpers and
# every rank are dumped and restored as one tree. The #OAR lines and `exec` are explained in
# examples/oar-job.sh; submit from a shared filesystem:
#
#   oarsub -S ./examples/mpi-job.sh
#
# What Open MPI needs (README, "Verified on real programs"):
#  - one node: ranks on other nodes are outside the tree;
#  - --mca btl self,vader: ranks talk through shared memory only; the TCP transport would bind
#    sockets to the node's own addresses, which do not exist on another node;
#  - Open MPI keeps files mapped that CRIU does not copy: its session directory (under /tmp)
#    and the shared-memory segments (/dev/shm). Kept in the job's folder, on the shared
#    filesystem, they are there again when the job resumes on another node. They are named
#    after mpirun's PID, so two MPI jobs in one folder need two folders.
#
#OAR -n mpi-ckpt
#OAR -t idempotent
#OAR --checkpoint 120
#OAR -l /nodes=1/core=2,walltime=01:00:00
#OAR -O mpi.%jobid%.stdout
#OAR -E mpi.%jobid%.stderr
set -e
[ -x mpi-ring ] || mpicc -O2 -o mpi-ring examples/mpi-ring.c
mkdir -p .ompi
export OMPI_MCA_orte_tmpdir_base=$PWD/.ompi OMPI_MCA_btl_vader_backing_directory=$PWD/.ompi
exec ckpt-run -- mpirun -np 2 --mca btl self,vader ./mpi-ring 100000
