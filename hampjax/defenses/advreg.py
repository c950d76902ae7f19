"""AdvReg's inference model and losses (Nasr, Shokri & Houmansadr, CCS 2018).

Adversarial regularization trains the classifier ``f`` in a min-max game with an inference
model ``h`` that tells members from a reference set ``D'`` of non-members::

    max_h  mean_{D} log h(f(x), y) + mean_{D'} log(1 - h(f(x'), y'))      (paper)
    min_f  mean_{D} CE(f(x), y) + lambda * (mean_{D} h(f(x), y) - 0.5)     (HAMP code)

The HAMP authors' code (followed here) trains ``h`` with a mean squared error against 1 for
members and 0 for reference examples, and penalizes the classifier with ``lambda`` times the
batch mean of ``h`` on its members, minus 0.5 (a constant: it shifts the reported loss, not
the gradient). The game itself (the alternating schedule, the reference set, two optimizers)
runs in :mod:`hampjax.training.advreg`; this module holds the pure pieces:

* :func:`attack_features`: what ``h`` sees of the classifier's output, ``"logits"`` (HAMP
  code), ``"softmax"`` (Nasr et al.) or ``"sorted_logits"`` (descending; RelaxLoss code).
* :func:`label_encoding`: the label branch's input, one-hot (``"hamp"``), +1 at the label
  and -1 elsewhere (``"relaxloss_tabular"``); ``"relaxloss_cifar"`` reads no label.
* :class:`InferenceModel`: the three architectures, ``attack_arch``:

  - ``"hamp"`` (HAMP code): features ``k -> 1024 -> 512 -> 64``, label ``k -> 128 -> 64``,
    concatenated ``128 -> 512 -> 256 -> 128 -> 64 -> 1``, ReLU after every hidden layer,
    sigmoid out; kernels ``N(0, 0.01^2)``, biases 0.
  - ``"relaxloss_tabular"`` (RelaxLoss code, tabular): features ``k -> 512 -> 64``, label
    ``k -> 64``, concatenated ``128 -> 64 -> 1``; ReLU, sigmoid; PyTorch's default
    ``nn.Linear`` kernels (:data:`hampjax.models.layers.dense_kernel_init`), zero biases.
  - ``"relaxloss_cifar"`` (RelaxLoss code, CIFAR): features ``k -> 100 -> 1``; ReLU,
    sigmoid; the label is unused. The authors keep the hidden layer in a plain Python list,
    so it is not a registered parameter and never trains: ``hidden="frozen"`` reproduces
    that (the layer lives in the ``"frozen"`` variable collection, outside ``"params"``),
    ``"trainable"`` trains it.

* :func:`membership_mse`: ``h``'s per-example loss; :func:`advreg_penalty`: the classifier's
  per-example privacy term (its mean over a batch is ``lambda (mean h - 0.5)``).

Every function is per-example, pure, and works under ``jit`` and ``vmap``.

>>> import jax, jax.numpy as jnp
>>> model = InferenceModel(arch="relaxloss_cifar")
>>> logits, labels = jnp.zeros((3, 10)), jnp.array([0, 1, 2])
>>> @jax.jit
... def scores_of(key, logits, labels):
...     variables = init_inference_model(model, key, 10)
...     return inference_scores(model, variables, logits, labels, attack_input="softmax")
>>> scores = scores_of(jax.random.key(0), logits, labels)
>>> scores.shape, bool(jnp.all((scores > 0) & (scores < 1)))
((3,), True)
>>> membership_mse(jnp.array([0.75, 0.25]), jnp.array([True, False])).tolist()
[0.0625, 0.0625]
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models.layers import dense_kernel_init

__all__ = [
    "ATTACK_INPUTS",
    "ATTACK_ARCHS",
    "ATTACK_HIDDEN",
    "InferenceModel",
    "attack_features",
    "label_encoding",
    "init_inference_model",
    "inference_scores",
    "membership_mse",
    "advreg_penalty",
]

ATTACK_INPUTS = ("logits", "softmax", "sorted_logits")
ATTACK_ARCHS = ("hamp", "relaxloss_tabular", "relaxloss_cifar")
ATTACK_HIDDEN = ("trainable", "frozen")

_HAMP_INIT = nn.initializers.normal(0.01)
_CIFAR_HIDDEN = 100


def attack_features(logits: jax.Array, attack_input: str) -> jax.Array:
    """What the inference model sees of the classifier's output.

    Args:
      logits: float ``[..., C]``.
      attack_input: ``"logits"`` (as they are), ``"softmax"`` (probabilities) or
        ``"sorted_logits"`` (sorted in descending order along the class axis).

    Returns:
      float32 ``[..., C]``.

    Raises:
      ValueError: on an unknown ``attack_input`` or NaN/inf in concrete ``logits``.

    Example:
      >>> attack_features(jnp.array([[1.0, 3.0, 2.0]]), "sorted_logits").tolist()
      [[3.0, 2.0, 1.0]]
    """
    validation.check_choice("attack_input", attack_input, ATTACK_INPUTS)
    validation.check_finite("logits", logits)
    logits = jnp.asarray(logits, jnp.float32)
    if attack_input == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    if attack_input == "sorted_logits":
        return -jnp.sort(-logits, axis=-1)
    return logits


def label_encoding(labels: jax.Array, num_classes: int, arch: str) -> jax.Array:
    """The label branch's input: one-hot (``"hamp"``, and ``"relaxloss_cifar"``, which
    ignores it) or +1 at the label, -1 elsewhere (``"relaxloss_tabular"``).

    Args:
      labels: int ``[...]``.
      num_classes: ``C >= 1``.
      arch: one of :data:`ATTACK_ARCHS`.

    Returns:
      float32 ``[..., C]``.

    Example:
      >>> label_encoding(jnp.array([1]), 3, "relaxloss_tabular").tolist()
      [[-1.0, 1.0, -1.0]]
    """
    validation.check_choice("attack_arch", arch, ATTACK_ARCHS)
    validation.check_labels(labels, num_classes)  # one_hot would give a zero row for >= C
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return 2.0 * onehot - 1.0 if arch == "relaxloss_tabular" else onehot


class InferenceModel(nn.Module):
    """AdvReg's inference model ``h(features, label) -> P(member)`` (see the module docstring).

    Attributes:
      arch: one of :data:`ATTACK_ARCHS`.
      hidden: ``"trainable"`` or ``"frozen"`` (``"relaxloss_cifar"`` only: its hidden layer
        outside ``"params"``, as in the authors' code).
    """

    arch: str = "hamp"
    hidden: str = "trainable"

    def _check(self) -> None:
        validation.check_choice("attack_arch", self.arch, ATTACK_ARCHS)
        validation.check_choice("attack_hidden", self.hidden, ATTACK_HIDDEN)
        if self.hidden == "frozen" and self.arch != "relaxloss_cifar":
            raise ValueError(f"attack_hidden='frozen' is only available with "
                             f"attack_arch='relaxloss_cifar', got {self.arch!r}")

    @nn.compact
    def __call__(self, features: jax.Array, labels: jax.Array) -> jax.Array:
        """Membership probabilities ``[B]`` from features ``[B, C]`` and encoded labels
        ``[B, C]`` (:func:`attack_features`, :func:`label_encoding`)."""
        self._check()
        if self.arch == "hamp":
            return self._hamp(features, labels)
        if self.arch == "relaxloss_tabular":
            return self._relaxloss_tabular(features, labels)
        return self._relaxloss_cifar(features)

    def _mlp(self, x, sizes, init, prefix):
        for i, size in enumerate(sizes):
            x = nn.relu(nn.Dense(size, kernel_init=init, name=f"{prefix}_{i}")(x))
        return x

    def _out(self, x, init):
        return jax.nn.sigmoid(nn.Dense(1, kernel_init=init, name="out")(x))[..., 0]

    def _hamp(self, features, labels):
        a = self._mlp(features, (1024, 512, 64), _HAMP_INIT, "features")
        b = self._mlp(labels, (128, 64), _HAMP_INIT, "labels")
        x = self._mlp(jnp.concatenate([a, b], -1), (512, 256, 128, 64), _HAMP_INIT, "joint")
        return self._out(x, _HAMP_INIT)

    def _relaxloss_tabular(self, features, labels):
        a = self._mlp(features, (512, 64), dense_kernel_init, "features")
        b = self._mlp(labels, (64,), dense_kernel_init, "labels")
        x = self._mlp(jnp.concatenate([a, b], -1), (64,), dense_kernel_init, "joint")
        return self._out(x, dense_kernel_init)

    def _relaxloss_cifar(self, features):
        if self.hidden == "trainable":
            x = self._mlp(features, (_CIFAR_HIDDEN,), dense_kernel_init, "hidden")
        else:  # outside "params": the optimizer never sees it (the authors' unregistered layer)
            shape = (features.shape[-1], _CIFAR_HIDDEN)
            kernel = self.variable("frozen", "hidden_kernel",
                                   lambda: dense_kernel_init(self.make_rng("params"), shape))
            bias = self.variable("frozen", "hidden_bias", lambda: jnp.zeros((_CIFAR_HIDDEN,)))
            x = nn.relu(features @ kernel.value + bias.value)
        return self._out(x, dense_kernel_init)


def init_inference_model(model: InferenceModel, key: jax.Array, num_classes: int) -> dict:
    """The inference model's variables for ``num_classes`` classes (``{"params": ...}``, plus
    ``"frozen"`` for a frozen hidden layer).

    The distributions of ``model.init`` (kernels ``N(0, 0.01^2)`` for ``"hamp"``,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` otherwise; zero biases), drawn from ONE random
    call for all kernels: XLA compiles each random call site on its own (~0.4 s of CPU each),
    and ``model.init`` has one per layer.

    Raises:
      ValueError: on a bad ``num_classes`` or an invalid model setting.
    """
    num_classes = validation.check_num_classes(num_classes)
    x = jnp.zeros((1, num_classes), jnp.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, x))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    is_kernel = [path[-1].key in ("kernel", "hidden_kernel") for path, _ in leaves]
    total = sum(leaf.size for (_, leaf), k in zip(leaves, is_kernel) if k)
    if model.arch == "hamp":
        draws = 0.01 * jax.random.normal(key, (total,), jnp.float32)
    else:
        draws = jax.random.uniform(key, (total,), jnp.float32, -1.0, 1.0)
    out, offset = [], 0
    for (_, leaf), kernel in zip(leaves, is_kernel):
        if not kernel:
            out.append(jnp.zeros(leaf.shape, leaf.dtype))
            continue
        value = draws[offset:offset + leaf.size].reshape(leaf.shape)
        offset += leaf.size
        out.append(value if model.arch == "hamp" else value / jnp.sqrt(leaf.shape[0]))
    return dict(jax.tree_util.tree_unflatten(treedef, out))


def inference_scores(model: InferenceModel, variables: Any, logits: jax.Array,
                     labels: jax.Array, *, attack_input: str) -> jax.Array:
    """``h(f(x), y)``: membership probabilities ``[B]`` from the classifier's logits.

    Args:
      model: the :class:`InferenceModel`.
      variables: its variables (:func:`init_inference_model`).
      logits: float ``[B, C]`` classifier outputs (gradients flow through them).
      labels: int ``[B]``.
      attack_input: one of :data:`ATTACK_INPUTS`.

    Returns:
      float32 ``[B]`` in (0, 1).
    """
    features = attack_features(logits, attack_input)
    encoded = label_encoding(labels, logits.shape[-1], model.arch)
    return model.apply(variables, features, encoded)


def membership_mse(scores: jax.Array, is_member: jax.Array) -> jax.Array:
    """The inference model's per-example loss ``(h - [member])^2`` (HAMP code: MSE).

    Args:
      scores: float ``[...]`` membership probabilities.
      is_member: bool ``[...]`` (True: a member, target 1; False: a reference example, 0).

    Returns:
      float32 ``[...]``; the caller takes the mean over real rows.

    Raises:
      ValueError: if concrete ``scores`` are not finite values in [0, 1].
    """
    validation.check_finite("scores", scores)
    validation.check_in_range("scores", scores, 0.0, 1.0, high_inclusive=True)
    return jnp.square(jnp.asarray(scores, jnp.float32) - jnp.asarray(is_member, jnp.float32))


def advreg_penalty(scores: jax.Array, weight: float | jax.Array) -> jax.Array:
    """The classifier's per-example privacy term ``weight * (h - 0.5)`` (its mean over a batch
    of members is the HAMP code's ``lambda * (mean h - 0.5)``).

    Args:
      scores: float ``[...]`` membership probabilities of the classifier's members.
      weight: lambda >= 0 (may be traced: an invalid traced value gives NaN).

    Returns:
      float32 ``[...]``.

    Raises:
      ValueError: if concrete ``scores`` are not finite values in [0, 1] or a concrete
        ``weight`` is not in [0, inf).

    Example:
      >>> advreg_penalty(jnp.array([0.5, 1.0]), 2.0).tolist()
      [0.0, 1.0]
    """
    validation.check_finite("scores", scores)
    validation.check_in_range("scores", scores, 0.0, 1.0, high_inclusive=True)
    validation.check_nonnegative("weight", weight)
    ok = validation.traced_in_range("weight", weight, 0.0, float("inf"))
    return validation.nan_unless(ok, weight * (jnp.asarray(scores, jnp.float32) - 0.5))
