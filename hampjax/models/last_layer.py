"""Last-layer features of any Flax linen classifier: the input of its final ``nn.Dense``.

:func:`last_layer_features` runs the model in eval mode and records the input ``phi`` of its
last ``nn.Dense`` call (or of the Dense module at a given path) together with the logits, and
checks that ``phi @ W + b`` reproduces them; :func:`last_layer_params` returns that layer's
``W`` and ``b``. The last-layer Laplace approximation (:mod:`hampjax.defenses.laplace`) is
built on these; they work for every model of :mod:`hampjax.models`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation

__all__ = ["last_layer_features", "last_layer_params"]

_HIGHEST = jax.lax.Precision.HIGHEST
# Relative tolerance of the check that features @ kernel + bias reproduces the logits.
_RECONSTRUCTION_RTOL = 1e-3

def _path_str(path: tuple[str, ...]) -> str:
    return "/".join(path)


def _apply_recording(model: nn.Module, variables: Mapping[str, Any], x: jax.Array):
    """Eval-mode forward pass that records every ``nn.Dense.__call__`` (path, input, output)."""
    calls: list[tuple[tuple[str, ...], jax.Array, jax.Array]] = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
            calls.append((tuple(context.module.path), args[0] if args else kwargs["inputs"], out))
        return out

    with nn.intercept_methods(interceptor):
        logits = model.apply(variables, x, train=False)
    return logits, calls


def _check_model_inputs(model: Any, variables: Any, x: Any, name: str = "x") -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a flax.linen.Module, got {type(model).__name__}")
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError("variables must be a mapping with a 'params' collection")
    validation.check_rank_at_least(name, x, 2)
    validation.check_nonempty(name, x)


def _locate_layer(
    model: nn.Module, variables: Mapping[str, Any], x: jax.Array, layer: str | Sequence[str] | None
) -> tuple[str, ...]:
    """Path of the chosen Dense module (the last one called when ``layer`` is None)."""
    found: list[tuple[str, ...]] = []

    def shapes_only(v, xb):
        logits, calls = _apply_recording(model, v, xb)
        found.extend(path for path, _, _ in calls)
        return logits

    jax.eval_shape(shapes_only, variables, x[:1])
    if not found:
        raise ValueError(f"model {type(model).__name__} calls no flax.linen.Dense layer")
    if layer is None:
        return found[-1]
    if isinstance(layer, str):
        wanted = tuple(p for p in layer.split("/") if p)
    elif isinstance(layer, Sequence) and all(isinstance(p, str) for p in layer):
        wanted = tuple(layer)
    else:
        raise ValueError(
            f"layer must be None, a 'a/b/c' path string or a tuple of names, got {layer!r}"
        )
    if wanted not in found:
        names = ", ".join(repr(_path_str(p)) for p in dict.fromkeys(found))
        raise ValueError(
            f"layer must name a Dense module of the model, one of {names}; got {layer!r}"
        )
    return wanted


def _params_at(variables: Mapping[str, Any], path: tuple[str, ...]) -> tuple[jax.Array, jax.Array]:
    node = variables["params"]
    for part in path:
        node = node[part]
    kernel = jnp.asarray(node["kernel"], jnp.float32)
    if kernel.ndim != 2:
        raise ValueError(
            f"the Dense kernel at {_path_str(path)!r} must be 2-D, got shape {kernel.shape}"
        )
    bias = node["bias"] if "bias" in node else jnp.zeros(kernel.shape[1], jnp.float32)
    return kernel, jnp.asarray(bias, jnp.float32)


@functools.lru_cache(maxsize=32)
def _capture_fn(model: nn.Module, path: tuple[str, ...]):
    """Jitted ``(variables, x_batch) -> (features, logits)``, cached per (model, layer)."""

    def one_batch(v, xb):
        logits, calls = _apply_recording(model, v, xb)
        hits = [(inp, out) for p, inp, out in calls if p == path]
        inp, out = hits[-1]
        if inp.ndim != 2 or out.shape != logits.shape:
            raise ValueError(
                f"layer {_path_str(path)!r} is not the model's output layer: its input has shape "
                f"{inp.shape} (need [batch, D]) and its output {out.shape}, the logits "
                f"{logits.shape}"
            )
        return inp.astype(jnp.float32), logits.astype(jnp.float32)

    return jax.jit(one_batch)


def _capture(model, variables, x, path, batch_size):
    """(features [N, D], logits [N, C]) of the Dense at ``path``, in padded batches."""
    try:
        run = _capture_fn(model, path)
    except TypeError:  # An unhashable module: compile for this call only.
        run = _capture_fn.__wrapped__(model, path)
    n = validation.shape_of(x)[0]
    bs = min(batch_size, n)
    feats, logits = [], []
    for start in range(0, n, bs):
        xb = jnp.asarray(x[start : start + bs])
        m = xb.shape[0]
        if m < bs:  # Pad: every batch reuses one program (eval mode: rows are independent).
            xb = jnp.concatenate([xb, jnp.zeros((bs - m,) + xb.shape[1:], xb.dtype)])
        f, z = run(variables, xb)
        feats.append(f[:m])
        logits.append(z[:m])
    return jnp.concatenate(feats), jnp.concatenate(logits)


def _check_reconstruction(features, logits, kernel, bias, path) -> None:
    recon = jnp.matmul(features, kernel, precision=_HIGHEST) + bias
    err = float(jnp.max(jnp.abs(recon - logits)))
    scale = 1.0 + float(jnp.max(jnp.abs(logits)))
    if not err <= _RECONSTRUCTION_RTOL * scale:
        raise ValueError(
            f"layer {_path_str(path)!r} is not the last operation of the model: features @ "
            f"kernel + bias differs from the logits by up to {err:.3g} (allowed "
            f"{_RECONSTRUCTION_RTOL * scale:.3g}); "
            "the Dense output passes through another operation, or layer names the wrong Dense"
        )


def last_layer_features(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    *,
    layer: str | Sequence[str] | None = None,
    batch_size: int = 512,
) -> tuple[jax.Array, jax.Array]:
    """Inputs of the last ``nn.Dense`` layer (the LLLA features) and the model's logits.

    Runs ``model.apply(variables, x, train=False)`` (BatchNorm on running statistics, no
    dropout) under ``flax.linen.intercept_methods`` and records the input of the last
    ``nn.Dense`` call, or of the Dense module at path ``layer``. Checks that
    ``features @ kernel + bias`` reproduces the logits, so the captured layer really is the
    model's last operation.

    Args:
      model: a Flax linen module whose ``__call__(x, *, train)`` returns logits ``[B, C]``.
      variables: its variables (``{"params": ..., "batch_stats": ...}``).
      x: inputs ``[N, ...]``, N >= 1.
      layer: None for the last Dense called, or the module path of a Dense, as a
        ``"a/b/c"`` string (``"classifier"`` for the zoo models) or a tuple of names.
      batch_size: examples per forward pass (a performance setting); the last batch is
        zero-padded so one compiled program serves all batches.

    Returns:
      ``(features, logits)``: float32 ``[N, D]`` and ``[N, C]``.

    Raises:
      ValueError: if ``model``/``variables``/``x`` are invalid, the model calls no Dense,
        ``layer`` names no Dense of the model (the message lists them), the layer's input is
        not ``[batch, D]``, or ``features @ kernel + bias`` does not reproduce the logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import get_model
      >>> model = get_model("fc", 3, hidden_sizes=(8,))
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 5)), train=False)
      >>> feats, logits = last_layer_features(model, variables, jnp.ones((4, 5)))
      >>> feats.shape, logits.shape
      ((4, 8), (4, 3))
    """
    _check_model_inputs(model, variables, x)
    batch_size = validation.check_positive_int("batch_size", batch_size)
    path = _locate_layer(model, variables, x, layer)
    kernel, bias = _params_at(variables, path)
    features, logits = _capture(model, variables, x, path, batch_size)
    _check_reconstruction(features, logits, kernel, bias, path)
    return features, logits


def last_layer_params(
    model: nn.Module,
    variables: Mapping[str, Any],
    sample_x: Any,
    *,
    layer: str | Sequence[str] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Kernel and bias of the Dense layer that :func:`last_layer_features` captures.

    Args:
      model: the Flax module.
      variables: its variables.
      sample_x: any input batch ``[B, ...]`` (only shapes are used; one example suffices).
      layer: as in :func:`last_layer_features`.

    Returns:
      ``(kernel [D, C], bias [C])`` float32 (zeros for a Dense without bias).

    Raises:
      ValueError: as :func:`last_layer_features` for an invalid model or layer.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import get_model
      >>> model = get_model("fc", 3, hidden_sizes=(8,))
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 5)), train=False)
      >>> [a.shape for a in last_layer_params(model, variables, jnp.zeros((1, 5)))]
      [(8, 3), (3,)]
    """
    _check_model_inputs(model, variables, sample_x, "sample_x")
    return _params_at(variables, _locate_layer(model, variables, sample_x, layer))
