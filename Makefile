# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/quickstart

.PHONY: env demo test test-all test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

env: $(VENV)/.installed

demo: env
	$(PY) -m vae_jax.main --config=configs/quickstart.py --workdir=$(DEMO_DIR)

# The loop a developer runs on every change (<= 3 minutes on 2 cores; README "Tests").
test: env
	$(PY) -m pytest

# Everything: the default suite and the slow checks (CI runs this).
test-all: env
	$(PY) -m pytest -m ''

test-slow: env
	$(PY) -m pytest -m slow

# Side-by-side benchmarks (BENCHMARKS.md). MNIST_DIR: the four MNIST IDX files.
MNIST_DIR ?= ../shared/data/mnist
bench: env
	$(PY) bench/train_throughput.py --data_dir $(MNIST_DIR) --mfu_batch_sizes 512,2048
	$(PY) bench/time_to_nats.py --data_dir $(MNIST_DIR) --config configs/vae_mnist_fast.py
	$(PY) bench/iwae_throughput.py --data_dir $(MNIST_DIR)
	$(PY) bench/sweep_speedup.py --data_dir $(MNIST_DIR)

clean:
	rm -rf runs .pytest_cache
