"""
Holds what cannot travel to another node: a scratch file in /tmp of SIZE_MB (over a small bound
of the daemon's) and a TCP socket listening on ADDRESS, one of the node's own addresses; then
prints a line per step.
    python3 hold_local.py SIZE_MB ADDRESS STEPS
"""
import socket
import sys
import tempfile
import time

size_mb, address, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with tempfile.NamedTemporaryFile(prefix="ckpt-big-", dir="/tmp") as big, socket.socket() as listener:
    big.write(b"x" * (size_mb * 1000 * 1000))
    big.flush()
    listener.bind((address, 0))
    listener.listen()
    for step in range(1, steps + 1):
        print(f"step {step}", flush=True)
        time.sleep(0.05)
print(f"done {steps}")
