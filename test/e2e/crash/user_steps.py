"""A program of the in-place crash-recovery suite, run as an ordinary user: it updates its own
file in place (a counter and a slot per step) and writes a step count into a file it may write
but not read (root's, mode 0602). One line per step on stdout; exit code 7 at the end."""
import os
import sys
import time

steps, own_path, drop_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
own = os.open(own_path, os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(own, bytes(4096), 0)
drop = os.open(drop_path, os.O_WRONLY)
for step in range(1, steps + 1):
    done = int.from_bytes(os.pread(own, 8, 0), "little")
    slot = 8 + (done % 500) * 8
    value = int.from_bytes(os.pread(own, 8, slot), "little") + done + 1
    os.pwrite(own, value.to_bytes(8, "little"), slot)
    os.pwrite(own, (done + 1).to_bytes(8, "little"), 0)
    os.pwrite(drop, (done + 1).to_bytes(8, "little"), 0)
    print(f"step {step} progress {done + 1} value {value}", flush=True)
    time.sleep(0.04)
sys.exit(7)
