"""Colorization of colour photos: conditional VAE p(chroma | luminance, z) with q(z | colour,
luminance), 3072/2048-256-16 MLPs, Gaussian likelihood on the chroma (B − Y, R − Y) per unit of
luminance, on 32×32 patches of real photographs (data.source='photos', whole photos held out for
test); plus the deterministic regressor with the same decoder network.

    python -m vae_jax.main --config=configs/cvae_colorize_photos.py --workdir=runs/colorize_photos \
        --mode=colorize
    --config=configs/cvae_colorize_photos.py:tiny           # small and short, for tests (seconds)
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.data.source = "photos"
    c.data.name = "photos"
    c.data.binarization = "none"
    c.model.kind = "vae"           # the CVAE takes its layer sizes, latent size and likelihood from here
    c.model.encoder_hidden = (256,)
    c.model.decoder_hidden = (256,)
    c.model.latent_dim = 16
    c.model.likelihood = "gaussian"
    # Photo chroma is small (|B − Y|, |R − Y| mostly < 0.2): at σ = 1 the reconstruction term is too
    # weak against the KL for the decoder to read z; 0.1 makes a chroma error of 0.1 cost 0.5 nats.
    c.model.sigma = 0.1
    c.train.epochs = 10
    c.train.batch_size = 64
    c.tasks.classifier = "none"
    c.tasks.eval_subset = 256
    c.tasks.colorize.num_samples = 8
    c.tasks.colorize.kl_warmup_steps = 500
    if "tiny" in variants:
        config_base.tiny(c)
        c.data.source = "photos"       # tiny() selects the bundled MNIST digits; keep the colour set
        c.data.train_subset, c.data.test_subset = 256, 64
        c.train.epochs = 2
        c.tasks.eval_subset = 16
        c.tasks.colorize.kl_warmup_steps = 8
    return c
