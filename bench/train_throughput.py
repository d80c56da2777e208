"""Training throughput of the CLI, end to end, beside the reference loops, measured in one run.

    python bench/train_throughput.py [--data_dir DIR] [--rounds 5] [--torch_python PY] [--mfu_batch_sizes 512,2048]
        [--mfu_configs configs/iwae_two_layer.py@512,configs/iaf_mnist.py@512]

Each round runs, one after another in fresh processes (ABAB: ours and a reference alternate):

1. ``python -m vae_jax.main --config=configs/vae_mnist.py --config.data.dir=DIR --workdir=<tmp>
   --config.train.epochs=6`` (the default 784-500-20 VAE, batch 128, with everything a user's run
   does each epoch: test evaluation, metrics row, TensorBoard, checkpoint; then the report);
2. the flax-example-style loop (``../shared/bench/anchor_flax_example.py DIR``);
3. the same CLI command with ``--config.train.epochs=2``;
4. the bare scan epoch: ``trainer.make_epoch`` called directly (no evaluation, checkpoint or log),
   one warm-up epoch, then ``--bare_epochs`` timed epochs (median), in a child of this script;
5. the PyTorch example loop at width 500 (``anchor_pytorch_example.py DIR 500``) when a Python with
   torch is found (``--torch_python``, ``$VAE_JAX_TORCH_PYTHON`` or ``../torchenv``).

CLI examples/s = 60000//128*128 / per-epoch time, with per-epoch time = (wall of the 6-epoch
process − wall of the 2-epoch process) / 4: start-up (imports, data, compilation, the last
evaluation, the report) is in both and cancels. Beside it, from the 6-epoch process itself:
``cli_interval`` = the time between the progress updates of epochs 2 and 6, / 4 (the same
per-epoch work, without the start-up noise of two processes), and ``cli_inner`` = the median
``epoch_time_s`` of its epochs 2-6 in metrics.jsonl (the scan epoch alone, inside the CLI).

Ratios are taken within a round (only interleaved measurements compare on a shared machine) and
reported per round, as their median, and pooled (median rate of ours / median rate of theirs).

``--mfu_batch_sizes``: also the bare epoch at those batch sizes between two measurements of a
4096² f32 matmul peak (``bench/common.py``); MFU = model FLOPs per example × examples/s ÷ the
median of the two peaks. ``--mfu_configs path[:variant]@batch,...``: the same for other configs
(model families, the conv VAE), whose FLOPs per example come from XLA's cost analysis of the
compiled training step.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
N_TRAIN, BATCH = 60000, 128
EXAMPLES_PER_EPOCH = N_TRAIN // BATCH * BATCH
# tqdm's update ("... | 3/6 [00:09<...") or, with train.progress=False, the loop's "epoch 3/6:" line.
_EPOCH_DONE = re.compile(r"(?:\|\s*|^epoch )(\d+)/(\d+)[ :\[]")


def cli_command(data_dir: str, workdir: str, epochs: int) -> list[str]:
    return [common.python(), "-m", "vae_jax.main", "--config=configs/vae_mnist.py",
            f"--config.data.dir={data_dir}", f"--workdir={workdir}", f"--config.train.epochs={epochs}"]


def run_cli(data_dir: str, epochs: int) -> dict:
    """One CLI training run in a fresh workdir: wall seconds, when each epoch's progress update
    appeared, and the epoch_time_s of each metrics row."""
    workdir = tempfile.mkdtemp(prefix="vae_jax_bench_")
    done, log = {}, []

    def on_line(t, text):
        log.append(text)
        m = _EPOCH_DONE.search(text)
        if m and int(m.group(2)) == epochs:
            done.setdefault(int(m.group(1)), t)  # tqdm redraws a count (set_postfix): keep the first

    try:
        # Unbuffered: tqdm's carriage-return updates otherwise reach the pipe in bursts, late.
        rc, wall, rss = common.run_timed(cli_command(data_dir, workdir, epochs), on_line,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"), tails=True)
        if rc != 0:
            raise RuntimeError(f"CLI run failed (rc {rc}):\n" + "\n".join(log[-30:]))
        rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if line.strip()]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"wall_s": wall, "peak_rss_mib": rss, "epoch_done_s": done,
            "epoch_time_s": [r["epoch_time_s"] for r in rows]}


def bare_epoch(data_dir: str, batch_size: int, epochs: int, config_spec: str = "") -> dict:
    """Child mode: the trainer's jitted scan epoch, compiled ahead (timed apart), one warm-up
    epoch, then ``epochs`` timed epochs; fetching the step metrics is part of each epoch, as in the
    loop. Nothing else: no evaluation, checkpoint or log. ``config_spec`` (``path[:variant]``)
    replaces the default VAE (its MNIST directory set when it reads one); its FLOPs per example
    are XLA's cost analysis of one compiled training step (every op, not only the matmuls)."""
    import jax
    import numpy as np

    import vae_jax.prng
    import vae_jax.training.trainer as trainer

    if config_spec:
        config, ds, model, keys = common.config_setup(config_spec, data_dir, **{"train.batch_size": batch_size})
    else:
        config, ds, model, keys = common.default_vae(data_dir, 0, batch_size)
    n = len(ds.train_images)
    epoch_fn, steps = trainer.make_epoch(model, config, n)
    state = trainer.init_model_state(config, model, keys["init"], ds.image_shape, ds.train_images, steps)
    images, hparams = jax.device_put(ds.train_images), trainer.hparams_of(config)
    if config_spec:
        step = trainer.make_train_step(model, config)
        step_args = (state, images[:batch_size], keys["noise"], hparams)
        fpe = common.xla_step_flops(step, *step_args) / batch_size
        matmul_fpe = common.jaxpr_matmul_flops(step, *step_args) / batch_size
    else:
        fpe = matmul_fpe = common.train_flops_per_example(state.params)
    t = time.perf_counter()
    compiled = epoch_fn.lower(state, images, keys["data"], keys["noise"], hparams).compile()
    compile_s = time.perf_counter() - t
    times = []
    for e in range(epochs + 1):  # epoch 0: warm-up
        t = time.perf_counter()
        state, m = compiled(state, images, jax.random.fold_in(keys["data"], e + 1), keys["noise"], hparams)
        m, _ = jax.device_get((m, state.step))
        times.append(time.perf_counter() - t)
    rate = steps * batch_size / float(np.median(times[1:]))
    return {"examples_per_s": rate, "epoch_s": times[1:], "warmup_s": times[0], "compile_s": compile_s,
            "batch_size": batch_size, "steps_per_epoch": steps, "flops_per_example": fpe,
            "matmul_flops_per_example": matmul_fpe, "threefry_lowering": vae_jax.prng.active(),
            "config": config_spec or "configs/vae_mnist.py (bench/common.default_vae)",
            "flops_from": "xla_cost_analysis" if config_spec else "matmul_model",
            "loss": float(np.mean(m["loss"]))}


def run_bare(data_dir: str, batch_size: int, epochs: int, config_spec: str = "") -> dict:
    return common.run_json([common.python(), os.path.abspath(__file__), "--data_dir", data_dir, "--bare_epoch",
                            "--batch_size", str(batch_size), "--bare_epochs", str(epochs),
                            "--config", config_spec])


def one_round(data_dir, torch_py, args) -> dict:
    flax_anchor = common.shared_bench("anchor_flax_example.py")
    torch_anchor = common.shared_bench("anchor_pytorch_example.py")
    row = {"load_avg": common.load_avg(), "time_utc": time.strftime("%H:%M:%S", time.gmtime())}
    long_run = run_cli(data_dir, args.epochs_long)
    if flax_anchor:
        row["flax"] = common.run_rate([common.python(), flax_anchor, data_dir])
    short_run = run_cli(data_dir, args.epochs_short)
    bare = run_bare(data_dir, BATCH, args.bare_epochs)
    if torch_py and torch_anchor:
        # PASSIVE: idle OpenMP threads sleep instead of spinning. On a shared, oversubscribed
        # machine spinning made the PyTorch loop ~50x slower; this setting favours the reference.
        row["torch500"] = common.run_rate([torch_py, torch_anchor, data_dir, "500"], env={"OMP_WAIT_POLICY": "PASSIVE"})
    span = args.epochs_long - args.epochs_short
    epoch_s = (long_run["wall_s"] - short_run["wall_s"]) / span
    done = long_run["epoch_done_s"]
    row.update({
        "cli": EXAMPLES_PER_EPOCH / epoch_s,
        "cli_interval": EXAMPLES_PER_EPOCH * span / (done[args.epochs_long] - done[args.epochs_short])
        if args.epochs_long in done and args.epochs_short in done else float("nan"),
        "cli_inner": EXAMPLES_PER_EPOCH / common.median(long_run["epoch_time_s"][1:]),
        "bare": bare["examples_per_s"],
        "cli_wall_long_s": long_run["wall_s"], "cli_wall_short_s": short_run["wall_s"],
        "cli_startup_s": short_run["wall_s"] - args.epochs_short * epoch_s,
        "cli_peak_rss_mib": long_run["peak_rss_mib"], "bare_compile_s": bare["compile_s"],
        "load_avg_end": common.load_avg()})
    return row


RATIOS = (("cli", "flax"), ("cli", "torch500"), ("cli", "bare"), ("cli_interval", "flax"),
          ("cli_interval", "bare"), ("cli_interval", "cli_inner"), ("bare", "flax"))


def summarize(rows) -> dict:
    s = {}
    for k in ("cli", "cli_interval", "cli_inner", "bare", "flax", "torch500", "cli_startup_s", "bare_compile_s"):
        if all(k in r for r in rows):
            s[k] = common.median([r[k] for r in rows])
    for a, b in RATIOS:
        if all(a in r and b in r for r in rows):
            per_round = [r[a] / r[b] for r in rows]
            s[f"{a}/{b}"] = {"median_of_rounds": common.median(per_round), "pooled": s[a] / s[b],
                             "rounds": [round(x, 3) for x in per_round]}
    return s


def mfu(data_dir, batch_sizes, epochs, config_specs=()) -> dict:
    """The bare epoch at each batch size (the default VAE), and of each ``config_specs`` entry
    (``path[:variant]@batch``), between two peak measurements; MFU against their median."""
    peak1 = common.run_json([common.python(), os.path.join(HERE, "common.py")])["median_flops"]
    runs = {str(b): run_bare(data_dir, b, epochs) for b in batch_sizes}
    for spec in config_specs:
        path, _, b = spec.rpartition("@")
        runs[spec] = run_bare(data_dir, int(b), epochs, path)
    peak2 = common.run_json([common.python(), os.path.join(HERE, "common.py")])["median_flops"]
    peak = common.median([peak1, peak2])
    out = {"peak_flops": peak, "peak_flops_each": [peak1, peak2], "by_batch": {}}
    for b, r in runs.items():
        achieved = r["flops_per_example"] * r["examples_per_s"]
        out["by_batch"][str(b)] = {"examples_per_s": r["examples_per_s"], "achieved_flops": achieved,
                                   "mfu": achieved / peak, "flops_per_example": r["flops_per_example"],
                                   "matmul_mfu": r["matmul_flops_per_example"] * r["examples_per_s"] / peak,
                                   "matmul_flops_per_example": r["matmul_flops_per_example"],
                                   "threefry_lowering": r["threefry_lowering"],
                                   "flops_from": r["flops_from"], "compile_s": r["compile_s"],
                                   "epoch_s": r["epoch_s"]}
        print(f"{b}: {r['examples_per_s']:,.0f} ex/s, {achieved / 1e9:.1f} GFLOP/s, "
              f"MFU {100 * achieved / peak:.1f}% of {peak / 1e9:.1f} (matmuls alone: "
              f"{100 * out['by_batch'][str(b)]['matmul_mfu']:.1f}%)", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=5, help="0: MFU only")
    p.add_argument("--epochs_long", type=int, default=6)
    p.add_argument("--epochs_short", type=int, default=2)
    p.add_argument("--bare_epochs", type=int, default=3, help="timed epochs of the bare scan epoch")
    p.add_argument("--torch_python", default=None, help="a Python with torch (default: $VAE_JAX_TORCH_PYTHON, ../torchenv)")
    p.add_argument("--mfu_batch_sizes", default="", help="e.g. 512,2048: also MFU at these batch sizes")
    p.add_argument("--mfu_configs", default="",
                   help="e.g. configs/iwae_two_layer.py@512,configs/iaf_mnist.py@512: also MFU of these "
                        "configs' training step at that batch size (FLOPs by XLA's cost analysis)")
    p.add_argument("--config", default="", help=argparse.SUPPRESS)  # child mode
    p.add_argument("--name", default="train_throughput", help="results file bench/results/<name>.json")
    p.add_argument("--bare_epoch", action="store_true", help=argparse.SUPPRESS)  # child mode
    p.add_argument("--batch_size", type=int, default=BATCH, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    data_dir = common.data_dir(args.data_dir)
    if args.bare_epoch:
        print(json.dumps(bare_epoch(data_dir, args.batch_size, args.bare_epochs, args.config)))
        return

    torch_py = common.torch_python(args.torch_python)
    print("CLI command: " + " ".join(cli_command(data_dir, "<tmp>", args.epochs_long)[1:])
          + f" (and --config.train.epochs={args.epochs_short}); torch: {torch_py or 'not found'}", flush=True)
    result = {"machine": common.machine_description(), "command": " ".join(sys.argv), "rounds": []}
    for r in range(args.rounds):
        row = one_round(data_dir, torch_py, args)
        result["rounds"].append(row)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    if result["rounds"]:
        result["summary"] = summarize(result["rounds"])
        for k, v in result["summary"].items():
            print(f"  {k}: " + (f"{v:,.2f}" if not isinstance(v, dict) else
                                f"median of rounds {v['median_of_rounds']:.3f}, pooled {v['pooled']:.3f}, "
                                f"rounds {v['rounds']}"))
    if args.mfu_batch_sizes or args.mfu_configs:
        result["mfu"] = mfu(data_dir, [int(b) for b in args.mfu_batch_sizes.split(",") if b], args.bare_epochs,
                            [c for c in args.mfu_configs.split(",") if c])
    print("saved", common.save_result(args.name, result))


if __name__ == "__main__":
    main()
