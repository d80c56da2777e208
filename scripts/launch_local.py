"""Starts one command as N processes on this machine, joined into one JAX process group over
127.0.0.1 (each process gets its own CPU device, or its share of the accelerators).

    python scripts/launch_local.py -n 2 -- python -m vae_jax.main \
        --config=configs/vae_mnist.py:tiny --workdir=runs/two_processes

Thin on purpose: it only sets the variables vae_jax/training/distributed.py reads
(VAE_JAX_DISTRIBUTED=1, VAE_JAX_COORDINATOR=127.0.0.1:<free port>, VAE_JAX_NUM_PROCESSES,
VAE_JAX_PROCESS_ID) and waits; JAX's multi-controller runtime does the rest. Output lines of
process i > 0 are prefixed with ``[i/N]``. Exit status: the first non-zero status of a process
(the others stop by themselves when they lose it; any still running after --grace seconds are
killed), else 0. On a cluster use its own launcher instead (srun, mpirun, or Cloud TPU's
``gcloud ... --worker=all``): JAX detects the coordinator, N and the process id there.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(i: int, n: int, port: int, base=os.environ) -> dict:
    return dict(base, VAE_JAX_DISTRIBUTED="1", VAE_JAX_COORDINATOR=f"127.0.0.1:{port}",
                VAE_JAX_NUM_PROCESSES=str(n), VAE_JAX_PROCESS_ID=str(i))


def _relay(stream, out, prefix: str):
    for line in iter(stream.readline, b""):
        out.buffer.write(prefix.encode() + line)
        out.flush()


def launch(command: list[str], n: int, port: int = 0, grace: float = 60.0) -> int:
    port = port or free_port()
    procs, relays = [], []
    for i in range(n):
        p = subprocess.Popen(command, env=process_env(i, n, port), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        procs.append(p)
        prefix = f"[{i}/{n}] " if i else ""
        for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
            t = threading.Thread(target=_relay, args=(stream, out, prefix), daemon=True)
            t.start()
            relays.append(t)
    status, deadline = 0, None
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed and deadline is None:
                status, deadline = failed[0], time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        print(f"launch_local: process {i} still running {grace:.0f} s after another "
                              "failed; killing it", file=sys.stderr)
                        p.kill()  # SIGKILL: JAX's preemption notifier catches SIGTERM
            time.sleep(0.2)
    except KeyboardInterrupt:  # Ctrl-C reached the processes too (same process group)
        status, end = 130, time.monotonic() + 10
        while any(p.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(0.2)
        for p in procs:
            if p.poll() is None:
                p.kill()  # SIGKILL: JAX's preemption notifier catches SIGTERM and carries on
    for t in relays:
        t.join(timeout=5)
    codes = [p.wait() for p in procs]
    status = status or next((c for c in codes if c), 0)
    if status:
        print(f"launch_local: exit statuses {codes}", file=sys.stderr)
    return 128 - status if status < 0 else status  # killed by signal k: 128 + k, like a shell


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--num_processes", type=int, default=2)
    ap.add_argument("--port", type=int, default=0, help="coordinator port (default: a free one)")
    ap.add_argument("--grace", type=float, default=60.0,
                    help="seconds the other processes get to stop after one fails")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the command every process runs")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command after --, e.g. -- python -m vae_jax.main --config=...")
    if args.num_processes < 1:
        ap.error(f"--num_processes: {args.num_processes} must be >= 1")
    return launch(command, args.num_processes, args.port, args.grace)


if __name__ == "__main__":
    sys.exit(main())
