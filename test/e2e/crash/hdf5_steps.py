"""A program of the in-place crash-recovery suite: an HDF5 dataset updated in place, a row and
a progress attribute per step, flushed. One line per step on stdout; exit code 7 at the end.
Its file must end as an uninterrupted run's (h5dump)."""
import sys
import time

import h5py
import numpy

steps, path = int(sys.argv[1]), sys.argv[2]
with h5py.File(path, "w") as f:
    data = f.create_dataset("data", shape=(64, 256), dtype="f8", chunks=(8, 256))
    f.attrs["progress"] = 0
    for step in range(1, steps + 1):
        done = int(f.attrs["progress"])
        row = done % 64
        # Each step adds to a row: redoing a step on a file that already holds it gives another sum.
        data[row, :] = data[row, :] + numpy.arange(256) * (done + 1)
        f.attrs["progress"] = done + 1
        f.flush()
        print(f"step {step} progress {done + 1} row {row} sum {float(data[row, :].sum())}", flush=True)
        time.sleep(0.04)
sys.exit(7)
