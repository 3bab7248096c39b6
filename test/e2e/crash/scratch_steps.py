"""A program of the in-place crash-recovery suite: a scratch file held open, updated in place,
and every 10 steps replaced (removed and created again under the same name) as NWChem does
with its grid files. One line per step on stdout; exit code 7 at the end. Its scratch file and
output must end as an uninterrupted run's."""
import hashlib
import os
import sys
import time

steps, path = int(sys.argv[1]), sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, bytes(8192), 0)
for step in range(1, steps + 1):
    if step % 10 == 0:
        # The new file starts from what the old one held: a lost or doubled step shows.
        old = os.pread(fd, 8192, 0)
        os.close(fd)
        os.unlink(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.pwrite(fd, old, 0)
    # The counter at the file's start counts the steps done; each step rewrites a slot from it.
    done = int.from_bytes(os.pread(fd, 8, 0), "little")
    slot = 8 + (done % 1000) * 8
    value = int.from_bytes(os.pread(fd, 8, slot), "little") + done + 1
    os.pwrite(fd, value.to_bytes(8, "little"), slot)
    os.pwrite(fd, (done + 1).to_bytes(8, "little"), 0)
    digest = hashlib.sha256(os.pread(fd, 8192, 0)).hexdigest()[:16]
    print(f"step {step} progress {done + 1} {digest}", flush=True)
    time.sleep(0.04)
os.close(fd)
sys.exit(7)
