"""What the per-step ``mse`` training metric costs: the trainer's epoch with the current
``objectives._mse`` (flat arrays), with the earlier image-shaped form, and with no mse at all,
timed round-robin in one process (CPU time per epoch of 25,600 images).

    python bench/mse_metric_ab.py [--data_dir DIR] [--rounds 7]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vae_jax import objectives, train

    def image_shaped(model, x, lik_params):  # the form before this change
        d = (objectives.likelihood_of(model).mean(lik_params) - x).reshape(x.shape[0], -1)
        return jnp.mean(jnp.sum(d * d, axis=-1)) / d.shape[1]

    variants = {"flat (current)": objectives._mse, "image-shaped": image_shaped,
                "no mse": lambda model, x, lik_params: jnp.zeros(())}
    config, ds, model, keys, images = common.default_vae(args.data_dir, 25600, 128)
    epochs = {}
    for name, fn in variants.items():
        objectives._mse = fn  # read when the epoch is traced, i.e. on its first call below
        epoch, _ = train.make_train_epoch(model, config, len(images))
        state = train.create_state(config, model, keys["init"], ds.image_shape)
        state, m = epoch(state, images, keys["data"], keys["noise"])
        jax.block_until_ready(m)
        epochs[name] = [epoch, state]
    cpu = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (epoch, state) in epochs.items():
            c = time.process_time()
            state, m = epoch(state, images, jax.random.fold_in(keys["data"], r), keys["noise"])
            jax.block_until_ready(m)
            cpu[name].append(time.process_time() - c)
            epochs[name][1] = state
    for name in variants:
        print(f"{name:16s} CPU {np.median(cpu[name]):.3f} s per epoch of {len(images)} images")


if __name__ == "__main__":
    main()
