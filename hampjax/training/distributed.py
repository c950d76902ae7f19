"""Multi-host setup, asked for by the environment (never by library flags).

``maybe_initialize()`` calls ``jax.distributed.initialize()`` only when the environment asks:

* ``HAMPJAX_DISTRIBUTED=1``: initialize with JAX's auto-detection (TPU pods, SLURM, Open MPI,
  Kubernetes), or with the explicit settings below when they are set;
* ``JAX_COORDINATOR_ADDRESS=host:port`` with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``:
  an explicit cluster (e.g. several processes on one machine for tests).

Entry points call it first. :func:`train_many` then gives each process the chunks of models
``i`` with ``i % process_count == process_index``; each trains on its local devices.
"""

from __future__ import annotations

import os

import jax

__all__ = ["maybe_initialize", "process_count", "process_index", "barrier", "is_main_process"]

_initialized = False


def maybe_initialize() -> bool:
    """Initialize ``jax.distributed`` if the environment asks; return True if it did."""
    global _initialized
    if _initialized:
        return True
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    wanted = os.environ.get("HAMPJAX_DISTRIBUTED", "") == "1" or address is not None
    if not wanted:
        return False
    kwargs = {}
    if address is not None:
        kwargs["coordinator_address"] = address
    for env, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if env in os.environ:
            try:
                kwargs[arg] = int(os.environ[env])
            except ValueError:
                raise ValueError(f"{env} must be an integer, got {os.environ[env]!r}") from None
    jax.distributed.initialize(**kwargs)
    _initialized = True
    return True


def process_count() -> int:
    return jax.process_count()


def process_index() -> int:
    return jax.process_index()


def is_main_process() -> bool:
    """Only process 0 writes reports."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches this point (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
