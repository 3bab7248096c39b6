"""A program of the crash-recovery suite: one line per step on stdout (flushed) and the same
line appended to its own results file, kept open with Python's ordinary buffered writes; a
running hash makes every line depend on all the steps before it. Exit code 7 at the end."""
import hashlib
import sys
import time

steps, results_path = int(sys.argv[1]), sys.argv[2]
results = open(results_path, "a")
digest = hashlib.sha256()
for step in range(1, steps + 1):
    digest.update(str(step).encode())
    line = f"step {step} {digest.hexdigest()[:16]}"
    print(line, flush=True)
    # About 1 KB a step: Python's 8 KB buffer reaches the file every 8 steps or so.
    results.write(f"{line} {digest.hexdigest() * 15}\n")
    time.sleep(0.05)
results.close()
sys.exit(7)
