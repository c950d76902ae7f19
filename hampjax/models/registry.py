"""Model lookup by name and the pure ``init`` / ``apply`` functions the training engine uses.

The batched engine sees every model only through two pure functions,

    init_fn(key, sample_x) -> variables
    apply_fn(variables, x, *, train, key=None) -> (logits, new_variables)

which :func:`model_functions` builds from any Flax module of the zoo. Both can be
``jax.vmap``-ed over a leading model axis (stack of keys / of variables) and ``jax.jit``-ed
(with ``train`` static).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax

from hampjax import validation
from hampjax.models import layers
from hampjax.models.cnn import SalemCNN
from hampjax.models.densenet import DenseNet
from hampjax.models.efficientnet import EfficientNet
from hampjax.models.mlp import FCNet
from hampjax.models.mobilenetv2 import MobileNetV2
from hampjax.models.resnet import ResNet18, ResNet20, WideResNet
from hampjax.models.shufflenetv2 import ShuffleNetV2
from hampjax.models.vgg import VGG, VGG_CONFIGS

__all__ = ["MODELS", "get_model", "model_functions", "count_params", "InitFn", "ApplyFn"]

Variables = dict[str, Any]
InitFn = Callable[[jax.Array, jax.Array], Variables]
ApplyFn = Callable[..., tuple[jax.Array, Variables]]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "fc": FCNet,
    "densenet100_bc": functools.partial(
        DenseNet, depth=100, growth_rate=12, compression=0.5, bottleneck=True
    ),
    "densenet22_bc": functools.partial(
        DenseNet, depth=22, growth_rate=12, compression=0.5, bottleneck=True
    ),
    "resnet18": functools.partial(ResNet18, stage_sizes=(2, 2, 2, 2)),
    "resnet20": functools.partial(ResNet20, depth=20),
    "wrn28_2": functools.partial(WideResNet, depth=28, width=2),
    "vgg11_bn": functools.partial(VGG, config=VGG_CONFIGS["vgg11"], batch_norm=True),
    "salem_cnn": SalemCNN,
    "mobilenetv2": MobileNetV2,
    "shufflenetv2": ShuffleNetV2,
    "efficientnet_b0": functools.partial(EfficientNet, width_multiplier=1.0, depth_multiplier=1.0),
}

_NOT_SETTABLE = ("num_classes", "parent", "name")


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name.

    Args:
      name: one of ``MODELS``: "fc", "densenet100_bc", "densenet22_bc", "resnet18",
        "resnet20", "wrn28_2", "vgg11_bn", "salem_cnn", "mobilenetv2", "shufflenetv2",
        "efficientnet_b0".
      num_classes: number of output logits k >= 2.
      **kwargs: other attributes of the model class (e.g. ``dropout_rate`` for a DenseNet,
        ``head_dropout_rate`` (dropout before the classifier) for "fc", the ResNets, VGG and
        "salem_cnn",
        ``shortcut="B"`` for ResNet-20, ``hidden_sizes`` for "fc"). Attributes the name fixes
        (such as a DenseNet's ``depth``) cannot be overridden.

    Returns:
      The (unbound) Flax module.

    Raises:
      ValueError: on an unknown name (the message lists the known ones), an attribute the name
        fixes, an unknown attribute, or an invalid attribute value.

    Example:
      >>> from hampjax.models.registry import get_model
      >>> get_model("densenet22_bc", 10).depth
      22
      >>> get_model("resnet50", 10)
      Traceback (most recent call last):
      ...
      ValueError: name must be one of 'fc', 'densenet100_bc', ...; got 'resnet50'
    """
    validation.check_choice("name", name, tuple(MODELS))
    constructor = MODELS[name]
    if isinstance(constructor, functools.partial):
        cls, fixed = constructor.func, constructor.keywords
    else:
        cls, fixed = constructor, {}
    allowed = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.name not in _NOT_SETTABLE and f.name not in fixed
    ]
    for key in kwargs:
        if key in fixed:
            raise ValueError(
                f"{key} is fixed to {fixed[key]!r} by the model name {name!r}; construct "
                f"{cls.__name__} directly to change it"
            )
        if key not in allowed:
            raise ValueError(
                f"{key} is not an attribute of {cls.__name__} ({name!r}); allowed: "
                + ", ".join(allowed)
            )
    return constructor(num_classes=num_classes, **kwargs)


# Module attributes whose positive value draws from the "dropout" PRNG stream in train mode.
_RANDOM_RATES = ("dropout_rate", "stochastic_depth_rate", "head_dropout_rate")


def _random_rates(module: nn.Module) -> dict[str, float]:
    rates = {name: float(getattr(module, name, 0.0)) for name in _RANDOM_RATES}
    return {name: rate for name, rate in rates.items() if rate > 0.0}


def model_functions(module: nn.Module) -> tuple[InitFn, ApplyFn]:
    """Pure ``init`` and ``apply`` functions for a Flax module of the zoo.

    ``init_fn(key, sample_x) -> variables``: ``key`` a PRNG key; ``sample_x`` any batch with
    the model's input shape (one example is enough; only shape and dtype matter). Returns a
    dict with ``"params"`` and, for models with BatchNorm, ``"batch_stats"`` (running means 0
    and variances 1).

    ``apply_fn(variables, x, *, train, key=None) -> (logits, new_variables)``: logits
    ``[batch, num_classes]`` float32. ``train`` must be a Python bool (static under ``jit``).
    With ``train=True`` BatchNorm normalizes with the batch's statistics and
    ``new_variables["batch_stats"]`` holds the updated running statistics; with
    ``train=False`` BatchNorm uses the running statistics (each example's logits are
    independent of the rest of the batch) and ``new_variables`` equals ``variables``.
    ``new_variables`` is always a dict with the keys of ``variables``. ``key`` seeds dropout
    (and stochastic depth) in train mode; it is required when the module's ``dropout_rate``
    or ``stochastic_depth_rate`` is positive and ``train=True``, and otherwise ignored.

    Both functions are ``vmap``-able over a leading model axis, e.g.
    ``jax.vmap(init_fn, in_axes=(0, None))(keys, sample_x)`` and
    ``jax.vmap(functools.partial(apply_fn, train=True), in_axes=(0, None))(variables, x)``.

    Args:
      module: a Flax module whose ``__call__(x, *, train)`` returns logits.

    Returns:
      ``(init_fn, apply_fn)``.

    Raises:
      ValueError: if ``module`` is not a Flax module. ``apply_fn`` raises ValueError if
        ``train`` is not a bool, or if dropout needs a ``key`` and none is given.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import get_model, model_functions
      >>> init_fn, apply_fn = model_functions(get_model("fc", 3, hidden_sizes=(8,)))
      >>> variables = init_fn(jax.random.key(0), jnp.zeros((1, 5)))
      >>> logits, new_variables = apply_fn(variables, jnp.ones((2, 5)), train=False)
      >>> logits.shape, sorted(new_variables)
      ((2, 3), ['params'])
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a flax.linen.Module, got {type(module).__name__}")
    random_rates = _random_rates(module)
    needs_key = bool(random_rates)

    def init_fn(key: jax.Array, sample_x: jax.Array) -> Variables:
        return dict(module.init({"params": key}, sample_x, train=False))

    def apply_fn(
        variables: Mapping[str, Any], x: jax.Array, *, train: bool, key: jax.Array | None = None
    ) -> tuple[jax.Array, Variables]:
        layers.check_bool("train", train)
        if train and needs_key and key is None:
            settings = ", ".join(f"{name}={rate}" for name, rate in random_rates.items())
            raise ValueError(
                f"key is required when train=True for a model with {settings}; pass a PRNG key"
            )
        rngs = {"dropout": key} if (train and needs_key) else None
        new_variables = dict(variables)
        if train and "batch_stats" in variables:
            logits, updates = module.apply(
                variables, x, train=True, mutable=["batch_stats"], rngs=rngs
            )
            new_variables["batch_stats"] = updates["batch_stats"]
        else:
            logits = module.apply(variables, x, train=train, rngs=rngs)
        return logits, new_variables

    return init_fn, apply_fn


def count_params(variables: Mapping[str, Any]) -> int:
    """Number of trainable parameters (the ``"params"`` collection only).

    BatchNorm scale and bias count; running statistics do not. Works on arrays and on the
    ``jax.ShapeDtypeStruct`` leaves of ``jax.eval_shape(init_fn, ...)``, so big models can be
    counted without running them. Variables stacked over a model axis count every model.

    Args:
      variables: a mapping with a ``"params"`` pytree.

    Returns:
      The total number of scalars in ``variables["params"]``.

    Raises:
      ValueError: if ``variables`` has no ``"params"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import count_params, get_model, model_functions
      >>> init_fn, _ = model_functions(get_model("resnet18", 10))
      >>> count_params(jax.eval_shape(init_fn, jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
      11173962
    """
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError("variables must be a mapping with a 'params' collection")
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables["params"]))
