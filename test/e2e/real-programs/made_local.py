"""
Keeps its state in /tmp in files it does not hold open, as programs do: a folder from
tempfile.mkdtemp with a file in it, and a file from tempfile.mkstemp, each written and closed at
every step and read back at the next one; on a node without them the next step fails. At its start
it also leaves in /tmp what cannot travel: a closed file of SIZE_MB (over a small bound of the
daemon's), a socket's name (bound, then closed) and a fifo; it never reads them again.
    python3 made_local.py SIZE_MB STEPS
"""
import contextlib
import os
import socket
import sys
import tempfile
import time

size_mb, steps = int(sys.argv[1]), int(sys.argv[2])
folder = tempfile.mkdtemp(prefix="ckpt-made-", dir="/tmp")
handle, scratch = tempfile.mkstemp(prefix="ckpt-made-", dir="/tmp")
os.close(handle)
handle, big = tempfile.mkstemp(prefix="ckpt-madebig-", dir="/tmp")
with os.fdopen(handle, "wb") as out:
    out.write(b"x" * (size_mb * 1000 * 1000))
sock = f"/tmp/ckpt-madesock-{os.getpid()}"
with socket.socket(socket.AF_UNIX) as listener:
    listener.bind(sock)
fifo = f"/tmp/ckpt-madefifo-{os.getpid()}"
os.mkfifo(fifo)

total = 0
state = os.path.join(folder, "state")
for step in range(1, steps + 1):
    if step > 1:
        with open(state) as saved:
            total = int(saved.read())
        with open(scratch) as saved:
            assert int(saved.read()) == step - 1, "the scratch file is not the previous step's"
    total += step * step
    with open(state, "w") as saved:
        saved.write(str(total))
    with open(scratch, "w") as saved:
        saved.write(str(step))
    print(f"step {step} total {total}", flush=True)
    time.sleep(0.05)

os.unlink(state)
os.rmdir(folder)
os.unlink(scratch)
# Resumed on another node, these did not travel: gone there.
for left in (big, sock, fifo):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(left)
print(f"done {steps}")
