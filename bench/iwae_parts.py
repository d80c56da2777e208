"""Where one IWAE chunk (S = 500 samples × B = 100 images) spends its time: the whole bound, the
decoder alone, a bare matmul of the decoder's last layer, and the likelihood on image-shaped vs
flat arrays. Random weights (timing only).

    python bench/iwae_parts.py
"""
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from conftest import load_config  # noqa: E402
from vae_jax import distributions as D, iwae, models  # noqa: E402
c = load_config("vae_mnist", None)
m = models.build_model(c.model, (28, 28, 1))
p = models.init_params(m, jax.random.PRNGKey(0), (28, 28, 1))
x = (jax.random.uniform(jax.random.PRNGKey(1), (100, 28, 28, 1)) < 0.3).astype(jnp.float32)
def timeit(f, *a, n=3):
    r = f(*a); jax.block_until_ready(r); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return min(ts)
t_full = timeit(lambda: iwae.iwae_batch(m, p, x, jax.random.PRNGKey(2), 1000, 500))
z = jax.random.normal(jax.random.PRNGKey(3), (50000, 20))
dec = jax.jit(lambda z: m.apply({"params": p}, z, method="decode"))
t_dec = timeit(dec, z)
W = jax.random.normal(jax.random.PRNGKey(4), (500, 784)); H = jax.random.normal(jax.random.PRNGKey(5), (50000, 500))
mm = jax.jit(lambda h: h @ W)
t_mm = timeit(mm, H)
lw = jax.jit(lambda z: iwae.log_weights(m, p, x, jnp.zeros((100, 20)), jnp.zeros((100, 20)), jax.random.PRNGKey(0), 500))
t_lw = timeit(lw, z)
fl = 2 * (20 * 500 + 500 * 784)
print(f"iwae_batch k=1000 (2 chunks of 500x100): {t_full:.3f}s -> {2*50000*fl/t_full/1e9:.1f} GFLOP/s")
print(f"log_weights 1 chunk: {t_lw:.3f}s; decoder alone on 50000 rows: {t_dec:.3f}s -> {50000*fl/t_dec/1e9:.1f} GFLOP/s; matmul 50000x500x784: {t_mm:.3f}s -> {2*50000*500*784/t_mm/1e9:.1f} GFLOP/s")
lik = models.likelihood_of(m)
lp = jax.random.normal(jax.random.PRNGKey(6), (500, 100, 28, 28, 1, 1))
t_lik = timeit(jax.jit(lambda lp: lik.log_prob(x, lp)), lp)
lp2 = lp.reshape(500, 100, 784)
xf = x.reshape(100, 784)
t_lik2 = timeit(jax.jit(lambda lp2: jnp.sum(xf * lp2 - D.softplus(lp2), -1)), lp2)

def image_shaped(lp):  # the form used before distributions._flatten
    l = lp[..., 0]
    return jnp.sum((x * l - D.softplus(l)).reshape(l.shape[:2] + (-1,)), -1)


t_img = timeit(jax.jit(image_shaped), lp)
print(f"likelihood: library {t_lik:.3f}s; flat [S,B,784] by hand {t_lik2:.3f}s; image-shaped [S,B,28,28,1] {t_img:.3f}s")
def lw_parts(z):
    zz = z.reshape(500, 100, 20)
    out = m.apply({"params": p}, z, method="decode").reshape(500, 100, 28, 28, 1, 1)
    return lik.log_prob(x, out)
t_dl = timeit(jax.jit(lw_parts), z)
print(f"decode+likelihood: {t_dl:.3f}s")
