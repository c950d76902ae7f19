"""The in-memory result of an evaluation: per-attack scores, per-defense results, the run.

:class:`Evaluation` holds, per defense, a :class:`DefenseResult` (the target model's
train/test accuracy, per attack the per-sample :class:`AttackScores` with the membership
labels, and the defense's config, stats, timings and model counts), plus the run metadata.
:mod:`hampjax.report.report` writes it to a run directory and reads it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from hampjax import validation
from hampjax.training.membership import check_keep

__all__ = ["AttackScores", "DefenseResult", "Evaluation", "collect_versions", "config_hash"]

_VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy", "hampjax")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,-]*$")


# --------------------------------------------------------------------------------------------
# Small helpers: names, JSON, atomic writes.
# --------------------------------------------------------------------------------------------


def _check_name(what: str, name: Any) -> str:
    """A defense/attack name must be usable in file names and npz keys."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what} must be a non-empty string of letters, digits and '_.+=,-' not starting "
            f"with a punctuation mark (it is used in file names), got {name!r}"
        )
    return name


def _canonical_json(value: Any, *, name: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serializable (finite numbers, str, lists, dicts): {err}") from None


def _as_plain_config(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        config = config.to_dict()  # ml_collections.ConfigDict
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping (dict or ConfigDict), got {type(config).__name__}")
    return json.loads(_canonical_json(dict(config), name="config"))


def _as_plain_json(value: Any, *, name: str) -> dict[str, Any]:
    """A mapping in its JSON form, keys in their order (unlike a config, order is shown)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serializable (finite numbers, str, lists, dicts): {err}") from None


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config`` (sorted keys, no whitespace).

    Tuples and lists hash alike (both are JSON arrays), so a config reloaded from JSON has
    the hash of the original.

    Args:
      config: a JSON-serializable mapping (or an ``ml_collections.ConfigDict``).

    Returns:
      The hex digest (64 characters).

    Raises:
      ValueError: if ``config`` is not a mapping or not JSON-serializable.

    Example:
      >>> config_hash({"b": (1, 2), "a": 0}) == config_hash({"a": 0, "b": [1, 2]})
      True
    """
    plain = _as_plain_config(config)
    return hashlib.sha256(_canonical_json(plain, name="config").encode("ascii")).hexdigest()


def collect_versions() -> dict[str, str]:
    """Versions of Python and of jax, jaxlib, flax, optax, numpy and hampjax.

    Read from installed package metadata (nothing is imported); a package that is not
    installed reads ``"not installed"``.

    Returns:
      ``{"python": ..., "jax": ..., ...}``, all strings.

    Example:
      >>> sorted(collect_versions())
      ['flax', 'hampjax', 'jax', 'jaxlib', 'numpy', 'optax', 'python']
    """
    out = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _check_timings(timings: Any) -> dict[str, float]:
    if not isinstance(timings, Mapping):
        raise ValueError(f"timings must be a mapping phase -> seconds, got {timings!r}")
    out = {}
    for k, v in timings.items():
        validation.check_scalar(f"timings[{k!r}]", v, allowed="[0, inf)")
        validation.check_nonnegative(f"timings[{k!r}]", v)
        out[str(k)] = float(v)
    return out


# --------------------------------------------------------------------------------------------
# In-memory evaluation.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class AttackScores:
    """Per-sample scores of one attack on one defended target model.

    Attributes:
      scores: float64 ``[N]`` finite attack scores, higher = more likely member.
      is_member: bool ``[N]``, True for members; both classes present.

    Raises:
      ValueError: on non-1-D or non-finite scores, non-binary labels, a missing class, or
        different lengths.

    Example:
      >>> a = AttackScores([0.9, 0.1], [1, 0])
      >>> a.scores.dtype, a.is_member.tolist()
      (dtype('float64'), [True, False])
    """

    scores: np.ndarray
    is_member: np.ndarray

    def __post_init__(self):
        scores = np.asarray(self.scores)
        labels = np.asarray(self.is_member)
        validation.check_ndim("scores", scores, 1)
        validation.check_binary_labels(labels, name="is_member")
        validation.check_same_shape(("scores", "is_member"), scores, labels)
        validation.check_finite("scores", scores)
        object.__setattr__(self, "scores", scores.astype(np.float64))
        object.__setattr__(self, "is_member", labels == 1)


@dataclasses.dataclass(frozen=True, eq=False)
class DefenseResult:
    """One defended target model: its accuracies and every attack's per-sample scores.

    Attributes:
      train_acc: accuracy on the target's training set, in ``[0, 1]``.
      test_acc: accuracy on held-out data, in ``[0, 1]``.
      attacks: mapping ``attack name -> AttackScores`` (a ``(scores, is_member)`` pair is
        converted), at least one; names use letters, digits and ``_.+=,-`` (``gamma=0.8``).
        Order is kept.
      config: JSON-serializable per-defense settings (e.g. the recipe spec, the output
        transform and the attack settings); stored in its JSON form.
      stats: named finite numbers about the target (e.g. ``"entropy_members"``).
      timings: mapping ``phase -> seconds`` of this defense (finite, ``>= 0``).
      models_trained, models_loaded: models this run trained / loaded from a finished
        earlier run (``None`` when unknown).
      multi_target: JSON-serializable summary over several target models (e.g. the mean
        and std of the metrics of cheap attacks, each model in turn the target; see
        :func:`hampjax.evaluation.multi_target_summary`); ``{}`` for a single target.

    Raises:
      ValueError: on accuracies outside ``[0, 1]``, no attacks, an invalid attack name or
        invalid scores.

    Example:
      >>> d = DefenseResult(0.99, 0.8, {"loss": ([0.9, 0.1], [1, 0])})
      >>> list(d.attacks)
      ['loss']
    """

    train_acc: float
    test_acc: float
    attacks: Mapping[str, AttackScores]
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stats: Mapping[str, float] = dataclasses.field(default_factory=dict)
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    models_trained: int | None = None
    models_loaded: int | None = None
    multi_target: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "config", _as_plain_config(self.config))
        object.__setattr__(self, "multi_target", _as_plain_json(self.multi_target, name="multi_target"))
        if not isinstance(self.stats, Mapping):
            raise ValueError(f"stats must be a mapping name -> finite number, got {self.stats!r}")
        stats = {}
        for k, v in self.stats.items():
            validation.check_scalar(f"stats[{k!r}]", v, allowed="finite")
            validation.check_finite(f"stats[{k!r}]", np.asarray(v, np.float64))
            stats[str(k)] = float(v)
        object.__setattr__(self, "stats", stats)
        object.__setattr__(self, "timings", _check_timings(self.timings))
        for name in ("models_trained", "models_loaded"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, validation.check_positive_int(name, value, minimum=0))
        for name in ("train_acc", "test_acc"):
            value = getattr(self, name)
            validation.check_scalar(name, value, allowed="[0, 1]")
            validation.check_in_range(name, value, 0.0, 1.0, high_inclusive=True)
            object.__setattr__(self, name, float(value))
        if not isinstance(self.attacks, Mapping) or not self.attacks:
            raise ValueError(
                f"attacks must be a non-empty mapping attack name -> AttackScores, got {self.attacks!r}"
            )
        attacks = {}
        for name, value in self.attacks.items():
            _check_name("attack name", name)
            if isinstance(value, AttackScores):
                attacks[name] = value
            elif isinstance(value, (tuple, list)) and len(value) == 2:
                attacks[name] = AttackScores(*value)
            else:
                raise ValueError(
                    f"attacks[{name!r}] must be AttackScores or a pair (scores [N], is_member [N]), "
                    f"got {type(value).__name__}"
                )
        object.__setattr__(self, "attacks", attacks)


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything a report needs: per-defense results plus run metadata.

    Attributes:
      defenses: mapping ``defense name -> DefenseResult``, at least one, order kept. A
        defense name may not equal an attack name (their plot files would collide).
      num_models: number of models trained for the evaluation (targets and shadows), ``>= 1``.
      num_queries: queries (augmentations) per example, ``>= 1``.
      seeds: mapping ``what -> integer seed >= 0`` (e.g. ``{"keep": 0, "train": 1}``).
      config: JSON-serializable mapping (or ConfigDict); stored in its JSON form.
      timings: mapping ``phase -> seconds`` (finite, ``>= 0``) of the whole run; the
        report's ``run.timings`` adds every defense's as ``"<defense>/<phase>"``.
      keep: optional bool keep matrix ``[M, N]`` saved in ``scores.npz``.
      versions: package versions; ``None`` collects them now (:func:`collect_versions`).

    Raises:
      ValueError: on any invalid field (named in the message).

    Example:
      >>> ev = Evaluation(
      ...     defenses={"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...     num_models=1, num_queries=1, seeds={"train": 0}, config={"lr": 0.1},
      ...     timings={"train": 1.5})
      >>> sorted(ev.versions)[:2]
      ['flax', 'hampjax']
    """

    defenses: Mapping[str, DefenseResult]
    num_models: int
    num_queries: int
    seeds: Mapping[str, int]
    config: Mapping[str, Any]
    timings: Mapping[str, float]
    keep: np.ndarray | None = None
    versions: Mapping[str, str] | None = None

    def __post_init__(self):
        if not isinstance(self.defenses, Mapping) or not self.defenses:
            raise ValueError(
                f"defenses must be a non-empty mapping defense name -> DefenseResult, got {self.defenses!r}"
            )
        for name, result in self.defenses.items():
            _check_name("defense name", name)
            if not isinstance(result, DefenseResult):
                raise ValueError(f"defenses[{name!r}] must be a DefenseResult, got {type(result).__name__}")
        attack_names = {a for r in self.defenses.values() for a in r.attacks}
        clash = sorted(attack_names & set(self.defenses))
        if clash:
            raise ValueError(
                f"defense names must differ from attack names (plot files roc_<name>.png), "
                f"both use {clash}"
            )
        object.__setattr__(self, "defenses", dict(self.defenses))
        object.__setattr__(self, "num_models", validation.check_positive_int("num_models", self.num_models))
        object.__setattr__(self, "num_queries", validation.check_positive_int("num_queries", self.num_queries))
        if not isinstance(self.seeds, Mapping):
            raise ValueError(f"seeds must be a mapping name -> integer seed >= 0, got {self.seeds!r}")
        object.__setattr__(
            self,
            "seeds",
            {str(k): validation.check_positive_int(f"seeds[{k!r}]", v, minimum=0) for k, v in self.seeds.items()},
        )
        object.__setattr__(self, "config", _as_plain_config(self.config))
        object.__setattr__(self, "timings", _check_timings(self.timings))
        if self.keep is not None:
            object.__setattr__(self, "keep", check_keep(self.keep))
        if self.versions is None:
            object.__setattr__(self, "versions", collect_versions())
        elif not isinstance(self.versions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.versions.items()
        ):
            raise ValueError(f"versions must be a mapping package -> version string, got {self.versions!r}")
        else:
            object.__setattr__(self, "versions", dict(self.versions))
