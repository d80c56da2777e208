"""Multi-device placement with ``jax.sharding``: data parallelism for one run, and the member axis
of a vmapped sweep group spread over devices.

Data parallel (``train.data_parallel``: ``auto`` | ``on`` | ``off``): a 1-D ``Mesh`` named
``batch`` over all devices; params, optimizer state and the uint8 training set are replicated,
each step's batch is split along its first axis. The jitted ``lax.scan`` epoch is unchanged: XLA's
SPMD partitioner inserts the gradient all-reduce. Random numbers do not depend on the sharding
(JAX's partitionable threefry), so a 4-device run draws exactly what a 1-device run draws and
gives the same metrics up to float reassociation (tests/test_parallel.py).

Multi-host: start every host with the same command after ``jax.distributed.initialize()``
(``VAE_JAX_DISTRIBUTED=1`` makes ``vae_jax.main`` / ``vae_jax.sweep`` call it; on SLURM/TPU pods
it reads the coordinator from the environment). ``jax.devices()`` is then the global device
list, and ``place`` builds global arrays from each host's identical copy of the data.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_PARALLEL = ("auto", "on", "off")


def maybe_initialize_distributed() -> bool:
    """Calls ``jax.distributed.initialize()`` when ``VAE_JAX_DISTRIBUTED=1`` (multi-host runs)."""
    if os.environ.get("VAE_JAX_DISTRIBUTED", "") not in ("1", "true"):
        return False
    jax.distributed.initialize()
    return True


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

    def place(self, tree):
        """Replicates every leaf over the mesh (or puts it on the default device)."""
        if self.mesh is None:
            return jax.device_put(tree)
        replicated = NamedSharding(self.mesh, P())
        return jax.tree.map(lambda x: _put_global(x, replicated), tree)


def data_parallel(config) -> Placement:
    """The placement for ``config.train.data_parallel`` over ``jax.devices()``."""
    mode = config.train.get("data_parallel", "off")
    devices = jax.devices()
    if mode == "off" or len(devices) == 1:
        return Placement()
    bs = config.train.batch_size
    if bs % len(devices):
        if mode == "on":
            from vae_jax.errors import ConfigError
            raise ConfigError(f"train.batch_size: {bs} is not divisible by the {len(devices)} devices "
                              "that train.data_parallel='on' splits it over")
        print(f"data parallel: off (train.batch_size={bs} not divisible by {len(devices)} devices)")
        return Placement()
    print(f"data parallel: batch of {bs} split over {len(devices)} devices")
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
