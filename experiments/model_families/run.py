"""Model families at equal budget on dynamically binarized MNIST: VAE, IWAE-5, MIWAE, VampPrior, IAF,
two stochastic layers and the ladder VAE, each trained the same number of epochs (its own config's
architecture, batch size and learning rate), then evaluated by the same k = 5000 importance-weighted
NLL (``experiments/iwae_table1/run.py`` does the training through the CLI and the evaluation, one
call per family). Writes results.json, results.md and the README's results block.

    python experiments/model_families/run.py --data_dir ../shared/data/mnist [--epochs 2]
        [--nll_subset 1000] [--nll_k 5000] [--families vae,iaf] [--decoder_bias_init zeros]
        [--warmup_fraction 0.1] [--workdir W] [--out O] [--report_only]

``--decoder_bias_init`` is applied to every family alike (``model.decoder_bias_init``; default
``data_mean``: the Bernoulli decoder's output bias starts at the logit of the training mean pixel, as
in Burda et al.'s code), so that no family starts with an advantage the others lack.

``--warmup_fraction F`` (default 0.1): a family whose config trains with a KL warm-up
(``objective.name=elbo_warmup``: VampPrior, the ladder) warms up over the first F of *this* budget's
steps instead of its config's 10 epochs, which at a budget of a few epochs would leave the whole
run at β < 1, training another objective than the ELBO the others train. 0.1 is the published
runs' proportion (Sønderby et al.: 200 of 2,000 epochs). ``config`` keeps each config's own.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE1 = os.path.join(os.path.dirname(HERE), "iwae_table1", "run.py")
# name: (config, objective overrides, published test NLL: (paper, pythae's reproduction), source)
FAMILIES = {
    "vae": ("configs/iwae_table1.py", [], (86.76, None), "Burda et al. 2015, Table 1 (VAE, 1 layer, k=1)"),
    "iwae5": ("configs/iwae_table1.py", ["--config.objective.name=iwae", "--config.objective.iwae_k=5"],
              (85.54, None), "Burda et al. 2015, Table 1 (IWAE, 1 layer, k=5)"),
    "miwae": ("configs/iwae_table1.py", ["--config.objective.name=miwae", "--config.objective.iwae_m=2",
                                         "--config.objective.iwae_k=5"],
              (None, 85.09), "pythae's reproduction (MIWAE); Rainforth et al. 2018 give no comparable MNIST NLL"),
    "vampprior": ("configs/vamp_mnist.py", [], (85.57, 85.79), "Tomczak & Welling 2018 (VampPrior, MLP); pythae"),
    "iaf": ("configs/iaf_mnist.py", [], (None, None), "none comparable: Kingma et al. 2016's MNIST IAF models are convolutional ResNets"),
    "two_layer": ("configs/iwae_two_layer.py", [], (85.33, None), "Burda et al. 2015, Table 1 (VAE, 2 layers, k=1)"),
    "ladder": ("configs/ladder_mnist.py", [], (81.74, None), "Sønderby et al. 2016 (LVAE, 5 layers, BN, 2000 epochs)"),
}


def main():
    p = _shared.parser("model_families", __doc__, epochs=2)
    p.add_argument("--nll_k", type=int, default=5000)
    p.add_argument("--nll_subset", type=int, default=1000, help="first N test images for the NLL (0: all 10k)")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of " + ",".join(FAMILIES))
    p.add_argument("--decoder_bias_init", default="data_mean", choices=("data_mean", "zeros"),
                   help="model.decoder_bias_init of every family")
    p.add_argument("--warmup_fraction", default=0.1, type=_warmup_fraction,
                   help="KL warm-up over this fraction of the budget for configs with one ('config': their own)")
    p.add_argument("--report_only", action="store_true",
                   help="no training: rewrite the table of --families from the rows already in results.json")
    args = _shared.parse(p)
    names = [n for n in args.families.split(",") if n]
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        p.error(f"--families: unknown {unknown}; choose from {list(FAMILIES)}")
    results_path = os.path.join(args.out, "results.json")
    for name in [] if args.report_only else names:
        config, objective, _, _ = FAMILIES[name]
        e = args.epochs
        warmup = warmup_overrides(config, e, args.warmup_fraction)
        run_name = f"{name}_{args.decoder_bias_init}" + (f"_warmup{args.warmup_fraction}" if warmup else "")
        cmd = [sys.executable, TABLE1, "--data_dir", args.data_dir, "--config", config + (":tiny" if args.tiny else ""),
               "--workdir", os.path.join(args.workdir, run_name), "--out", args.out, "--label", name,
               "--nll_k", str(10 if args.tiny else args.nll_k), "--nll_subset", str(20 if args.tiny else args.nll_subset),
               *objective, f"--config.model.decoder_bias_init={args.decoder_bias_init}", f"--config.train.epochs={e}", f"--config.train.eval_every={e}",
               f"--config.train.checkpoint_every={e}", "--config.train.progress=False"]
        cmd += warmup
        if args.tiny:
            cmd = [c for c in cmd if not c.startswith(("--config.train.", "--config.objective.warmup"))] + [
                "--config.train.epochs=1"]
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, cwd=_shared.REPO)
    rows = json.load(open(results_path))
    missing = [n for n in names if n not in rows]
    if missing:
        p.error(f"--report_only: {results_path} has no row for {missing}; run them first")
    out_rows = []
    for name in names:
        r = rows[name]
        paper, pythae = FAMILIES[name][2]
        units = r.get("active_units_per_layer") or {"z": r.get("active_units")}
        warmup = next((o.split("=", 1)[1] for o in r["overrides"] if o.startswith("--config.objective.warmup_steps=")),
                      None)
        out_rows.append({"family": name, "config": r["config"], "epochs": r["trained_epochs"],
                         "warmup": f"{warmup} steps" if warmup else "–",
                         "nll": r["test_nll_iwae"], "neg_elbo": r["test_neg_elbo"],
                         "active": " + ".join(str(v) for v in units.values()),
                         "epoch_s": r.get("epoch_seconds_median"), "paper": paper, "pythae": pythae,
                         "source": FAMILIES[name][3]})
    table = _shared.markdown_table(out_rows, [
        ("family", "family", ""), ("epochs", "epochs", "d"), ("warmup", "KL warm-up", ""), ("nll", f"test NLL (k={args.nll_k})", ".2f"),
        ("neg_elbo", "test −ELBO", ".2f"), ("active", "active units", ""), ("epoch_s", "s/epoch", ".1f"),
        ("paper", "published", ".2f"), ("pythae", "pythae", ".2f"), ("source", "published number from", "")])
    first = rows[names[0]]
    warmup_text = ("each config's own" if args.warmup_fraction == "config"
                   else f"over the first {args.warmup_fraction} of the budget where a config has one")
    head = (f"{args.epochs} epochs per family; decoder output bias at init: {args.decoder_bias_init}; KL warm-up "
            f"{warmup_text}; NLL on the "
            f"first {first['nll_test_images']} test images; "
            f"device: {first['device']}.\n\n")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(head + table + "\n")
    if not args.tiny and os.path.realpath(args.out) == os.path.realpath(HERE):
        _shared.update_readme(os.path.join(HERE, "README.md"), head + table)
    print(head + table)


def _warmup_fraction(text: str):
    """``--warmup_fraction``: a number in (0, 1], or 'config'."""
    if text == "config":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in (0, 1] or 'config'")
    return value


def warmup_overrides(config_file: str, epochs: int, fraction) -> list[str]:
    """``--config.objective.warmup_steps=N`` for a config that warms its KL up: N = the fraction of
    this budget's steps (60,000 training images, the config's batch size)."""
    from vae_jax import config as config_lib
    config = config_lib.load_config_file(os.path.join(_shared.REPO, config_file))
    if fraction == "config" or config.objective.name != "elbo_warmup":
        return []
    steps = epochs * (60000 // config.train.batch_size)
    return [f"--config.objective.warmup_steps={max(1, round(fraction * steps))}"]


if __name__ == "__main__":
    main()
