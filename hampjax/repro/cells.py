"""The evaluation experiment kinds: every cell of ``config.cells`` evaluates its defenses.

All evaluation kinds (HAMP's tables, RelaxLoss, Weighted Smoothing) run the same way; what
differs is the cells their configs hold (:mod:`hampjax.repro.configs` builds them from the
presets). A cell is a ConfigDict::

    dataset              a name of hampjax.data.DATASETS
    scheme               "hamp" or "relaxloss" (the split, hampjax.repro.datasets)
    train_size           HAMP scheme: members + validation (None: the paper's size)
    model, model_kwargs  a hampjax.models zoo name and its arguments
    role_fractions       the attacker's known-train / known-val / evaluated fractions
    defenses             {name: recipe spec (RecipeSpec.to_dict() as a ConfigDict)}
    sweep                {defense name: dotted spec field it sweeps, e.g. "defense.alpha"}
    non_adaptive_shadows {defense name: name of the defense whose recipe trains its shadows}
    defense_model_kwargs {defense name: model kwargs over model_kwargs} (optional, default {}):
                         a defense that is part of the model, e.g. RelaxLoss's dropout
                         baseline {"dropout": {"head_dropout_rate": 0.5}}

Each defense is ``RecipeSpec.from_dict(spec) -> build_recipe``: a run trains exactly what its
config (saved in ``experiment.json``) says. Per cell the runner records the split
(:func:`~hampjax.repro.rundir.record_cell_data`) and ``cell_info``: the dataset, the training
size, for every swept defense the swept field and the value it ran with, and every
defense's model kwargs where they differ from the cell's. A defense whose spec has
``early_stopping_epochs`` reports one more result per epoch (``<defense>_e<E>``,
:func:`hampjax.evaluation.evaluate_defense_results`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from hampjax import atomic, validation
from hampjax.evaluation import AttackSettings, Defense, evaluate_defenses
from hampjax.data import DATASETS
from hampjax.models import get_model
from hampjax.repro import rundir
from hampjax.repro.datasets import ExperimentData, load_dataset, load_experiment_data
from hampjax.training import RecipeSpec, build_recipe

__all__ = ["CELL_FIELDS", "OPTIONAL_CELL_FIELDS", "cell_specs", "cell_defenses",
           "cell_model_kwargs", "check_cells", "run_cells", "spec_value"]

CELL_FIELDS = ("dataset", "scheme", "train_size", "model", "model_kwargs", "role_fractions",
               "defenses", "sweep", "non_adaptive_shadows", "defense_model_kwargs")
"""The fields of a cell (module docstring)."""

OPTIONAL_CELL_FIELDS = ("defense_model_kwargs",)
"""Fields a cell may leave out (configs written before they existed): empty then."""


def spec_value(spec: Mapping[str, Any], field: str) -> Any:
    """The value at a dotted ``field`` of a spec dict, e.g. ``"defense.alpha"``.

    Raises:
      ValueError: the field does not exist (naming it and the valid keys where it stopped).
    """
    value: Any = spec
    for i, part in enumerate(field.split(".")):
        if not isinstance(value, Mapping) or part not in value:
            valid = sorted(value) if isinstance(value, Mapping) else []
            where = ".".join(field.split(".")[:i]) or "the spec"
            raise ValueError(f"spec field {field!r} does not exist (at {where}: valid fields "
                             f"{valid})")
        value = value[part]
    return value


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def cell_specs(cell: Any, where: str) -> dict[str, RecipeSpec]:
    """``{defense name: RecipeSpec}`` of a cell; ``where`` (e.g. ``"config.cells.digits"``)
    prefixes error messages.

    Raises:
      ValueError: a spec is invalid (from :meth:`RecipeSpec.from_dict`, with its path), or a
        ``sweep`` / ``non_adaptive_shadows`` entry names a missing defense or field.
    """
    missing = [f for f in CELL_FIELDS if f not in cell and f not in OPTIONAL_CELL_FIELDS]
    unknown = [f for f in cell if f not in CELL_FIELDS]
    if missing or unknown:
        raise ValueError(f"{where}: missing fields {missing} / unknown fields {unknown}; a cell "
                         f"has the fields {list(CELL_FIELDS)}")
    specs = {}
    for name, spec in cell.defenses.items():
        try:
            specs[name] = RecipeSpec.from_dict(_plain(spec))
        except ValueError as e:
            raise ValueError(f"{where}.defenses.{name}: {e}") from e
    if not specs:
        raise ValueError(f"{where}.defenses must hold at least one defense")
    for name, field in cell.sweep.items():
        validation.check_choice(f"{where}.sweep key", name, tuple(specs))
        try:
            spec_value(specs[name].to_dict(), field)
        except ValueError as e:
            raise ValueError(f"{where}.sweep.{name}: {e}") from e
    for name, shadow in cell.non_adaptive_shadows.items():
        validation.check_choice(f"{where}.non_adaptive_shadows key", name, tuple(specs))
        validation.check_choice(f"{where}.non_adaptive_shadows.{name}", shadow, tuple(specs))
    for name in _defense_model_kwargs(cell):
        validation.check_choice(f"{where}.defense_model_kwargs key", name, tuple(specs))
    return specs


def _defense_model_kwargs(cell: Any) -> dict[str, dict[str, Any]]:
    return {name: _plain(kwargs) for name, kwargs in (cell.get("defense_model_kwargs") or {}).items()}


def cell_model_kwargs(cell: Any) -> dict[str, dict[str, Any]]:
    """``{defense name: model kwargs}`` of the defenses with their own model: the cell's
    ``model_kwargs`` updated with the defense's ``defense_model_kwargs``."""
    return {name: {**_plain(cell.model_kwargs), **kwargs}
            for name, kwargs in _defense_model_kwargs(cell).items()}


def cell_defenses(cell: Any, specs: Mapping[str, RecipeSpec],
                  models: Mapping[str, Any] | None = None) -> list[Defense]:
    """The cell's defenses (recipes built from their specs), in the config's order.

    ``models``: ``{defense name: Flax module}`` for defenses with their own model
    (:func:`cell_model_kwargs`); the others train the evaluation's model.
    """
    recipes = {name: build_recipe(spec) for name, spec in specs.items()}
    models = dict(models or {})
    defenses = []
    for name, recipe in recipes.items():  # The output transform is the spec's (spec.output).
        shadow = cell.non_adaptive_shadows.get(name)
        defenses.append(Defense(name, recipe,
                                shadow_recipe=None if shadow is None else recipes[shadow],
                                model=models.get(name)))
    return defenses


def check_cells(config: Any) -> None:
    """Check every cell of ``config.cells`` (fields, datasets, specs) before anything runs."""
    if not config.get("cells"):
        raise ValueError("config.cells must hold at least one cell")
    for name, cell in config.cells.items():
        where = f"config.cells.{name}"
        cell_specs(cell, where)
        validation.check_choice(f"{where}.dataset", cell.dataset, DATASETS)
        validation.check_choice(f"{where}.scheme", cell.scheme, ("hamp", "relaxloss"))
        if config.get("attacks") is not None:  # Kinds without the attack pipeline have none.
            try:
                _settings(config, cell)
            except (TypeError, ValueError) as e:
                raise ValueError(f"config.attacks (fields of hampjax.evaluation.AttackSettings)"
                                 f" or {where}.role_fractions: {e}") from e
        if cell.dataset != "digits" and config.get("data_dir") is None:
            raise ValueError(f"config.data_dir is required for dataset {cell.dataset!r} "
                             f"({where}; only 'digits' ships offline)")


def _settings(config: Any, cell: Any) -> AttackSettings:
    # config.attacks holds AttackSettings fields (hampjax.repro.configs.base_config); the
    # role fractions are the cell's.
    return AttackSettings(**config.attacks.to_dict(), role_fractions=tuple(cell.role_fractions))


def _cell_info(cell: Any, data: ExperimentData, specs: Mapping[str, RecipeSpec]) -> dict:
    sizes = data.record.get("sizes", {})
    train_size = cell.train_size
    if train_size is None and "members" in sizes and "val" in sizes:
        train_size = int(sizes["members"]) + int(sizes["val"])
    info = {"dataset": cell.dataset, "train_size": train_size,
            "sweep": {name: {"field": field, "value": spec_value(specs[name].to_dict(), field)}
                      for name, field in cell.sweep.items()}}
    if _defense_model_kwargs(cell):  # Only then: earlier cells' records stay as they were.
        info["model_kwargs"] = cell_model_kwargs(cell)
    early = {name: list(spec.early_stopping_epochs) for name, spec in specs.items()
             if spec.early_stopping_epochs}
    if early:
        info["early_stopping_epochs"] = early
    return info


def run_cells(config: Any, workdir: str, progress: bool) -> list[str]:
    """Run every cell of ``config.cells`` (skipping finished ones); returns the cell names."""
    loaded = {}  # dataset -> Dataset: cells of one dataset (training sizes) load it once.
    for name, cell in config.cells.items():
        cell_dir = os.path.join(workdir, name)
        specs = cell_specs(cell, f"config.cells.{name}")
        if cell.dataset not in loaded:
            loaded[cell.dataset] = load_dataset(
                cell.dataset, data_dir=config.get("data_dir"), download=config.download,
                accept_texas_terms=config.accept_texas_terms)
        data = load_experiment_data(cell.dataset, seed=config.seed, scheme=cell.scheme,
                                    train_size=cell.train_size, ds=loaded[cell.dataset])
        rundir.record_cell_data(workdir, name, data.record)
        rundir.record_cell_info(workdir, name, _cell_info(cell, data, specs))
        if rundir.cell_done(cell_dir):
            print(f"[{name}] done already, skipped")
            continue
        model = get_model(cell.model, data.num_classes, **_plain(cell.model_kwargs))
        models = {name: get_model(cell.model, data.num_classes, **kwargs)
                  for name, kwargs in cell_model_kwargs(cell).items()}
        defenses = cell_defenses(cell, specs, models)
        t0 = time.perf_counter()
        evaluation, _ = evaluate_defenses(
            model, defenses, data.eval_data, num_models=config.num_models, seed=config.seed,
            run_dir=cell_dir, settings=_settings(config, cell), progress=progress,
            bootstrap_resamples=config.bootstrap_resamples, plots=config.plots)
        if rundir.is_main_process():
            atomic.write_json(os.path.join(cell_dir, "stats.json"),
                              {name: dict(r.stats) for name, r in evaluation.defenses.items()},
                              sort_keys=True)
        print(f"[{name}] {len(defenses)} defenses in {time.perf_counter() - t0:.0f} s")
    return list(config.cells)

