"""
NumPy on OpenBLAS threads: iterated products of a seeded N x N matrix, a checksum per step (as
exact hex floats), with 16 earlier results kept (a few hundred MB in all). First line: the
process's thread count, which shows that OpenBLAS really runs its threads.
    python3 matmul.py N STEPS
"""
import os
import sys

import numpy as np

n, steps = int(sys.argv[1]), int(sys.argv[2])
print(f"threads {len(os.listdir('/proc/self/task'))}", flush=True)
rng = np.random.default_rng(20261204)
a = rng.standard_normal((n, n))
b = rng.standard_normal((n, n)) / np.sqrt(n)
history = [a.copy() for _ in range(16)]
for step in range(1, steps + 1):
    a = a @ b
    a /= np.abs(a).max()
    history[step % len(history)] = a.copy()
    older = history[(step + 3) % len(history)]
    print(f"step {step} checksum {float(a.sum()).hex()} {float(np.abs(older).sum()).hex()}", flush=True)
