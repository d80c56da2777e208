"""Shared pieces of the benchmarks: data dir, subprocess timing, matmul peak, FLOP model, medians.

Every benchmark compares numbers measured in the same run on the same machine: the machines this
was developed on are shared and noisy, so only ratios of interleaved measurements mean anything.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIRS = (os.environ.get("VAE_JAX_DATA_DIR", ""), os.path.join(ROOT, "..", "shared", "data", "mnist"))
SHARED_BENCH_DIRS = (os.path.join(ROOT, "..", "shared", "bench"),)
RESULTS_DIR = os.environ.get("VAE_JAX_BENCH_RESULTS") or os.path.join(ROOT, "bench", "results")
if ROOT not in sys.path:  # ``configs`` is a folder of the checkout, not part of the installed package
    sys.path.insert(0, ROOT)
_RATE = re.compile(r"([\d,]+(?:\.\d+)?) examples/s")


def data_dir(arg: str | None = None) -> str:
    """The full-MNIST IDX directory: the argument, else $VAE_JAX_DATA_DIR, else ../shared/data/mnist."""
    for d in ((arg,) if arg else DEFAULT_DATA_DIRS):
        if d and os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
            return os.path.abspath(d)
    raise SystemExit(f"no MNIST IDX directory found (tried {arg or DEFAULT_DATA_DIRS}); pass one")


def shared_bench(name: str) -> str | None:
    for d in SHARED_BENCH_DIRS:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return os.path.abspath(p)
    return None


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def run_rate(cmd: list[str], timeout: float = 900, env: dict | None = None) -> float:
    """Runs a benchmark script that prints '<N> examples/s'; returns N (last such line)."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=dict(os.environ, **env) if env else None)
    found = _RATE.findall(out.stdout)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return float(found[-1].replace(",", ""))


def run_json(cmd: list[str], timeout: float = 900) -> dict:
    """Runs a script whose last stdout line is a JSON object; returns it."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_with_peak_rss(cmd: list[str], on_line=None, env=None) -> tuple[int, float, float]:
    """Runs ``cmd``; calls ``on_line(seconds_since_start, line)`` for each stdout line.
    Returns (returncode, wall seconds, peak RSS of the child in MiB, from wait4's rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=env, bufsize=1)

    def pump():
        for line in proc.stdout:
            if on_line is not None:
                on_line(time.perf_counter() - t0, line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    reader.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


def python() -> str:
    return sys.executable


def load_avg() -> tuple[float, float, float]:
    return os.getloadavg()


def machine_description() -> dict:
    import platform

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import jax

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
    except Exception:  # noqa: BLE001 - description only
        pass
    return info


def save_result(name: str, result: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path


def default_vae(data_dir_arg, subset: int, batch_size: int):
    """The 784-500-20 VAE of configs/vae_mnist.py on the first ``subset`` MNIST training images:
    (config, dataset, model, keys, images on device)."""
    import jax

    from configs import vae_mnist
    from vae_jax import data as data_lib, models, train

    config = vae_mnist.get_config()
    config.data.dir, config.data.train_subset = data_dir(data_dir_arg), subset
    config.train.batch_size = batch_size
    ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    return config, ds, model, train.split_keys(0), jax.device_put(ds.train_images)


def time_epochs_round_robin(epochs: dict, states: dict, images, keys, rounds: int):
    """Runs ``epochs[name](states[name], images, epoch_key, noise_key)`` for every name, ``rounds``
    times, the order shuffled every round so that no variant always follows the same neighbour;
    ``states`` is updated in place. Returns per-epoch wall and process CPU seconds (all threads)
    for each name: on a shared machine the CPU time of the work is the steadier of the two."""
    import jax
    import numpy as np

    wall, cpu = {n: [] for n in epochs}, {n: [] for n in epochs}
    order_rng = np.random.default_rng(0)
    for r in range(rounds):
        for n in order_rng.permutation(list(epochs)):
            t, c = time.perf_counter(), time.process_time()
            states[n], m = epochs[n](states[n], images, jax.random.fold_in(keys["data"], r + 1), keys["noise"])
            jax.block_until_ready(m)
            wall[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
    return wall, cpu

