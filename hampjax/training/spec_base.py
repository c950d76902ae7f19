"""The machinery of the recipe specs: a frozen-dataclass base with ``to_dict`` /
``from_dict`` / ``replace`` (dotted keys reach into nested parts), and the field checks that
also normalize values, so that equal settings give equal, equally-hashing specs and the same
JSON. The parts and the recipe spec that use it: :mod:`hampjax.training.spec`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hampjax import validation

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "exponential", "cosine")
EXAMPLE_STATES = ("none", "ws_noise_scale")
OUTPUTS = ("none", "hamp", "memguard")
RANDOM_INPUTS = ("dataset",)
SELECTIONS = ("last", "best_val")
SHUFFLES = ("every_epoch", "once")
TARGETS = ("none", "teacher_logits")
"""Values of :attr:`DefenseKind.targets`: the per-example targets a defense's loss reads."""
ADVERSARIES = ("none", "advreg")
ADVREG_GAMES = ("rounds", "epochs")
ADVREG_REFERENCES = ("authors", "disjoint")
PRIVACY_KINDS = ("none", "dp_sgd")
DP_SAMPLINGS = ("poisson", "shuffle")
DP_CONVERSIONS = ("classic", "opacus_improved")
DP_ACCOUNTANTS = ("rdp", "pld")
DP_PER_EXAMPLE = ("auto", "dense", "generic")
SPLIT_AI_KINDS = ("none", "selena")


# ----------------------------------------------------------------------------------------------
# Checks that also normalize (ints given for floats become floats, lists become tuples), so
# equal settings give equal, equally-hashing specs and the same JSON.


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _float(obj: Any, field: str, low: float = -math.inf, high: float = math.inf, *,
           low_inclusive: bool = True, high_inclusive: bool = False) -> None:
    name, value = obj._prefix + field, getattr(obj, field)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    validation.check_in_range(name, value, low, high, low_inclusive=low_inclusive,
                              high_inclusive=high_inclusive)
    _set(obj, field, float(value))


def _int(obj: Any, field: str, minimum: int) -> None:
    _set(obj, field, validation.check_positive_int(obj._prefix + field, getattr(obj, field),
                                                   minimum=minimum))


def _bool(obj: Any, field: str) -> None:
    _set(obj, field, validation.check_bool(obj._prefix + field, getattr(obj, field)))


def _choice(obj: Any, field: str, allowed: Sequence[str]) -> None:
    validation.check_choice(obj._prefix + field, getattr(obj, field), allowed)


def _unused(obj: Any, fields: Sequence[str]) -> None:
    """Settings the chosen kind ignores must keep their defaults (no silent no-ops)."""
    defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    for field in fields:
        if getattr(obj, field) != defaults[field]:
            raise ValueError(
                f"{obj._prefix}{field} is not used with {obj._prefix}kind={obj.kind!r}; leave it "
                f"at its default {defaults[field]!r}, got {getattr(obj, field)!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, _Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _unknown_field(name: str, valid: Sequence[str]) -> ValueError:
    return ValueError(f"unknown field {name!r}; valid fields: {', '.join(valid)}")


class _Spec:
    """Shared behaviour of the frozen spec dataclasses (to_dict / from_dict / replace)."""

    _prefix: ClassVar[str] = ""  # Where this part sits in a RecipeSpec ("optimizer.").
    _nested: ClassVar[Mapping[str, type]] = types.MappingProxyType({})  # Field -> part class.

    def to_dict(self) -> dict[str, Any]:
        """Nested plain JSON data (tuples become lists); :meth:`from_dict` inverts it."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def _init_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def _coerce(cls, field: str, value: Any) -> Any:
        nested = cls._nested.get(field)
        if nested is not None and isinstance(value, Mapping):
            return nested.from_dict(value)
        if nested is not None and not isinstance(value, nested):
            raise ValueError(f"{cls._prefix + field} must be a dict or a {nested.__name__}, "
                             f"got {value!r}")
        if isinstance(value, list):
            return tuple(value)
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """The spec that :meth:`to_dict` wrote (every field present, no others).

        Raises:
          ValueError: naming the dotted field when one is unknown, missing or invalid.
        """
        where = cls._prefix[:-1] or "recipe spec"
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a dict, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise _unknown_field(cls._prefix + str(key), names)
        for name in names:
            if name not in data:
                raise ValueError(f"missing field {cls._prefix + name!r} ({where} needs: "
                                 f"{', '.join(names)})")
        init = cls._init_names()
        return cls(**{k: cls._coerce(k, data[k]) for k in init})

    def replace(self, **changes: Any):
        """A copy with some fields changed; dotted keys reach into nested parts.

        ``spec.replace(epochs=3, **{"optimizer.learning_rate": 0.1})``. A nested part may also
        be given whole, as a spec or as its :meth:`to_dict` form.

        Raises:
          ValueError: naming the dotted field when one is unknown or its new value is invalid.
        """
        names = self._init_names()
        whole: dict[str, Any] = {}
        dotted: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            head, dot, rest = key.partition(".")
            if head not in names:
                if head in {f.name for f in dataclasses.fields(self)}:  # a params class's kind
                    raise ValueError(
                        f"{self._prefix + head} cannot be changed by itself; pass "
                        f"{self._prefix[:-1]}= the parameters of the new kind, e.g. "
                        f"defense=CrossEntropyParams()")
                raise _unknown_field(self._prefix + key, names)
            if dot:
                dotted.setdefault(head, {})[rest] = value
            else:
                whole[head] = self._coerce(head, value)
        values = dict(whole)
        for head, sub in dotted.items():
            part = values.get(head, getattr(self, head))
            if not isinstance(part, _Spec):
                raise ValueError(f"{self._prefix + head} has no fields; cannot set "
                                 f"{self._prefix + head}.{next(iter(sub))}")
            values[head] = part.replace(**sub)
        return dataclasses.replace(self, **values)


def diff_paths(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Sorted dotted paths where two nested plain dicts differ (missing keys count).

    Lists and tuples compare as sequences; nested dicts are compared key by key.

    Example:
      >>> diff_paths({"epochs": 3, "optimizer": {"learning_rate": 0.1, "kind": "sgd"}},
      ...            {"epochs": 3, "optimizer": {"learning_rate": 0.2, "kind": "sgd"}, "x": 1})
      ['optimizer.learning_rate', 'x']
    """
    out = []

    def walk(x, y, prefix):
        for key in set(x) | set(y):
            path = f"{prefix}{key}"
            if key not in x or key not in y:
                out.append(path)
            elif isinstance(x[key], Mapping) and isinstance(y[key], Mapping):
                walk(x[key], y[key], path + ".")
            elif _as_list(x[key]) != _as_list(y[key]):
                out.append(path)

    walk(a, b, "")
    return sorted(out)


def _as_list(value: Any) -> Any:
    return [_as_list(v) for v in value] if isinstance(value, (list, tuple)) else value
