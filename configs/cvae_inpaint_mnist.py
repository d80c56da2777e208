"""Inpainting on MNIST: the 784-500-20 Bernoulli VAE (dynamic binarization) trained for a few
epochs, then every inpainting method, including a conditional VAE of the same sizes and epochs
trained on (masked image -> full image).

    python -m vae_jax.main --config=configs/cvae_inpaint_mnist.py --workdir=runs/inpaint \
        --config.data.dir=/path/to/mnist --mode=inpaint   # trains the VAE first if the workdir has none
    --config=configs/cvae_inpaint_mnist.py:tiny           # bundled data, seconds (tests)
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()  # its model is the 784-500-20 Bernoulli VAE, dynamic binarization
    c.train.epochs = 5
    c.tasks.inpaint.masks = "bottom_half,centre_square,random,quadrant"
    c.tasks.inpaint.random_hidden_fraction = 0.75
    if "tiny" in variants:
        config_base.tiny(c)
    return c
