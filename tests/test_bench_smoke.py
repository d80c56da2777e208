"""Fast checks of the benchmark helpers (bench/): the FLOP model and the log parsing they rely on."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import flops  # noqa: E402
import step_cost_model  # noqa: E402
import time_to_nats  # noqa: E402
from configs import vae_mnist  # noqa: E402
from vae_jax import models  # noqa: E402


def test_flop_model_of_the_default_vae():
    config = vae_mnist.get_config()
    model = models.build_model(config.model, (28, 28, 1))
    import jax

    params = models.init_params(model, jax.random.PRNGKey(0), (28, 28, 1))
    # encoder 784→500→(20+20), decoder 20→500→784; 2 FLOPs per multiply-add
    forward = 2 * (784 * 500 + 500 * 40 + 20 * 500 + 500 * 784)
    assert flops.forward_matmul_flops(params) == forward
    assert flops.train_flops_per_example(params) == 3 * forward == 4_884_000
    assert flops.forward_matmul_flops(params["decoder"]) == 2 * (20 * 500 + 500 * 784)


def test_matmul_peak_is_a_rate():
    r = flops.matmul_peak(n=128, repeats=2)
    assert r["best_flops"] >= r["median_flops"] > 0
    assert len(r["times_s"]) == 2


@pytest.mark.parametrize("line,expected", [
    ("epoch 12/26: train neg_elbo 100.1, test 99.3125 (25000 ex/s)", (12, 99.3125)),
    ("epoch 3/26: train neg_elbo 104.0 (25000 ex/s)", None),
])
def test_time_to_nats_parses_the_cli_lines(line, expected):
    m = time_to_nats._TEST.search(line)
    assert (m is None) if expected is None else ((int(m.group(1)), float(m.group(3))) == expected)


def test_step_cost_fit_recovers_fixed_and_per_example_cost():
    sizes = [8, 16, 32, 64, 128, 256]
    fixed, per_ex = step_cost_model.fit_line(sizes, [1.4 + 0.033 * b + (0.01 if b == 64 else 0.0) for b in sizes])
    assert fixed == pytest.approx(1.4, abs=0.01) and per_ex == pytest.approx(0.033, abs=1e-4)
