"""What the benchmarks share: finding the data and the reference loops, running child processes
(rate, JSON line, peak RSS), the FLOP model, the measured matmul peak, medians and result files.

Every benchmark compares numbers measured in the same run on the same machine: the machines this
was developed on are shared and noisy, so only ratios of interleaved measurements mean anything.

FLOP model: model FLOPs per training example = 3 x forward matmul FLOPs (forward, plus backward
w.r.t. activations and weights: the usual "6N" convention for dense nets), where a Dense kernel
[in, out] costs 2·in·out per example. Elementwise work (activations, the likelihood, the optimizer,
random bits) is not counted: MFU measures useful matmul work against the peak of the one
operation the machine is fastest at.

    python bench/common.py [N]     # prints the N x N f32 matmul peak (default 4096) as a JSON line
"""
from __future__ import annotations

import json
import os
import platform
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
# A Python with torch in a side environment: $VAE_JAX_TORCH_PYTHON, else ../torchenv beside the checkout.
TORCH_PYTHONS = (os.environ.get("VAE_JAX_TORCH_PYTHON", ""), os.path.join(ROOT, "..", "torchenv", "bin", "python"))
if ROOT not in sys.path:  # ``configs`` is a folder of the checkout, not part of the installed package
    sys.path.insert(0, ROOT)
_RATE = re.compile(r"([\d,]+(?:\.\d+)?) examples/s")


def data_dir(arg: str | None = None) -> str:
    """The full-MNIST IDX directory: the argument, else $VAE_JAX_DATA_DIR, else ../shared/data/mnist."""
    for d in ((arg,) if arg else DEFAULT_DATA_DIRS):
        if d and os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
            return os.path.abspath(d)
    raise SystemExit(f"no MNIST IDX directory found (tried {arg or DEFAULT_DATA_DIRS}); pass --data_dir")


def shared_bench(name: str) -> str | None:
    for d in SHARED_BENCH_DIRS:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return os.path.abspath(p)
    return None


def torch_python(arg: str | None = None) -> str | None:
    for p in ((arg,) if arg else TORCH_PYTHONS):
        if p and os.path.exists(p):
            return p
    return None


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def run_rate(cmd: list[str], timeout: float = 900, env: dict | None = None) -> float:
    """Runs a script that prints '<N> examples/s' (the reference loops); returns N (last such line)."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=dict(os.environ, **env) if env else None)
    found = _RATE.findall(out.stdout)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return float(found[-1].replace(",", ""))


def run_json(cmd: list[str], timeout: float = 900) -> dict:
    """Runs a script whose last JSON stdout line is its result; returns it."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_timed(cmd: list[str], on_line=None, env=None, tails: bool = False) -> tuple[int, float, float]:
    """Runs ``cmd`` from the repository root; calls ``on_line(seconds_since_start, text)`` for every
    line it writes (stdout and stderr merged) as soon as it arrives. tqdm writes each update as
    '\\r' + text, terminated only by the next update: with ``tails`` the unterminated tail is passed
    on as soon as it arrives too (and again once terminated, so ``on_line`` should keep the first).
    Returns (returncode, wall seconds, peak RSS of the child in MiB from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def pump():
        buf = b""
        while chunk := proc.stdout.read1(65536):
            buf += chunk
            *done, buf = re.split(rb"[\r\n]", buf)
            for part in done + ([buf] if tails else []):
                if part.strip() and on_line is not None:
                    on_line(time.perf_counter() - t0, part.decode(errors="replace"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    reader.join(timeout=10)
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


def python() -> str:
    return sys.executable


def load_avg() -> float:
    return os.getloadavg()[0]


def machine_description() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib import metadata
    for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def save_result(name: str, result: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path


def default_vae(data_dir_arg, train_subset: int = 0, batch_size: int = 128, test_subset: int = 0):
    """The 784-500-20 VAE of configs/vae_mnist.py on the first ``train_subset`` MNIST training
    images (0: all): (config, dataset, model, keys)."""
    from configs import vae_mnist
    from vae_jax import data as data_lib, models
    import vae_jax.training.trainer as trainer

    config = vae_mnist.get_config()
    config.data.dir, config.data.train_subset = data_dir(data_dir_arg), train_subset
    config.data.test_subset = test_subset
    config.train.batch_size = batch_size
    ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    return config, ds, model, trainer.split_keys(config.seed)


def config_setup(spec: str, data_dir_arg, **fields):
    """Any config by ``path[:variant]`` (its MNIST directory set when it reads one) with
    ``fields`` set (dotted names, e.g. ``**{"train.batch_size": 512}``): (config, dataset, model,
    keys), like ``default_vae``."""
    from vae_jax import config as config_lib, data as data_lib, models
    import vae_jax.training.trainer as trainer

    path, _, variant = spec.partition(":")
    config = config_lib.load_config_file(path, variant or None)
    if config.data.source == "idx":
        config.data.dir = data_dir(data_dir_arg)
    for name, value in fields.items():
        section, field = name.split(".")
        config[section][field] = value
    config_lib.validate(config)
    ds = data_lib.load(config.data)
    return config, ds, models.build_model(config.model, ds.image_shape), trainer.split_keys(config.seed)


# ---------------------------------------------------------------------------- FLOPs and the peak
def forward_matmul_flops(params) -> int:
    """2·in·out summed over every 2-D ``kernel`` in the parameter tree (per example)."""
    import jax
    import numpy as np

    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if jax.tree_util.keystr(path).endswith("['kernel']") and np.ndim(leaf) == 2:
            total += 2 * int(leaf.shape[0]) * int(leaf.shape[1])
    return total


def train_flops_per_example(params) -> int:
    return 3 * forward_matmul_flops(params)


def jaxpr_matmul_flops(fn, *args) -> int:
    """2·M·N·K summed over the ``dot_general`` equations of ``fn``'s jaxpr (sub-jaxprs included,
    a scan's body times its length): the matmul work a step asks for, whatever XLA makes of it."""
    import jax
    import jax.extend.core as jax_core
    import numpy as np

    def walk(jaxpr) -> int:
        total = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                (lhs_contract, _), _ = eqn.params["dimension_numbers"]
                k = int(np.prod([eqn.invars[0].aval.shape[d] for d in lhs_contract]))
                total += 2 * k * int(np.prod(eqn.outvars[0].aval.shape))
            times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
            for sub in jax_core.jaxprs_in_params(eqn.params):
                total += times * walk(sub)
        return total

    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def xla_step_flops(step, *args) -> float:
    """XLA's cost analysis ("flops": every op) of the compiled ``step``, lowered with JAX's default
    (rolled) threefry: XLA counts the loop body of the rolled hash once and every round of the
    unrolled one, so the count would otherwise move by ≈ 11 % (the two-layer step) with a lowering choice that changes
    no arithmetic of the model (vae_jax/prng.py)."""
    import jax
    import vae_jax.prng as prng

    before = prng.active()
    prng.use("rolled")
    try:
        cost = jax.jit(step).lower(*args).compile().cost_analysis()
    finally:
        prng.use(before)
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def matmul_peak(n: int = 4096, repeats: int = 5) -> dict:
    """FLOP/s of a jitted n x n float32 matmul: median and best of ``repeats`` timed calls."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    flops = 2.0 * n**3
    return {"n": n, "median_flops": flops / float(np.median(times)), "best_flops": flops / min(times),
            "times_s": times}


if __name__ == "__main__":
    r = matmul_peak(int(sys.argv[1]) if len(sys.argv) > 1 else 4096)
    print(f"matmul peak ({r['n']}^2 f32): median {r['median_flops'] / 1e9:.1f} GFLOP/s, "
          f"best {r['best_flops'] / 1e9:.1f}", file=sys.stderr)
    print(json.dumps(r))
