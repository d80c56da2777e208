"""Residual hierarchical VAE (VDVAE-style, vae_jax/models/families/hvae.py) on 32×32×3 patches of
real photographs, discretized mixture of logistics, reported in bits/dim.

Bottom-up and top-down residual conv blocks over 32 → 16 → 8 → 4, two blocks per resolution,
a spatial latent of 4 channels in every top-down block at 4×4, 8×8 and 16×16 (six layers). The
data are the offline colour set of configs/vae_photos.py (data.source='photos'); train both for
the same epochs to compare their bits/dim. Like vae_photos (train.evaluate_after), the training
command also evaluates the finished run: eval.json holds nll_iwae in nats and bits/dim.

    python -m vae_jax.main --config=configs/hvae_photos.py --workdir=runs/hvae_photos
    python -m vae_jax.main --mode=evaluate --workdir=runs/hvae_photos
    --config=configs/hvae_photos.py:tiny            # small and short, for tests
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.load_config_file(config_base.sibling(__file__, "vae_photos.py"))  # data, eval, schedule
    c.model.kind = "hvae"
    base = config_base.base_config().model
    for field in ("net", "conv_channels", "encoder_hidden", "decoder_hidden", "latent_dim"):
        c.model[field] = base[field]   # the conv VAE's fields, which hvae does not read
    c.model.hvae.num_resolutions = 4   # 32 -> 16 -> 8 -> 4
    c.model.hvae.blocks = 2
    c.model.hvae.latent_resolutions = 3
    c.model.hvae.latent_channels = 4
    c.model.hvae.width = 32
    c.model.activation = "gelu"
    # Deep hierarchies have rare gradient spikes early on (VDVAE skips those updates); clipping
    # keeps one spike from wrecking a short CPU run.
    c.optim.grad_clip_norm = 200.0
    if "tiny" in variants:
        config_base.tiny(c)
        c.data.source = "photos"       # tiny() selects the bundled MNIST digits; keep the colour set
        c.model.num_mixtures = 3
    return c
