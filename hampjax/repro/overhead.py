"""HAMP Table VII: per-sample inference time without and with HAMP's output modification.

The paper pre-computes the random inputs' outputs and times only the sort-and-scatter; so does
this benchmark (``modify_output_ms``), next to the model's forward pass (``forward_ms``);
``hamp_ms`` is their sum. Untrained weights time the same as trained ones, so no data and no
training are needed: the input shapes come from :data:`hampjax.data.DATASET_INFO`. Results go
to ``<workdir>/overhead.json`` (one entry per dataset; finished datasets are skipped).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import atomic, validation
from hampjax.data import DATASET_INFO, DATASETS
from hampjax.defenses.output_modification import OutputModifier
from hampjax.models import model_functions
from hampjax.repro import rundir
from hampjax.repro.datasets import default_model

__all__ = ["run_overhead", "check_overhead"]

# fold_in streams of the benchmark's key.
_INIT, _QUERIES, _POOL, _DRAW = 0, 1, 2, 3


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())  # Compile and warm up.
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _input_shape(dataset: str) -> tuple[int, ...]:
    info = DATASET_INFO[dataset]
    # digits' paper-free MLP takes flat 64-vectors (hampjax.repro.datasets); the others as loaded.
    return (int(np.prod(info.example_shape)),) if dataset == "digits" else info.example_shape


def check_overhead(config: Any) -> None:
    """Check the benchmark's fields (datasets, batch, repeats, pool size)."""
    for dataset in config.datasets:
        validation.check_choice("config.datasets[]", dataset, DATASETS)
    validation.check_positive_int("config.batch", config.batch)
    validation.check_positive_int("config.repeats", config.repeats)
    validation.check_positive_int("config.pool_size", config.pool_size)


def run_overhead(config: Any, workdir: str, progress: bool) -> list[str]:
    """The ``hamp_overhead`` experiment kind; returns its cells (the datasets)."""
    del progress
    check_overhead(config)
    path = os.path.join(workdir, "overhead.json")
    results = atomic.read_json(path, {})
    batch = int(config.batch)
    for dataset in config.datasets:
        if dataset in results:
            continue
        shape = _input_shape(dataset)
        model = default_model(dataset, DATASET_INFO[dataset].num_classes, config.get("model"))
        init_fn, apply_fn = model_functions(model)
        key = jax.random.key(config.seed)
        variables = init_fn(jax.random.fold_in(key, _INIT), jnp.zeros((1,) + shape, jnp.float32))
        x = jax.random.normal(jax.random.fold_in(key, _QUERIES), (batch,) + shape, jnp.float32)
        forward = jax.jit(lambda v, inputs: apply_fn(v, inputs, train=False)[0])
        logits = forward(variables, x)
        pool = forward(variables, jax.random.normal(jax.random.fold_in(key, _POOL),
                                                    (config.pool_size,) + shape, jnp.float32))
        draw_key = jax.random.fold_in(key, _DRAW)
        modifier = OutputModifier.from_pool(pool)  # A pytree: jit traces the pool as an input.
        modify = jax.jit(lambda mod, out, k: mod(out, k))
        t_forward = _median_seconds(lambda: forward(variables, x), config.repeats)
        t_modify = _median_seconds(lambda: modify(modifier, logits, draw_key), config.repeats)
        results[dataset] = {
            "forward_ms": 1e3 * t_forward / batch, "modify_output_ms": 1e3 * t_modify / batch,
            "hamp_ms": 1e3 * (t_forward + t_modify) / batch, "batch": batch,
            "device": str(jax.devices()[0].device_kind)}
        print(f"[{dataset}] forward {results[dataset]['forward_ms']:.4f} ms/sample, output "
              f"modification {results[dataset]['modify_output_ms']:.4f} ms/sample")
        if rundir.is_main_process():
            atomic.write_json(path, results)
    return list(config.datasets)
