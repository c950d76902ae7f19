"""Benchmark: batched shadow-model training vs a sequential loop of single-model steps.

Trains M copies of the Purchase100 FC net (600 -> 1024 -> 512 -> 256 -> 128 -> 100, Tanh) with
the HAMP recipe (batch 32, SGD momentum 0.99, soft labels + entropy regularizer) on
Purchase-shaped random binary data, each model on exactly ``--samples`` examples (complementary
pairs over a pool of 2 x samples), with ``hampjax.training.train_many``. Then it trains
``--sequential-models`` models the way research scripts do (a jitted single-model step called
from a Python loop) on the same data and prints the ratio of seconds per model-epoch.

    python experiments/bench_shadow.py --models 16 --epochs 2
    python experiments/bench_shadow.py --models 128 --epochs 200 --json bench.json   # on a GPU

Prints and writes JSON with: seconds_per_model_epoch, models, epochs, samples,
achieved_gflops (6 x parameters x samples x epochs x models / seconds), devices, backend,
and the sequential baseline's figures and the speed-up.
"""

from __future__ import annotations

import argparse
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
from hampjax.models import count_params, get_model, model_functions
from hampjax.training import LossContext, hamp_recipe, paired_keep, train_many


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=16, help="shadow models trained together")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=18_000, help="training examples per model")
    p.add_argument("--features", type=int, default=600)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunk-size", type=int, default=None, help="models per chunk (default all)")
    p.add_argument("--sequential-models", type=int, default=1,
                   help="models trained by the sequential baseline (0 skips it)")
    p.add_argument("--sequential-epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=str, default=None, help="write the figures to this path")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
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
    x = rng.integers(0, 2, size=(pool, args.features), dtype=np.int8).astype(np.float32)
    y = rng.integers(0, args.classes, size=pool).astype(np.int32)
    return x, y


def sequential_baseline(model, recipe, x, y, keep, args):
    """One model at a time, one jitted step per minibatch, driven from Python."""
    init_fn, apply_fn = model_functions(model)
    tx = optax.inject_hyperparams(recipe.optimizer)(learning_rate=recipe.learning_rate(0))

    @jax.jit
    def step(params, opt_state, xb, yb, epoch, key):
        def loss_fn(p):
            logits, _ = apply_fn({"params": p}, xb, train=True)
            ctx = LossContext(epoch, key, jnp.ones(yb.shape, bool), jnp.zeros(yb.shape))
            return recipe.loss(logits, yb, ctx).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    xd, yd = jnp.asarray(x), jnp.asarray(y)
    members = [np.flatnonzero(keep[m]) for m in range(args.sequential_models)]
    # Warm-up compile (full and last partial batch shapes), not timed.
    params = init_fn(jax.random.key(0), xd[:1])["params"]
    opt_state = tx.init(params)
    for size in {args.batch_size, len(members[0]) % args.batch_size or args.batch_size}:
        jax.block_until_ready(step(params, opt_state, xd[:size], yd[:size], jnp.int32(0),
                                   jax.random.key(0)))
    start = time.perf_counter()
    for m, idx in enumerate(members):
        params = init_fn(jax.random.key(m), xd[:1])["params"]
        opt_state = tx.init(params)
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


def main(argv=None):
    args = parse_args(argv)
    x, y = make_data(args)
    keep = paired_keep(args.models, len(x), seed=args.seed)
    model = get_model("fc", args.classes)
    params = count_params(jax.eval_shape(lambda: model_functions(model)[0](
        jax.random.key(0), jnp.zeros((1, args.features)))))
    recipe = hamp_recipe("purchase100", epochs=args.epochs, batch_size=args.batch_size,
                         selection="last")

    # Compile once on a 1-epoch run of the same shapes, so the timing is training only.
    warm = recipe.replace(epochs=1)
    train_many(model, warm, x, y, keep, seed=args.seed, chunk_size=args.chunk_size,
               progress=False)
    start = time.perf_counter()
    result = train_many(model, recipe, x, y, keep, seed=args.seed, chunk_size=args.chunk_size,
                        progress=not args.quiet)
    jax.block_until_ready(jax.tree_util.tree_leaves(result.variables))
    seconds = time.perf_counter() - start

    model_epochs = args.models * args.epochs
    figures = {
        "benchmark": "bench_shadow",
        "models": args.models,
        "epochs": args.epochs,
        "samples": args.samples,
        "batch_size": args.batch_size,
        "parameters": params,
        "seconds": seconds,
        "seconds_per_model_epoch": seconds / model_epochs,
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
        figures["speedup_vs_sequential"] = seq / figures["seconds_per_model_epoch"]
    for key, value in figures.items():
        print(f"{key:>36}: {value:.4g}" if isinstance(value, float) else f"{key:>36}: {value}")
    if args.json:
        atomic.write_bytes(args.json, json.dumps(figures, indent=2).encode())
    return figures


if __name__ == "__main__":
    sys.exit(main() and 0)
