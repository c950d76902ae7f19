"""Shared pieces of the experiment configs in ``experiments/configs/``.

Every config is an ``ml_collections.ConfigDict`` built by :func:`base_config` plus its cells:
``config.cells.<cell>`` (fields in :mod:`hampjax.repro.cells`) holds, per defense, the whole
recipe spec (``RecipeSpec.to_dict()`` as a ConfigDict), so every hyperparameter is one flag away::

    --config.cells.purchase100.defenses.hamp.optimizer.learning_rate=0.1
    --config.cells.digits.defenses.hamp.epochs=5

:func:`cell` builds a cell from :func:`~hampjax.training.preset_spec` specs. :func:`make_quick`
turns a config into its ``quick`` variant (4 models, tiny attack budgets, no plots); quick cells
are built with ``quick=True`` (:func:`quick_spec`: 2 epochs, a 50-output HAMP pool), on
``digits``, and run in seconds on a CPU.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from hampjax.data import DATASETS, PAPER_DATASETS
from hampjax.repro.datasets import default_model_name
from hampjax.training import PRESETS, RecipeSpec, preset_spec

__all__ = ["base_config", "make_quick", "split_arg", "spec_config", "quick_spec", "cell",
           "sweep_key", "hamp_cells_config", "HAMP_MAIN_DEFENSES", "HAMP_BASELINES",
           "QUICK_EPOCHS",
           "QUICK_POOL_SIZE", "QUICK_MEMGUARD", "ROLE_FRACTIONS", "BOUNDARY_SAMPLES",
           "QUICK_BOUNDARY_SAMPLES"]

QUICK_EPOCHS = 2
BOUNDARY_SAMPLES = 100  # Boundary attack: evaluated members (and as many non-members).
QUICK_BOUNDARY_SAMPLES = 5
QUICK_POOL_SIZE = 50
QUICK_MEMGUARD = {"hidden_sizes": (32,), "epochs": 20, "learning_rate": 0.05, "max_steps": 30,
                  "c3_rounds": 3}
"""MemGuard's quick settings (the defender's classifier and the search budget)."""
ROLE_FRACTIONS = {"location30": (0.3, 0.2, 0.5)}  # HAMP code; the others (0.45, 0.05, 0.5).
_DEFAULT_ROLE_FRACTIONS = (0.45, 0.05, 0.5)


def _ordered() -> ml_collections.ConfigDict:
    """A ConfigDict that keeps insertion order (cells and defenses run and report in it)."""
    return ml_collections.ConfigDict(sort_keys=False)


def base_config(experiment: str, name: str) -> ml_collections.ConfigDict:
    """Fields every evaluation experiment reads, with the papers' settings as defaults;
    ``cells`` is empty (the config adds its cells)."""
    c = ml_collections.ConfigDict()
    c.experiment = experiment
    c.name = name
    c.seed = 0
    c.data_dir = config_dict.placeholder(str)  # Raw archives / caches (not needed for digits).
    c.download = False
    c.accept_texas_terms = False
    c.num_models = 128  # Target + 127 shadow models per defense (LiRA's 128).
    c.bootstrap_resamples = 200
    c.plots = True
    # Fields of hampjax.evaluation.AttackSettings (every one a --config.attacks. flag). The
    # boundary attack (Table VIII's Boundary column; boundary_attack "auto": CW-L2 on images,
    # HopSkipJump on tabular data) runs on a subsample of BOUNDARY_SAMPLES evaluated members
    # and as many non-members (it costs many queries / steps per example); 0 skips it.
    c.attacks = ml_collections.ConfigDict(dict(
        nn_epochs=200, top3_max_epochs=200, noise_variants=100,
        boundary_samples=BOUNDARY_SAMPLES, boundary_attack="auto", boundary_iterations=20,
        boundary_evals=100, boundary_cw_steps=100, boundary_cw_lr=0.01,
        boundary_cw_search_steps=5))
    c.cells = _ordered()
    return c


def make_quick(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``quick`` variant's shared settings: 4 models, tiny attack budgets, no plots."""
    c.name = c.name + "_quick"
    c.num_models = 4
    c.bootstrap_resamples = 10
    c.plots = False
    c.attacks.nn_epochs = 2
    c.attacks.top3_max_epochs = 2
    c.attacks.noise_variants = 0
    c.attacks.boundary_samples = QUICK_BOUNDARY_SAMPLES  # Small budgets: the column shows up.
    c.attacks.boundary_iterations = 2
    c.attacks.boundary_evals = 10
    c.attacks.boundary_cw_steps = 10
    c.attacks.boundary_cw_search_steps = 2
    return c


def split_arg(arg: str | None) -> tuple[bool, list[str]]:
    """Parse a config argument ``"quick"``, ``"purchase100"``, ``"quick,foo"`` -> (quick, rest)."""
    parts = [p for p in (arg or "").split(",") if p]
    return "quick" in parts, [p for p in parts if p != "quick"]


def quick_spec(spec: RecipeSpec) -> RecipeSpec:
    """A spec for the quick variants: :data:`QUICK_EPOCHS` epochs, with HAMP's output
    modification a pool of :data:`QUICK_POOL_SIZE` random outputs, with MemGuard
    :data:`QUICK_MEMGUARD`, with early stopping one snapshot after the first epoch, with
    AdvReg at most ``QUICK_EPOCHS - 1`` warm-up epochs, SELENA with 3 sub-models (each member
    left out of 1), DMP with a 20-epoch GAN and 512 synthetic rows per model, and the
    teachers' recipe (``spec.teacher``) made quick too."""
    changes: dict[str, Any] = {"epochs": QUICK_EPOCHS}
    if spec.output.kind == "hamp":
        changes["output.pool_size"] = QUICK_POOL_SIZE
    if spec.output.kind == "memguard":
        changes.update({f"output.memguard.{k}": v for k, v in QUICK_MEMGUARD.items()})
    if spec.early_stopping_epochs:
        changes["early_stopping_epochs"] = (1,)
    if spec.adversary.kind != "none" and spec.adversary.warmup_epochs >= QUICK_EPOCHS:
        changes["adversary.warmup_epochs"] = QUICK_EPOCHS - 1
    if spec.teacher is not None:
        changes["teacher"] = quick_spec(spec.teacher)
    if spec.split_ai.kind != "none":  # SELENA: 3 sub-models per model, each member left out of 1.
        changes["split_ai.num_submodels"] = min(spec.split_ai.num_submodels, 3)
        changes["split_ai.num_excluded"] = min(spec.split_ai.num_excluded, 1)
    if spec.reference.kind == "gan":  # DMP: a short GAN, a small synthetic set per model.
        changes["reference.gan_epochs"] = min(spec.reference.gan_epochs, 20)
        changes["reference.size"] = min(spec.reference.size, 512)
    return spec.replace(**changes)


def _optional_type(cls: type, field: str) -> type:
    """The non-None type of an ``X | None`` dataclass field (for a typed placeholder)."""
    hint = typing.get_type_hints(cls).get(field)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) != 1 or not isinstance(args[0], type):
        raise ValueError(f"{cls.__name__}.{field} is None but its type {hint!r} is not "
                         "'X | None'; cannot make a --config. placeholder for it")
    return args[0]


def _to_config(obj: Any, d: Mapping[str, Any]) -> ml_collections.ConfigDict:
    out = _ordered()  # The spec's own field order.
    for key, value in d.items():
        attr = getattr(obj, key, None)
        if isinstance(value, Mapping):
            out[key] = _to_config(attr, value)
        elif value is None:
            # A None field keeps its type, so --config.<path>=<value> parses (e.g. clip_norm).
            out[key] = config_dict.placeholder(_optional_type(type(obj), key))
        else:
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def spec_config(spec: RecipeSpec) -> ml_collections.ConfigDict:
    """A recipe spec as a ConfigDict (``spec.to_dict()``; ``None`` fields as typed
    placeholders, so that every field can be set with a ``--config.`` flag)."""
    if not dataclasses.is_dataclass(spec):
        raise ValueError(f"spec must be a RecipeSpec, got {type(spec).__name__}")
    return _to_config(spec, spec.to_dict())


def sweep_key(param: str, value: float) -> str:
    """A defense key for a swept value, usable in ``--config.`` paths: ``sweep_key("gamma",
    0.8) == "gamma_0p8"``, ``sweep_key("alpha", 5e-4) == "alpha_0p0005"`` (the value itself is
    recorded as data; this is only a name)."""
    return f"{param}_{value:g}".replace(".", "p").replace("-", "m").replace("+", "")


def cell(
    dataset: str,
    defenses: Mapping[str, RecipeSpec],
    *,
    quick: bool = False,
    scheme: str = "hamp",
    train_size: int | None = None,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    sweep: Mapping[str, str] | None = None,
    non_adaptive_shadows: Mapping[str, str] | None = None,
    defense_model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> ml_collections.ConfigDict:
    """One cell of ``config.cells`` (fields in :mod:`hampjax.repro.cells`).

    Args:
      dataset: a name of :data:`hampjax.data.DATASETS`.
      defenses: ``{name: RecipeSpec}`` in report order; names must be Python identifiers
        (they are ``--config.`` path parts).
      quick: apply :func:`quick_spec` to every spec.
      scheme: the split scheme, ``"hamp"`` or ``"relaxloss"``.
      train_size: HAMP scheme only: members + validation (``None``: the paper's size).
      model, model_kwargs: the zoo model (``None``: the paper's model for ``dataset``).
      sweep: ``{defense name: dotted spec field it sweeps}`` (recorded with its value).
      non_adaptive_shadows: ``{defense name: defense whose recipe trains its shadows}``.
      defense_model_kwargs: ``{defense name: model kwargs}`` over ``model_kwargs`` for a
        defense that is part of the model (RelaxLoss's dropout baseline:
        :data:`~hampjax.training.presets.DROPOUT_MODEL_KWARGS`).
    """
    for name in defenses:
        if not name.isidentifier():
            raise ValueError(f"defense names must be Python identifiers (--config. paths), "
                             f"got {name!r}")
    if model is None:
        model, defaults = default_model_name(dataset)
        model_kwargs = {**defaults, **dict(model_kwargs or {})}
    c = ml_collections.ConfigDict()
    c.dataset = dataset
    c.scheme = scheme
    c.train_size = config_dict.placeholder(int)
    c.train_size = train_size
    c.model = model
    c.model_kwargs = ml_collections.ConfigDict(dict(model_kwargs or {}))
    c.role_fractions = tuple(ROLE_FRACTIONS.get(dataset, _DEFAULT_ROLE_FRACTIONS))
    c.defenses = _ordered()
    for name, spec in defenses.items():
        c.defenses[name] = spec_config(quick_spec(spec) if quick else spec)
    c.sweep = ml_collections.ConfigDict(dict(sweep or {}))
    c.non_adaptive_shadows = ml_collections.ConfigDict(dict(non_adaptive_shadows or {}))
    c.defense_model_kwargs = ml_collections.ConfigDict(
        {name: dict(kwargs) for name, kwargs in (defense_model_kwargs or {}).items()})
    return c


HAMP_MAIN_DEFENSES = ("undefended", "hamp", "label_smoothing", "hamp_ls", "early_stopping",
                      "dp_sgd", "advreg", "selena", "dmp", "memguard")
"""Defenses of HAMP's main tables (preset names of :func:`~hampjax.training.preset_spec`):
``hamp_ls`` is HAMP's LS baseline at the paper's intensities (Purchase100, Texas100,
CIFAR-100; digits), ``early_stopping`` the undefended recipe evaluated after several epoch
counts (HAMP Fig. 7), ``dp_sgd`` DP-SGD at the paper's eps = 4 (tabular datasets only, as the
paper), ``advreg`` AdvReg with the paper's lambda, ``selena`` SELENA (25 sub-models, each
member left out of 10, self-distilled), ``dmp`` DMP (undefended teachers, a GAN per model on
its members, students on teacher-labelled GAN samples; not Purchase100, as the paper),
``memguard`` MemGuard (undefended models, every released output post-processed with the
target's defender classifier)."""

HAMP_BASELINES = ("undefended", "hamp", "hamp_ls", "early_stopping", "dp_sgd", "advreg",
                  "selena", "dmp", "memguard")
"""The config argument ``baselines``: HAMP next to the baselines of Table VIII / Fig. 3 that
hampjax implements (each where the paper evaluates it)."""


def hamp_cells_config(experiment: str, arg: str | None, *,
                      name: str | None = None) -> ml_collections.ConfigDict:
    """The ``hamp_main`` / ``hamp_entropy`` config: one cell per dataset, the defenses as
    preset specs.

    ``arg``: comma-separated datasets (default the paper's five) and/or defenses of
    :data:`HAMP_MAIN_DEFENSES` (default ``undefended,hamp``; ``baselines``:
    :data:`HAMP_BASELINES`), and/or ``quick`` (digits). A
    defense without a preset for a dataset (``hamp_ls`` on Location30 / CIFAR-10, which the
    paper does not evaluate) is left out of that dataset's cell.

    Raises:
      ValueError: an argument item that is neither (listing the valid ones).
    """
    quick, rest = split_arg(arg)
    for item in rest:
        if item not in DATASETS and item not in HAMP_MAIN_DEFENSES and item != "baselines":
            raise ValueError(f"config argument {item!r} is not a dataset {list(DATASETS)}, a "
                             f"defense {list(HAMP_MAIN_DEFENSES)}, 'baselines' or 'quick'")
    datasets = [x for x in rest if x in DATASETS] or list(PAPER_DATASETS)
    named = [x for x in rest if x in HAMP_MAIN_DEFENSES]
    defenses = named or ["undefended", "hamp"]
    if "baselines" in rest:
        defenses = list(dict.fromkeys(list(HAMP_BASELINES) + named))
    c = base_config(experiment, name or experiment)
    if quick:
        c = make_quick(c)
        datasets = ["digits"]
    for dataset in datasets:
        c.cells[dataset] = cell(dataset, {d: preset_spec(d, dataset) for d in defenses
                                          if dataset in PRESETS[d]}, quick=quick)
    return c
