"""Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders", Table 1, two
stochastic layers on MNIST: x → 200, 200 (tanh) → z_1 (100) → 100, 100 (tanh) → z_2 (50), the
generative path mirrored (z_2 → 100, 100 → p(z_1|z_2) → 200, 200 → Bernoulli x), every layer a
diagonal Gaussian (vae_jax/models/families/two_layer.py). Training recipe as the one-layer
configs/iwae_table1.py (its schedule, optimizer, batch size and dynamic binarization are read from
that file, so the two stay the same).

    --config=configs/iwae_two_layer.py            VAE (k=1), full 3,280-epoch schedule (accelerators)
    --config=configs/iwae_two_layer.py:iwae5      IWAE k=5, full schedule
    --config=configs/iwae_two_layer.py:cpu        the CPU-budget schedule of iwae_table1.py
    --config=configs/iwae_two_layer.py:tiny       seconds-long smoke version (bundled data)
eval.json then holds kl_per_dim/z1, kl_per_dim/z2, active_units/z1, active_units/z2 (Burda et
al. count active units per layer, §5.2).
"""
from vae_jax import config as config_base


def get_config(arg=None):
    parts = config_base.parse_arg(arg, {"iwae5", "cpu", "tiny"}, __file__)
    c = config_base.load_config_file(config_base.sibling(__file__, "iwae_table1.py"),
                                     ",".join(sorted(parts - {"tiny"})))
    c.model = config_base.base_config().model   # the recipe only: none of the one-layer model fields
    c.model.kind = "two_layer"
    c.model.likelihood = "bernoulli"
    c.model.decoder_bias_init = "data_mean"
    c.model.two_layer.latent_dims = (100, 50)
    c.model.two_layer.hidden = (200, 100)
    c.model.two_layer.hidden_layers = 2
    c.model.two_layer.activation = "tanh"
    c = config_base.apply_variants(c, parts)
    if "tiny" in parts:
        c.optim.stage_epochs = (1, 1)
        c.train.epochs = 2
    return c
