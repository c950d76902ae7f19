"""Baseline training losses and output transforms that the MIA-defense papers compare against.

* :func:`cross_entropy_loss` - the undefended objective.
* :func:`label_smoothing_loss` - cross-entropy on smoothed labels, in two styles
  (:data:`LS_STYLES`: ``"standard"``, ``optax.smooth_labels``; ``"hamp"``, the HAMP authors').
* :func:`smoothed_labels` - the smoothed target distributions themselves.
* :func:`confidence_penalty_loss` - cross-entropy minus ``beta`` times the prediction entropy
  (Pereyra et al., 2017).
* :func:`temperature_scale` / :func:`fit_temperature` - dividing logits by a temperature, fixed
  or fitted by NLL on held-out data (Guo et al., 2017).

All losses are per-example (``logits [..., C], labels [...] -> [...]``), pure, and work under
``jit`` and ``vmap``; the hyperparameters may be traced values (an invalid traced value gives
NaN outputs, :func:`hampjax.validation.checked` raises instead).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from hampjax import validation
from hampjax.scores import entropy

__all__ = [
    "LS_STYLES",
    "cross_entropy_loss",
    "smoothed_labels",
    "label_smoothing_loss",
    "confidence_penalty_loss",
    "temperature_scale",
    "fit_temperature",
]


@jax.jit
def _cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy with integer labels (the undefended loss).

    Args:
      logits: ``[..., C]`` float.
      labels: ``[...]`` integer in ``[0, C)``.

    Returns:
      ``[...]`` loss.

    Example:
      >>> import jax.numpy as jnp
      >>> float(cross_entropy_loss(jnp.zeros(4), jnp.array(2)))  # ln 4
      1.3862943...
    """
    labels = jnp.asarray(labels)
    validation.check_logits_labels(logits, labels)
    validation.check_finite("logits", logits)
    return _cross_entropy(logits, labels)


LS_STYLES = ("standard", "hamp")
"""Label-smoothing styles: ``"standard"`` (true class ``1 - eps + eps / C``, the others
``eps / C``; ``optax.smooth_labels``, RelaxLoss) and ``"hamp"`` (true class ``1 - eps``, the
others ``eps / (C - 1)``; the HAMP authors' LS baseline)."""


def _smoothed(labels, num_classes: int, smoothing, style: str, dtype):
    ok = validation.traced_in_range("smoothing", smoothing, 0.0, 1.0)  # NaN targets if not
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
    if style == "standard":
        return validation.nan_unless(ok, optax.smooth_labels(one_hot, smoothing))
    off = smoothing / (num_classes - 1)
    return validation.nan_unless(ok, one_hot * (1.0 - smoothing) + (1.0 - one_hot) * off)


def smoothed_labels(labels: jax.Array, num_classes: int, smoothing: float | jax.Array, *,
                    style: str = "standard", dtype=jnp.float32) -> jax.Array:
    """Smoothed one-hot targets ``[..., C]`` (see :data:`LS_STYLES`).

    Args:
      labels: ``[...]`` integer in ``[0, C)``.
      num_classes: ``C >= 2``.
      smoothing: eps in [0, 1) (scalar; may be traced: an invalid traced value gives NaN).
      style: ``"standard"`` (true class ``1 - eps + eps / C``) or ``"hamp"`` (true class
        ``1 - eps``, the others ``eps / (C - 1)``).
      dtype: floating dtype of the result.

    Returns:
      ``[..., C]`` rows summing to 1.

    Raises:
      ValueError: on an unknown ``style``, ``num_classes < 2`` or ``smoothing`` outside [0, 1).

    Example:
      >>> [round(v, 4) for v in smoothed_labels(jnp.array(0), 4, 0.3, style="hamp").tolist()]
      [0.7, 0.1, 0.1, 0.1]
      >>> [round(v, 4) for v in smoothed_labels(jnp.array(0), 4, 0.4).tolist()]
      [0.7, 0.1, 0.1, 0.1]
    """
    validation.check_choice("style", style, LS_STYLES)
    validation.check_num_classes(num_classes)
    validation.check_in_range("smoothing", smoothing, 0.0, 1.0)
    validation.check_labels(labels, num_classes)
    return _smoothed(jnp.asarray(labels), num_classes, smoothing, style, dtype)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _label_smoothing(logits, labels, smoothing, num_classes, style):
    targets = _smoothed(labels, num_classes, smoothing, style, logits.dtype)
    return optax.softmax_cross_entropy(logits, targets)


def label_smoothing_loss(
    logits: jax.Array, labels: jax.Array, smoothing: float | jax.Array, *,
    style: str = "standard",
) -> jax.Array:
    """Cross-entropy against label-smoothed targets (:func:`smoothed_labels`).

    ``style="standard"``: the target is ``(1 - smoothing) * one_hot + smoothing / C``
    (``optax.smooth_labels``), so the true class gets ``1 - smoothing + smoothing / C``.
    ``style="hamp"``: the HAMP authors' label-smoothing baseline, true class ``1 - smoothing``,
    the others ``smoothing / (C - 1)`` (their code minimizes ``KL(target || p)``, which differs
    from this cross-entropy by the target's entropy, a constant: same gradients). The
    entropy-threshold form of the same targets is :func:`hampjax.defenses.hamp_soft_labels`
    (with :func:`hampjax.defenses.hamp_loss` at ``alpha = 0``); the standard style's
    ``smoothing`` equals the hamp style's times ``C / (C - 1)``.

    Args:
      logits: ``[..., C]`` float.
      labels: ``[...]`` integer in ``[0, C)``.
      smoothing: in [0, 1) (scalar; may be traced: an invalid traced value gives NaN).
      style: ``"standard"`` or ``"hamp"`` (:data:`LS_STYLES`).

    Returns:
      ``[...]`` loss.

    Raises:
      ValueError: on ``smoothing`` outside [0, 1), an unknown style, shape mismatch or labels
        out of range.
    """
    labels = jnp.asarray(labels)
    num_classes = validation.check_logits_labels(logits, labels)
    validation.check_finite("logits", logits)
    validation.check_in_range("smoothing", smoothing, 0.0, 1.0)
    validation.check_choice("style", style, LS_STYLES)
    return _label_smoothing(logits, labels, smoothing, num_classes, style)


@jax.jit
def _confidence_penalty(logits, labels, beta):
    ok = validation.traced_in_range("beta", beta, 0.0, float("inf"))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels) - beta * entropy(logits)
    return validation.nan_unless(ok, loss)


def confidence_penalty_loss(
    logits: jax.Array, labels: jax.Array, beta: float | jax.Array
) -> jax.Array:
    """Cross-entropy minus ``beta`` times the prediction entropy (Pereyra et al., 2017).

    Args:
      logits: ``[..., C]`` float.
      labels: ``[...]`` integer in ``[0, C)``.
      beta: penalty weight >= 0 (scalar; may be traced: an invalid traced value gives NaN).

    Returns:
      ``[...]`` loss.

    Raises:
      ValueError: on negative ``beta``, shape mismatch or labels out of range.
    """
    labels = jnp.asarray(labels)
    validation.check_logits_labels(logits, labels)
    validation.check_finite("logits", logits)
    validation.check_nonnegative("beta", beta)
    return _confidence_penalty(logits, labels, beta)


def temperature_scale(logits: jax.Array, temperature: float | jax.Array) -> jax.Array:
    """Divide logits by ``temperature`` (> 0). ``softmax`` of the result is the scaled output.

    Temperature scaling changes confidence but never the ranking of classes, so accuracy is
    unchanged. T > 1 softens, T < 1 sharpens.

    Raises:
      ValueError: if ``temperature`` is not in (0, inf).
    """
    validation.check_positive("temperature", temperature)
    validation.check_finite("logits", logits)
    ok = validation.traced_in_range("temperature", temperature, 0.0, float("inf"),
                                    low_inclusive=False)
    return validation.nan_unless(ok, jnp.asarray(logits) / temperature)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _fit_inverse_temperature(logits, labels, lo, hi, iterations):
    logits = logits.astype(jnp.result_type(float))

    def nll_slope(log_beta):
        # d/d(beta) of the mean NLL of softmax(beta * z): E_p[z] - z_y. NLL is convex in beta,
        # so this slope is non-decreasing and its root is the minimizer.
        beta = jnp.exp(log_beta)
        probs = jax.nn.softmax(beta * logits, axis=-1)
        z_y = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        return jnp.mean(jnp.sum(probs * logits, axis=-1) - z_y)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        rising = nll_slope(mid) > 0
        return jnp.where(rising, lo, mid), jnp.where(rising, mid, hi)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (jnp.log(lo), jnp.log(hi)))
    return jnp.exp(0.5 * (lo + hi))


def fit_temperature(
    logits: jax.Array,
    labels: jax.Array,
    *,
    min_temperature: float = 1e-2,
    max_temperature: float = 1e3,
    iterations: int = 60,
) -> jax.Array:
    """Temperature that minimizes the mean NLL of ``softmax(logits / T)`` on labelled data.

    The NLL is convex in ``1 / T``, so the minimizer is found by bisection on the sign of the
    derivative in log space. If the optimum lies outside the search interval the returned value
    is the nearest end of it (a model whose NLL keeps falling as T -> 0 predicts every held-out
    label correctly: widen the interval if you hit the end).

    Args:
      logits: ``[N, C]`` held-out logits (not the training set).
      labels: ``[N]`` integer labels.
      min_temperature: lower end of the search, > 0.
      max_temperature: upper end of the search, > ``min_temperature``.
      iterations: bisection steps >= 1 (60 reaches float precision).

    Returns:
      Scalar temperature ``T``.

    Raises:
      ValueError: on bad shapes, NaN/inf logits, labels out of range, or an invalid interval.
    """
    labels = jnp.asarray(labels)
    if len(validation.shape_of(logits)) != 2:
        raise ValueError(f"logits must have shape [N, C], got {validation.shape_of(logits)}")
    validation.check_logits_labels(logits, labels)
    validation.check_finite("logits", logits)  # one NaN logit would drive T to the interval's end
    validation.check_positive("min_temperature", min_temperature)
    validation.check_in_range("max_temperature", max_temperature, min_temperature, float("inf"),
                              low_inclusive=False)
    iterations = validation.check_positive_int("iterations", iterations)
    # beta = 1/T: the beta interval is [1/max_T, 1/min_T].
    beta = _fit_inverse_temperature(
        logits, labels, 1.0 / max_temperature, 1.0 / min_temperature, iterations
    )
    return 1.0 / beta
