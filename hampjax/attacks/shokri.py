"""Shokri et al. shadow-model attack: one attack model per class (S&P 2017).

Shadow models mimic the target; for each shadow ``s`` and example ``j`` the shadow's prediction
vector on ``j`` is a training row of the attack model of ``j``'s class, labelled IN (1) if the
shadow trained on ``j`` (``shadow_keep[s, j]``) and OUT (0) otherwise. The paper trains one
binary classifier per class on the prediction vector (a small fully connected network); the
target's prediction vector on a candidate is then scored by the model of the candidate's class.

Here each class's model is an MLP ``C -> hidden -> 1`` (ReLU) with a sigmoid output trained with
binary cross-entropy and Adam on minibatches drawn uniformly (with replacement) from that
class's rows. Features (``features=``): ``"raw"`` the softmax probability vector (the paper),
or ``"sorted"`` the same sorted in descending order (label-agnostic; common in later work).
Scores are the sigmoid outputs, higher = more likely member.

All classes train at once: their rows are gathered into a padded ``[K, L, ...]`` layout (``L`` =
largest class) and one ``vmap``-ped, ``lax.scan``-ned program trains the ``K`` models, each from
its own key ``jax.random.fold_in(key, class)``, so a class's model does not depend on the other
classes (the test checks this against a per-class loop).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax import validation

__all__ = ["ShokriAttack", "train_shokri_attack", "shokri_attack_scores", "shokri_features", "SHOKRI_FEATURES"]

Features = Literal["raw", "sorted"]
SHOKRI_FEATURES = ("raw", "sorted")


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params", "trained"],
                   meta_fields=["num_classes", "features"])
@dataclasses.dataclass(frozen=True)
class ShokriAttack:
    """Trained per-class attack models.

    Attributes:
      params: dict of stacked MLP weights, leading axis the class ``[K, ...]``.
      trained: ``[K]`` bool, whether class ``k`` had both IN and OUT shadow rows (models of
        other classes are left at their initialization and cannot score).
      num_classes: ``K``.
      features: ``"raw"`` or ``"sorted"``.
    """

    params: dict[str, jax.Array]
    trained: jax.Array
    num_classes: int
    features: str


def shokri_features(logits: jax.Array, *, features: Features = "raw") -> jax.Array:
    """``[..., C]`` attack inputs: softmax probabilities, optionally sorted descending.

    Example:
      >>> np.round(np.asarray(shokri_features(jnp.log(jnp.array([[0.2, 0.7, 0.1]])),
      ...                                     features="sorted")), 3)
      array([[0.7, 0.2, 0.1]], dtype=float32)
    """
    validation.check_choice("features", features, SHOKRI_FEATURES)
    validation.check_finite("logits", logits)
    p = jax.nn.softmax(jnp.asarray(logits), axis=-1)
    return -jnp.sort(-p, axis=-1) if features == "sorted" else p


def _init(key, num_inputs, hidden):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (num_inputs, hidden)) * np.sqrt(2.0 / num_inputs),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden,)) * np.sqrt(1.0 / hidden),
        "b2": jnp.zeros(()),
    }


def _logit(params, x):
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def _train_class_impl(key, feats, rows, member, count, learning_rate, *, hidden, steps, batch_size):
    """One class: ``feats [S, N, C]``; ``rows [L, 2]`` (shadow, example) pairs of which the first
    ``count`` are this class's; ``member [L]`` their labels."""
    k_init, k_batch = jax.random.split(key)
    params = _init(k_init, feats.shape[-1], hidden)
    opt = optax.adam(learning_rate)
    state = opt.init(params)

    def loss_fn(params, x, y):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(_logit(params, x), y))

    def step(carry, k):
        params, state = carry
        idx = jnp.floor(jax.random.uniform(k, (batch_size,)) * count).astype(jnp.int32)
        idx = jnp.clip(idx, 0, rows.shape[0] - 1)
        r = rows[idx]
        x, y = feats[r[:, 0], r[:, 1]], member[idx]
        grads = jax.grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, state), jax.random.split(k_batch, steps))
    return params


_train_class = jax.jit(_train_class_impl, static_argnames=("hidden", "steps", "batch_size"))


@functools.partial(jax.jit, static_argnames=("hidden", "steps", "batch_size"))
def _train_classes(keys, feats, rows, member, counts, learning_rate, *, hidden, steps, batch_size):
    one = functools.partial(_train_class_impl, hidden=hidden, steps=steps, batch_size=batch_size)
    return jax.vmap(one, in_axes=(0, None, 0, 0, 0, None))(keys, feats, rows, member, counts, learning_rate)


def _class_rows(labels, keep, num_classes):
    """Padded per-class (shadow, example) rows ``[K, L, 2]``, labels ``[K, L]``, counts ``[K]``."""
    num_shadows = keep.shape[0]
    per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    longest = max(1, max(len(e) for e in per_class) * num_shadows)
    rows = np.zeros((num_classes, longest, 2), np.int32)
    member = np.zeros((num_classes, longest), np.float32)
    counts = np.zeros(num_classes, np.int32)
    for c, examples in enumerate(per_class):
        s, e = np.meshgrid(np.arange(num_shadows), examples, indexing="ij")
        r = np.stack([s.ravel(), e.ravel()], axis=1)
        rows[c, : len(r)], member[c, : len(r)], counts[c] = r, keep[r[:, 0], r[:, 1]], len(r)
    trained = np.array([0 < member[c, : counts[c]].sum() < counts[c] for c in range(num_classes)])
    return rows, member, counts, trained


def train_shokri_attack(
    shadow_outputs: Any,
    shadow_labels: Any,
    shadow_keep: Any,
    *,
    key: jax.Array,
    num_classes: int | None = None,
    features: Features = "raw",
    hidden: int = 64,
    steps: int = 1000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
) -> ShokriAttack:
    """Train one attack model per class on the shadow models' outputs.

    Args:
      shadow_outputs: ``[S, N, C]`` float logits of ``S`` shadow models on ``N`` examples
        (pass ``log(probabilities)`` for models that release probabilities).
      shadow_labels: ``[N]`` int true labels in ``[0, C)``.
      shadow_keep: ``[S, N]`` bool, ``True`` iff shadow ``s`` trained on example ``j``.
      key: PRNG key; class ``k``'s model uses ``fold_in(key, k)``.
      num_classes: ``K`` (default ``C``).
      features: ``"raw"`` (paper) or ``"sorted"``.
      hidden: hidden width. steps, batch_size, learning_rate: Adam minibatch training per class.

    Returns:
      :class:`ShokriAttack`.

    Raises:
      ValueError: on inconsistent shapes, labels outside ``[0, C)``, a non-boolean keep, or
        invalid settings; if no class has both IN and OUT rows.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> keep = rng.uniform(size=(4, 50)) < 0.5
      >>> labels = rng.integers(0, 3, 50)
      >>> logits = rng.normal(size=(4, 50, 3)) + 3.0 * keep[..., None] * np.eye(3)[labels]
      >>> attack = train_shokri_attack(logits, labels, keep, key=jax.random.key(0), steps=50)
      >>> shokri_attack_scores(attack, logits[0], labels).shape
      (50,)
    """
    validation.check_ndim("shadow_outputs", shadow_outputs, 3)
    validation.check_floating("shadow_outputs", shadow_outputs)
    s, n, c = validation.shape_of(shadow_outputs)
    validation.check_mask("shadow_keep", shadow_keep, (s, n))
    num_classes = c if num_classes is None else validation.check_positive_int("num_classes", num_classes)
    labels = _check_labels("shadow_labels", shadow_labels, n, num_classes)
    validation.check_choice("features", features, SHOKRI_FEATURES)
    for name, value in (("hidden", hidden), ("steps", steps), ("batch_size", batch_size)):
        validation.check_positive_int(name, value)
    validation.check_positive("learning_rate", learning_rate)
    rows, member, counts, trained = _class_rows(labels, np.asarray(shadow_keep), num_classes)
    if not trained.any():
        raise ValueError("shadow_keep must give some class both IN and OUT shadow rows")
    feats = shokri_features(jnp.asarray(shadow_outputs), features=features)
    keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(num_classes))
    params = _train_classes(keys, feats, jnp.asarray(rows), jnp.asarray(member), jnp.asarray(counts),
                            learning_rate, hidden=hidden, steps=steps, batch_size=batch_size)
    return ShokriAttack(params=params, trained=jnp.asarray(trained), num_classes=num_classes, features=features)


def _check_labels(name, labels, n, num_classes) -> np.ndarray:
    validation.check_shape(name, labels, (n,))
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must be in [0, {num_classes}), got values in [{labels.min()}, {labels.max()}]")
    return labels


@jax.jit
def _scores(params, feats, labels):
    # Each example through its own class's model: gather that model's weights per example.
    per = jax.tree.map(lambda a: a[labels], params)
    return jax.nn.sigmoid(jax.vmap(_logit)(per, feats))


def shokri_attack_scores(attack: ShokriAttack, target_outputs: Any, labels: Any, *, chunk_size: int = 4096) -> jax.Array:
    """Membership scores ``[N]`` (sigmoid outputs; higher = member) of the target's outputs.

    Args:
      attack: from :func:`train_shokri_attack`.
      target_outputs: ``[N, C]`` float logits of the target model.
      labels: ``[N]`` int true labels.
      chunk_size: examples per step (performance only).

    Raises:
      ValueError: on bad shapes or labels, or a label whose class had no trained model.
    """
    if not isinstance(attack, ShokriAttack):
        raise ValueError(f"attack must be a ShokriAttack, got {type(attack).__name__}")
    validation.check_ndim("target_outputs", target_outputs, 2)
    validation.check_floating("target_outputs", target_outputs)
    n = validation.shape_of(target_outputs)[0]
    labels = _check_labels("labels", labels, n, attack.num_classes)
    untrained = ~np.asarray(attack.trained)[labels]
    if untrained.any():
        raise ValueError(
            f"labels hold class(es) {sorted(set(labels[untrained].tolist()))} whose attack model was "
            "not trained (the shadows had no IN or no OUT row of that class)")
    chunk_size = validation.check_positive_int("chunk_size", chunk_size)
    feats = shokri_features(jnp.asarray(target_outputs), features=attack.features)
    out = [_scores(attack.params, feats[i : i + chunk_size], jnp.asarray(labels[i : i + chunk_size]))
           for i in range(0, n, chunk_size)]
    return jnp.concatenate(out)
