"""
Keeps its own results file open from start to end and writes a line per step (a SHA-256 chain),
flushed every 10 steps: at a checkpoint, part of it is on disk and part in the program's buffer.
    python3 results_writer.py RESULTS_FILE STEPS
"""
import hashlib
import sys
import time

path, steps = sys.argv[1], int(sys.argv[2])
state = hashlib.sha256(b"seed")
with open(path, "w") as results:
    for step in range(1, steps + 1):
        for _ in range(2000):
            state = hashlib.sha256(state.digest())
        results.write(f"{step} {state.hexdigest()}\n")
        if step % 10 == 0:
            results.flush()
        time.sleep(0.02)
print(f"wrote {steps} steps to {path}")
