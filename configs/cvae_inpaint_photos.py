"""Inpainting on colour photos: the VAE of ``configs/vae_photos.py`` (32×32×3 patches of real
photographs, discretized mixture of logistics on the 8-bit values, data.source='photos'; here with
MLP nets for a CPU budget, see below) trained for a few epochs, then every inpainting method on the masks centre square, bottom half and random
pixels, including a conditional VAE (MLP, the same hidden sizes, latent size, likelihood and
epochs) trained on (masked patch -> full patch).

    python -m vae_jax.main --config=configs/cvae_inpaint_photos.py --workdir=runs/inpaint_photos \
        --mode=inpaint                                     # trains the VAE first if the workdir has none
    --config=configs/cvae_inpaint_photos.py:tiny           # small and short, for tests (seconds)

No classifier accuracy: a patch's label is the photo it came from, and the test photos are never
trained on (tasks.classifier='none').
"""
import importlib.util
import os

from vae_jax import config as config_base


def _vae_photos(arg):
    spec = importlib.util.spec_from_file_location("vae_photos", os.path.join(os.path.dirname(__file__), "vae_photos.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = _vae_photos("tiny" if "tiny" in variants else None)
    # K = 3 (vae_photos: 5): the CVAE is an MLP whose output layer has H·W·C·K·(C + 2) units, and the
    # completions' likelihood parameters [N, B, H, W, C, K·(C + 2)] are held for the NLL.
    c.model.num_mixtures = 3
    # A 2-core-CPU budget (experiments/inpainting --colour: about 10 minutes with everything, on 2
    # shared cores): MLP encoder/decoder (the conv net of vae_photos trained at ~30 patches/s here
    # with XLA:CPU's convolutions, before vae_jax/models/conv.py made it ≈ 10x faster per epoch,
    # and the per-image posterior fit decodes opt_steps x opt_mc_samples x images), 4,096 training
    # patches, 6 epochs. On a GPU: --config.model.net=conv, data.train_subset=0 (all 6,540),
    # more epochs and the task sizes of the MNIST config.
    c.model.net = "mlp"
    c.model.conv_channels = (32, 64)   # the default: read only with net='conv'
    c.model.encoder_hidden = c.model.decoder_hidden = (128,)
    c.data.train_subset = 4096
    c.train.epochs = 6
    c.train.eval_every = c.train.checkpoint_every = 6
    c.tasks.classifier = "none"
    c.tasks.eval_subset = 128
    c.tasks.inpaint.masks = "centre_square,bottom_half,random"
    c.tasks.inpaint.random_hidden_fraction = 0.75
    c.tasks.inpaint.num_samples = 8
    c.tasks.inpaint.opt_steps = 50
    c.tasks.inpaint.opt_mc_samples = 2
    c.tasks.inpaint.gibbs_steps = 10
    if "tiny" in variants:
        c.train.epochs = 2
        c.train.eval_every = c.train.checkpoint_every = 1
        c.data.train_subset, c.data.test_subset = 256, 64
        c.model.encoder_hidden = c.model.decoder_hidden = (32,)
        c.tasks.eval_subset = 16
        c.tasks.inpaint.num_samples = 3
        c.tasks.inpaint.opt_steps = 20
        c.tasks.inpaint.gibbs_steps = 4
    return c
