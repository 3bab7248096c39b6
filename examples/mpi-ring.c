/*
 * A small MPI program for checkpoint tests: the ranks pass a running value around a ring and
 * sum them every step (MPI_Sendrecv, MPI_Allreduce); rank 0 prints the sum. Deterministic: the
 * same rank count and steps give the same lines, checkpointed or not.
 *   mpicc -O2 -o mpi-ring mpi-ring.c && mpirun -np 2 ./mpi-ring STEPS [PAUSE_MS]
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long steps = argc > 1 ? atol(argv[1]) : 100;
  long pause_ms = argc > 2 ? atol(argv[2]) : 100;
  uint64_t acc = 1469598103934665603ULL + (uint64_t)rank;
  for (long step = 1; step <= steps; step++) {
    uint64_t in = 0;
    MPI_Sendrecv(&acc, 1, MPI_UINT64_T, (rank + 1) % size, 0, &in, 1, MPI_UINT64_T, (rank + size - 1) % size, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    acc = (acc * 1099511628211ULL) ^ (in + (uint64_t)rank * 7919 + (uint64_t)step);
    uint64_t total = 0;
    MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
      printf("step %ld ranks %d total %016llx\n", step, size, (unsigned long long)total);
      fflush(stdout);
    }
    struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  MPI_Finalize();
  return 0;
}
