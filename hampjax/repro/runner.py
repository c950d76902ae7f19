"""Run a reproduction experiment from its ml_collections config into a run directory.

:func:`run_experiment` dispatches on ``config.experiment`` (a key of :data:`EXPERIMENTS`). Every
experiment is a list of *cells* (a dataset, a training size, a RelaxLoss preset); each cell
evaluates a list of defenses with :func:`hampjax.attacks.evaluate_defenses` (target + shadows in
one batched program per defense, every attack, the report). The run directory::

    <workdir>/experiment.json        kind, name, config, cells, data hashes (split records)
    <workdir>/<cell>/report.json     the report of hampjax.report (plus report.md, scores.npz, ...)
    <workdir>/<cell>/stats.json      {defense: {"entropy_members", "entropy_nonmembers"}}
    <workdir>/<cell>/train/...       resumable training checkpoints
    <workdir>/overhead.json          (hamp_overhead only) per-sample milliseconds per dataset
    <workdir>/<cell>/<variant>/trust.json, <cell>/summary.json   (trust only, see
                                     hampjax.repro.trust)

Resuming: finished cells (``report.json`` and ``stats.json`` present) are skipped; unfinished
ones resume training from their checkpoints. A workdir written by a different config is refused.
Only process 0 writes reports; every process trains its share of models (multi-host runs).

``python -m hampjax.repro.results <workdir>`` (or ``experiments/results.py``) turns the
directory into the paper's tables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import atomic, validation
from hampjax.attacks.evaluate import AttackSettings, Defense, evaluate_defenses
from hampjax.repro.datasets import (
    EXPERIMENT_DATASETS,
    ExperimentData,
    default_model,
    load_dataset,
    load_experiment_data,
)
from hampjax.training import (
    PRESETS,
    CrossEntropyParams,
    OutputSpec,
    hamp_recipe,
    label_smoothing_recipe,
    relaxloss_recipe,
    undefended_recipe,
    weighted_smoothing_recipe,
)

__all__ = ["EXPERIMENTS", "run_experiment", "record_cell_data", "INPUT_SHAPES", "ABLATION_COMPONENTS"]

# Input shape and class count per dataset (the overhead benchmark needs no data).
INPUT_SHAPES = {
    "purchase100": ((600,), 100), "texas100": ((6169,), 100), "location30": ((446,), 30),
    "cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100), "digits": ((64,), 10),
}

# HAMP Table II: (high-entropy soft labels, entropy regularizer, output modification).
ABLATION_COMPONENTS = {
    "none": (False, False, False), "1": (True, False, False), "2": (False, True, False),
    "3": (False, False, True), "1+2": (True, True, False), "1+3": (True, False, True),
    "2+3": (False, True, True), "1+2+3": (True, True, True),
}


def _is_main_process() -> bool:
    return jax.process_index() == 0


def _settings(config) -> AttackSettings:
    a = config.attacks
    return AttackSettings(nn_epochs=a.nn_epochs, top3_max_epochs=a.top3_max_epochs,
                          noise_variants=a.noise_variants, boundary_samples=a.boundary_samples)


def _with_epochs(recipe, config):
    return recipe if config.get("epochs") is None else recipe.replace(epochs=int(config.epochs))


def _cell_done(cell_dir: str) -> bool:
    return all(os.path.exists(os.path.join(cell_dir, f)) for f in ("report.json", "stats.json"))


def _run_cell(config, workdir: str, cell: str, data: ExperimentData, defenses: list[Defense],
              *, model: Any, progress: bool, settings: AttackSettings | None = None) -> None:
    cell_dir = os.path.join(workdir, cell)
    if _cell_done(cell_dir):
        print(f"[{cell}] done already, skipped")
        return
    settings = settings or _settings(config)
    if data.dataset == "location30":  # spec 1.5: Location's attack roles are 30/20/50.
        settings = dataclasses.replace(settings, role_fractions=(0.3, 0.2, 0.5))
    t0 = time.perf_counter()
    results, _ = evaluate_defenses(
        model, defenses, data.eval_data, num_models=config.num_models, seed=config.seed,
        run_dir=cell_dir, settings=settings, progress=progress,
        bootstrap_resamples=config.bootstrap_resamples, plots=config.get("plots", True))
    if _is_main_process():
        atomic.write_json(os.path.join(cell_dir, "stats.json"),
                          {r.name: r.stats for r in results}, sort_keys=True)
    print(f"[{cell}] {len(defenses)} defenses in {time.perf_counter() - t0:.0f} s")


def _data(config, dataset: str, **kwargs) -> ExperimentData:
    return load_experiment_data(dataset, seed=config.seed, data_dir=config.get("data_dir"),
                                download=config.get("download", False),
                                accept_texas_terms=config.get("accept_texas_terms", False),
                                **kwargs)


def _model(config, data: ExperimentData):
    return default_model(data.dataset, data.num_classes, config.get("model"),
                         **dict(config.get("model_kwargs", {})))


def _output(config, modify: bool) -> OutputSpec:
    # Recorded with the recipe; the Defense's output_modification flag applies it.
    return OutputSpec(kind="hamp", pool_size=config.pool_size) if modify else OutputSpec()


def _hamp_defense(config, dataset: str, name: str = "hamp", **kwargs) -> Defense:
    recipe = hamp_recipe(dataset, output=_output(config, True), **kwargs)
    return Defense(name, _with_epochs(recipe, config), output_modification=True,
                   pool_size=config.pool_size)


def _main_defenses(config, dataset: str) -> list[Defense]:
    factories = {
        "undefended": lambda: Defense("undefended", _with_epochs(undefended_recipe(dataset), config)),
        "hamp": lambda: _hamp_defense(config, dataset),
        "label_smoothing": lambda: Defense(
            "label_smoothing", _with_epochs(label_smoothing_recipe(dataset), config)),
    }
    for name in config.defenses:
        validation.check_choice("config.defenses[]", name, tuple(factories))
    return [factories[name]() for name in config.defenses]


def _run_hamp_main(config, workdir: str, progress: bool) -> list[str]:
    for dataset in config.datasets:
        data = _data(config, dataset)
        _record_data(workdir, dataset, data)
        _run_cell(config, workdir, dataset, data, _main_defenses(config, dataset),
                  model=_model(config, data), progress=progress)
    return list(config.datasets)


def _run_hamp_ablation(config, workdir: str, progress: bool) -> list[str]:
    dataset = config.dataset
    data = _data(config, dataset)
    _record_data(workdir, dataset, data)
    defaults = hamp_recipe(dataset).spec.defense
    defenses = []
    for name in config.components:
        validation.check_choice("config.components[]", name, tuple(ABLATION_COMPONENTS))
        soft, reg, modify = ABLATION_COMPONENTS[name]
        if not (soft or reg):  # No training-time component: undefended training.
            recipe = _with_epochs(undefended_recipe(dataset, output=_output(config, modify)),
                                  config)
            defenses.append(Defense(name, recipe, output_modification=modify,
                                    pool_size=config.pool_size))
            continue
        # Without soft labels the targets are one-hot (gamma = 0: KL to one-hot is the CE);
        # without the regularizer alpha = 0. Both keep HAMP's optimizer and schedule.
        recipe = _with_epochs(hamp_recipe(
            dataset, entropy_threshold=defaults.entropy_threshold if soft else 0.0,
            alpha=defaults.alpha if reg else 0.0, output=_output(config, modify)), config)
        defenses.append(Defense(name, recipe.replace(name=f"hamp_{name}"),
                                output_modification=modify, pool_size=config.pool_size))
    _run_cell(config, workdir, dataset, data, defenses, model=_model(config, data),
              progress=progress)
    return [dataset]


def _run_hamp_params(config, workdir: str, progress: bool) -> list[str]:
    dataset = config.dataset
    data = _data(config, dataset)
    _record_data(workdir, dataset, data)
    defenses = [_hamp_defense(config, dataset, f"gamma={g:g}", entropy_threshold=float(g))
                for g in config.gammas]
    defenses += [_hamp_defense(config, dataset, f"alpha={a:g}", alpha=float(a))
                 for a in config.alphas]
    _run_cell(config, workdir, dataset, data, defenses, model=_model(config, data),
              progress=progress)
    return [dataset]


def _run_hamp_sizes(config, workdir: str, progress: bool) -> list[str]:
    dataset = config.dataset
    ds = load_dataset(dataset, data_dir=config.get("data_dir"), download=config.get("download", False),
                      accept_texas_terms=config.get("accept_texas_terms", False))
    cells = []
    for size in config.train_sizes:
        cell = f"n={int(size)}"
        data = _data(config, dataset, train_size=int(size), ds=ds)
        _record_data(workdir, cell, data)
        _run_cell(config, workdir, cell, data, _main_defenses(config, dataset),
                  model=_model(config, data), progress=progress)
        cells.append(cell)
    return cells


def _run_relaxloss(config, workdir: str, progress: bool) -> list[str]:
    cells = []
    for cell in config.presets:
        if cell == "digits":  # The quick variant: Purchase's FC recipe on digits.
            preset, dataset, model_name = "purchase100_fc", "digits", None  # The digits MLP.
        else:
            validation.check_choice("config.presets[]", cell, tuple(PRESETS["relaxloss"]))
            preset = cell
            dataset, model_name = cell.split("_", 1)  # e.g. cifar10 + resnet20 (a zoo name)
        data = _data(config, dataset, scheme="relaxloss")
        _record_data(workdir, cell, data)
        alpha = config.get("digits_alpha") if dataset == "digits" else None
        defended = _with_epochs(relaxloss_recipe(preset, alpha=alpha), config)
        baseline = defended.replace(name="undefended", defense=CrossEntropyParams())
        defenses = [Defense("undefended", baseline),
                    Defense("relaxloss_nonadaptive", defended, shadow_recipe=baseline),
                    Defense("relaxloss_adaptive", defended)]
        model = default_model(dataset, data.num_classes, model_name)
        _run_cell(config, workdir, cell, data, defenses, model=model, progress=progress)
        cells.append(cell)
    return cells


def _ws_recipe(config, dataset: str, sigma: float, **options):
    epochs = config.get("epochs") or 100
    recipe = weighted_smoothing_recipe(sigma=sigma, epochs=epochs, **options)
    if config.get("ws_learning_rate") is not None:
        recipe = recipe.replace(**{"optimizer.learning_rate": config.ws_learning_rate,
                                   "schedule.decay": config.ws_decay_per_epoch,
                                   "batch_size": config.ws_batch_size})
    return recipe


def _parse_ablation(text: str) -> dict[str, str | bool]:
    options: dict[str, str | bool] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        validation.check_choice("config.ablations[] option",
                                key, ("score", "normalization", "weight", "noise_on", "use_margin"))
        if not sep:
            raise ValueError(f"config.ablations[]: expected option=value, got {part!r}")
        options[key] = value == "true" if key == "use_margin" else value
    return options


def _run_ws_sigma(config, workdir: str, progress: bool) -> list[str]:
    dataset = config.dataset
    data = _data(config, dataset)
    _record_data(workdir, dataset, data)
    defenses = [Defense(f"sigma={s:g}", _ws_recipe(config, dataset, float(s)))
                for s in config.sigmas]
    for ablation in config.ablations:
        defenses.append(Defense(f"sigma={config.ablation_sigma:g},{ablation}", _ws_recipe(
            config, dataset, float(config.ablation_sigma), **_parse_ablation(ablation))))
    _run_cell(config, workdir, dataset, data, defenses, model=_model(config, data),
              progress=progress)
    return [dataset]


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())  # Compile and warm up.
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _run_hamp_overhead(config, workdir: str, progress: bool) -> list[str]:
    """HAMP Table VII: per-sample inference time without and with output modification.

    The paper pre-computes the random inputs' outputs and times only the sort-and-scatter; so
    does this benchmark (``modify_output_ms``), next to the model's forward pass
    (``forward_ms``); ``hamp_ms`` is their sum. Untrained weights time the same as trained ones.
    """
    del progress
    from hampjax.defenses.output_modification import modify_output, sample_from_pool
    from hampjax.models import model_functions

    path = os.path.join(workdir, "overhead.json")
    results = atomic.read_json(path, {})
    batch = int(config.batch)
    for dataset in config.datasets:
        if dataset in results:
            continue
        shape, num_classes = INPUT_SHAPES[dataset]
        model = default_model(dataset, num_classes, config.get("model"))
        init_fn, apply_fn = model_functions(model)
        key = jax.random.key(config.seed)
        variables = init_fn(key, jnp.zeros((1,) + shape, jnp.float32))
        x = jax.random.normal(jax.random.fold_in(key, 1), (batch,) + shape, jnp.float32)
        forward = jax.jit(lambda v, inputs: apply_fn(v, inputs, train=False)[0])
        logits = forward(variables, x)
        pool = forward(variables, jax.random.normal(jax.random.fold_in(key, 2),
                                                    (config.pool_size,) + shape, jnp.float32))
        draw_key = jax.random.fold_in(key, 3)
        modify = jax.jit(lambda out, p, k: modify_output(out, sample_from_pool(p, k, out.shape[0])))
        t_forward = _median_seconds(lambda: forward(variables, x), config.repeats)
        t_modify = _median_seconds(lambda: modify(logits, pool, draw_key), config.repeats)
        results[dataset] = {
            "forward_ms": 1e3 * t_forward / batch, "modify_output_ms": 1e3 * t_modify / batch,
            "hamp_ms": 1e3 * (t_forward + t_modify) / batch, "batch": batch,
            "device": str(jax.devices()[0].device_kind)}
        print(f"[{dataset}] forward {results[dataset]['forward_ms']:.4f} ms/sample, output "
              f"modification {results[dataset]['modify_output_ms']:.4f} ms/sample")
        if _is_main_process():
            atomic.write_json(path, results)
    return list(config.datasets)


def _run_trust(config, workdir: str, progress: bool) -> list[str]:
    from hampjax.repro.trust import run_trust  # Lazy: trust imports this module.

    return run_trust(config, workdir, progress)


EXPERIMENTS: dict[str, Callable[[Any, str, bool], list[str]]] = {
    "hamp_main": _run_hamp_main,
    "hamp_entropy": _run_hamp_main,
    "hamp_ablation": _run_hamp_ablation,
    "hamp_params": _run_hamp_params,
    "hamp_sizes": _run_hamp_sizes,
    "hamp_overhead": _run_hamp_overhead,
    "relaxloss": _run_relaxloss,
    "ws_sigma": _run_ws_sigma,
    "trust": lambda config, workdir, progress: _run_trust(config, workdir, progress),
}
"""Experiment kinds: ``config.experiment`` -> runner ``(config, workdir, progress) -> cells``."""


def _experiment_path(workdir: str) -> str:
    return os.path.join(workdir, "experiment.json")


def _record_data(workdir: str, cell: str, data: ExperimentData) -> None:
    record_cell_data(workdir, cell, data.record)


def record_cell_data(workdir: str, cell: str, split_record: dict) -> None:
    """Save a cell's split record (with its ``data_hash``) in ``experiment.json``; refuse a
    cell that was run on different data."""
    if not _is_main_process():
        return
    path = _experiment_path(workdir)
    record = atomic.read_json(path)
    if cell in record["data"] and record["data"][cell]["data_hash"] != split_record["data_hash"]:
        raise ValueError(f"cell {cell!r} of {workdir} was run on different data "
                         f"(data hash {record['data'][cell]['data_hash']} != "
                         f"{split_record['data_hash']}); use a new workdir")
    record["data"][cell] = split_record
    record["data_hashes"][cell] = split_record["data_hash"]
    atomic.write_json(path, record, sort_keys=True)


def _config_dict(config) -> dict:
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(raw, default=str))


def run_experiment(config, workdir: str, *, progress: bool = True) -> dict:
    """Run the experiment ``config`` (an ml_collections ConfigDict) into ``workdir``.

    Args:
      config: has ``experiment`` (a key of :data:`EXPERIMENTS`), ``name``, ``seed`` and the
        experiment's fields (see ``experiments/configs/``).
      workdir: the run directory; created if needed; re-running resumes it.
      progress: show training progress bars.

    Returns:
      The contents of ``experiment.json``.

    Raises:
      ValueError: an unknown experiment kind, a workdir of a different config, bad fields.
    """
    validation.check_choice("config.experiment", config.experiment, tuple(EXPERIMENTS))
    validation.check_positive_int("config.seed", config.seed, minimum=0)
    if config.get("datasets") is not None:
        for dataset in config.datasets:
            validation.check_choice("config.datasets[]", dataset, EXPERIMENT_DATASETS)
    if config.get("num_models") is not None and (config.num_models < 4 or config.num_models % 2):
        raise ValueError(f"config.num_models must be an even integer >= 4, got {config.num_models}")
    os.makedirs(workdir, exist_ok=True)
    path = _experiment_path(workdir)
    cfg = _config_dict(config)
    if os.path.exists(path):
        record = atomic.read_json(path)
        if record["config"] != cfg:
            changed = sorted(k for k in set(cfg) | set(record["config"])
                             if cfg.get(k) != record["config"].get(k))
            raise ValueError(f"workdir {workdir} holds a run of a different config (fields "
                             f"{changed} differ); use a new --workdir")
    else:
        record = {"experiment": config.experiment, "name": config.name, "config": cfg,
                  "cells": [], "data": {}, "data_hashes": {}}
        if _is_main_process():
            atomic.write_json(path, record, sort_keys=True)
    start = time.perf_counter()
    cells = EXPERIMENTS[config.experiment](config, workdir, progress)
    if _is_main_process():  # Re-read: the cells added their data records. Process 0 owns it.
        record = atomic.read_json(path)
    record["cells"] = list(cells)
    if _is_main_process():
        atomic.write_json(path, record, sort_keys=True)
    print(f"{config.name}: finished in {time.perf_counter() - start:.0f} s; tables: "
          f"python experiments/results.py {workdir}")
    return record
