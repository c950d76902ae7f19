"""Batched inference of many models on many examples and queries, in eval mode.

:func:`predict_many` runs every model of a stack (variables with a leading model axis ``M``,
as the training engine produces them) on every example of ``x`` and every test-time query
(:class:`~hampjax.training.queries.QuerySet`), and returns float32 outputs
``[M, N, Q, C]``. For each batch of examples one jitted program computes the ``Q * B`` query
inputs once and runs all models on them with ``vmap``; the models always run in eval mode
(``train=False``: BatchNorm uses its running statistics), so an example's outputs never depend
on the rest of its batch (the authors' LiRA and HAMP code ran inference in train mode, so
BatchNorm used each query batch's statistics).

An optional *output modifier* (:class:`~hampjax.defenses.output_modification.OutputModifier`,
a stack of per-model pools from :meth:`~hampjax.defenses.output_modification.OutputModifier.from_pools`)
applies HAMP's output modification (HAMP paper Sec. III-D) to each model's outputs
after the forward pass: every model draws from its own pool of outputs on random inputs. Its
randomness comes from one explicit key, folded per (model, example, query) so that results do
not depend on the batch size, the padding or the device mesh.

Results can stream into a ``.npy`` file (written under a temporary name and renamed when
complete). The model axis can be sharded across devices.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hampjax import validation
from hampjax.defenses.output_modification import OutputModifier
from hampjax.training.queries import QuerySet

__all__ = ["predict_many", "predict_single"]

PyTree = Any


def _model_axis_size(name: str, tree: PyTree) -> int:
    """Leading-axis size shared by every leaf of ``tree`` (the model count M)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"{name} must be a non-empty pytree of arrays with a leading model axis")
    shapes = [validation.shape_of(leaf) for leaf in leaves]
    if any(len(s) == 0 for s in shapes):
        raise ValueError(
            f"{name} must have a leading model axis on every leaf; found a scalar leaf"
        )
    sizes = sorted({s[0] for s in shapes})
    if len(sizes) != 1:
        raise ValueError(
            f"{name} must have the same leading (model) axis size M on every leaf, got sizes "
            f"{sizes}"
        )
    if sizes[0] < 1:
        raise ValueError(f"{name} must stack at least 1 model (leading axis M >= 1), got 0")
    return sizes[0]


def _check_devices(devices: Any, num_models: int) -> tuple[jax.Device, ...] | None:
    if devices is None:
        return None
    if isinstance(devices, jax.Device):
        devices = (devices,)
    if isinstance(devices, (str, bytes)) or not isinstance(devices, (Sequence, np.ndarray)):
        raise ValueError(f"devices must be a sequence of jax devices, got {devices!r}")
    devices = tuple(np.asarray(devices, dtype=object).ravel())
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(
            f"devices must be a non-empty sequence of jax devices (e.g. jax.devices()), got "
            f"{devices!r}"
        )
    if len(set(devices)) != len(devices):
        raise ValueError("devices must not repeat a device")
    if num_models % len(devices):
        raise ValueError(
            f"devices: the number of models M={num_models} must be divisible by the number of "
            f"devices ({len(devices)}) to shard the model axis"
        )
    return devices


def _check_out_path(out_path: Any) -> str | None:
    if out_path is None:
        return None
    if not isinstance(out_path, (str, os.PathLike)):
        raise ValueError(
            f"out_path must be a str or os.PathLike path to a .npy file, got {out_path!r}"
        )
    path = os.fspath(out_path)
    if not path.endswith(".npy"):
        raise ValueError(f"out_path must end with '.npy', got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"out_path must be in an existing directory, got {path!r}")
    return path


@functools.partial(jax.jit, static_argnames=("size",))
def _take_batch(x: jax.Array, start: jax.Array, *, size: int) -> jax.Array:
    """Rows ``start .. start + size - 1`` of a device array, repeating the last row past N."""
    rows = jnp.minimum(start + jnp.arange(size, dtype=jnp.int32), x.shape[0] - 1)
    return jnp.take(x, rows, axis=0)


_MAX_UNROLLED_MODELS = 8


def _unroll_models(num_models: int, devices) -> bool:
    """Whether to write the models of a batch program out one after the other: on CPU, with
    few models (vmapped convolutions are grouped convolutions, ~9x slower there for two
    ResNet-20s; unbatched matmuls are also faster there than batched ones)."""
    platform = devices[0].platform if devices else jax.default_backend()
    return platform == "cpu" and num_models <= _MAX_UNROLLED_MODELS


def _modify_row(modifier: OutputModifier, row: jax.Array, key: jax.Array) -> jax.Array:
    return modifier(row, key)


@functools.partial(jax.jit, static_argnames=("apply_fn", "queries", "unroll_models"))
def _predict_batch(
    variables: PyTree,
    output_modifier: OutputModifier | None,
    model_ids: jax.Array,
    x_batch: jax.Array,
    first_example: jax.Array,
    output_key: jax.Array | None,
    *,
    apply_fn: Callable[..., Any],
    queries: QuerySet,
    unroll_models: bool = False,
) -> jax.Array:
    """All models x all queries on one batch: ``[M, B, Q, C]`` float32.

    With ``unroll_models`` the models' forward passes are written out one after the other
    instead of vmapped (see :func:`_unroll_models`).
    """
    inputs = queries.apply(x_batch)  # [Q, B, ...], shared by every model.
    num_queries, batch = inputs.shape[:2]
    flat = inputs.reshape((num_queries * batch,) + inputs.shape[2:])

    def forward(model_variables: PyTree) -> jax.Array:
        logits, _ = apply_fn(model_variables, flat, train=False)
        return logits

    if unroll_models:
        num_models = jax.tree_util.tree_leaves(variables)[0].shape[0]
        one = jax.jit(forward)  # traced once, called once per model
        logits = jnp.stack([one(jax.tree_util.tree_map(lambda a: a[m], variables))
                            for m in range(num_models)]).astype(jnp.float32)
    else:
        logits = jax.vmap(forward)(variables).astype(jnp.float32)  # [M, Q * B, C]
    logits = logits.reshape((logits.shape[0], num_queries, batch, logits.shape[-1]))
    logits = jnp.swapaxes(logits, 1, 2)  # [M, B, Q, C]
    if output_modifier is None:
        return logits

    example_ids = first_example + jnp.arange(batch, dtype=jnp.int32)
    query_ids = jnp.arange(num_queries, dtype=jnp.int32)

    def per_model(modifier: OutputModifier, model_id: jax.Array, rows: jax.Array) -> jax.Array:
        model_key = jax.random.fold_in(output_key, model_id)

        def per_example(example_id: jax.Array, example_rows: jax.Array) -> jax.Array:
            example_key = jax.random.fold_in(model_key, example_id)

            def per_query(query_id: jax.Array, row: jax.Array) -> jax.Array:
                return _modify_row(modifier, row, jax.random.fold_in(example_key, query_id))

            return jax.vmap(per_query)(query_ids, example_rows)

        return jax.vmap(per_example)(example_ids, rows)

    outputs = jax.vmap(per_model)(output_modifier, model_ids, logits)
    return outputs.astype(jnp.float32)


def _forward_checked(*args: Any, **kwargs: Any) -> jax.Array:
    """:func:`_predict_batch`, turning a parameter-shape mismatch (wrong feature count) into a
    ValueError that names ``x`` (raised while tracing: the first batch; no cost otherwise)."""
    try:
        return _predict_batch(*args, **kwargs)
    except flax.errors.ScopeParamShapeError as error:
        shape = validation.shape_of(args[3])[1:]
        raise ValueError(
            f"x must have the input shape the models were initialized with; x.shape[1:]="
            f"{shape} does not fit their parameters ({error})") from None


def _check_modifier(output_modifier: Any, output_key: Any, num_models: int, *, single: bool) -> None:
    if output_modifier is None:
        if output_key is not None:
            raise ValueError("output_key must be None when output_modifier is None")
        return
    if not isinstance(output_modifier, OutputModifier) or output_modifier.pool is None:
        raise ValueError(
            "output_modifier must be a pool-mode OutputModifier ("
            + ("OutputModifier.from_pool(pool [P, C])" if single else
               "OutputModifier.from_pools(pools [M, P, C]), one pool per model")
            + f"), got {output_modifier!r}")
    shape = tuple(output_modifier.pool.shape)
    if single:
        if len(shape) != 2:
            raise ValueError(f"output_modifier of predict_single must hold one pool [P, C] "
                             f"(OutputModifier.from_pool), got pool shape {shape}")
    elif len(shape) != 3 or shape[0] != num_models:
        raise ValueError(
            f"output_modifier must stack one pool per model, pool shape [M={num_models}, P, C] "
            f"(OutputModifier.from_pools), got {shape}")
    if output_key is None:
        raise ValueError("output_key is required with an output_modifier (it draws the random "
                         "pool rows); pass e.g. output_key=jax.random.key(0)")
    validation.check_key(output_key, name="output_key")


def _predict(
    apply_fn: Callable[..., Any],
    variables: PyTree,
    x: Any,
    *,
    queries: QuerySet,
    batch_size: int,
    output_modifier: OutputModifier | None,
    output_key: jax.Array | None,
    out_path: Any,
    devices: Any,
    single: bool,
) -> np.ndarray:
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable, got {apply_fn!r}")
    batch_size = validation.check_positive_int("batch_size", batch_size)
    if not isinstance(queries, QuerySet):
        raise ValueError(f"queries must be a QuerySet (e.g. QuerySet.mirror()), got {queries!r}")
    validation.check_nonempty("x", x)
    validation.check_finite("x", x)
    queries.check_input(x, name="x")
    num_models = _model_axis_size("variables", variables)
    _check_modifier(output_modifier, output_key, num_models, single=single)
    if single and output_modifier is not None:
        output_modifier = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], output_modifier)
    devices = _check_devices(devices, num_models)
    path = _check_out_path(out_path)

    num_examples = validation.shape_of(x)[0]
    model_ids = jnp.arange(num_models, dtype=jnp.int32)
    replicated = None
    if devices is not None:
        if len(devices) == 1:
            models_sharding = replicated = jax.sharding.SingleDeviceSharding(devices[0])
        else:
            mesh = Mesh(np.asarray(devices), ("models",))
            models_sharding = NamedSharding(mesh, PartitionSpec("models"))
            replicated = NamedSharding(mesh, PartitionSpec())
        variables, output_modifier, model_ids = jax.device_put(
            (variables, output_modifier, model_ids), models_sharding
        )
        if output_key is not None:
            output_key = jax.device_put(output_key, replicated)

    if not isinstance(x, jax.Array):
        x = np.asarray(x)
    unroll_models = _unroll_models(num_models, devices)
    steps = list(range(0, num_examples, batch_size))
    batch = min(batch_size, num_examples)

    def run(start: int) -> jax.Array:
        # The last batch is padded with copies of the last example; the padding is dropped.
        if isinstance(x, jax.Array):
            x_batch = _take_batch(x, jnp.int32(start), size=batch)
        else:
            x_batch = x[start:start + batch]
            short = batch - x_batch.shape[0]
            if short:
                x_batch = np.concatenate([x_batch, np.repeat(x_batch[-1:], short, axis=0)])
        if replicated is not None:
            x_batch = jax.device_put(x_batch, replicated)
        return _forward_checked(
            variables,
            output_modifier,
            model_ids,
            x_batch,
            jnp.int32(start),
            output_key,
            apply_fn=apply_fn,
            queries=queries,
            unroll_models=unroll_models,
        )

    result: np.ndarray | None = None
    tmp_path = None
    try:
        pending: tuple[int, jax.Array] | None = None
        for start in [*steps, None]:
            # Dispatch the next batch before copying the previous one to the host.
            current = None if start is None else (start, run(start))
            if pending is not None:
                p_start, p_out = pending
                p_out = np.asarray(p_out)[:, : num_examples - p_start]
                if result is None:
                    shape = (num_models, num_examples) + p_out.shape[2:]
                    shape = shape[1:] if single else shape
                    if path is None:
                        result = np.empty(shape, np.float32)
                    else:
                        fd, tmp_path = tempfile.mkstemp(
                            prefix=os.path.basename(path) + ".", suffix=".partial",
                            dir=os.path.dirname(os.path.abspath(path)),
                        )
                        os.close(fd)
                        result = np.lib.format.open_memmap(
                            tmp_path, mode="w+", dtype=np.float32, shape=shape
                        )
                stop = p_start + p_out.shape[1]
                if single:
                    result[p_start:stop] = p_out[0]
                else:
                    result[:, p_start:stop] = p_out
            pending = current
        if path is None:
            return result
        result.flush()
        del result
        os.replace(tmp_path, path)
        tmp_path = None
        return np.load(path, mmap_mode="r")
    finally:
        if tmp_path is not None and os.path.exists(tmp_path):
            os.remove(tmp_path)


def predict_many(
    apply_fn: Callable[..., Any],
    variables: PyTree,
    x: Any,
    *,
    queries: QuerySet = QuerySet.none(),
    batch_size: int = 1024,
    output_modifier: OutputModifier | None = None,
    output_key: jax.Array | None = None,
    out_path: str | os.PathLike | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> np.ndarray:
    """Outputs of every stacked model on every example and query, in eval mode.

    Walks ``x`` in order in batches of ``batch_size`` examples; the last partial batch is
    padded (with copies of its last example) so that every batch has one shape and the
    program compiles once, and the padding is dropped. For each batch one jitted program
    builds the ``Q * B`` query inputs once and runs all ``M`` models on them (``vmap`` over the
    model axis) with ``apply_fn(variables_m, inputs, train=False)``: BatchNorm uses running
    statistics, so each example's outputs are independent of its batch. Then, if given,
    ``output_modifier`` modifies every (model, example, query) row: model ``m``'s row gets
    ``OutputModifier.from_pool(pools[m])(row, row_key)``, one uniformly drawn row of model
    ``m``'s own pool in the ranking of its logits, with
    ``row_key = fold_in(fold_in(fold_in(output_key, m), j), q)`` for example ``j`` (position in
    ``x``) and query ``q``. Results are deterministic
    for a fixed ``output_key`` and independent of ``batch_size`` and ``devices`` (up to
    floating-point reassociation by the compiler).

    Args:
      apply_fn: ``apply_fn(variables, x, *, train) -> (logits [B, C], new_variables)`` as
        from :func:`hampjax.models.registry.model_functions` (a static ``jit`` argument).
      variables: pytree whose every leaf has leading model axis ``M``, e.g.
        ``jax.vmap(init_fn, in_axes=(0, None))(keys, x)``.
      x: inputs ``[N, ...]`` (NumPy arrays stay on the host and travel batch by batch; JAX
        arrays are sliced in place); ``[N, H, W, C]`` images for image queries.
      queries: the test-time queries (default: the input only).
      batch_size: examples per program (performance setting); memory grows with
        ``M * Q * batch_size``.
      output_modifier: optional HAMP output modification, one pool per model:
        ``OutputModifier.from_pools(pools [M, P, C])``
        (:class:`~hampjax.defenses.output_modification.OutputModifier`).
      output_key: PRNG key of the output modifier (required with it); row keys as above.
        Models are indexed by their position in ``variables``: when predicting a large
        stack in chunks, give each chunk its own key.
      out_path: optional path ending in ``.npy``; the result streams batch by batch into a
        file created under a temporary name in the same directory and renamed to
        ``out_path`` when complete (a failed run removes it; a killed one never leaves a
        truncated file under ``out_path``). The return value is then that file opened
        read-only (``np.load(out_path, mmap_mode="r")``).
      devices: optional devices. ``None`` leaves placement to JAX (the variables' current
        placement; uncommitted arrays go to the default device). One device: everything runs
        there. Several: the model axis is sharded across them
        (``NamedSharding(Mesh(devices, ("models",)), PartitionSpec("models"))``) and each batch
        is replicated.

    Returns:
      float32 ``[M, N, Q, C]`` host array (a read-only ``np.memmap`` with ``out_path``):
      entry ``[m, j, q]`` is model ``m``'s (transformed) output for query ``q`` of example
      ``j``.

    Raises:
      ValueError: if ``batch_size < 1``; ``x`` is empty, holds NaN/inf, does not fit the
        models' parameters (e.g. the wrong feature count) or does not suit ``queries`` (image
        queries need 4-D input); the leaves of ``variables`` do not share one leading axis
        ``M``; ``output_modifier`` is not a pool-mode modifier stacking ``M`` pools;
        ``output_key`` is missing with it, given without it or not a key; ``M`` is not divisible
        by the number of ``devices``; ``out_path`` does not end in ``.npy`` or its directory
        does not exist.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import get_model, model_functions
      >>> init_fn, apply_fn = model_functions(get_model("fc", 3, hidden_sizes=(8,)))
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> variables = jax.vmap(init_fn, in_axes=(0, None))(keys, jnp.zeros((1, 5)))
      >>> predict_many(apply_fn, variables, jnp.ones((10, 5)), batch_size=4).shape
      (4, 10, 1, 3)
    """
    return _predict(
        apply_fn, variables, x, queries=queries, batch_size=batch_size,
        output_modifier=output_modifier, output_key=output_key, out_path=out_path,
        devices=devices, single=False,
    )


def predict_single(
    apply_fn: Callable[..., Any],
    variables: PyTree,
    x: Any,
    *,
    queries: QuerySet = QuerySet.none(),
    batch_size: int = 1024,
    output_modifier: OutputModifier | None = None,
    output_key: jax.Array | None = None,
    out_path: str | os.PathLike | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> np.ndarray:
    """:func:`predict_many` for one model (variables without a model axis).

    Adds a model axis of size 1 to ``variables`` and ``output_modifier`` and removes it from
    the result (also from the file written to ``out_path``). The modifier's model index is
    0. ``devices`` may name at most one device.

    Args:
      apply_fn, x, queries, batch_size, output_key, out_path, devices:
        as for :func:`predict_many`.
      variables: one model's variables (no leading model axis).
      output_modifier: optional ``OutputModifier.from_pool(pool [P, C])`` of this model.

    Returns:
      float32 ``[N, Q, C]`` host array (a read-only ``np.memmap`` with ``out_path``).

    Raises:
      ValueError: as :func:`predict_many`; ``variables`` must hold at least one array.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.registry import get_model, model_functions
      >>> from hampjax.training.queries import QuerySet
      >>> init_fn, apply_fn = model_functions(get_model("fc", 3, hidden_sizes=(8,)))
      >>> variables = init_fn(jax.random.key(0), jnp.zeros((1, 5)))
      >>> predict_single(apply_fn, variables, jnp.ones((10, 5)), queries=QuerySet.none()).shape
      (10, 1, 3)
    """
    if not jax.tree_util.tree_leaves(variables):
        raise ValueError("variables must be a non-empty pytree of arrays")
    add_axis = lambda tree: jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], tree)  # noqa: E731
    return _predict(
        apply_fn, add_axis(variables), x, queries=queries, batch_size=batch_size,
        output_modifier=output_modifier, output_key=output_key, out_path=out_path,
        devices=devices, single=True,
    )
