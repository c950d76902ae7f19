"""HAMP Table VII: per-sample inference time without and with HAMP's output modification,
and with MemGuard's.

The paper pre-computes the random inputs' outputs and times only the sort-and-scatter; so does
this benchmark (``modify_output_ms``), next to the model's forward pass (``forward_ms``);
``hamp_ms`` is their sum. Untrained weights time the same as trained ones, so no data and no
training are needed: the input shapes come from :data:`hampjax.data.DATASET_INFO`. Results go
to ``<workdir>/overhead.json`` (one entry per dataset; finished datasets are skipped, an entry
written before MemGuard's timing is redone).

MemGuard (:mod:`hampjax.defenses.memguard`, the spec's settings ``config.memguard``, default
the HAMP code's): its per-query search on the model's logits with the defender's classifier
(untrained: the classifier's training is offline, like HAMP's pool). How many steps a query
takes depends on the classifier and the query, so the headline is the fixed budget, every
query taking all ``c3_rounds x max_steps`` steps (the upper bound of the vectorized
search): ``memguard_search_ms`` per query in batches of ``config.memguard_batch``,
``memguard_search_single_ms`` one query at a time, ``memguard_ms`` = forward + batched
search. With early exit (the loops stop once no query of the batch moves) on this untrained
classifier: ``memguard_early_exit_search_ms`` and the mean steps per query
``memguard_steps`` (``memguard_budget_steps`` is the budget).
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
from hampjax.defenses.memguard import init_memguard_classifier, memguard_logits
from hampjax.defenses.output_modification import OutputModifier
from hampjax.models import model_functions
from hampjax.repro import rundir
from hampjax.repro.datasets import default_model
from hampjax.training import MemGuardSpec

__all__ = ["run_overhead", "check_overhead"]

# fold_in streams of the benchmark's key.
_INIT, _QUERIES, _POOL, _DRAW, _MEMGUARD = 0, 1, 2, 3, 4


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


def _memguard_spec(config: Any) -> MemGuardSpec:
    """``config.memguard`` (MemGuard's settings, :class:`~hampjax.training.MemGuardSpec`
    fields; absent: the defaults)."""
    fields = config.get("memguard")
    if fields is None:
        return MemGuardSpec()
    try:
        return MemGuardSpec.from_dict({**MemGuardSpec().to_dict(), **dict(fields)})
    except ValueError as e:
        raise ValueError(f"config.memguard: {e}") from None


def check_overhead(config: Any) -> None:
    """Check the benchmark's fields (datasets, batch, repeats, pool size, MemGuard's batch
    and settings)."""
    for dataset in config.datasets:
        validation.check_choice("config.datasets[]", dataset, DATASETS)
    validation.check_positive_int("config.batch", config.batch)
    validation.check_positive_int("config.repeats", config.repeats)
    validation.check_positive_int("config.pool_size", config.pool_size)
    validation.check_positive_int("config.memguard_batch", config.get("memguard_batch", 100))
    _memguard_spec(config)


def _time_memguard(forward, variables, key, shape, num_classes, batch, repeats,
                   spec: MemGuardSpec) -> dict[str, Any]:
    """MemGuard's per-query timings (module doc) on ``batch`` random queries."""
    x = jax.random.normal(jax.random.fold_in(key, _QUERIES), (batch,) + shape, jnp.float32)
    logits = forward(variables, x)
    g = init_memguard_classifier(jax.random.fold_in(key, _MEMGUARD), num_classes,
                                 hidden_sizes=spec.hidden_sizes)
    settings = dict(hidden_sizes=spec.hidden_sizes, c1=spec.c1, c2=spec.c2,
                    c3_initial=spec.c3_initial, c3_factor=spec.c3_factor,
                    c3_rounds=spec.c3_rounds, step_size=spec.step_size,
                    max_steps=spec.max_steps, tolerance=spec.tolerance)
    search = lambda z, early: memguard_logits(g, z, early_exit=early, **settings)  # noqa: E731
    full = _median_seconds(lambda: search(logits, False), repeats)
    single = _median_seconds(lambda: search(logits[:1], False), repeats)
    early = _median_seconds(lambda: search(logits, True), repeats)
    steps = float(np.mean(np.asarray(search(logits, True).steps)))
    return {"memguard_search_ms": 1e3 * full / batch, "memguard_search_single_ms": 1e3 * single,
            "memguard_early_exit_search_ms": 1e3 * early / batch, "memguard_steps": steps,
            "memguard_budget_steps": spec.c3_rounds * spec.max_steps, "memguard_batch": batch}


def run_overhead(config: Any, workdir: str, progress: bool) -> list[str]:
    """The ``hamp_overhead`` experiment kind; returns its cells (the datasets)."""
    del progress
    check_overhead(config)
    memguard_spec = _memguard_spec(config)
    path = os.path.join(workdir, "overhead.json")
    results = atomic.read_json(path, {})
    batch = int(config.batch)
    for dataset in config.datasets:
        if "memguard_ms" in results.get(dataset, {}):  # finished (an older entry: rerun)
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
        mg = _time_memguard(forward, variables, key, shape, DATASET_INFO[dataset].num_classes,
                            int(config.get("memguard_batch", 100)), config.repeats,
                            memguard_spec)
        results[dataset].update(mg, memguard_ms=results[dataset]["forward_ms"]
                                + mg["memguard_search_ms"])
        print(f"[{dataset}] forward {results[dataset]['forward_ms']:.4f} ms/sample, output "
              f"modification {results[dataset]['modify_output_ms']:.4f} ms/sample, MemGuard "
              f"{mg['memguard_search_ms']:.3f} ms/query batched, "
              f"{mg['memguard_search_single_ms']:.3f} ms one at a time "
              f"({mg['memguard_budget_steps']} steps; early exit {mg['memguard_steps']:.0f} "
              f"steps, {mg['memguard_early_exit_search_ms']:.3f} ms/query)")
        if rundir.is_main_process():
            atomic.write_json(path, results)
    return list(config.datasets)
