"""Last-layer Laplace approximation (LLLA) around any trained Flax linen classifier.

"To Trust or Not To Trust" (IJCAI 2022, Sec. 4.2) uses the LLLA of Kristiadi et al. (2020) to
tame the overconfidence of ReLU networks far from the data (e.g. on inputs scaled by a large
factor), which is what makes score-based membership attacks flag such inputs as members. Only the
last ``nn.Dense`` layer ``z = phi^T W + b`` (``W [D, C]``, ``b [C]``) gets a Gaussian posterior;
the network up to it is a fixed feature map ``phi(x)``.

Pipeline (:func:`fit_last_layer_laplace` runs all of it):

1. :func:`last_layer_features` captures ``phi`` (the input of the last Dense call) and the
   logits; :func:`last_layer_params` returns that layer's ``W`` and ``b``.
2. :func:`fit_laplace` builds the curvature of the summed cross-entropy at the MAP, either
   KFAC (``A = E[phi phi^T]``, ``G = E[output curvature]``) or the exact last-layer GGN
   over ``(W, b)``, and stores its eigendecomposition, so any prior is cheap to apply.
3. Prior precision ``tau = 1 / prior_variance``. KFAC: ``A' = sqrt(N) A + sqrt(tau) I``,
   ``G' = sqrt(N) G + sqrt(tau) I`` (weight precision ``A' kron G'``), bias precision
   ``B = N G + tau I``. GGN: precision ``H + tau I``.
4. Predictive: ``z ~ N(phi^T W + b, (phi^T A'^-1 phi) G'^-1 + B^-1)`` (GGN: ``J Sigma J^T``);
   :func:`laplace_log_predictive` returns the log of the Monte-Carlo mean of ``softmax(z)``.
5. :func:`select_prior_variance` picks the prior variance on a grid by held-out NLL plus an
   out-of-distribution term on random-noise inputs.

Parameter layout: the GGN, and every flattening in this module, orders the last-layer
parameters as the ``[(D + 1), C]`` matrix ``[W; b]`` read row-major, i.e. index ``d * C + c``
for ``W[d, c]`` and ``D * C + c`` for ``b[c]``; the KFAC weight precision is
``kron(A', G')`` in that order.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
# Step 1 of the pipeline lives with the models; the two public functions are re-exported here.
from hampjax.models.last_layer import (
    _check_model_inputs,
    _locate_layer,
    _params_at,
    last_layer_features,
    last_layer_params,
)
from hampjax.scores import true_class_log_prob

__all__ = [
    "LAPLACE_METHODS",
    "LAPLACE_FISHERS",
    "GGN_MAX_PARAMS",
    "DEFAULT_PRIOR_GRID",
    "LaplacePosterior",
    "LastLayerLaplace",
    "last_layer_features",
    "last_layer_params",
    "fit_laplace",
    "laplace_predictive_moments",
    "laplace_log_predictive",
    "select_prior_variance",
    "fit_last_layer_laplace",
]

LAPLACE_METHODS = ("kfac", "ggn")
LAPLACE_FISHERS = ("exact", "sampled", "empirical")
# Largest (D + 1) * C for method="ggn": the dense [K, K] matrix (256 MiB in float32 at the
# limit) and its eigendecomposition must fit comfortably in host memory and time.
GGN_MAX_PARAMS = 8192
DEFAULT_PRIOR_GRID = np.logspace(0, 3, 100)

_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------------------------
# 2-3. The posterior
# ----------------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "kernel",
        "bias",
        "num_data",
        "input_eigvals",
        "input_eigvecs",
        "output_eigvals",
        "output_eigvecs",
        "ggn_eigvals",
        "ggn_eigvecs",
    ],
    meta_fields=["method"],
)
@dataclasses.dataclass(frozen=True)
class LaplacePosterior:
    """Prior-free part of a last-layer Laplace posterior (a pytree; ``method`` is static).

    The KFAC factors are always stored (they are cheap); the GGN eigendecomposition only for
    ``method="ggn"`` (size-0 arrays otherwise), so the structure is fixed per method.

    Attributes:
      method: "kfac" or "ggn".
      kernel: MAP weight ``W`` float32 ``[D, C]``.
      bias: MAP bias ``b`` float32 ``[C]``.
      num_data: number N of training examples, float32 scalar.
      input_eigvals / input_eigvecs: eigendecomposition of ``A = E[phi phi^T]``, ``[D]`` and
        ``[D, D]`` (columns are eigenvectors; eigenvalues clipped at 0).
      output_eigvals / output_eigvecs: eigendecomposition of ``G``, ``[C]`` and ``[C, C]``.
      ggn_eigvals / ggn_eigvecs: eigendecomposition of the summed GGN ``H`` over ``[W; b]``
        (layout in the module docstring), ``[K]`` and ``[K, K]`` with ``K = (D + 1) C``;
        ``[0]`` and ``[0, 0]`` for KFAC.
    """

    method: str
    kernel: jax.Array
    bias: jax.Array
    num_data: jax.Array
    input_eigvals: jax.Array
    input_eigvecs: jax.Array
    output_eigvals: jax.Array
    output_eigvecs: jax.Array
    ggn_eigvals: jax.Array
    ggn_eigvecs: jax.Array

    @property
    def input_factor(self) -> jax.Array:
        """``A = E[phi phi^T]`` ``[D, D]``, rebuilt from its eigendecomposition."""
        return (self.input_eigvecs * self.input_eigvals) @ self.input_eigvecs.T

    @property
    def output_factor(self) -> jax.Array:
        """``G`` ``[C, C]``, rebuilt from its eigendecomposition."""
        return (self.output_eigvecs * self.output_eigvals) @ self.output_eigvecs.T

    @property
    def ggn(self) -> jax.Array:
        """Summed GGN ``H`` ``[K, K]`` (``[0, 0]`` for KFAC), rebuilt from its eigenpairs."""
        return (self.ggn_eigvecs * self.ggn_eigvals) @ self.ggn_eigvecs.T


def _eigh_psd(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    vals, vecs = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    return jnp.maximum(vals, 0.0), vecs


def _output_gradients(probs, labels, fisher, key, num_fisher_samples):
    """``[S, N, C]`` gradients of the CE w.r.t. the logits for the sampled/empirical Fisher."""
    if fisher == "empirical":
        return (probs - jax.nn.one_hot(labels, probs.shape[-1]))[None]
    sampled = jax.random.categorical(
        key, jnp.log(jnp.maximum(probs, 1e-38)), shape=(num_fisher_samples,) + probs.shape[:1]
    )
    return probs[None] - jax.nn.one_hot(sampled, probs.shape[-1])


def _ggn_sum(ext: jax.Array, rows: jax.Array, *, exact: bool) -> jax.Array:
    """``sum_n kron(ext_n ext_n^T, M_n)`` as ``[(D+1) C, (D+1) C]``, scanned over row chunks.

    ``rows`` is ``probs [N, C]`` (exact: ``M_n = diag(p) - p p^T``) or ``grads [N, S, C]``
    (``M_n = mean_s g_s g_s^T``). Zero-padded rows of ``ext`` contribute nothing.
    """
    n, d1 = ext.shape
    c = rows.shape[-1]
    chunk = max(1, min(n, (1 << 22) // (d1 * c * c)))
    pad = -n % chunk
    ext = jnp.pad(ext, ((0, pad), (0, 0))).reshape(-1, chunk, d1)
    rows = jnp.pad(rows, ((0, pad),) + ((0, 0),) * (rows.ndim - 1))
    rows = rows.reshape((-1, chunk) + rows.shape[1:])

    def step(total, xs):
        e, r = xs
        if exact:
            m = jax.vmap(jnp.diag)(r) - r[:, :, None] * r[:, None, :]
        else:
            m = jnp.einsum("nsc,nsf->ncf", r, r, precision=_HIGHEST) / r.shape[1]
        return total + jnp.einsum("nd,ncf,ne->dcef", e, m, e, precision=_HIGHEST), None

    total, _ = jax.lax.scan(step, jnp.zeros((d1, c, d1, c), jnp.float32), (ext, rows))
    return total.reshape(d1 * c, d1 * c)


def fit_laplace(
    features: Any,
    labels: Any,
    kernel: Any,
    bias: Any,
    *,
    method: str = "kfac",
    fisher: str = "exact",
    key: jax.Array | None = None,
    num_fisher_samples: int = 1,
) -> LaplacePosterior:
    """Curvature of the summed cross-entropy at the MAP last layer, eigendecomposed.

    With ``p_n = softmax(phi_n^T W + b)``, the per-example output curvature ``M_n`` is

    * ``fisher="exact"``: ``diag(p_n) - p_n p_n^T``, the Hessian of the cross-entropy w.r.t.
      the logits (independent of the label; the default, fine for small C);
    * ``fisher="sampled"``: ``mean_s g_s g_s^T`` with ``g_s = p_n - onehot(y_s)`` and
      ``y_s ~ Cat(p_n)``, ``num_fisher_samples`` draws per example (needs ``key``); an unbiased
      estimate of the exact one;
    * ``fisher="empirical"``: ``g g^T`` with ``g = p_n - onehot(labels_n)`` (true labels).

    ``method="kfac"``: ``A = mean_n phi_n phi_n^T`` and ``G = mean_n M_n``.
    ``method="ggn"``: additionally the exact last-layer GGN ``H = sum_n J_n^T M_n J_n`` over
    ``[W; b]`` (``J_n = [phi_n; 1]^T kron I_C``); with the exact curvature this is the exact
    Hessian of the summed cross-entropy w.r.t. ``(W, b)``. Only for
    ``(D + 1) C <= GGN_MAX_PARAMS``.

    Args:
      features: float ``[N, D]`` training (member) features from :func:`last_layer_features`.
      labels: int ``[N]`` training labels in ``[0, C)``; only ``fisher="empirical"`` uses
        them (the other two curvatures do not depend on labels), but they are always checked.
      kernel: MAP ``W`` float ``[D, C]``.
      bias: MAP ``b`` float ``[C]``.
      method: "kfac" or "ggn".
      fisher: "exact", "sampled" or "empirical".
      key: PRNG key; required for ``fisher="sampled"``, ignored otherwise.
      num_fisher_samples: label draws per example for ``fisher="sampled"`` (>= 1).

    Returns:
      A :class:`LaplacePosterior` (no prior yet: the prior enters at prediction time).

    Raises:
      ValueError: on an unknown ``method``/``fisher``, a missing ``key`` for the sampled
        Fisher, mismatched shapes, non-finite features, labels out of range, or
        ``(D + 1) C > GGN_MAX_PARAMS`` for ``method="ggn"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> feats = jax.random.normal(jax.random.key(0), (50, 4))
      >>> post = fit_laplace(feats, jnp.zeros(50, jnp.int32), jnp.zeros((4, 3)), jnp.zeros(3))
      >>> post.input_eigvals.shape, post.output_eigvals.shape, float(post.num_data)
      ((4,), (3,), 50.0)
    """
    validation.check_choice("method", method, LAPLACE_METHODS)
    validation.check_choice("fisher", fisher, LAPLACE_FISHERS)
    validation.check_ndim("features", features, 2)
    validation.check_nonempty("features", features)
    validation.check_floating("features", features)
    validation.check_finite("features", features)
    validation.check_ndim("kernel", kernel, 2)
    n, d = validation.shape_of(features)
    if validation.shape_of(kernel)[0] != d:
        raise ValueError(
            f"kernel must have shape [D, C] with D=features.shape[1]={d}, got "
            f"{validation.shape_of(kernel)}"
        )
    c = validation.check_num_classes(validation.shape_of(kernel)[1], name="kernel.shape[1]")
    validation.check_shape("bias", bias, (c,), what="[kernel.shape[1]]")
    validation.check_shape("labels", labels, (n,), what="[features.shape[0]]")
    validation.check_labels(labels, c)
    if fisher == "sampled":
        validation.check_key(key, name="key (required for fisher='sampled')")
    num_fisher_samples = validation.check_positive_int("num_fisher_samples", num_fisher_samples)
    num_params = (d + 1) * c
    if method == "ggn" and num_params > GGN_MAX_PARAMS:
        raise ValueError(
            f"method='ggn' needs (D + 1) * C <= GGN_MAX_PARAMS={GGN_MAX_PARAMS} (a dense "
            f"[K, K] matrix), got ({d} + 1) * {c} = {num_params}; use method='kfac'"
        )

    return _fit(
        jnp.asarray(features, jnp.float32),
        jnp.asarray(labels),
        jnp.asarray(kernel, jnp.float32),
        jnp.asarray(bias, jnp.float32),
        key if fisher == "sampled" else None,
        method,
        fisher,
        num_fisher_samples,
    )


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _fit(phi, labels, kernel, bias, key, method, fisher, num_fisher_samples) -> LaplacePosterior:
    n = phi.shape[0]
    probs = jax.nn.softmax(jnp.matmul(phi, kernel, precision=_HIGHEST) + bias)
    a = jnp.matmul(phi.T, phi, precision=_HIGHEST) / n
    if fisher == "exact":
        g = (jnp.diag(jnp.sum(probs, 0)) - jnp.matmul(probs.T, probs, precision=_HIGHEST)) / n
        rows = probs  # M_n = diag(p_n) - p_n p_n^T
    else:
        grads = _output_gradients(probs, labels, fisher, key, num_fisher_samples)  # [S, N, C]
        g = jnp.einsum("snc,snf->cf", grads, grads, precision=_HIGHEST) / (n * grads.shape[0])
        rows = jnp.swapaxes(grads, 0, 1)  # [N, S, C]; M_n = mean_s g g^T
    a_vals, a_vecs = _eigh_psd(a)
    g_vals, g_vecs = _eigh_psd(g)
    if method == "ggn":
        ext = jnp.concatenate([phi, jnp.ones((n, 1), jnp.float32)], axis=1)
        h_vals, h_vecs = _eigh_psd(_ggn_sum(ext, rows, exact=fisher == "exact"))
    else:
        h_vals, h_vecs = jnp.zeros((0,), jnp.float32), jnp.zeros((0, 0), jnp.float32)
    return LaplacePosterior(
        method=method,
        kernel=kernel,
        bias=bias,
        num_data=jnp.asarray(n, jnp.float32),
        input_eigvals=a_vals,
        input_eigvecs=a_vecs,
        output_eigvals=g_vals,
        output_eigvecs=g_vecs,
        ggn_eigvals=h_vals,
        ggn_eigvecs=h_vecs,
    )


# ----------------------------------------------------------------------------------------------
# 4. Predictive
# ----------------------------------------------------------------------------------------------


def _check_posterior_features(posterior: Any, features: Any, name: str = "features") -> None:
    if not isinstance(posterior, LaplacePosterior):
        raise ValueError(f"posterior must be a LaplacePosterior, got {type(posterior).__name__}")
    validation.check_ndim(name, features, 2)
    validation.check_floating(name, features)
    d = validation.shape_of(posterior.kernel)[0]
    if validation.shape_of(features)[1] != d:
        raise ValueError(
            f"{name} must have shape [N, D] with D={d} (the posterior's feature width), "
            f"got {validation.shape_of(features)}"
        )


def _prepare(posterior: LaplacePosterior, features: jax.Array):
    """Prior-independent per-example quantities: (mean [N, C], projections)."""
    phi = jnp.asarray(features, jnp.float32)
    mean = jnp.matmul(phi, posterior.kernel, precision=_HIGHEST) + posterior.bias
    if posterior.method == "kfac":
        proj = jnp.matmul(phi, posterior.input_eigvecs, precision=_HIGHEST) ** 2  # [N, D]
    else:
        c = posterior.bias.shape[0]
        ext = jnp.concatenate([phi, jnp.ones(phi.shape[:1] + (1,), phi.dtype)], axis=1)
        vecs = posterior.ggn_eigvecs.reshape(ext.shape[1], c, -1)  # [D+1, C, K]
        proj = jnp.einsum("nd,dck->nkc", ext, vecs, precision=_HIGHEST)  # J_n v_k, [N, K, C]
    return mean, proj


def _scale(posterior: LaplacePosterior, proj: jax.Array, tau: jax.Array):
    """(sd [N, C], basis [C, C] or [N, C, C]) with ``cov_n = basis_n diag(sd_n^2) basis_n^T``."""
    if posterior.method == "kfac":
        n = posterior.num_data
        s = jnp.sum(proj / (jnp.sqrt(n) * posterior.input_eigvals + jnp.sqrt(tau)), axis=-1)
        g = posterior.output_eigvals
        var = s[:, None] / (jnp.sqrt(n) * g + jnp.sqrt(tau)) + 1.0 / (n * g + tau)
        return jnp.sqrt(var), posterior.output_eigvecs
    cov = _ggn_cov(posterior, proj, tau)
    vals, vecs = jnp.linalg.eigh(cov)
    return jnp.sqrt(jnp.maximum(vals, 0.0)), vecs


def _ggn_cov(posterior, proj, tau):
    inv = 1.0 / (posterior.ggn_eigvals + tau)
    return jnp.einsum("nkc,k,nkf->ncf", proj, inv, proj, precision=_HIGHEST)


def _cov(posterior: LaplacePosterior, proj: jax.Array, tau: jax.Array) -> jax.Array:
    if posterior.method == "ggn":
        return _ggn_cov(posterior, proj, tau)
    sd, basis = _scale(posterior, proj, tau)
    return jnp.einsum("cj,nj,fj->ncf", basis, sd**2, basis, precision=_HIGHEST)


def _log_predictive(mean, sd, basis, key, num_samples):
    """Log of the MC mean of softmax over ``num_samples`` draws, accumulated in log space."""
    keys = jax.random.split(key, num_samples)

    def step(carry, k):
        run_max, run_sum = carry
        eps = jax.random.normal(k, mean.shape, jnp.float32) * sd
        if basis.ndim == 2:
            noise = jnp.matmul(eps, basis.T, precision=_HIGHEST)
        else:
            noise = jnp.einsum("nj,ncj->nc", eps, basis, precision=_HIGHEST)
        logp = jax.nn.log_softmax(mean + noise, axis=-1)
        new_max = jnp.maximum(run_max, logp)
        run_sum = run_sum * jnp.exp(run_max - new_max) + jnp.exp(logp - new_max)
        return (new_max, run_sum), None

    init = (jnp.full(mean.shape, -jnp.inf, jnp.float32), jnp.zeros(mean.shape, jnp.float32))
    (run_max, run_sum), _ = jax.lax.scan(step, init, keys)
    return run_max + jnp.log(run_sum) - math.log(num_samples)


def _check_prior_variance(prior_variance: Any) -> None:
    validation.check_scalar("prior_variance", prior_variance, allowed="(0, inf)")
    validation.check_positive("prior_variance", prior_variance)


def laplace_predictive_moments(
    posterior: LaplacePosterior, features: Any, *, prior_variance: Any
) -> tuple[jax.Array, jax.Array]:
    """Gaussian predictive of the logits: mean and covariance per example.

    KFAC: ``mean = phi^T W + b``, ``cov = (phi^T A'^-1 phi) G'^-1 + B^-1`` with
    ``A' = sqrt(N) A + sqrt(tau) I``, ``G' = sqrt(N) G + sqrt(tau) I``, ``B = N G + tau I`` and
    ``tau = 1 / prior_variance``. GGN: ``cov = J (H + tau I)^-1 J^T`` with
    ``J = [phi; 1]^T kron I_C``. Inverses come from the stored eigendecompositions.

    Args:
      posterior: from :func:`fit_laplace`.
      features: float ``[N, D]``.
      prior_variance: scalar ``> 0`` (may be traced: an invalid traced value gives NaN).

    Returns:
      ``(mean, cov)``: float32 ``[N, C]`` and ``[N, C, C]``.

    Raises:
      ValueError: on a non-posterior, features of the wrong shape, or a non-positive or
        non-scalar ``prior_variance``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> feats = jax.random.normal(jax.random.key(0), (20, 4))
      >>> post = fit_laplace(feats, jnp.zeros(20, jnp.int32), jnp.zeros((4, 3)), jnp.zeros(3))
      >>> [a.shape for a in laplace_predictive_moments(post, feats[:2], prior_variance=1.0)]
      [(2, 3), (2, 3, 3)]
    """
    _check_posterior_features(posterior, features)
    _check_prior_variance(prior_variance)
    return _moments_jit(posterior, features, prior_variance)


@jax.jit
def _moments_jit(posterior, features, prior_variance):
    mean, proj = _prepare(posterior, features)
    cov = _cov(posterior, proj, 1.0 / jnp.asarray(prior_variance, jnp.float32))
    return validation.nan_unless(_prior_ok(prior_variance), (mean, cov))


def _prior_ok(prior_variance) -> jax.Array:
    """An invalid traced ``prior_variance`` gives NaN outputs (concrete ones raise)."""
    return validation.traced_in_range("prior_variance", prior_variance, 0.0, float("inf"),
                                      low_inclusive=False)


def laplace_log_predictive(
    posterior: LaplacePosterior,
    features: Any,
    *,
    prior_variance: Any,
    num_samples: int = 100,
    key: jax.Array,
) -> jax.Array:
    """Log LLLA predictive: log of the Monte-Carlo mean of ``softmax(z_s)`` over logit samples.

    Sample ``s`` uses ``eps_s = jax.random.normal(jax.random.split(key, S)[s], (N, C))`` and
    ``z_s = mean + (eps_s * sd) @ basis^T`` where ``basis diag(sd^2) basis^T`` is the
    predictive covariance (for KFAC ``basis`` is the eigenbasis of ``G``; for GGN the
    per-example eigenbasis of the covariance). The average is taken in log space
    (running logsumexp of ``log_softmax(z_s)`` minus ``log S``), so the result stays finite
    and ranks correctly where float32 softmax saturates to exactly 1.

    jit/vmap friendly: ``num_samples`` must be static; ``prior_variance`` may be traced (an
    invalid traced value gives NaN).

    Args:
      posterior: from :func:`fit_laplace`.
      features: float ``[N, D]``.
      prior_variance: scalar ``> 0``; ``tau = 1 / prior_variance``.
      num_samples: Monte-Carlo samples S >= 1.
      key: PRNG key.

    Returns:
      float32 ``[N, C]`` log-probabilities (each row logsumexps to 0).

    Raises:
      ValueError: on invalid posterior/features/prior_variance, ``num_samples < 1`` or a
        missing key.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> feats = jax.random.normal(jax.random.key(0), (20, 4))
      >>> post = fit_laplace(feats, jnp.zeros(20, jnp.int32), jnp.ones((4, 3)), jnp.zeros(3))
      >>> laplace_log_predictive(post, feats, prior_variance=1.0, key=jax.random.key(1)).shape
      (20, 3)
    """
    _check_posterior_features(posterior, features)
    _check_prior_variance(prior_variance)
    num_samples = validation.check_positive_int("num_samples", num_samples)
    validation.check_key(key)
    return _log_predictive_jit(posterior, features, prior_variance, key, num_samples)


@functools.partial(jax.jit, static_argnums=4)
def _log_predictive_jit(posterior, features, prior_variance, key, num_samples):
    mean, proj = _prepare(posterior, features)
    sd, basis = _scale(posterior, proj, 1.0 / jnp.asarray(prior_variance, jnp.float32))
    out = _log_predictive(mean, sd, basis, key, num_samples)
    return validation.nan_unless(_prior_ok(prior_variance), out)


# ----------------------------------------------------------------------------------------------
# 5. Prior selection
# ----------------------------------------------------------------------------------------------


def select_prior_variance(
    posterior: LaplacePosterior,
    val_features: Any,
    val_labels: Any,
    noise_features: Any,
    *,
    grid: Any = None,
    num_samples: int = 10,
    ood_weight: float = 0.25,
    key: jax.Array,
) -> tuple[float, jax.Array]:
    """Prior variance on a grid minimizing held-out NLL plus an out-of-distribution term.

    For each ``v`` in ``grid`` (the same random draws for every ``v``):

        objective(v) = mean_i -log p_v(val_labels_i | val_i)
                       + ood_weight * mean_j mean_c -log p_v(c | noise_j)

    where ``p_v`` is :func:`laplace_log_predictive` with ``num_samples`` samples. Reading of
    the Trust code's "0.25 x mean(-log p) on random-noise images": the mean over noise images of
    the mean over classes of ``-log p_c``, i.e. the cross-entropy from the uniform distribution to
    the prediction, which is smallest (``log C``) for a uniform prediction, so it rewards
    uncertainty on noise. The validation set holds non-members (held-out data); the val and
    noise terms use independent keys split from ``key``.

    Args:
      posterior: from :func:`fit_laplace`.
      val_features: float ``[M, D]`` held-out (non-member) features.
      val_labels: int ``[M]`` their labels.
      noise_features: float ``[R, D]`` features of random-noise inputs.
      grid: 1-D candidate prior variances, all ``> 0`` (default ``DEFAULT_PRIOR_GRID``,
        ``np.logspace(0, 3, 100)``).
      num_samples: MC samples per evaluation (>= 1).
      ood_weight: weight of the noise term (>= 0).
      key: PRNG key.

    Returns:
      ``(best, objective)``: the grid value with the smallest objective (first on ties) as a
      Python float, and float32 ``[len(grid)]`` objective values.

    Raises:
      ValueError: on invalid features/labels, an empty or non-positive grid, a negative
        ``ood_weight``, ``num_samples < 1`` or a missing key.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> feats = jax.random.normal(jax.random.key(0), (20, 4))
      >>> post = fit_laplace(feats, jnp.zeros(20, jnp.int32), jnp.ones((4, 3)), jnp.zeros(3))
      >>> best, obj = select_prior_variance(post, feats, jnp.zeros(20, jnp.int32), feats,
      ...                                   grid=[1.0, 10.0], key=jax.random.key(1))
      >>> obj.shape
      (2,)
    """
    _check_posterior_features(posterior, val_features, "val_features")
    _check_posterior_features(posterior, noise_features, "noise_features")
    validation.check_nonempty("val_features", val_features)
    validation.check_nonempty("noise_features", noise_features)
    c = validation.shape_of(posterior.bias)[0]
    m = validation.shape_of(val_features)[0]
    validation.check_shape("val_labels", val_labels, (m,), what="[val_features.shape[0]]")
    validation.check_labels(val_labels, c, name="val_labels")
    grid = DEFAULT_PRIOR_GRID if grid is None else np.asarray(grid, np.float64)
    validation.check_ndim("grid", grid, 1)
    validation.check_nonempty("grid", grid)
    validation.check_positive("grid", grid)
    num_samples = validation.check_positive_int("num_samples", num_samples)
    validation.check_nonnegative("ood_weight", ood_weight)
    validation.check_key(key)

    key_val, key_noise = jax.random.split(key)
    labels = jnp.asarray(val_labels)

    @jax.jit
    def objectives(variances):
        mean_v, proj_v = _prepare(posterior, val_features)
        mean_n, proj_n = _prepare(posterior, noise_features)

        def one(variance):
            tau = 1.0 / variance
            lp_v = _log_predictive(mean_v, *_scale(posterior, proj_v, tau), key_val, num_samples)
            lp_n = _log_predictive(mean_n, *_scale(posterior, proj_n, tau), key_noise, num_samples)
            return -jnp.mean(true_class_log_prob(lp_v, labels)) - ood_weight * jnp.mean(lp_n)

        return jax.lax.map(one, variances, batch_size=10)

    objective = objectives(jnp.asarray(grid, jnp.float32))
    best = float(grid[int(jnp.argmin(objective))])
    return best, objective


# ----------------------------------------------------------------------------------------------
# 6. Convenience wrapper
# ----------------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["variables", "posterior", "prior_variance"],
    meta_fields=["model", "layer", "batch_size"],
)
@dataclasses.dataclass(frozen=True)
class LastLayerLaplace:
    """A trained model with a last-layer Laplace posterior and its chosen prior variance.

    Attributes:
      model: the Flax module (static).
      layer: path of the Dense layer the posterior covers (static tuple of names).
      batch_size: examples per forward pass when computing features (static).
      variables: the model's variables.
      posterior: the :class:`LaplacePosterior`.
      prior_variance: the prior variance ``var0`` (scalar).
    """

    model: nn.Module
    layer: tuple[str, ...]
    batch_size: int
    variables: Any
    posterior: LaplacePosterior
    prior_variance: Any

    def log_predictive(self, x: Any, *, key: jax.Array, num_samples: int = 100) -> jax.Array:
        """Raw inputs ``[N, ...]`` -> LLLA log-probabilities float32 ``[N, C]``.

        Runs :func:`last_layer_features` then :func:`laplace_log_predictive`.

        Raises:
          ValueError: as those two functions.
        """
        features, _ = last_layer_features(
            self.model, self.variables, x, layer=self.layer, batch_size=self.batch_size
        )
        return laplace_log_predictive(
            self.posterior,
            features,
            prior_variance=self.prior_variance,
            num_samples=num_samples,
            key=key,
        )


def fit_last_layer_laplace(
    model: nn.Module,
    variables: Mapping[str, Any],
    x_train: Any,
    y_train: Any,
    *,
    x_val: Any,
    y_val: Any,
    x_noise: Any,
    key: jax.Array,
    method: str = "kfac",
    fisher: str = "exact",
    layer: str | Sequence[str] | None = None,
    grid: Any = None,
    num_selection_samples: int = 10,
    ood_weight: float = 0.25,
    num_fisher_samples: int = 1,
    batch_size: int = 512,
) -> LastLayerLaplace:
    """Fit an LLLA to a trained model end to end (Trust code): features, curvature, prior.

    Args:
      model: trained Flax module (``__call__(x, *, train)`` -> logits).
      variables: its variables.
      x_train, y_train: the training (member) inputs ``[N, ...]`` and int labels ``[N]``.
      x_val, y_val: held-out non-member inputs and labels for the prior selection.
      x_noise: random-noise inputs ``[R, ...]`` for the OOD term of the prior selection
        (e.g. :func:`hampjax.defenses.output_modification.random_image_inputs`).
      key: PRNG key (split for the sampled Fisher and the selection).
      method, fisher, num_fisher_samples: see :func:`fit_laplace`.
      layer, batch_size: see :func:`last_layer_features`.
      grid, num_selection_samples, ood_weight: see :func:`select_prior_variance`
        (``num_selection_samples`` is its ``num_samples``).

    Returns:
      A :class:`LastLayerLaplace`.

    Raises:
      ValueError: as the functions it calls.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import get_model
      >>> model = get_model("fc", 3, hidden_sizes=(8,))
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 5)), train=False)
      >>> x = jax.random.normal(jax.random.key(1), (30, 5))
      >>> y = jnp.arange(30) % 3
      >>> la = fit_last_layer_laplace(model, variables, x, y, x_val=x, y_val=y, x_noise=x,
      ...                             key=jax.random.key(2), grid=[1.0, 10.0])
      >>> la.log_predictive(x, key=jax.random.key(3)).shape
      (30, 3)
    """
    validation.check_key(key)
    _check_model_inputs(model, variables, x_train, "x_train")
    batch_size = validation.check_positive_int("batch_size", batch_size)
    path = _locate_layer(model, variables, x_train, layer)
    kernel, bias = _params_at(variables, path)

    def feats(x, name):
        _check_model_inputs(model, variables, x, name)
        f, _ = last_layer_features(model, variables, x, layer=path, batch_size=batch_size)
        return f

    key_fit, key_select = jax.random.split(key)
    posterior = fit_laplace(
        feats(x_train, "x_train"),
        y_train,
        kernel,
        bias,
        method=method,
        fisher=fisher,
        key=key_fit,
        num_fisher_samples=num_fisher_samples,
    )
    best, _ = select_prior_variance(
        posterior,
        feats(x_val, "x_val"),
        y_val,
        feats(x_noise, "x_noise"),
        grid=grid,
        num_samples=num_selection_samples,
        ood_weight=ood_weight,
        key=key_select,
    )
    return LastLayerLaplace(
        model=model,
        layer=path,
        batch_size=batch_size,
        variables=variables,
        posterior=posterior,
        prior_variance=best,
    )
