"""MemGuard (Jia et al., CCS 2019): adversarial noise on each released output, test time only.

The defender trains its own membership classifier ``g`` on the undefended model's outputs
(members vs non-members), then, for every query, searches for logits ``z`` near the real ones
``z0`` that keep the predicted label and move ``g``'s output to the other side of 0.5:

* :class:`MemGuardClassifier`: ``g``, ascending sorted softmax ``[C] -> 256 -> 128 -> 64 -> 1``
  (ReLU, Glorot-uniform kernels, zero biases; :func:`memguard_classifier_logit` is the pre-sigmoid
  output). :func:`train_memguard_classifiers` fits one per model, batched over models (BCE,
  plain SGD, shuffled batches with the last partial one kept).
* :func:`memguard_logits`: Phase I, the per-query optimization, vectorized over queries
  (sorted space: logits ascending, the label, i.e. the argmax, last)::

      loss(z) = c1 |g_logit(softmax z)| + c2 relu(max_{j != y} z_j - z_y)
                + c3 ||softmax z - softmax z0||_1

  For ``c3 = c3_initial * c3_factor**r``, ``r = 0 .. c3_rounds - 1`` (0.1 .. 1e5): restart
  from ``z0`` and take normalized gradient steps ``z <- z - step_size grad / ||grad||`` (a
  zero gradient leaves ``z`` as it is) until the argmax is kept AND ``g`` has crossed 0.5
  from its side at ``z0`` (``g_logit(z) * g_logit(z0) <= 0``), at most ``max_steps`` steps
  (at least one). A round that ends in success stores ``z`` and moves on to the next ``c3``;
  the first failure ends the search. The last success is released, ``z0`` when the first
  round fails or when ``|g(z0) - 0.5| <= tolerance``. ``g`` reads ``softmax z`` in the
  order sorted once, at ``z0``; where the search reorders the non-label classes, ``g`` on
  the re-sorted released vector can fall back on its initial side (13 of 121 successes in
  a small synthetic check). The search runs with a fixed budget of
  ``c3_rounds x max_steps`` steps and a per-query freeze mask (a query that has stopped no
  longer changes), so queries and models batch; with ``early_exit`` the loops stop once no
  query of the batch is still moving (a speed-up only; results are identical).
* :func:`memguard_phase2`: the paper's Phase II (optional; the HAMP code leaves it out):
  release ``z`` with probability ``p = min(1, budget / ||softmax z - softmax z0||_1)``
  and ``z0`` otherwise, so that the expected L1 distortion of the confidence vector stays
  within the budget (the paper takes ``g(softmax z) = 0.5``, for which this ``p`` is optimal).
* :func:`memguard_many`: both phases on ``[M, N, C]`` outputs of ``M`` models, each with its
  own classifier or one shared, in fixed-size chunks of queries (one compiled program), and
  the release (:data:`MEMGUARD_RELEASES`: ``log_softmax`` of the result by default).

The released label never changes: a success has its label strictly largest, and ``z0`` and
the restored order give back the original argmax (the first maximal class, as
``jnp.argmax``). The hand-written pieces (the batched SGD loop, the step rule) are a few lines
each where optax would add nothing: the classifier's optimizer is :func:`optax.sgd`.

>>> import jax, jax.numpy as jnp
>>> g = init_memguard_classifier(jax.random.key(0), 4, hidden_sizes=(8,))
>>> z0 = jnp.array([[0.1, 2.0, -1.0, 0.5]])
>>> out = memguard_logits(g, z0, hidden_sizes=(8,), max_steps=50)
>>> int(out.logits.argmax(-1)[0]), out.logits.shape
(1, (1, 4))
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from hampjax import validation

__all__ = [
    "MEMGUARD_CLASSIFIERS",
    "MEMGUARD_HIDDEN",
    "MEMGUARD_RELEASES",
    "MemGuardClassifier",
    "MemGuardOutput",
    "memguard_features",
    "memguard_classifier_logit",
    "init_memguard_classifier",
    "train_memguard_classifiers",
    "memguard_logits",
    "memguard_phase2",
    "memguard_many",
]

MEMGUARD_CLASSIFIERS = ("target", "per_shadow")
"""Whose classifier post-processes a shadow's outputs: the target's ``g`` (HAMP code) or the
shadow's own (each shadow a whole MemGuard deployment)."""

MEMGUARD_HIDDEN = (256, 128, 64)
"""Hidden sizes of the defender's classifier (HAMP code)."""

MEMGUARD_RELEASES = ("log_softmax", "logits")
"""What :func:`memguard_many` releases: ``log_softmax(z)`` (the logits of exactly the defended
confidence vector, which MemGuard releases; nothing else about ``z0`` survives) or the
searched logits ``z`` themselves (``z0`` plus noise: their mean is ``z0``'s, every loss term
being shift-invariant, so an attack that reads raw logits sees that undefended statistic)."""

_GLOROT = nn.initializers.glorot_uniform()


class MemGuardClassifier(nn.Module):
    """The defender's membership classifier ``g``: sorted softmax -> hidden ReLU layers -> 1.

    Attributes:
      hidden_sizes: widths of the hidden layers (HAMP code: 256, 128, 64).

    ``__call__(features [..., C]) -> logit [...]`` (pre-sigmoid; ``sigmoid`` is the member
    probability).
    """

    hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        h = features
        for width in self.hidden_sizes:
            h = nn.relu(nn.Dense(width, kernel_init=_GLOROT)(h))
        return nn.Dense(1, kernel_init=_GLOROT)(h)[..., 0]


def memguard_features(logits: jax.Array) -> jax.Array:
    """``g``'s input: the softmax of ``logits [..., C]``, sorted ascending."""
    return jnp.sort(jax.nn.softmax(logits, axis=-1), axis=-1)


def init_memguard_classifier(key: jax.Array, num_classes: int, *,
                    hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN) -> Any:
    """Fresh variables of :class:`MemGuardClassifier` for ``num_classes`` inputs."""
    model = MemGuardClassifier(tuple(hidden_sizes))
    return model.init(key, jnp.zeros((1, int(num_classes)), jnp.float32))


def memguard_classifier_logit(variables: Any, probs: jax.Array, *,
                     hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN) -> jax.Array:
    """``g``'s pre-sigmoid output on probability vectors ``probs [..., C]`` (as given: the
    caller sorts them, see :func:`memguard_features`)."""
    return MemGuardClassifier(tuple(hidden_sizes)).apply(variables, probs)


# ----------------------------------------------------------------------------------------------
# The defender's classifier, trained batched over models.


@functools.partial(jax.jit, static_argnames=("hidden_sizes", "epochs", "learning_rate",
                                              "batch_size"))
def _train_memguard_classifiers(keys, features, labels, *, hidden_sizes, epochs, learning_rate,
                       batch_size):
    num = features.shape[1]
    num_batches = -(-num // batch_size)
    model = MemGuardClassifier(hidden_sizes)
    optimizer = optax.sgd(learning_rate)

    def one_model(key, x, y):
        init_key, shuffle_key = jax.random.split(key)
        params = model.init(init_key, x[:1])["params"]
        opt_state = optimizer.init(params)

        def batch_loss(params, xb, yb, mask):
            logits = model.apply({"params": params}, xb)
            bce = optax.sigmoid_binary_cross_entropy(logits, yb)
            return jnp.sum(jnp.where(mask, bce, 0.0)) / jnp.maximum(jnp.sum(mask), 1)

        def epoch(carry, epoch_index):
            params, opt_state = carry
            order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch_index), num)
            order = jnp.pad(order, (0, num_batches * batch_size - num))
            valid = jnp.arange(num_batches * batch_size) < num
            order, valid = (order.reshape(num_batches, batch_size),
                            valid.reshape(num_batches, batch_size))

            def step(carry, batch):
                params, opt_state = carry
                rows, mask = batch
                grads = jax.grad(batch_loss)(params, x[rows], y[rows], mask)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), None

            return lax.scan(step, (params, opt_state), (order, valid))[0], None

        (params, _), _ = lax.scan(epoch, (params, opt_state), jnp.arange(epochs))
        return {"params": params}

    return jax.vmap(one_model)(keys, features, labels)


def train_memguard_classifiers(key: jax.Array, logits: jax.Array, is_member: Any, *,
                      hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN, epochs: int = 400,
                      learning_rate: float = 1e-3, batch_size: int = 256,
                      model_ids: Any = None) -> Any:
    """Train one defender classifier ``g`` per model, batched over models (one jitted program).

    Model ``m`` learns, with BCE and plain SGD, to tell its members from its non-members by
    :func:`memguard_features` of its outputs: every epoch a fresh shuffle
    (``fold_in(shuffle_key, epoch)``), batches of ``batch_size`` with the last partial batch
    kept (masked padding). Its key is ``fold_in(key, model_ids[m])`` (split into init and
    shuffle keys), so a model's classifier does not depend on which others train with it.

    Args:
      key: PRNG key.
      logits: ``[M, N, C]`` each model's undefended outputs on its candidates.
      is_member: ``[M, N]`` bool, the membership labels (the keep matrix).
      hidden_sizes, epochs, learning_rate, batch_size: the training settings (HAMP code:
        (256, 128, 64), 400, 1e-3, 256).
      model_ids: ``[M]`` ints, the models' indices for their keys (default ``0 .. M-1``).

    Returns:
      Stacked variables ``{"params": ...}`` with a leading model axis ``M``.

    Raises:
      ValueError: on bad shapes or settings.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> logits = jax.random.normal(jax.random.key(1), (2, 10, 3))
      >>> member = jnp.arange(20).reshape(2, 10) % 2 == 0
      >>> g = train_memguard_classifiers(jax.random.key(0), logits, member, hidden_sizes=(4,),
      ...                                epochs=2, batch_size=4)
      >>> g["params"]["Dense_0"]["kernel"].shape
      (2, 3, 4)
    """
    validation.check_key(key)
    validation.check_ndim("logits", logits, 3)
    validation.check_floating("logits", logits)
    validation.check_finite("logits", logits)
    num_models, num = validation.shape_of(logits)[:2]
    validation.check_num_classes(validation.shape_of(logits)[2], name="logits.shape[-1]")
    validation.check_shape("is_member", is_member, (num_models, num))
    validation.check_positive_int("num examples (logits.shape[1])", num)
    hidden_sizes = _check_hidden(hidden_sizes)
    epochs = validation.check_positive_int("epochs", epochs)
    batch_size = validation.check_positive_int("batch_size", batch_size)
    validation.check_positive("learning_rate", learning_rate)
    ids = np.arange(num_models) if model_ids is None else np.asarray(model_ids)
    validation.check_shape("model_ids", ids, (num_models,))
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(ids, jnp.int32))
    features = memguard_features(jnp.asarray(logits, jnp.float32))
    labels = jnp.asarray(is_member, jnp.float32)
    return _train_memguard_classifiers(keys, features, labels, hidden_sizes=hidden_sizes,
                                       epochs=epochs, learning_rate=float(learning_rate),
                                       batch_size=batch_size)


def _check_hidden(hidden_sizes: Any) -> tuple[int, ...]:
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, (tuple, list)) \
            or not hidden_sizes:
        raise ValueError(f"hidden_sizes must be a non-empty sequence of widths, got "
                         f"{hidden_sizes!r}")
    return tuple(validation.check_positive_int(f"hidden_sizes[{i}]", h)
                 for i, h in enumerate(hidden_sizes))


# ----------------------------------------------------------------------------------------------
# Phase I: the per-query search, vectorized over queries.


class MemGuardOutput(NamedTuple):
    """What :func:`memguard_logits` returns (leading shape ``[...]`` of the queries).

    Attributes:
      logits: ``[..., C]`` the released logits (the original class order).
      success: ``[...]`` bool, at least one round succeeded (``logits != z0``).
      rounds: ``[...]`` int32, rounds that succeeded (the released ``c3`` is
        ``c3_initial * c3_factor**(rounds - 1)``).
      steps: ``[...]`` int32, gradient steps the query took over all rounds.
    """

    logits: jax.Array
    success: jax.Array
    rounds: jax.Array
    steps: jax.Array


def _sort_label_last(z0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``order`` with ``z0[order]`` ascending and ``jnp.argmax(z0)`` (the first maximum) last."""
    order = jnp.argsort(-z0, axis=-1, stable=True)[..., ::-1]
    return order, jnp.take_along_axis(z0, order, axis=-1)


def _search(variables, z0, *, hidden_sizes, c1, c2, c3_initial, c3_factor, c3_rounds,
            step_size, max_steps, tolerance, early_exit):
    """Phase I on ``z0 [B, C]`` (one classifier) -> MemGuardOutput of ``[B]`` queries."""
    num_queries, num_classes = z0.shape
    order, zs0 = _sort_label_last(z0.astype(jnp.float32))
    p0 = jax.nn.softmax(zs0, axis=-1)

    def g_logit(p):  # g on softmax(z) in z0's sorted order (not re-sorted as z moves)
        return memguard_classifier_logit(variables, p, hidden_sizes=hidden_sizes)

    logit0 = g_logit(p0)
    label = num_classes - 1

    def loss(z, p_ref, c3):  # one query
        p = jax.nn.softmax(z)
        margin = jnp.max(z[:-1]) - z[-1]
        return (c1 * jnp.abs(g_logit(p)) + c2 * jax.nn.relu(margin)
                + c3 * jnp.sum(jnp.abs(p - p_ref)))

    grad = jax.vmap(jax.grad(loss), in_axes=(0, 0, None))

    def succeeded(z):
        kept = jnp.argmax(z, axis=-1) == label
        return kept & (g_logit(jax.nn.softmax(z, axis=-1)) * logit0 <= 0)

    def run_round(c3, active):
        # state: loop counter, z, done (succeeded: frozen), steps taken in this round
        def moving(state):
            _, _, done, steps = state
            return active & ~done & (steps < max_steps)

        def body(state):
            i, z, done, steps = state
            move = moving(state)
            g = grad(z, p0, c3)
            norm = jnp.linalg.norm(g, axis=-1, keepdims=True)
            safe = jnp.where(norm > 0, norm, 1.0)
            stepped = jnp.where(norm > 0, z - step_size * g / safe, z)
            z = jnp.where(move[:, None], stepped, z)
            done = done | (move & succeeded(z))
            return i + 1, z, done, steps + move.astype(jnp.int32)

        def again(state):  # the fixed budget, cut short once no query moves (early_exit)
            return (state[0] < max_steps) & (jnp.any(moving(state)) | ~early_exit)

        state = (jnp.int32(0), zs0, jnp.zeros(num_queries, bool),
                 jnp.zeros(num_queries, jnp.int32))
        return lax.while_loop(again, body, state)[1:]

    def outer(carry):
        r, active, best, rounds, total = carry
        c3 = c3_initial * c3_factor ** r.astype(jnp.float32)
        z, done, steps = run_round(c3, active)
        success = active & done
        best = jnp.where(success[:, None], z, best)
        return r + 1, success, best, rounds + success, total + steps

    active = jnp.abs(jax.nn.sigmoid(logit0) - 0.5) > tolerance
    carry = (jnp.int32(0), active, zs0, jnp.zeros(num_queries, jnp.int32),
             jnp.zeros(num_queries, jnp.int32))
    carry = lax.while_loop(lambda c: (c[0] < c3_rounds) & (jnp.any(c[1]) | ~early_exit),
                           outer, carry)
    _, _, best, rounds, total = carry
    inverse = jnp.argsort(order, axis=-1)
    logits = jnp.take_along_axis(best, inverse, axis=-1).astype(z0.dtype)
    success = rounds > 0
    logits = jnp.where(success[:, None], logits, z0)  # failures give back z0 bit for bit
    return MemGuardOutput(logits, success, rounds, total)


# early_exit is traced (a bool array): both loop modes share one compiled program.
_STATIC = ("hidden_sizes", "c1", "c2", "c3_initial", "c3_factor", "c3_rounds", "step_size",
           "max_steps", "tolerance")
_search_jit = jax.jit(_search, static_argnames=_STATIC)


def _settings(*, hidden_sizes, c1, c2, c3_initial, c3_factor, c3_rounds, step_size, max_steps,
              tolerance, early_exit) -> dict[str, Any]:
    validation.check_nonnegative("c1", c1)
    validation.check_nonnegative("c2", c2)
    validation.check_positive("c3_initial", c3_initial)
    validation.check_positive("c3_factor", c3_factor)
    validation.check_positive("step_size", step_size)
    validation.check_in_range("tolerance", tolerance, 0.0, 0.5)
    return dict(hidden_sizes=_check_hidden(hidden_sizes), c1=float(c1), c2=float(c2),
                c3_initial=float(c3_initial), c3_factor=float(c3_factor),
                c3_rounds=validation.check_positive_int("c3_rounds", c3_rounds),
                step_size=float(step_size),
                max_steps=validation.check_positive_int("max_steps", max_steps),
                tolerance=float(tolerance),
                early_exit=jnp.bool_(validation.check_bool("early_exit", early_exit)))


def memguard_logits(variables: Any, logits: jax.Array, *,
                    hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN, c1: float = 1.0,
                    c2: float = 10.0, c3_initial: float = 0.1, c3_factor: float = 10.0,
                    c3_rounds: int = 7, step_size: float = 0.1, max_steps: int = 299,
                    tolerance: float = 1e-5, early_exit: bool = True) -> MemGuardOutput:
    """MemGuard's Phase I on a batch of queries with one classifier (module doc).

    Jitted (settings static); works under ``jit`` and ``vmap`` (e.g. over models).

    Args:
      variables: the classifier's variables (:func:`init_memguard_classifier`, one model's).
      logits: ``[..., C]`` float, the undefended logits ``z0`` of the queries.
      hidden_sizes: the classifier's architecture.
      c1, c2: weights >= 0 of ``|g_logit|`` and of the label-margin term (1, 10).
      c3_initial, c3_factor, c3_rounds: the ``c3`` schedule, ``c3_initial * c3_factor**r``
        for ``r < c3_rounds`` (0.1 .. 1e5).
      step_size: normalized gradient step (0.1).
      max_steps: steps per round at most (299).
      tolerance: ``|g(z0) - 0.5| <= tolerance`` releases ``z0`` (1e-5).
      early_exit: stop the loops once no query moves (performance only: same results).

    Returns:
      A :class:`MemGuardOutput` with the leading shape of ``logits``.

    Raises:
      ValueError: on a bad setting or non-float ``logits`` with fewer than 2 classes.
    """
    settings = _settings(hidden_sizes=hidden_sizes, c1=c1, c2=c2, c3_initial=c3_initial,
                         c3_factor=c3_factor, c3_rounds=c3_rounds, step_size=step_size,
                         max_steps=max_steps, tolerance=tolerance, early_exit=early_exit)
    logits = jnp.asarray(logits)
    validation.check_rank_at_least("logits", logits, 1)
    validation.check_num_classes(logits.shape[-1], name="logits.shape[-1] (number of classes)")
    validation.check_floating("logits", logits)
    validation.check_finite("logits", logits)
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    out = _search_jit(variables, flat, **settings)
    return MemGuardOutput(out.logits.reshape(logits.shape), *(
        a.reshape(lead) for a in out[1:]))


# ----------------------------------------------------------------------------------------------
# Phase II: random application within a distortion budget.


def _phase2(key, z0, z, budget):
    distortion = jnp.sum(jnp.abs(jax.nn.softmax(z, axis=-1) - jax.nn.softmax(z0, axis=-1)),
                         axis=-1)
    p = jnp.where(distortion > budget, budget / jnp.where(distortion > 0, distortion, 1.0), 1.0)
    apply = jax.random.uniform(key, distortion.shape) < p
    return jnp.where(apply[..., None], z, z0)


def memguard_phase2(key: jax.Array, z0: jax.Array, z: jax.Array, *,
                    distortion_budget: float) -> jax.Array:
    """MemGuard's Phase II: release ``z`` with probability ``min(1, budget / d)``, else ``z0``.

    ``d = ||softmax z - softmax z0||_1`` per query; a query within the budget always gets
    ``z``. One uniform draw per query from ``key`` (shape ``[...]``).

    Args:
      key: PRNG key.
      z0, z: ``[..., C]`` the undefended logits and Phase I's.
      distortion_budget: the expected L1 distortion allowed, in ``[0, 2]``.

    Returns:
      ``[..., C]`` the released logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> z0, z = jnp.zeros((2, 3)), jnp.array([[0.0, 0, 0], [0, 0, 9.0]])
      >>> memguard_phase2(jax.random.key(0), z0, z, distortion_budget=0.0)[1].tolist()
      [0.0, 0.0, 0.0]
    """
    validation.check_key(key)
    validation.check_same_shape(("z0", "z"), z0, z)
    validation.check_in_range("distortion_budget", distortion_budget, 0.0, 2.0,
                              high_inclusive=True)
    return _phase2(key, jnp.asarray(z0), jnp.asarray(z), float(distortion_budget))


# ----------------------------------------------------------------------------------------------
# Many models, many queries.


@functools.partial(jax.jit, static_argnames=_STATIC + ("shared", "phase2", "budget", "release"))
def _many_chunk(variables, z0, key, first, *, shared, phase2, budget, release, **settings):
    """``z0 [M, B, C]`` -> (logits, success, steps) ``[M, B, ...]``."""

    def one(v, z, m):
        out = _search(v, z, **settings)
        logits = out.logits
        if phase2:
            model_key = jax.random.fold_in(key, m)
            keys = jax.vmap(lambda i: jax.random.fold_in(model_key, i))(
                first + jnp.arange(z.shape[0], dtype=jnp.int32))
            logits = jax.vmap(lambda k, a, b: _phase2(k, a, b, budget))(keys, z, logits)
        if release == "log_softmax":
            logits = jax.nn.log_softmax(logits, axis=-1)
        return logits, out.success, out.steps

    models = jnp.arange(z0.shape[0], dtype=jnp.int32)
    return jax.vmap(one, in_axes=(None if shared else 0, 0, 0))(variables, z0, models)


def memguard_many(variables: Any, logits: Any, *, shared: bool, key: jax.Array | None = None,
                  phase2: bool = False, distortion_budget: float = 1.0,
                  release: str = "log_softmax", chunk_size: int = 1024, hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN,
                  c1: float = 1.0, c2: float = 10.0, c3_initial: float = 0.1,
                  c3_factor: float = 10.0, c3_rounds: int = 7, step_size: float = 0.1,
                  max_steps: int = 299, tolerance: float = 1e-5,
                  early_exit: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MemGuard on every model's outputs, ``[M, N, C]``, in chunks of ``chunk_size`` queries.

    Model ``m``'s queries go through its own classifier (``shared=False``: ``variables``
    stacked ``[M, ...]``) or through one classifier for all (``shared=True``). Queries are
    padded to whole chunks of ``min(chunk_size, N)`` (one compiled program); a query's
    result does not depend on the chunk size or its neighbours. With ``phase2``, query ``n``
    of model ``m`` draws from ``fold_in(fold_in(key, m), n)``.

    Args:
      variables: the classifier(s).
      logits: ``[M, N, C]`` float, the undefended logits.
      shared: one classifier for every model.
      key: PRNG key, needed with ``phase2`` (otherwise unused, may be None).
      phase2, distortion_budget: Phase II and its budget (:func:`memguard_phase2`).
      release: ``"log_softmax"`` or ``"logits"`` (:data:`MEMGUARD_RELEASES`).
      chunk_size: queries per model per compiled call (performance only).
      hidden_sizes, c1, c2, c3_initial, c3_factor, c3_rounds, step_size, max_steps,
        tolerance, early_exit: as :func:`memguard_logits`.

    Returns:
      ``(logits [M, N, C] float32, success [M, N] bool, steps [M, N] int32)`` host arrays:
      the released logits, whether the search succeeded, its gradient steps.

    Raises:
      ValueError: on bad shapes or settings, or ``phase2`` without a key.
    """
    settings = _settings(hidden_sizes=hidden_sizes, c1=c1, c2=c2, c3_initial=c3_initial,
                         c3_factor=c3_factor, c3_rounds=c3_rounds, step_size=step_size,
                         max_steps=max_steps, tolerance=tolerance, early_exit=early_exit)
    validation.check_ndim("logits", logits, 3)
    validation.check_floating("logits", logits)
    validation.check_num_classes(validation.shape_of(logits)[2], name="logits.shape[-1]")
    chunk_size = validation.check_positive_int("chunk_size", chunk_size)
    validation.check_choice("release", release, MEMGUARD_RELEASES)
    validation.check_finite("logits", logits)
    phase2 = validation.check_bool("phase2", phase2)
    validation.check_in_range("distortion_budget", distortion_budget, 0.0, 2.0,
                              high_inclusive=True)
    if phase2:
        if key is None:
            raise ValueError("key is required with phase2=True (Phase II draws per query)")
        validation.check_key(key)
    else:
        key = jax.random.key(0)  # unused placeholder (a traced argument, never drawn from)
    logits = np.asarray(logits, np.float32)
    num_models, num, num_classes = logits.shape
    chunk = min(chunk_size, max(num, 1))
    outs = [], [], []
    for start in range(0, num, chunk):
        part = logits[:, start:start + chunk]
        pad = chunk - part.shape[1]
        if pad:
            part = np.concatenate([part, np.repeat(part[:, -1:], pad, axis=1)], axis=1)
        result = _many_chunk(variables, jnp.asarray(part), key, jnp.int32(start),
                             shared=bool(shared), phase2=phase2,
                             budget=float(distortion_budget), release=release, **settings)
        for acc, value in zip(outs, result):
            acc.append(np.asarray(value)[:, :chunk - pad])
    if not num:
        return (logits.copy(), np.zeros((num_models, 0), bool),
                np.zeros((num_models, 0), np.int32))
    return tuple(np.concatenate(acc, axis=1) for acc in outs)
