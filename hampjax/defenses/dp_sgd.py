"""DP-SGD primitives: per-example gradient norms, clip factors, Gaussian noise, Poisson batches.

One DP-SGD step of one model (Abadi et al. 2016; baselines.md section 1)::

    g_i   = grad of example i's loss                       (never materialized on dense nets)
    c_i   = min(1, C / ||g_i||)                             clip_factors(norms, C)
    sum   = sum_i c_i g_i = grad of sum_i stop_grad(c_i) l_i one ordinary backward pass
    g     = (sum + N(0, sigma^2 C^2 I)) / B_exp             add_gaussian_noise(sum, key, sigma C)

then the optimizer (coupled weight decay is added after the noise). Every function has no
model axis and works under ``jit`` and ``vmap`` (the engine vmaps over models; each model's
noise comes from its own key).

Per-example norms, two ways:

* :func:`dense_sq_norms` (no per-example gradients): for a dense layer ``z = a W + b`` applied
  once per example, example i's kernel gradient is the outer product ``a_i d_i^T`` with
  ``d_i = dl_i / dz_i``, so ``||g_i||^2 = sum over layers ||a_i||^2 ||d_i||^2 (+ ||d_i||^2
  for the bias)`` (Goodfellow 2015; "ghost norms", Li et al. 2021). The layer inputs ``a`` are
  read and zero perturbations added to the outputs through ``flax.linen.intercept_methods``,
  and ``d`` is the gradient with respect to those perturbations: one forward pass and a
  backward pass to the activations only. Every parameter must belong to a
  ``flax.linen.Dense`` called once on a rank-2 input (:func:`dense_support`).
* :func:`generic_sq_norms`: ``vmap`` of ``grad`` over examples with jax_privacy's
  ``clipped_grad`` (``return_grad_norms``), for any model (conv nets); it materializes the
  per-example gradients of one batch.

The clipped sum is then one backward pass of the batch loss with per-example weights
``c_i`` (its cotangent into ``a^T`` and ``d`` is exactly ``A^T diag(c) D`` on every dense
layer). We take this route rather than summing jax_privacy's clipped per-example gradients
because (1) both norm methods then share the update code and differ only in the norms, and
(2) with ``C = inf`` (every ``c_i == 1`` exactly) the step is the ordinary mean-of-batch
gradient computed by the same code, bit for bit. Losses whose value for one example depends
on the rest of the batch (other than through padding) are outside DP-SGD's guarantee anyway;
BatchNorm models are refused by the engine.

Noise: jax_privacy's ``gaussian_privatizer`` (isotropic Gaussian), built per step with the
model's own noise key (its own key argument is a per-optimizer constant, which would give all
vmapped models the same noise; built inside the step it takes the traced key).

Poisson batches (:func:`poisson_batches`): jax_privacy's ``batch_selection`` samplers are
host-side NumPy iterators, so the in-program sampler is written here: each member enters each
step's batch independently with probability ``q``; the batch is padded to a static ``cap``
with a mask and members sampled beyond the cap are dropped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = [
    "clip_factors",
    "dense_support",
    "dense_sq_norms",
    "generic_sq_norms",
    "add_gaussian_noise",
    "poisson_cap_size",
    "PoissonBatches",
    "poisson_batches",
    "poisson_sample_rate",
]


def clip_factors(norms: jax.Array, clip_norm: float) -> jax.Array:
    """Per-example clip factors ``min(1, C / norm)``; 0 for NaN or infinite norms.

    A zero norm gives 1; ``C = inf`` gives 1 for every finite norm.

    Args:
      norms: per-example gradient L2 norms ``[B]`` (>= 0).
      clip_norm: C > 0, may be ``inf`` (may be traced: an invalid traced value gives NaN).

    Returns:
      float32 ``[B]`` in [0, 1].

    Raises:
      ValueError: if a concrete ``clip_norm`` is not in (0, inf].

    Example:
      >>> clip_factors(jnp.array([0.0, 0.5, 4.0, jnp.nan]), 2.0).tolist()
      [1.0, 1.0, 0.5, 0.0]
    """
    validation.check_in_range("clip_norm", clip_norm, 0.0, float("inf"), low_inclusive=False,
                              high_inclusive=True)
    ok = validation.traced_in_range("clip_norm", clip_norm, 0.0, float("inf"),
                                    low_inclusive=False, high_inclusive=True)
    norms = jnp.asarray(norms, jnp.float32)
    factors = jnp.minimum(1.0, jnp.float32(clip_norm) / norms)
    factors = jnp.where(jnp.isfinite(norms), jnp.nan_to_num(factors, nan=1.0), 0.0)
    return validation.nan_unless(ok, factors)  # an invalid traced clip_norm: NaN


# ----------------------------------------------------------------------------------------------
# Dense fast path: norms from layer inputs and output gradients.


class _Tap(NamedTuple):
    inputs: jax.Array  # [B, in]
    outputs: jax.Array  # [B, out]


def _tapped(per_example_loss: Callable, params: Any, eps: dict | None):
    """Run ``per_example_loss(params)`` recording every Dense layer's input and output and
    adding ``eps[path]`` to its output."""
    taps: dict[tuple[str, ...], _Tap] = {}
    bias: dict[tuple[str, ...], bool] = {}
    repeated: list[tuple[str, ...]] = []

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or not isinstance(module, nn.Dense):
            return next_fun(*args, **kwargs)
        path = tuple(module.path)
        out = next_fun(*args, **kwargs)
        if path in taps:
            repeated.append(path)
        taps[path] = _Tap(args[0], out)
        bias[path] = bool(module.use_bias)
        if eps is not None:
            out = out + eps[path].astype(out.dtype)
        return out

    with nn.intercept_methods(interceptor):
        losses = per_example_loss(params)
    return losses, taps, bias, repeated


def _param_modules(params: Any) -> dict[tuple[str, ...], set[str]]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    out: dict[tuple[str, ...], set[str]] = {}
    for path, _ in flat:
        names = tuple(str(getattr(k, "key", k)) for k in path)
        out.setdefault(names[:-1], set()).add(names[-1])
    return out


def dense_support(per_example_loss: Callable, params: Any) -> str | None:
    """Why the dense fast path does not apply to this model, or None when it does.

    Traces ``per_example_loss(params)`` abstractly (no computation). The path applies when
    every parameter is the ``kernel`` or ``bias`` of a ``flax.linen.Dense`` called exactly
    once, on a rank-2 ``[batch, features]`` input.

    Args:
      per_example_loss: ``params -> [B]`` per-example losses (the model is called inside).
      params: the model's parameters (arrays or ``jax.ShapeDtypeStruct``).

    Returns:
      None, or a short reason (e.g. ``"parameters outside Dense layers: conv1/kernel"``).
    """
    info: dict[str, Any] = {}

    def run(p):
        losses, taps, bias, repeated = _tapped(per_example_loss, p, None)
        info.update(taps={k: (v.inputs.ndim, v.outputs.ndim) for k, v in taps.items()},
                    bias=bias, repeated=repeated)
        return losses

    jax.eval_shape(run, params)
    if info["repeated"]:
        return "Dense layers called more than once: " + ", ".join(
            "/".join(p) for p in info["repeated"])
    bad_rank = [p for p, (i, o) in info["taps"].items() if i != 2 or o != 2]
    if bad_rank:
        return "Dense layers on inputs of rank other than 2: " + ", ".join(
            "/".join(p) for p in bad_rank)
    outside = []
    for path, names in _param_modules(params).items():
        allowed = {"kernel", "bias"} if info["bias"].get(path) else {"kernel"}
        if path not in info["taps"] or not names <= allowed:
            outside += ["/".join(path + (n,)) for n in sorted(names)]
    if outside:
        return "parameters outside Dense layers: " + ", ".join(outside[:4]) + (
            ", ..." if len(outside) > 4 else "")
    return None


def dense_sq_norms(per_example_loss: Callable, params: Any) -> jax.Array:
    """Squared per-example gradient norms of a network of dense layers, without per-example
    gradients: ``sum over layers ||a_i||^2 ||d_i||^2 + ||d_i||^2`` (bias).

    Args:
      per_example_loss: ``params -> [B]`` per-example losses (0 for padding rows); every
        parameter must belong to a ``flax.linen.Dense`` called once on a rank-2 input
        (check with :func:`dense_support`).
      params: the model's parameters.

    Returns:
      float32 ``[B]``: ``||grad of loss_i||^2``.

    Example:
      >>> model = nn.Dense(3)
      >>> params = model.init(jax.random.key(0), jnp.ones((1, 4)))["params"]
      >>> x, t = jnp.arange(8.0).reshape(2, 4), jnp.ones((2, 3))
      >>> loss = lambda p: jnp.sum((model.apply({"params": p}, x) - t) ** 2, -1)
      >>> per_example = jax.vmap(lambda xi, ti: jax.grad(
      ...     lambda p: jnp.sum((model.apply({"params": p}, xi) - ti) ** 2))(params))(x, t)
      >>> direct = sum(jnp.sum(g.reshape(2, -1) ** 2, 1) for g in jax.tree.leaves(per_example))
      >>> bool(jnp.allclose(dense_sq_norms(loss, params), direct, rtol=1e-5))
      True
    """
    shapes: dict[tuple[str, ...], Any] = {}

    def shape_run(p):
        losses, taps, _, _ = _tapped(per_example_loss, p, None)
        shapes.update({k: v.outputs for k, v in taps.items()})
        return losses

    jax.eval_shape(shape_run, params)
    eps0 = {k: jnp.zeros(s.shape, jnp.float32) for k, s in shapes.items()}

    def total(eps):
        losses, taps, bias, _ = _tapped(per_example_loss, params, eps)
        return jnp.sum(losses), (taps, bias)

    d, (taps, bias) = jax.grad(total, has_aux=True)(eps0)
    sq = 0.0
    for path, tap in taps.items():
        a = jnp.sum(jnp.square(tap.inputs.astype(jnp.float32)), axis=-1)
        g = jnp.sum(jnp.square(d[path].astype(jnp.float32)), axis=-1)
        sq = sq + a * g + (g if bias[path] else 0.0)
    return jnp.asarray(sq, jnp.float32)


# ----------------------------------------------------------------------------------------------
# Generic path: vmap(grad) through jax_privacy.


def generic_sq_norms(example_loss: Callable, params: Any, batch: Any, where: jax.Array
                     ) -> jax.Array:
    """Squared per-example gradient norms by ``vmap`` of ``grad`` (any model).

    Uses ``jax_privacy.clipped_grad(..., return_grad_norms=True)`` (its clipped sum is unused
    and removed by XLA); padding rows (``where`` False) get norm 0.

    Args:
      example_loss: ``(params, example) -> scalar`` loss of one example, where ``example`` is
        one row of every leaf of ``batch`` with a leading axis of size 1.
      params: the model's parameters.
      batch: pytree of per-example arrays ``[B, ...]``.
      where: bool ``[B]``.

    Returns:
      float32 ``[B]``.
    """
    import jax_privacy

    grad_fn = jax_privacy.clipped_grad(example_loss, l2_clip_norm=jnp.inf, batch_argnums=1,
                                       keep_batch_dim=True, return_grad_norms=True)
    _, aux = grad_fn(params, batch, is_padding_example=jnp.logical_not(where))
    norms = jnp.where(where, aux.grad_norms.astype(jnp.float32), 0.0)
    return jnp.square(norms)


# ----------------------------------------------------------------------------------------------
# Noise.


def add_gaussian_noise(tree: Any, key: jax.Array, stddev: float | jax.Array) -> Any:
    """``tree`` plus i.i.d. ``N(0, stddev^2)`` noise on every entry, drawn from ``key``.

    jax_privacy's ``gaussian_privatizer``, built here with the caller's key (one key per model
    and step, so vmapped models draw independent noise).

    Example:
      >>> noisy = add_gaussian_noise({"w": jnp.zeros((20000,))}, jax.random.key(0), 3.0)
      >>> round(float(jnp.std(noisy["w"])), 1)
      3.0
    """
    from jax_privacy import noise_addition

    validation.check_nonnegative("stddev", stddev)
    ok = validation.traced_in_range("stddev", stddev, 0.0, float("inf"))
    privatizer = noise_addition.gaussian_privatizer(stddev=stddev, prng_key=key)
    noisy, _ = privatizer.update(tree, privatizer.init(tree))
    return validation.nan_unless(ok, noisy)  # an invalid traced stddev: NaN leaves


# ----------------------------------------------------------------------------------------------
# Poisson batches.


def poisson_cap_size(batch_size: int, cap_std: float) -> int:
    """Static padded size of a Poisson batch: ``B + ceil(cap_std * sqrt(B))``.

    A Poisson batch of expected size ``B`` has standard deviation below ``sqrt(B)``.

    Example:
      >>> poisson_cap_size(128, 6.0)
      196
    """
    batch_size = validation.check_positive_int("batch_size", batch_size)
    validation.check_positive("cap_std", cap_std)
    return batch_size + int(math.ceil(cap_std * math.sqrt(batch_size)))


def poisson_sample_rate(num_members: jax.Array, batch_size: int
                        ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Opacus ``make_private``: ``steps = ceil(N / B)``, ``q = 1 / steps``, ``B_exp = N // steps``.

    (Opacus computes ``int(N * q)``; ``N // steps`` is the same number without the float
    rounding.) Traceable in ``num_members``.

    Returns:
      ``(steps int32, rate float32, expected batch size float32)``.

    Raises:
      ValueError: if a concrete ``num_members`` is below 1 (a traced one is clamped at 1: the
        engine rejects keep rows without members before tracing) or ``batch_size < 1``.
    """
    batch_size = validation.check_positive_int("batch_size", batch_size)
    if validation.is_concrete(num_members):
        validation.check_in_range("num_members", num_members, 1, float("inf"))
    n = jnp.maximum(jnp.asarray(num_members, jnp.int32), 1)
    steps = (n + batch_size - 1) // batch_size
    return steps, 1.0 / steps.astype(jnp.float32), (n // steps).astype(jnp.float32)


class PoissonBatches(NamedTuple):
    """One model's Poisson batches of one epoch (leading step axis ``[S]``).

    Attributes:
      indices: int32 ``[S, cap]`` rows of the candidate set (padding rows repeat a member).
      where: bool ``[S, cap]``, the sampled members.
      active: bool ``[S]``, the model's own steps (``s < ceil(N_m / B)``; an active step with
        an empty batch still takes a noise-only step).
      denominator: float32 ``[S]``, the expected batch size ``B_exp`` the sum is divided by.
      dropped: int32 ``[S]``, members sampled beyond ``cap`` (not trained on).
    """

    indices: jax.Array
    where: jax.Array
    active: jax.Array
    denominator: jax.Array
    dropped: jax.Array


def poisson_batches(key: jax.Array, keep_row: jax.Array, *, batch_size: int, num_steps: int,
                    cap: int) -> PoissonBatches:
    """Poisson-sampled batches of one model for one epoch, padded to a static size.

    The model walks ``steps = ceil(N / B)`` steps (``N`` its members; steps up to
    ``num_steps`` beyond its own are inactive); at each, every member is included
    independently with probability ``q = 1 / steps`` (Opacus ``make_private``). The first
    ``cap`` sampled members (in candidate order) form the batch; the rest are dropped and
    counted in ``dropped``.

    Args:
      key: this model's and epoch's sampling key.
      keep_row: bool ``[N_candidates]``, the model's members.
      batch_size: B (the nominal batch size).
      num_steps: static number of steps (of the model with the most members).
      cap: static padded batch size (:func:`poisson_cap_size`).

    Returns:
      :class:`PoissonBatches`.
    """
    keep_row = jnp.asarray(keep_row, bool)
    count = jnp.sum(keep_row).astype(jnp.int32)
    steps, rate, expected = poisson_sample_rate(count, batch_size)
    first_member = jnp.argmax(keep_row).astype(jnp.int32)
    cap = min(int(cap), int(keep_row.shape[0]))

    def one_step(s):
        u = jax.random.uniform(jax.random.fold_in(key, s), keep_row.shape)
        active = s < steps
        chosen = keep_row & (u < rate) & active
        n = jnp.sum(chosen).astype(jnp.int32)
        (idx,) = jnp.nonzero(chosen, size=cap, fill_value=first_member)
        where = jnp.arange(cap, dtype=jnp.int32) < n
        return (idx.astype(jnp.int32), where, active, expected,
                jnp.maximum(n - cap, 0).astype(jnp.int32))

    out = jax.lax.map(one_step, jnp.arange(num_steps, dtype=jnp.int32))
    return PoissonBatches(*out)
