#!/usr/bin/env python3
"""
A program that saves itself, for ckpt-run --engine app: an iterative NumPy computation with a
fixed seed (X <- tanh(A X + noise), the noise drawn afresh at each step) that saves its arrays
and its random generator with numpy.savez when asked on SIGUSR2, exits 85 ("saved, run me
again"), and resumes from them when ckpt-run starts it again: its result is bit-identical to an
uninterrupted run's.

    python3 numpy-loop.py [STEPS=600] [N=300]      # alone: result.npy in the current folder
    #OAR -t idempotent
    #OAR --checkpoint 60
    exec ckpt-run --engine app -- python3 examples/numpy-loop.py 600 300

One line per step ("step K <sum of X, as an exact hex float>"), then "done <sum>"; the final X
in result.npy. Its state lives in $CKPT_RUN_DIR (the run folder ckpt-run keeps until the run
finishes); alone, in the current folder.
"""
import signal
import sys

# First of all, before NumPy takes its time to load: a save signal that came before the handler
# would kill the program, and whatever it computed since its last save would be lost.
save_asked = False


def ask_save(signum, frame):
    global save_asked
    save_asked = True


signal.signal(signal.SIGUSR2, ask_save)

import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402

SAVED = 85
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 600
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
state_path = os.path.join(os.environ.get("CKPT_RUN_DIR", "."), "numpy-loop.state.npz")

rng = np.random.default_rng(20261204)
a = rng.standard_normal((n, n)) / np.sqrt(n)
x = rng.standard_normal((n, n))
step = 0
if os.environ.get("CKPT_RUN_RESUMED") and os.path.exists(state_path):
    with np.load(state_path) as saved:
        a, x, step = saved["a"], saved["x"], int(saved["step"])
        rng.bit_generator.state = json.loads(str(saved["rng"]))
    print(f"numpy-loop: resumed before step {step + 1} (restarts {os.environ.get('CKPT_RUN_RESTARTS')})", file=sys.stderr, flush=True)


def save():
    """Everything the next steps need, written whole or not at all (a temporary file, renamed)."""
    partial = state_path + ".partial.npz"
    np.savez(partial, a=a, x=x, step=step, rng=json.dumps(rng.bit_generator.state))
    os.replace(partial, state_path)


while step < steps:
    # Saved only between two steps: the state always says which step comes next.
    if save_asked:
        save()
        print(f"numpy-loop: saved before step {step + 1}", file=sys.stderr, flush=True)
        sys.exit(SAVED)
    x = np.tanh(a @ x + 0.01 * rng.standard_normal((n, n)))
    step += 1
    print(f"step {step} {float(x.sum()).hex()}", flush=True)

np.save("result.npy", x)
print(f"done {float(x.sum()).hex()}", flush=True)
