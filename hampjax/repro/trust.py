"""The "To Trust or Not To Trust" experiment (spec B): calibration vs leakage under non-member shift.

For one dataset and architecture, a target and a shadow model are trained per training variant
(one batched :func:`~hampjax.training.train_many` program each: the keep matrix has two rows,
the target's and the shadow's disjoint training halves). Variants:

* ``standard``, ``label_smoothing``, ``l2``: the recipe specs ``config.recipes.<variant>``
  (presets ``preset_spec("trust", variant)``);
* ``temperature``: the standard models' logits divided by ``config.temperature`` (T = 10);
* ``temperature_nll``: the standard models' logits divided by the temperature that minimizes the
  NLL on each model's held-out test non-members (Guo et al.'s calibration,
  :func:`~hampjax.defenses.fit_temperature`);
* ``llla``: the last-layer Laplace approximation of each standard model
  (:func:`~hampjax.defenses.fit_last_layer_laplace`, prior variance on the paper's grid);
* ``hamp``: HAMP's recipe ``config.recipes.hamp`` and its output modification (each model with
  its own random-output pool of ``config.recipes.hamp.output.pool_size``).

Every variant is applied to target and shadow alike. The score attacks (max score, entropy,
top-3, loss) are fitted on the shadow's own attack set, then evaluated on the target's members
against each non-member set: the target's test non-members, OOD sets (``config.ood``), permuted
pixels, inputs scaled by each ``delta`` in ``config.deltas`` (the paper's x255) and uniform noise.

Run directory (one cell ``<dataset>_<model>``)::

    <workdir>/<cell>/<variant>/trust.json   hampjax.report.trust schema (+ trust.md, KDE PNGs)
    <workdir>/<cell>/summary.json           {variant: {train_acc, test_acc, ece, oe, mmps,
                                             fpr: {set: {attack: fpr}}}}
    <workdir>/<cell>/train/<recipe>/        resumable training

Splits (spec B.1): ``num_train`` training images chosen stratified by class and halved into the
target's and the shadow's training sets; the test images halved likewise; each model's attack
set is its first ``attack_size`` members and first ``attack_size`` test non-members; the rest of
each test half is held out (the Laplace prior selection uses it).
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
import zlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hampjax import atomic, validation
from hampjax.attacks.shift import (
    SCORE_ATTACKS,
    calibration_summary,
    evaluate_shift,
    fit_score_attacks,
    max_prediction_score,
)
from hampjax.data import Dataset, data_hash, load_cifar10, load_cifar100, load_digits_dataset
from hampjax.data.transforms import permute_pixels, scale_inputs, uniform_noise_images
from hampjax.defenses.baselines import fit_temperature, temperature_scale
from hampjax.defenses.laplace import fit_last_layer_laplace
from hampjax.defenses.output_modification import OutputModifier, random_image_inputs
from hampjax.models import get_model, model_functions
from hampjax.repro.rundir import record_cell_data
from hampjax.report.trust import write_trust_report
from hampjax.training import RecipeSpec, build_recipe, predict_single, train_many

__all__ = ["TRUST_VARIANTS", "TrustSplit", "trust_split", "check_trust", "run_trust"]

TRUST_VARIANTS = ("standard", "label_smoothing", "l2", "temperature", "temperature_nll", "llla",
                  "hamp")
_TRAINED_BY = {"standard": "standard", "label_smoothing": "label_smoothing", "l2": "l2",
               "temperature": "standard", "temperature_nll": "standard", "llla": "standard",
               "hamp": "hamp"}
_ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh}

# fold_in streams of a variant's key: every random draw has its own named stream, so adding a
# non-member set or a call changes no other draw.
_SETUP, _FIT, _OUTPUTS = 0, 1, 2  # the variant's pools / Laplace fits; attack fits; outputs
_SHADOW_ATTACK_SET, _TARGET_MEMBERS, _TARGET_TEST, _TARGET_TRAIN, _NONMEMBER_SETS = range(5)


def _named_key(key, name: str):
    """A stream of ``key`` named by a string (stable under adding or reordering names)."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()))


@dataclasses.dataclass(frozen=True)
class TrustSplit:
    """Index arrays of a Trust split (spec B.1); each model ``m`` in ``(target, shadow)``.

    Attributes:
      train: ``[2, n]`` indices into the training images of each model's members.
      test: ``[2, t]`` indices into the test images of each model's non-members.
      attack_size: members and non-members in each model's attack set (the first entries).
    """

    train: np.ndarray
    test: np.ndarray
    attack_size: int


def _stratified_halves(y: np.ndarray, total: int | None, rng: np.random.Generator) -> np.ndarray:
    """Two disjoint, class-balanced halves: ``total // (2 C)`` per class and half, or (``None``)
    as many as the rarest class allows."""
    classes, counts = np.unique(y, return_counts=True)
    per_class = int(counts.min()) // 2 if total is None else total // (2 * len(classes))
    if per_class < 1:
        raise ValueError(f"too few examples ({total}) to split {len(classes)} classes into halves")
    halves: list[list[np.ndarray]] = [[], []]
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < 2 * per_class:
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than the {2 * per_class} "
                             "a stratified split of this size needs")
        halves[0].append(idx[:per_class])
        halves[1].append(idx[per_class:2 * per_class])
    return np.stack([rng.permutation(np.concatenate(h)) for h in halves])


def trust_split(y_train: Any, y_test: Any, *, num_train: int, attack_size: int,
                seed: int) -> TrustSplit:
    """Stratified halves of ``num_train`` training labels and of the test labels (spec B.1).

    Every class contributes equally: ``num_train // (2 C)`` training examples per class and
    half; the test halves take as many per class as the rarest test class allows (CIFAR-10:
    all 10,000 test images, 5,000 per half).

    Raises:
      ValueError: sizes out of range (``attack_size`` must leave at least one held-out test
        example per model).
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    validation.check_int_in_range("num_train", num_train, 2, len(y_train))
    seed = validation.check_positive_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    train = _stratified_halves(y_train, num_train, rng)
    test = _stratified_halves(y_test, None, rng)
    high = min(train.shape[1], test.shape[1] - 1)
    validation.check_int_in_range("attack_size", attack_size, 1, high)
    return TrustSplit(train=train, test=test, attack_size=int(attack_size))


def _load(config) -> tuple[Dataset, Dataset]:
    if config.dataset == "digits":
        ds = load_digits_dataset()
        order = np.random.default_rng(config.seed).permutation(len(ds))
        test, train = order[:config.num_test], order[config.num_test:]
        pick = lambda idx: dataclasses.replace(ds, x=ds.x[idx], y=ds.y[idx])  # noqa: E731
        return pick(train), pick(test)
    if config.get("data_dir") is None:
        raise ValueError(f"config.data_dir is required for dataset {config.dataset!r}")
    loader = load_cifar10 if config.dataset == "cifar10" else load_cifar100
    return (loader(config.data_dir, split="train", download=config.download),
            loader(config.data_dir, split="test", download=config.download))


def _model(config, num_classes: int):
    kwargs = dict(config.get("model_kwargs", {}))
    if config.get("activation"):
        validation.check_choice("config.activation", config.activation, tuple(_ACTIVATIONS))
        kwargs["activation"] = _ACTIVATIONS[config.activation]
    model = get_model(config.model, num_classes, **kwargs)
    flat = config.model == "fc"
    return model, (lambda images: images.reshape(images.shape[0], -1)) if flat else (lambda im: im)


def _specs(config) -> dict[str, RecipeSpec]:
    """``{training name: RecipeSpec}`` of the recipes the variants need (``config.recipes``)."""
    specs = {}
    for name in sorted({_TRAINED_BY[v] for v in config.variants}):
        if name not in config.recipes:
            raise ValueError(f"config.recipes.{name} is missing: variants "
                             f"{[v for v in config.variants if _TRAINED_BY[v] == name]} are "
                             f"trained with it (config.recipes has {list(config.recipes)})")
        try:
            specs[name] = RecipeSpec.from_dict(config.recipes[name].to_dict())
        except ValueError as e:
            raise ValueError(f"config.recipes.{name}: {e}") from e
    return specs


def _ood_sets(config, train: Dataset, key) -> dict[str, np.ndarray]:
    """Normalized OOD images keyed by set name (``config.ood``)."""
    sets = {}
    if not config.ood:
        return sets
    from hampjax.data import ood

    for i, name in enumerate(config.ood):
        k = jax.random.fold_in(key, i)
        if name == "sample_crops":
            ds = ood.sample_image_crops(k, config.attack_size, train.image_shape)
        else:
            ds = ood.load_ood_images(name, data_dir=config.get("tfds_data_dir"),
                                     image_size=train.image_shape[0],
                                     max_examples=config.attack_size, seed=config.seed)
        sets[name] = np.asarray(ood.normalize_like(ds, train))
    return sets


def check_trust(config) -> None:
    """Check the Trust config's choices before anything runs."""
    for v in config.variants:
        validation.check_choice("config.variants[]", v, TRUST_VARIANTS)
    for a in config.attacks_fitted:
        validation.check_choice("config.attacks_fitted[]", a, SCORE_ATTACKS)
    if config.dataset != "digits" and config.get("data_dir") is None:
        raise ValueError(f"config.data_dir is required for dataset {config.dataset!r}")
    _specs(config)


def run_trust(config, workdir: str, progress: bool) -> list[str]:
    """The ``trust`` experiment kind (see the module docstring); returns its cell names."""
    check_trust(config)
    train_ds, test_ds = _load(config)
    cell = f"{config.dataset}_{config.model}"
    cell_dir = os.path.join(workdir, cell)
    summary_path = os.path.join(cell_dir, "summary.json")
    summary = atomic.read_json(summary_path, {})
    if all(v in summary for v in config.variants):
        print(f"[{cell}] done already, skipped")
        return [cell]
    os.makedirs(cell_dir, exist_ok=True)
    split = trust_split(train_ds.y, test_ds.y, num_train=config.num_train,
                        attack_size=config.attack_size, seed=config.seed)
    record_cell_data(workdir, cell, {"scheme": "trust", "seed": config.seed,
                                     "data_hash": data_hash(train_ds.x, train_ds.y),
                                     "test_data_hash": data_hash(test_ds.x, test_ds.y),
                                     "sizes": {"train_half": int(split.train.shape[1]),
                                               "test_half": int(split.test.shape[1]),
                                               "attack_size": split.attack_size}})
    x_train, x_test = train_ds.normalized(), test_ds.normalized()
    model, as_input = _model(config, train_ds.num_classes)
    _, apply_fn = model_functions(model)
    pool_idx = np.concatenate([split.train[0], split.train[1]])
    n_half = split.train.shape[1]
    keep = np.zeros((2, 2 * n_half), bool)
    keep[0, :n_half], keep[1, n_half:] = True, True
    x_pool, y_pool = as_input(x_train[pool_idx]), train_ds.y[pool_idx]
    key = jax.random.fold_in(jax.random.key(config.seed), 11)

    trained = {}
    specs = _specs(config)
    for name, spec in specs.items():
        t0 = time.perf_counter()
        trained[name] = train_many(model, build_recipe(spec), x_pool, y_pool,
                                   keep, seed=config.seed, workdir=os.path.join(cell_dir, "train", name),
                                   progress=progress).variables
        print(f"[{cell}] trained {name} (target + shadow) in {time.perf_counter() - t0:.0f} s")

    k = config.attack_size
    members = [train_ds_idx[:k] for train_ds_idx in split.train]
    nonmembers = [test_idx[:k] for test_idx in split.test]
    held_out = [test_idx[k:] for test_idx in split.test]
    scaled = {f"scaled_x{d:g}": float(d) for d in config.deltas}
    target_test = x_test[nonmembers[0]]
    shifted = {"test": (target_test, test_ds.y[nonmembers[0]])}
    shifted.update({name: (images, None) for name, images in
                    _ood_sets(config, train_ds, jax.random.fold_in(key, 1)).items()})
    shifted["permuted"] = (np.asarray(permute_pixels(jax.random.fold_in(key, 2), target_test)),
                           test_ds.y[nonmembers[0]])
    for name, delta in scaled.items():
        shifted[name] = (np.asarray(scale_inputs(target_test, delta)), test_ds.y[nonmembers[0]])
    noise_args = dict(mean=train_ds.mean, std=train_ds.std)
    shifted["uniform_noise"] = (np.asarray(uniform_noise_images(
        jax.random.fold_in(key, 3), k, train_ds.image_shape, **noise_args)), None)
    laplace_noise = np.asarray(uniform_noise_images(
        jax.random.fold_in(key, 4), config.laplace.num_noise, train_ds.image_shape, **noise_args))

    def single(variables, m):
        return jax.tree_util.tree_map(lambda a: a[m], variables)

    for variant in config.variants:
        if variant in summary and os.path.exists(os.path.join(cell_dir, variant, "trust.json")):
            continue
        t0 = time.perf_counter()
        variables = trained[_TRAINED_BY[variant]]
        # Keyed by the variant's name: adding or reordering variants changes no result.
        vkey = _named_key(key, variant)
        outputs = _variant_outputs(config, specs, variant, model, apply_fn, variables, single,
                                   as_input, x_train, train_ds, split.train, held_out, x_test,
                                   test_ds, laplace_noise, jax.random.fold_in(vkey, _SETUP))
        shadow_x = np.concatenate([x_train[members[1]], x_test[nonmembers[1]]])
        shadow_y = np.concatenate([train_ds.y[members[1]], test_ds.y[nonmembers[1]]])
        shadow_member = np.concatenate([np.ones(k, bool), np.zeros(k, bool)])
        okey = jax.random.fold_in(vkey, _OUTPUTS)
        attacks = fit_score_attacks(
            outputs(1, shadow_x, jax.random.fold_in(okey, _SHADOW_ATTACK_SET)), shadow_y,
            shadow_member, key=jax.random.fold_in(vkey, _FIT), names=tuple(config.attacks_fitted),
            top3_max_epochs=config.top3_max_epochs)
        member_logits = outputs(0, x_train[members[0]], jax.random.fold_in(okey, _TARGET_MEMBERS))
        set_key = jax.random.fold_in(okey, _NONMEMBER_SETS)
        set_logits = {name: (outputs(0, images, _named_key(set_key, name)), labels)
                      for name, (images, labels) in shifted.items()}
        results = evaluate_shift(attacks, member_logits, train_ds.y[members[0]], set_logits)
        groups = {"members": max_prediction_score(member_logits)}
        groups.update({name: max_prediction_score(logits) for name, (logits, _) in set_logits.items()})
        test_all = outputs(0, x_test[split.test[0]], jax.random.fold_in(okey, _TARGET_TEST))
        calib = {"test": calibration_summary(test_all, test_ds.y[split.test[0]]),
                 "members": calibration_summary(member_logits, train_ds.y[members[0]])}
        main = jax.process_index() == 0  # Every process computes; one writes.
        if main:
            write_trust_report(os.path.join(cell_dir, variant), results, score_groups=groups,
                               calibration=calib)
        train_all = outputs(0, x_train[split.train[0]], jax.random.fold_in(okey, _TARGET_TRAIN))
        summary[variant] = {
            "train_acc": float(np.mean(np.argmax(train_all, -1) == train_ds.y[split.train[0]])),
            "test_acc": calib["test"]["accuracy"], "ece": calib["test"]["ece"],
            "oe": calib["test"]["oe"], "mmps": calib["test"]["mmps"],
            "fpr": {s: {a: r["fpr"] for a, r in per.items()} for s, per in results.items()},
            "auroc": {s: {a: r["auroc"] for a, r in per.items()} for s, per in results.items()},
        }
        if main:
            # Unsorted: variants and non-member sets stay in the config's order.
            atomic.write_json(summary_path, summary)
        fpr = summary[variant]["fpr"]
        shown = ", ".join(f"{s} {fpr[s]['max_score']:.1%}" for s in ["test", *scaled]
                          if "max_score" in fpr[s])
        print(f"[{cell}] {variant}: test acc {summary[variant]['test_acc']:.2%}, ECE "
              f"{summary[variant]['ece']:.3f}; max-score FPR: {shown} "
              f"({time.perf_counter() - t0:.0f} s)")
    return [cell]


def _variant_outputs(config, specs, variant, model, apply_fn, variables, single, as_input, x_train,
                     train_ds, train_idx, held_out, x_test, test_ds, laplace_noise, key):
    """``outputs(model index, normalized images, key) -> [n, C]`` logits (or
    log-probabilities); ``key`` draws the randomness of that one call (HAMP's pool draw, the
    Laplace predictive samples) and is ignored by deterministic variants. ``key`` here seeds
    the variant's setup (HAMP's pools, the Laplace fits)."""

    def plain(m, images, key=None):
        del key
        return np.asarray(predict_single(apply_fn, single(variables, m), as_input(images))[:, 0])

    if variant in ("standard", "label_smoothing", "l2"):
        return plain
    if variant == "temperature":
        return lambda m, images, key: np.asarray(temperature_scale(
            jnp.asarray(plain(m, images)), config.temperature))
    if variant == "temperature_nll":
        lo, hi = 1e-2, 1e3
        temps = [float(fit_temperature(jnp.asarray(plain(m, x_test[held_out[m]])),
                                       jnp.asarray(test_ds.y[held_out[m]]), min_temperature=lo,
                                       max_temperature=hi)) for m in range(2)]
        print(f"  NLL-fitted temperatures (target, shadow): {temps[0]:.3f}, {temps[1]:.3f}")
        for m, t in enumerate(temps):
            if not lo * 1.01 < t < hi / 1.01:
                warnings.warn(f"the NLL-fitted temperature of model {m} is {t:.3g}, at the end of "
                              f"[{lo}, {hi}]: its {len(held_out[m])} held-out examples are "
                              "(almost) all classified correctly; use a larger test set or "
                              "a smaller config.attack_size", stacklevel=2)
        return lambda m, images, key: np.asarray(temperature_scale(
            jnp.asarray(plain(m, images)), temps[m]))
    if variant == "hamp":
        # The one output-modification API: each model's pool of outputs on its own random
        # inputs, applied in the same prediction step as every other output.
        output = specs["hamp"].output
        modifiers = []
        for m in range(2):
            inputs = random_image_inputs(jax.random.fold_in(key, m), output.pool_size,
                                         train_ds.image_shape, mean=train_ds.mean, std=train_ds.std)
            modifiers.append(OutputModifier.from_pool(jnp.asarray(plain(m, inputs)),
                                                      break_ties=output.break_ties))

        def hamp(m, images, key):
            return np.asarray(predict_single(apply_fn, single(variables, m), as_input(images),
                                             output_modifier=modifiers[m], output_key=key)[:, 0])
        return hamp
    # llla: one Laplace approximation per model, fitted on that model's own members; the prior
    # variance is chosen on its held-out test non-members and uniform-noise images.
    lap = config.laplace
    grid = np.logspace(lap.grid_min, lap.grid_max, lap.grid_points)
    fitted = []
    for m in range(2):
        fitted.append(fit_last_layer_laplace(
            model, single(variables, m), as_input(x_train[train_idx[m]]), train_ds.y[train_idx[m]],
            x_val=as_input(x_test[held_out[m]]), y_val=test_ds.y[held_out[m]],
            x_noise=as_input(laplace_noise), key=jax.random.fold_in(key, m), method=lap.method,
            grid=grid, num_selection_samples=lap.selection_samples))
    def laplace(m, images, key):
        return np.asarray(fitted[m].log_predictive(as_input(images), key=key,
                                                   num_samples=lap.num_samples))
    return laplace
