"""Benchmark: batched shadow-model training vs a sequential loop of single-model steps.

``--model fc`` (default) trains M copies of the Purchase100 FC net (600 -> 1024 -> 512 -> 256
-> 128 -> 100, Tanh) with the HAMP recipe (batch 32, SGD momentum 0.99, soft labels + entropy
regularizer) on Purchase-shaped random binary data; a convolutional ``--model`` (resnet20,
densenet100_bc, salem_cnn, any name of ``hampjax.models.MODELS``) trains on CIFAR-shaped
random images (32x32x3, ``--classes`` default 10) with the undefended CIFAR-10 recipe (batch
64, SGD momentum 0.9). Each model trains on exactly ``--samples`` examples (complementary pairs
over a pool of 2 x samples) with ``hampjax.training.train_many`` (``--loop``,
``--steps-per-call``: the engine's loop strategy). Then it trains ``--sequential-models``
models the way research scripts do (a jitted single-model step called from a Python loop) on
the same data and prints the ratio of seconds per model-epoch. For convolutional models it
also times ``predict_many`` on the candidates; for the FC net it measures the matmul peak
(jitted matmuls of the net's layer shapes at a large batch) and the fraction of it achieved.

    python experiments/bench_shadow.py --models 16 --epochs 2
    python experiments/bench_shadow.py --model resnet20 --models 2 --samples 512 --epochs 1
    python experiments/bench_shadow.py --models 128 --epochs 200 --json bench.json   # on a GPU

Prints and writes JSON with: model, loop, steps_per_call, seconds_per_model_epoch,
examples_per_s, models, epochs, samples, achieved_gflops (6 x parameters x samples x epochs x
models / seconds; a dense-net figure), devices, backend, the sequential baseline's figures and
the speed-up (``speedup_vs_sequential`` = sequential / batched seconds per model-epoch), and
(FC) ``matmul_peak_gflops`` and ``fraction_of_matmul_peak`` (jitted matmuls of the layer
shapes at batch 4096), ``step_matmul_gflops`` and ``fraction_of_step_matmuls`` (a step's
matmuls alone at the recipe's batch size), (conv) ``predict_examples_per_s``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax import atomic
from hampjax.cli import MAX_SEED, ArgumentParser, check_output_file, int_at_least, int_in_range
from hampjax.models import MODELS, count_params, get_model, model_functions
from hampjax.training import (
    LossContext,
    hamp_recipe,
    paired_keep,
    predict_many,
    train_many,
    undefended_recipe,
)


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0], prog="bench_shadow.py")  # one-line errors, exit 2
    p.add_argument("--model", type=str, default="fc", choices=sorted(MODELS),
                   help="fc: Purchase-shaped data, HAMP recipe; others: CIFAR-shaped images")
    p.add_argument("--loop", type=str, default="auto", choices=("auto", "scan", "host"),
                   help="train_many's loop strategy")
    p.add_argument("--steps-per-call", type=int_at_least(1), default=None,
                   help="steps per call of the host loop strategy (engine default)")
    p.add_argument("--models", type=int, default=16, help="shadow models trained together")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=18_000, help="training examples per model")
    p.add_argument("--features", type=int, default=600)
    p.add_argument("--classes", type=int, default=None, help="default: 100 (fc), 10 (conv)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: the recipe's (32 for fc, 64 for conv)")
    p.add_argument("--chunk-size", type=int_at_least(1), default=None, help="models per chunk (default all)")
    p.add_argument("--sequential-models", type=int_at_least(0), default=1,
                   help="models trained by the sequential baseline (0 skips it)")
    p.add_argument("--sequential-epochs", type=int, default=1)
    p.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0)
    p.add_argument("--json", type=str, default=None, help="write the figures to this path")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.json is not None:
        try:
            check_output_file("--json", args.json)
        except ValueError as e:
            p.error(str(e))
    if args.classes is None:
        args.classes = 100 if args.model == "fc" else 10
    if args.batch_size is None:
        args.batch_size = 32 if args.model == "fc" else 64
    for name in ("models", "epochs", "samples", "features", "classes", "batch_size",
                 "sequential_epochs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.models % 2:
        p.error(f"--models must be even (complementary pairs), got {args.models}")
    return args


def make_data(args):
    rng = np.random.default_rng(args.seed)
    pool = 2 * args.samples
    if args.model == "fc":
        x = rng.integers(0, 2, size=(pool, args.features), dtype=np.int8).astype(np.float32)
    else:
        x = rng.normal(size=(pool, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, args.classes, size=pool).astype(np.int32)
    return x, y


def sequential_baseline(model, recipe, x, y, keep, args):
    """One model at a time, one jitted step per minibatch, driven from Python."""
    init_fn, apply_fn = model_functions(model)
    tx = optax.inject_hyperparams(recipe.optimizer)(learning_rate=recipe.learning_rate(0))

    @jax.jit
    def step(variables, opt_state, xb, yb, epoch, key):
        def loss_fn(p):
            logits, new_variables = apply_fn({**variables, "params": p}, xb, train=True,
                                             key=key)
            ctx = LossContext(epoch, key, jnp.ones(yb.shape, bool), jnp.zeros(yb.shape))
            return recipe.loss(logits, yb, ctx).mean(), new_variables

        (loss, new_variables), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            variables["params"])
        updates, opt_state = tx.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], updates)
        return {**new_variables, "params": params}, opt_state, loss

    xd, yd = jnp.asarray(x), jnp.asarray(y)
    members = [np.flatnonzero(keep[m]) for m in range(args.sequential_models)]
    # Warm-up compile (full and last partial batch shapes), not timed.
    params = init_fn(jax.random.key(0), xd[:1])
    opt_state = tx.init(params["params"])
    for size in {args.batch_size, len(members[0]) % args.batch_size or args.batch_size}:
        jax.block_until_ready(step(params, opt_state, xd[:size], yd[:size], jnp.int32(0),
                                   jax.random.key(0)))
    start = time.perf_counter()
    for m, idx in enumerate(members):
        params = init_fn(jax.random.key(m), xd[:1])
        opt_state = tx.init(params["params"])
        rng = np.random.default_rng(m)
        order = rng.permutation(idx)  # HAMP walks one fixed order
        for epoch in range(args.sequential_epochs):
            for s in range(0, len(order), args.batch_size):
                b = order[s:s + args.batch_size]
                params, opt_state, loss = step(params, opt_state, xd[b], yd[b], jnp.int32(epoch),
                                               jax.random.key(s))
        jax.block_until_ready(params)
    seconds = time.perf_counter() - start
    return seconds / (args.sequential_models * args.sequential_epochs)


def matmul_peak_gflops(x_features: int, widths, *, batch: int = 4096, repeats: int = 5):
    """GFLOP/s of jitted matmuls ``[batch, in] @ [in, out]`` over the FC net's layer shapes."""
    rng = np.random.default_rng(0)
    sizes = [x_features, *widths]
    xs = [jnp.asarray(rng.normal(size=(batch, a)).astype(np.float32)) for a in sizes[:-1]]
    ws = [jnp.asarray(rng.normal(size=(a, b)).astype(np.float32))
          for a, b in zip(sizes[:-1], sizes[1:])]
    f = jax.jit(lambda xs, ws: [x @ w for x, w in zip(xs, ws)])
    flops = sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return flops / _best_seconds(f, xs, ws, repeats=repeats) / 1e9


def _best_seconds(f, *args, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``f(*args)``, after one untimed (compiling)."""
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def step_matmul_gflops(x_features: int, widths, *, batch: int, steps: int = 64,
                       repeats: int = 5):
    """GFLOP/s of a training step's matmuls alone at the recipe's batch size.

    Per layer the forward ``x @ w``, the input gradient ``g @ w.T`` and the weight gradient
    ``x.T @ g`` (with an SGD update of ``w``), ``steps`` steps in one ``lax.scan`` on fresh
    inputs every step: the bound a dense step at this batch size can reach on this machine
    (small matmuls run below :func:`matmul_peak_gflops`' large-batch peak).
    """
    rng = np.random.default_rng(0)
    sizes = [x_features, *widths]
    xs = [jnp.asarray(rng.normal(size=(steps, batch, a)).astype(np.float32)) for a in sizes[:-1]]
    gs = [jnp.asarray(rng.normal(size=(steps, batch, b)).astype(np.float32)) for b in sizes[1:]]
    ws = [jnp.asarray(0.01 * rng.normal(size=(a, b)).astype(np.float32))
          for a, b in zip(sizes[:-1], sizes[1:])]

    def step(ws, inputs):
        xs, gs = inputs
        outs = [x @ w for x, w in zip(xs, ws)]
        grads_x = [g @ w.T for g, w in zip(gs, ws)]
        new = [w - 1e-6 * (x.T @ g) for w, x, g in zip(ws, xs, gs)]
        return new, sum(o[0, 0] + d[0, 0] for o, d in zip(outs, grads_x))

    f = jax.jit(lambda ws, xs, gs: jax.lax.scan(step, ws, (xs, gs)))
    flops = steps * 3 * sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return flops / _best_seconds(f, ws, xs, gs, repeats=repeats) / 1e9


def _fc_widths(variables) -> list[int]:
    kernels = [a for path, a in jax.tree_util.tree_leaves_with_path(variables["params"])
               if "kernel" in jax.tree_util.keystr(path)]
    return [int(k.shape[-1]) for k in kernels]


def main(argv=None):
    args = parse_args(argv)
    x, y = make_data(args)
    keep = paired_keep(args.models, len(x), seed=args.seed)
    dense = args.model == "fc"
    model = get_model(args.model, args.classes)
    init_fn, apply_fn = model_functions(model)
    shapes = jax.eval_shape(lambda: init_fn(jax.random.key(0), jnp.asarray(x[:1])))
    params = count_params(shapes)
    if dense:
        recipe = hamp_recipe("purchase100", epochs=args.epochs, batch_size=args.batch_size,
                             selection="last")
    else:
        recipe = undefended_recipe("cifar10", epochs=args.epochs, batch_size=args.batch_size,
                                   selection="last")
    perf = dict(chunk_size=args.chunk_size, loop=args.loop, steps_per_call=args.steps_per_call)

    # Compile once on a 1-epoch run of the same shapes, so the timing is training only.
    warm = recipe.replace(epochs=1)
    train_many(model, warm, x, y, keep, seed=args.seed, progress=False, **perf)
    start = time.perf_counter()
    result = train_many(model, recipe, x, y, keep, seed=args.seed, progress=not args.quiet,
                        **perf)
    jax.block_until_ready(jax.tree_util.tree_leaves(result.variables))
    seconds = time.perf_counter() - start

    model_epochs = args.models * args.epochs
    figures = {
        "benchmark": "bench_shadow",
        "model": args.model,
        "loop": result.performance["loop"],
        "steps_per_call": result.performance["steps_per_call"],
        "chunk_size": result.performance["chunk_size"],
        "models": args.models,
        "epochs": args.epochs,
        "samples": args.samples,
        "batch_size": args.batch_size,
        "parameters": params,
        "seconds": seconds,
        "seconds_per_model_epoch": seconds / model_epochs,
        "examples_per_s": args.samples * model_epochs / seconds,
        "achieved_gflops": 6 * params * args.samples * model_epochs / seconds / 1e9,
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "final_train_loss_mean": float(np.mean(result.train_loss[:, -1])),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if args.sequential_models:
        seq = sequential_baseline(model, recipe, x, y, keep, args)
        figures["sequential_seconds_per_model_epoch"] = seq
        figures["sequential_examples_per_s"] = args.samples / seq
        figures["speedup_vs_sequential"] = seq / figures["seconds_per_model_epoch"]
    if dense:
        peak = matmul_peak_gflops(x.shape[1], _fc_widths(shapes))
        figures["matmul_peak_gflops"] = peak
        figures["fraction_of_matmul_peak"] = figures["achieved_gflops"] / peak
        bound = step_matmul_gflops(x.shape[1], _fc_widths(shapes), batch=args.batch_size)
        figures["step_matmul_gflops"] = bound
        figures["fraction_of_step_matmuls"] = figures["achieved_gflops"] / bound
    else:
        variables = result.variables
        predict = lambda: predict_many(apply_fn, variables, x, batch_size=256)
        predict()  # compile
        t0 = time.perf_counter()
        predict()
        figures["predict_examples_per_s"] = len(x) * args.models / (time.perf_counter() - t0)
    figures["load_average_1m"] = os.getloadavg()[0]
    for key, value in figures.items():
        print(f"{key:>36}: {value:.4g}" if isinstance(value, float) else f"{key:>36}: {value}")
    if args.json:
        atomic.write_bytes(args.json, json.dumps(figures, indent=2).encode())
    return figures


if __name__ == "__main__":
    sys.exit(main() and 0)
