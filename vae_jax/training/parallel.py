"""Multi-device placement with ``jax.sharding``: data parallelism for one run, and the member axis
of a vmapped sweep group spread over devices.

Data parallel (``train.data_parallel``: ``auto`` | ``on`` | ``off``): a 1-D ``Mesh`` named
``batch`` over all devices; params, optimizer state and the uint8 training set are replicated,
each step's batch is split along its first axis. The jitted ``lax.scan`` epoch is unchanged: XLA's
SPMD partitioner inserts the gradient all-reduce. Random numbers do not depend on the sharding
(JAX's partitionable threefry), so a 4-device run draws exactly what a 1-device run draws and
gives the same metrics up to float reassociation (tests/test_parallel.py).

Several processes (``VAE_JAX_DISTRIBUTED=1``, training/distributed.py): ``jax.devices()`` is the
devices of all processes and the mesh spans them; ``train.batch_size`` stays the global batch.
Each process then puts on its devices only its own rows of every batch: it draws the epoch's order
exactly as the one-process epoch does (``trainer.epoch_order``) and gathers its rows from its own
copy of the training set (``jax.make_array_from_callback``), so the numbers equal a one-process
run on as many devices (tests/test_multiprocess.py).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vae_jax.errors import ConfigError
import vae_jax.training.distributed as distributed
import vae_jax.training.trainer as trainer

DATA_PARALLEL = ("auto", "on", "off")
maybe_initialize_distributed = distributed.maybe_initialize_distributed  # the CLIs call it first


def _put_global(x, sharding):
    """Host array (identical on every host) -> global jax.Array with ``sharding``; works on one
    host and across hosts (each device gets its slice via the callback)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's arrays live. ``mesh is None``: the default device, nothing sharded."""
    mesh: Mesh | None = None

    @property
    def num_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    @property
    def batch_sharding(self):
        return None if self.mesh is None else NamedSharding(self.mesh, P("batch"))

    @property
    def spans_processes(self) -> bool:
        return self.mesh is not None and len({d.process_index for d in self.mesh.devices.flat}) > 1

    def place(self, tree):
        """Replicates every leaf over the mesh (or puts it on the default device)."""
        if self.mesh is None:
            return jax.device_put(tree)
        replicated = NamedSharding(self.mesh, P())
        return jax.tree.map(lambda x: _put_global(x, replicated), tree)

    def train_images(self, images_u8):
        """The training set as ``make_epoch``'s function takes it: on the device(s) for one
        process; the host array each process gathers its rows of every batch from for several."""
        return images_u8 if self.spans_processes else self.place(images_u8)

    def make_epoch(self, model, config, n_train: int):
        """``trainer.make_epoch`` for this placement: (epoch_fn, steps per epoch)."""
        if not self.spans_processes:
            return trainer.make_epoch(model, config, n_train, batch_sharding=self.batch_sharding)
        return _process_local_epoch(model, config, n_train, self)


def _process_local_epoch(model, config, n_train: int, placement: Placement):
    """The epoch of ``trainer.make_epoch`` for a mesh over several processes, fed per process:
    every process draws the same ``trainer.epoch_order`` (no communication) and transfers only
    its devices' rows of each batch; then one jitted ``lax.scan`` over the batches."""
    batch_size = config.train.batch_size
    num_steps = n_train // batch_size
    step = trainer.make_train_step(model, config)
    batches_sharding = NamedSharding(placement.mesh, P(None, "batch"))  # [steps, batch, ...]

    order = jax.jit(functools.partial(trainer.epoch_order, n_train=n_train, batch_size=batch_size,
                                      num_steps=num_steps))

    @functools.partial(jax.jit, donate_argnums=(0,))
    def scan(state, batches, noise_key, hparams):
        return jax.lax.scan(lambda st, batch: step(st, batch, noise_key, hparams), state, batches,
                            unroll=config.train.get("unroll", 1))

    def epoch(state, images_u8, epoch_key, noise_key, hparams):
        idx = np.asarray(order(epoch_key))
        batches = jax.make_array_from_callback(  # the callback runs for this process's devices only
            (num_steps, batch_size) + images_u8.shape[1:], batches_sharding,
            lambda index: images_u8[idx[index[:2]]])
        noise_key, hparams = placement.place((noise_key, hparams))
        return distributed.block_or_exit(scan(state, batches, noise_key, hparams))

    return epoch, num_steps


def data_parallel(config) -> Placement:
    """The placement for ``config.train.data_parallel`` over ``jax.devices()``. Several processes
    train one run only data-parallel: anything else is refused before training."""
    mode = config.train.get("data_parallel", "off")
    devices = jax.devices()
    processes = jax.process_count()
    if processes > 1 and mode == "off":
        raise ConfigError(f"train.data_parallel: 'off', but this run spans {processes} processes "
                          "(VAE_JAX_DISTRIBUTED=1), which would each train a copy into one workdir; "
                          "use 'auto' or 'on', or start one process")
    if mode == "off" or len(devices) == 1:
        return Placement()
    bs = config.train.batch_size
    if bs % len(devices):
        if mode == "on" or processes > 1:
            of = f" of {processes} processes" if processes > 1 else ""
            raise ConfigError(f"train.batch_size: {bs} is not divisible by the {len(devices)} devices{of} "
                              f"that train.data_parallel={mode!r} splits it over")
        print(f"data parallel: off (train.batch_size={bs} not divisible by {len(devices)} devices)")
        return Placement()
    of = f" of {processes} processes" if processes > 1 else ""
    print(f"data parallel: batch of {bs} split over {len(devices)} devices{of}")
    return Placement(Mesh(np.array(devices), ("batch",)))


def member_sharding(num_members: int):
    """NamedSharding splitting a vmapped group's leading (member) axis over as many devices as
    divide ``num_members``; None on one device. Each device then trains its own members."""
    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if num_members % d == 0)
    if n == 1:
        return None
    return NamedSharding(Mesh(np.array(devices[:n]), ("members",)), P("members"))


def shard_members(tree, sharding):
    """Places stacked per-member arrays [M, ...] with ``member_sharding`` (no-op when None)."""
    if sharding is None:
        return tree
    return jax.tree.map(lambda x: _put_global(x, sharding), tree)
