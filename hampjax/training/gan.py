"""A GAN per model on its own members, batched over models (DMP's synthetic reference sets).

:func:`train_gans` trains ``M = keep.shape[0]`` GANs of :mod:`hampjax.models.gan` with one
:class:`~hampjax.training.spec.ReferenceSpec`: GAN ``m`` sees only the candidates with
``keep[m]`` True. GAN state is stacked along a leading model axis and every step is one jitted
program over the models of a chunk (``vmap``), driven from Python: XLA:CPU runs convolutions
inside ``lax.scan`` far slower than outside (see :mod:`hampjax.training.engine`), and a GAN
step is large enough for the dispatch not to matter on accelerators.

One epoch of GAN ``m`` walks its members in a fresh order in batches of ``gan_batch_size``
(the last partial batch kept; the engine's :func:`~hampjax.training.engine.epoch_batches`;
padding rows repeat members and carry no loss weight, and a step with no real row leaves the
GAN untouched). Each step (DC-GAN training, BCE on logits): the discriminator takes one Adam
step on ``BCE(D(real), 1) + BCE(D(G(z)), 0)``, then the generator one on
``BCE(D(G(z)), 1)`` with the same noise ``z`` and the updated discriminator, both in train
mode. Randomness: GAN ``m`` draws from ``fold_in(model_key(seed, m), GAN_STREAM)``, so a GAN
does not depend on the chunk size or on the other models.

Data scaling (:class:`Scaling`): the models' inputs are normalized, ``x = (v - mean) / std``
with ``v`` in [0, 1]; a GAN works on ``v``: DC-GAN members are resized to ``image_size`` and
scaled to [-1, 1] (Tanh range), tabular rows stay in [0, 1] (sigmoid range). Samples go back
the other way (:func:`generate`): DC-GAN outputs to [0, 1], resized to the data's size and
normalized; tabular outputs thresholded (``threshold``, binary features) and normalized.

A sample is a pure function of the generator, the model's sample key, its row index and, in
``sample_mode="train_bn"``, the other rows generated with it (BatchNorm batch statistics):
row ``r``'s noise is ``normal(fold_in(sample_key, r))``.

With ``workdir`` (a :class:`hampjax.training.checkpoint.RunDirectory`: ``run.json`` holds the
GAN settings, the seed, the data hash and the scaling; ``keep.npy`` the members) every chunk
checkpoints every ``save_every`` epochs and stores its finished generators by model range; a
run started again loads the finished ones and resumes the others. Stored histories use the
run directory's names: ``train_loss`` = generator loss, ``train_acc`` = discriminator accuracy
(real > 0, fake < 0), ``val_acc`` = discriminator loss, per epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hampjax import validation
from hampjax.models.gan import DCDiscriminator, DCGenerator, TabularDiscriminator, TabularGenerator
from hampjax.runlock import RunLock
from hampjax.training import checkpoint as ckpt
from hampjax.training.engine import epoch_batches, model_key, plan_chunks
from hampjax.training.membership import check_keep
from hampjax.training.spec import ReferenceSpec
from hampjax.training.step import _select

__all__ = ["GAN_STREAM", "SAMPLE_STREAM", "Scaling", "GanFns", "GanState", "GanResult",
           "gan_functions", "gan_step", "generate", "sample_key", "train_gans", "GAN_FIELDS"]

GAN_STREAM = 10
"""Sub-stream of a model's key (:func:`~hampjax.training.engine.model_key`) for its GAN."""
SAMPLE_STREAM = 11
"""Sub-stream of a model's key for the noise of its synthetic rows (:func:`sample_key`)."""

GAN_FIELDS = ("generator", "gan_epochs", "gan_batch_size", "gan_learning_rate", "beta1",
              "beta2", "noise_dim", "filters", "image_size", "hidden")
"""The :class:`ReferenceSpec` fields a GAN's training depends on (its run fingerprint)."""


class Scaling(NamedTuple):
    """How model inputs relate to [0, 1]: ``x = (v - mean) / std`` per channel (last axis).

    ``mean`` and ``std`` are float32 ``[C]`` (or ``[1]``, broadcast over the last axis); the
    identity (``mean 0``, ``std 1``) for inputs already in [0, 1] (binary features).
    """

    mean: jax.Array
    std: jax.Array

    @classmethod
    def of(cls, normalization: Any = None) -> "Scaling":
        """From ``(mean, std)`` sequences (``EvalData.normalization``) or None (identity).

        Raises:
          ValueError: unless mean and std are finite, of equal length, std > 0.
        """
        if normalization is None:
            return cls(np.zeros((1,), np.float32), np.ones((1,), np.float32))
        mean, std = (np.atleast_1d(np.asarray(v, np.float32)) for v in normalization)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"normalization must be (mean, std) of equal length, got shapes "
                             f"{mean.shape} and {std.shape}")
        validation.check_finite("normalization", np.concatenate([mean, std]))
        if (std <= 0).any():
            raise ValueError(f"normalization std must be > 0, got {std.tolist()}")
        return cls(mean, std)

    def check(self, sample_shape: Sequence[int]) -> None:
        """Raise unless one value, or one per channel (last axis of ``sample_shape``)."""
        size, channels = int(np.shape(self.mean)[0]), int(tuple(sample_shape)[-1])
        if size not in (1, channels):
            raise ValueError(f"normalization must give one mean/std or one per channel "
                             f"({channels}), got {size}")

    def to_unit(self, x):
        return x * self.std + self.mean

    def from_unit(self, v):
        return (v - self.mean) / self.std


@dataclasses.dataclass(frozen=True)
class GanFns:
    """A GAN's modules and data maps for one data shape (static for a run).

    Attributes:
      generator, discriminator: the Flax modules.
      spec: the reference settings.
      sample_shape: one model input's shape (``(H, W, C)`` images, ``(d,)`` rows).
    """

    generator: Any
    discriminator: Any
    spec: ReferenceSpec
    sample_shape: tuple[int, ...]

    def to_gan(self, scaling: Scaling, x: jax.Array) -> jax.Array:
        """Model inputs ``[B, ...]`` -> the GAN's data space."""
        v = scaling.to_unit(x)
        if self.spec.generator == "dcgan":
            s = self.spec.image_size
            v = jax.image.resize(v, (v.shape[0], s, s, v.shape[-1]), "bilinear")
            return v * 2.0 - 1.0
        return v

    def from_gan(self, scaling: Scaling, g: jax.Array) -> jax.Array:
        """Generator outputs -> model inputs ``[B, *sample_shape]``."""
        if self.spec.generator == "dcgan":
            v = (g + 1.0) / 2.0
            v = jax.image.resize(v, (v.shape[0],) + self.sample_shape, "bilinear")
        else:
            v = g
            if self.spec.threshold is not None:
                v = (v > self.spec.threshold).astype(g.dtype)
        return scaling.from_unit(v).astype(jnp.float32)


def gan_functions(spec: ReferenceSpec, sample_shape: Sequence[int]) -> GanFns:
    """The GAN of ``spec`` (``kind="gan"``) for model inputs of shape ``sample_shape``.

    Raises:
      ValueError: for a DC-GAN on inputs that are not square ``(H, W, C)`` images, or a
        tabular GAN on inputs that are not flat ``(d,)`` rows.
    """
    if not isinstance(spec, ReferenceSpec) or spec.kind != "gan":
        raise ValueError(f"spec must be a ReferenceSpec with kind='gan', got {spec!r}")
    shape = tuple(int(d) for d in sample_shape)
    if spec.generator == "dcgan":
        if len(shape) != 3 or shape[0] != shape[1]:
            raise ValueError(f"reference.generator='dcgan' needs square NHWC images, got inputs "
                             f"of shape {shape}; use reference.generator='tabular' for rows")
        return GanFns(DCGenerator(shape[2], spec.image_size, spec.filters),
                      DCDiscriminator(spec.image_size, spec.filters), spec, shape)
    if len(shape) != 1:
        raise ValueError(f"reference.generator='tabular' needs flat rows [N, d], got inputs of "
                         f"shape {shape}")
    return GanFns(TabularGenerator(shape[0], spec.hidden), TabularDiscriminator(spec.hidden),
                  spec, shape)


def _apply(module, variables, x, train: bool):
    """``(output, new_variables)``; train-mode BatchNorm returns its updated statistics."""
    if train and "batch_stats" in variables:
        out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, {**variables, "batch_stats": updates["batch_stats"]}
    return module.apply(variables, x, train=train), variables


def sample_key(seed: int, model_index: int | jax.Array) -> jax.Array:
    """The key of model ``model_index``'s synthetic rows."""
    return jax.random.fold_in(model_key(seed, model_index), SAMPLE_STREAM)


def generate(fns: GanFns, generator: dict, scaling: Scaling, key: jax.Array,
             rows: jax.Array) -> jax.Array:
    """Synthetic rows ``rows`` ``[B]`` of one model, as model inputs ``[B, *sample_shape]``.

    Row ``r``'s noise is ``normal(fold_in(key, r), [noise_dim])``; with
    ``sample_mode="train_bn"`` the generator's BatchNorm normalizes with the statistics of
    these ``B`` rows (so a sample depends on the rows generated with it), with ``"eval_bn"``
    with its running statistics (each row alone). No model axis (``vmap`` adds it).
    """
    z = jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r),
                                             (fns.spec.noise_dim,)))(rows)
    g, _ = _apply(fns.generator, generator, z, fns.spec.sample_mode == "train_bn")
    return fns.from_gan(scaling, g)


class GanState(NamedTuple):
    """One GAN's training state (a leading model axis when stacked)."""

    generator: dict
    discriminator: dict
    g_opt: Any
    d_opt: Any


class GanStep(NamedTuple):
    g_loss: jax.Array
    d_loss: jax.Array
    d_acc: jax.Array
    count: jax.Array


def _optimizer(spec: ReferenceSpec) -> optax.GradientTransformation:
    return optax.adam(spec.gan_learning_rate, b1=spec.beta1, b2=spec.beta2)


def _bce(logits, target: float, where):
    """Mean BCE-with-logits over the real rows (``where``)."""
    losses = optax.sigmoid_binary_cross_entropy(logits, jnp.full(logits.shape, target))
    return jnp.sum(jnp.where(where, losses, 0.0)) / jnp.maximum(jnp.sum(where), 1)


def init_gan(fns: GanFns, key: jax.Array) -> GanState:
    """A fresh GAN (no model axis) from ``key`` (its GAN stream)."""
    kg, kd = jax.random.split(key)
    z = jnp.zeros((2, fns.spec.noise_dim), jnp.float32)
    generator = dict(fns.generator.init(kg, z, train=False))
    sample = fns.generator.apply(generator, z, train=False)
    discriminator = dict(fns.discriminator.init(kd, sample, train=False))
    opt = _optimizer(fns.spec)
    return GanState(generator, discriminator, opt.init(generator["params"]),
                    opt.init(discriminator["params"]))


def gan_step(fns: GanFns, state: GanState, x_real: jax.Array, where: jax.Array,
             key: jax.Array, scaling: Scaling) -> tuple[GanState, GanStep]:
    """One DC-GAN step of one GAN (module docstring); no model axis.

    Args:
      x_real: the batch's members as model inputs ``[B, ...]``.
      where: bool ``[B]``, False for padding rows (no loss weight; a batch without real rows
        leaves the state untouched).
      key: this step's noise key.
      scaling: :class:`Scaling` of the inputs.
    """
    opt = _optimizer(fns.spec)
    real = fns.to_gan(scaling, x_real)
    z = jax.random.normal(key, (x_real.shape[0], fns.spec.noise_dim))
    fake, g_vars = _apply(fns.generator, state.generator, z, True)
    fake = jax.lax.stop_gradient(fake)
    d_vars = state.discriminator

    def d_loss_fn(params):
        v = {**d_vars, "params": params}
        real_logits, v = _apply(fns.discriminator, v, real, True)
        fake_logits, v = _apply(fns.discriminator, v, fake, True)
        loss = _bce(real_logits, 1.0, where) + _bce(fake_logits, 0.0, where)
        return loss, (v, real_logits, fake_logits)

    (d_loss, (d_new, real_logits, fake_logits)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(d_vars["params"])
    updates, d_opt = opt.update(d_grads, state.d_opt, d_vars["params"])
    d_new = {**d_new, "params": optax.apply_updates(d_vars["params"], updates)}

    def g_loss_fn(params):
        out, _ = _apply(fns.generator, {**state.generator, "params": params}, z, True)
        logits, v = _apply(fns.discriminator, d_new, out, True)
        return _bce(logits, 1.0, where), v

    (g_loss, d_after), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.generator["params"])
    updates, g_opt = opt.update(g_grads, state.g_opt, state.generator["params"])
    g_new = {**g_vars, "params": optax.apply_updates(state.generator["params"], updates)}
    new = GanState(g_new, {**d_new, **{k: v for k, v in d_after.items() if k != "params"}},
                   g_opt, d_opt)
    count = jnp.sum(where).astype(jnp.float32)
    hits = jnp.sum(jnp.where(where, (real_logits > 0).astype(jnp.float32)
                             + (fake_logits < 0).astype(jnp.float32), 0.0))
    new = _select(count > 0, new, state)
    return new, GanStep(g_loss, d_loss, hits / jnp.maximum(2.0 * count, 1.0), count)


@dataclasses.dataclass(frozen=True)
class GanResult:
    """What :func:`train_gans` returns (host NumPy arrays).

    Attributes:
      generator: every model's generator variables, stacked ``[M, ...]``.
      g_loss, d_loss, d_acc: ``[M, gan_epochs]`` per-epoch means over real rows: generator
        loss, discriminator loss and discriminator accuracy (real > 0, fake < 0).
      models_trained, models_loaded: trained by this call / read from ``workdir``.
      seconds: wall time of the training this call did.
    """

    generator: dict
    g_loss: np.ndarray
    d_loss: np.ndarray
    d_acc: np.ndarray
    models_trained: int
    models_loaded: int
    seconds: float


def _fingerprint(spec: ReferenceSpec, seed: int, x: np.ndarray, scaling: Scaling) -> dict:
    return {"gan": {f: json.loads(json.dumps(spec.to_dict()[f])) for f in GAN_FIELDS},
            "seed": int(seed), "num_examples": int(x.shape[0]),
            "data_sha256": ckpt._sha256(x),
            "scaling": [np.asarray(scaling.mean).tolist(), np.asarray(scaling.std).tolist()]}


class _Programs(NamedTuple):
    init: Any
    batches: Any
    step: Any


@functools.lru_cache(maxsize=4)
def _programs(fns: GanFns, num_steps: int) -> _Programs:
    b = fns.spec.gan_batch_size

    def batches(keys, keep, epoch):
        return jax.vmap(lambda k, row: epoch_batches(
            jax.random.fold_in(k, 1), row, epoch, batch_size=b, num_steps=num_steps,
            shuffle="every_epoch"))(keys, keep)

    def step(state, keys, x, indices, where, epoch, s, scaling):
        def one(st, key, idx, w):
            step_key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, 2), epoch), s)
            return gan_step(fns, st, x[idx], w, step_key, scaling)

        return jax.vmap(one)(state, keys, indices, where)

    return _Programs(jax.jit(jax.vmap(lambda k: init_gan(fns, jax.random.fold_in(k, 0)))),
                     jax.jit(batches), jax.jit(step))


def train_gans(spec: ReferenceSpec, x: Any, keep: Any, *, seed: int,
               normalization: Any = None, workdir: str | os.PathLike | None = None,
               chunk_size: int | None = None, devices: Sequence[jax.Device] | None = None,
               save_every: int = 5) -> GanResult:
    """Train one GAN per row of ``keep`` on its members (module docstring).

    Args:
      spec: :class:`ReferenceSpec` with ``kind="gan"``.
      x: candidate inputs ``[N, ...]`` (normalized model inputs).
      keep: bool ``[M, N]``, GAN ``m`` trains on ``x[keep[m]]``.
      seed: integer >= 0; GAN ``m``'s randomness is ``fold_in(model_key(seed, m),
        GAN_STREAM)``.
      normalization: ``(mean, std)`` with which ``x`` was normalized from [0, 1]
        (:meth:`Scaling.of`), or None for inputs in [0, 1].
      workdir: optional resumable run directory.
      chunk_size: GANs trained together (performance only; default one per device on CPU,
        16 per device on accelerators).
      devices: devices to shard the model axis over (default: local devices).
      save_every: checkpoint period in epochs.

    Returns:
      :class:`GanResult`.

    Raises:
      ValueError: on a bad spec, shapes, keep matrix, or a workdir holding another run.
    """
    seed = validation.check_positive_int("seed", seed, minimum=0)
    x = np.asarray(x)
    validation.check_nonempty("x", x)
    validation.check_floating("x", x)
    keep = check_keep(keep, num_examples=x.shape[0])
    fns = gan_functions(spec, x.shape[1:])
    scaling = Scaling.of(normalization)
    scaling.check(x.shape[1:])
    if jax.process_count() > 1:
        raise ValueError("train_gans runs on one process (every process would train and write "
                         "every GAN); run DMP's GANs in a single-process job")
    save_every = validation.check_positive_int("save_every", save_every)
    devices = list(devices) if devices is not None else jax.local_devices()
    if chunk_size is None:
        chunk_size = len(devices) * (1 if devices[0].platform == "cpu" else 16)
    chunk_size = validation.check_positive_int("chunk_size", chunk_size)
    num_models = keep.shape[0]
    chunk = math.ceil(min(chunk_size, num_models) / len(devices)) * len(devices)
    num_steps = max(1, math.ceil(int(keep.sum(axis=1).max()) / spec.gan_batch_size))
    programs = _programs(fns, num_steps)
    mesh = Mesh(np.asarray(devices), ("models",))
    sharded = NamedSharding(mesh, PartitionSpec("models"))
    replicated = NamedSharding(mesh, PartitionSpec())
    x_dev = jax.device_put(x.astype(np.float32), replicated)
    scaling_dev = jax.device_put(Scaling(*(np.asarray(a) for a in scaling)), replicated)

    lock = RunLock(workdir, what="GAN training") if workdir is not None else None
    with lock if lock is not None else contextlib.nullcontext():
        run = None if workdir is None else ckpt.RunDirectory(
            workdir, _fingerprint(spec, seed, x, scaling), keep)
        pieces: dict[tuple[int, int], dict] = {}
        finished = []
        if run is not None:
            for lo, hi in run.finished_ranges():
                if lo < num_models:
                    top = min(hi, num_models)
                    stored = run.load_result(lo, hi)
                    pieces[(lo, top)] = jax.tree_util.tree_map(lambda a: a[:top - lo], stored)
                    finished.append((lo, top))
        trained, seconds = 0, 0.0
        for plan in plan_chunks(num_models, finished, chunk):
            t0 = time.perf_counter()
            pieces[(plan.lo, plan.hi)] = _train_chunk(plan, fns, programs, run, x_dev, keep,
                                                      scaling_dev, seed, sharded, save_every)
            seconds += time.perf_counter() - t0
            trained += plan.real
        if run is not None:
            run.remove_superseded()  # checkpoints of another chunking, now finished
    ranges = sorted(pieces)
    parts = [pieces[r] for r in ranges]
    cat = lambda name: np.concatenate([np.asarray(p[name]) for p in parts])  # noqa: E731
    return GanResult(
        generator=jax.tree_util.tree_map(lambda *a: np.concatenate(a), *[p["variables"]
                                                                        for p in parts]),
        g_loss=cat("train_loss"), d_acc=cat("train_acc"), d_loss=cat("val_acc"),
        models_trained=trained, models_loaded=num_models - trained, seconds=seconds)


def _train_chunk(plan, fns, programs, run, x, keep, scaling, seed, sharded, save_every) -> dict:
    index = plan.model_index()
    real = plan.real
    keys = jax.device_put(jax.vmap(lambda i: jax.random.fold_in(model_key(seed, i), GAN_STREAM))(
        jnp.asarray(index)), sharded)
    keep_chunk = jax.device_put(keep[index], sharded)
    state = jax.device_put(programs.init(keys), sharded)
    history = {"train_loss": [], "train_acc": [], "val_acc": []}
    start = 0
    if run is not None:
        restored = run.restore(plan.lo, plan.hi, state)
        if restored is not None:
            state, history, _, start = restored
            state = jax.device_put(state, sharded)
    for epoch in range(start, fns.spec.gan_epochs):
        indices, where = programs.batches(keys, keep_chunk, jnp.int32(epoch))
        num_steps = indices.shape[1]
        sums = 0.0
        for s in range(num_steps):  # dispatched asynchronously; one transfer per epoch
            state, out = programs.step(state, keys, x, indices[:, s], where[:, s],
                                       jnp.int32(epoch), jnp.int32(s), scaling)
            sums = sums + jnp.stack([out.g_loss * out.count, out.d_loss * out.count,
                                     out.d_acc * out.count, out.count])
        sums = np.asarray(jax.device_get(sums), np.float64)
        seen = np.maximum(sums[3], 1.0)
        for name, row in zip(("train_loss", "train_acc", "val_acc"), (0, 2, 1)):
            history[name].append((sums[row] / seen)[:real].astype(np.float32))
        done = epoch + 1
        if run is not None and done % save_every == 0 and done < fns.spec.gan_epochs:
            run.save_checkpoint(plan.lo, plan.hi, done, state, history, {})
    epochs = fns.spec.gan_epochs
    result = {
        "variables": jax.tree_util.tree_map(lambda a: np.asarray(a)[:real], state.generator),
        "snapshots": {},
        **{k: np.stack(v, axis=1) for k, v in history.items()},
        "best_epoch": np.full(real, epochs - 1, np.int32),
    }
    if run is not None:
        run.save_result(plan.lo, plan.hi, result)
    return result
