"""Conv VAE on 32×32×3 colour patches of real photographs, discretized mixture of logistics.

Offline: the data are patches of seven photographs that scikit-learn and scikit-image ship
(data.source='photos', vae_jax/data/photos.py; whole photos held out for test). eval.json holds
bits_per_dim from the ELBO and, because train.evaluate_after is set, the evaluation of the
finished run: nll_iwae in nats and nll_iwae_bits_per_dim (k = eval.iwae_k = 100 here; a tighter
bound afterwards with --mode=evaluate --iwae_k=5000).

    python -m vae_jax.main --config=configs/vae_photos.py --workdir=runs/photos
    python -m vae_jax.main --mode=evaluate --workdir=runs/photos --iwae_k=5000   # optional
    --config=configs/vae_photos.py:tiny             # small and short, for tests

For CIFAR-10 or SVHN prepared with TFDS: --config.data.source=tfds --config.data.name=cifar10.
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.data.source = "photos"
    c.data.name = "photos"
    c.data.binarization = "none"       # the likelihood models the 8-bit values themselves
    c.model.kind = "vae"
    c.model.net = "conv"
    c.model.conv_channels = (32, 64)   # 32 -> 16 -> 8
    c.model.encoder_hidden = (256,)
    c.model.decoder_hidden = (256,)
    c.model.latent_dim = 32
    c.model.likelihood = "discretized_mix_logistic"
    c.model.num_mixtures = 5
    c.train.epochs = 20
    c.train.batch_size = 64
    c.train.eval_batch_size = 500
    c.train.eval_every = 5
    c.train.checkpoint_every = 10
    # The evaluator's Fréchet distance trains its feature classifier on the data's labels and scores
    # it on the test labels; here a label is the photo a patch came from and the test photos are
    # other photos, so that score means nothing. experiments/likelihood_blur_colour computes the FD
    # with a classifier scored on held-out training patches instead.
    c.eval.fid = False
    c.eval.iwae_k = 100                # ≈ 1.5 min for the 495 test patches on 2 CPU cores
    c.train.evaluate_after = True
    if "tiny" in variants:
        config_base.tiny(c)
        c.data.source = "photos"       # tiny() selects the bundled MNIST digits; keep the colour set
        c.model.conv_channels = (8, 16)
        c.model.num_mixtures = 3
    return c
