"""
Dask with its processes scheduler: a pool of two worker processes, started the way Dask starts
them (multiprocessing's "spawn" context, Dask's default), computes a bag of hash chains per step;
the main process prints each step's sum. The pool's queues and locks are POSIX semaphores: each
a file in /dev/shm that the main process maps under a temporary name it deleted, and the workers
under the semaphore's name.
    python3 dask_processes.py STEPS
"""
import hashlib
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import dask
import dask.bag


def chain(x):
    digest = hashlib.sha256(str(x).encode()).digest()
    for _ in range(5000):
        digest = hashlib.sha256(digest).digest()
    return int.from_bytes(digest[:4], "big")


def main():
    steps = int(sys.argv[1])
    # One pool for the whole run (dask.config's "pool"), so that the workers are there at any checkpoint.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as pool, dask.config.set(scheduler="processes", pool=pool):
        for step in range(1, steps + 1):
            total = dask.bag.from_sequence(range(step * 8, step * 8 + 8), npartitions=4).map(chain).sum().compute()
            print(f"step {step} {total:010x}", flush=True)
            time.sleep(0.05)
    print(f"done {steps}")


if __name__ == "__main__":
    main()
