"""
Keeps a scratch file in /tmp open from start to end (tempfile.NamedTemporaryFile, as programs do):
each step appends a line to it, reads the whole file back and prints a digest of it. A resume on a
node whose /tmp lacks the file cannot go on unless the file travelled with the checkpoint.
    python3 tmp_scratch.py STEPS
"""
import hashlib
import sys
import tempfile
import time

steps = int(sys.argv[1])
with tempfile.NamedTemporaryFile("w+", prefix="ckpt-scratch-", dir="/tmp") as scratch:
    for step in range(1, steps + 1):
        scratch.write(f"{step} {'x' * (step % 50)}\n")
        scratch.flush()
        scratch.seek(0)
        digest = hashlib.sha256(scratch.read().encode()).hexdigest()[:16]
        print(f"step {step} {digest}", flush=True)
        time.sleep(0.05)
print(f"done {steps}")
