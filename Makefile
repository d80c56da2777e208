# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/quickstart

.PHONY: env demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# Builds the fused Adam kernel now rather than in the first training run; without a C++
	# compiler it says why and training uses optax.
	-$(PY) -m vae_jax.fused_adam
	touch $@

env: $(VENV)/.installed

demo: env
	$(PY) -m vae_jax.main --config=configs/quickstart.py --workdir=$(DEMO_DIR)

test: env
	$(PY) -m pytest

test-slow: env
	$(PY) -m pytest -m slow

# Side-by-side benchmarks (BENCHMARKS.md). MNIST_DIR: the four MNIST IDX files.
MNIST_DIR ?= ../shared/data/mnist
bench: env
	$(PY) bench/train_throughput.py --data_dir $(MNIST_DIR)
	$(PY) bench/time_to_nats.py --data_dir $(MNIST_DIR) --config configs/vae_mnist_fast.py
	$(PY) bench/time_to_nats.py --data_dir $(MNIST_DIR) --config configs/vae_mnist.py --epochs 2 --target 0
	$(PY) bench/iwae_throughput.py --data_dir $(MNIST_DIR)
	$(PY) bench/sweep_speedup.py --data_dir $(MNIST_DIR)
	$(PY) bench/step_cost_model.py --data_dir $(MNIST_DIR)

clean:
	rm -rf runs .pytest_cache
