"""Benchmark: the cost of issue 15's checks on the hot paths (concrete checks and the NaN rule).

For each hot path, the best wall time of ``--reps`` runs of the public function (checks
included) against the same computation without them:

  * ``hamp_loss`` on ``[B, C]`` logits: public call vs its jitted core (concrete checks:
    finite logits and soft labels, soft labels in [0, 1]); and, inside ``jit`` with a traced
    ``alpha``, the core with the traced NaN rule vs the plain formula written here;
  * ``modify_output`` on ``[B, C]``: public call vs the jitted sort-and-scatter without the
    finite-row mask (the traced NaN rule for non-finite rows);
  * ``predict_many`` of an fc net on ``[N, D]`` inputs (``M`` models): the call vs the
    ``check_finite("x", x)`` it adds (NumPy and device arrays);
  * ``train_many``'s added pre-checks (finite ``x``, labels against the model's classes: one
    abstract trace of init and apply) for the fc net, against one epoch of training.

    python experiments/bench_validation.py                # ~1 min on 2 CPU cores
        [--batch B] [--classes C] [--examples N] [--features D] [--models M] [--reps R]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy


def _best_seconds(fn, reps: int) -> float:
    """The fastest of ``reps`` runs after a warm-up: the least disturbed by other processes."""
    jax.block_until_ready(fn())  # warm-up (compile)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def _row(name: str, with_checks: float, without: float) -> None:
    extra = with_checks - without
    print(f"  {name:<54s} {with_checks * 1e3:9.3f} ms  {without * 1e3:9.3f} ms  "
          f"{extra * 1e3:+8.3f} ms ({100 * extra / without:+6.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--features", type=int, default=600)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()

    from hampjax import validation
    from hampjax.defenses import hamp, output_modification as om
    from hampjax.models import get_model, model_functions
    from hampjax.scores import entropy
    from hampjax.training import engine, predict_many, undefended_recipe, train_many

    B, C, reps = args.batch, args.classes, args.reps
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(B, C)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, C, B))
    soft = hamp.hamp_soft_labels(labels, C, 0.8)
    print(f"backend {jax.default_backend()}, load average {os.getloadavg()[0]:.2f} "
          f"(other processes inflate every figure); best of {reps} runs")
    print(f"  {'':<54s} {'with checks':>12s} {'without':>12s} {'extra':>20s}")

    # hamp_loss: concrete checks.
    _row(f"hamp_loss [{B}, {C}] (device arrays)",
         _best_seconds(lambda: hamp.hamp_loss(logits, soft, 0.1), reps),
         _best_seconds(lambda: hamp._hamp_loss(logits, soft, 0.1, False), reps))
    np_logits, np_soft = np.asarray(logits), np.asarray(soft)
    _row(f"hamp_loss [{B}, {C}] (NumPy arrays)",
         _best_seconds(lambda: hamp.hamp_loss(np_logits, np_soft, 0.1), reps),
         _best_seconds(lambda: hamp._hamp_loss(np_logits, np_soft, 0.1, False), reps))

    # hamp_loss inside jit with a traced alpha: the NaN rule vs the plain formula.
    def plain(z, s, a):
        kl = jnp.sum(xlogy(s, s) - s * jax.nn.log_softmax(z), axis=-1)
        return kl - a * entropy(z)

    ruled = jax.jit(lambda z, s, a: hamp.hamp_loss(z, s, a).mean())
    bare = jax.jit(lambda z, s, a: plain(z, s, a).mean())
    _row(f"jit(hamp_loss) traced alpha [{B}, {C}] (NaN rule)",
         _best_seconds(lambda: ruled(logits, soft, 0.1), reps),
         _best_seconds(lambda: bare(logits, soft, 0.1), reps))

    # modify_output: concrete checks + the finite-row mask vs the bare sort-and-scatter.
    random_outputs = jnp.asarray(rng.normal(size=(B, C)).astype(np.float32))
    bare_modify = jax.jit(om._modify_output_impl, static_argnames=("break_ties",))
    masked = _best_seconds(lambda: om._modify_output_jit(logits, random_outputs,
                                                           break_ties=True), reps)
    _row(f"modify_output [{B}, {C}] (concrete checks)",
         _best_seconds(lambda: om.modify_output(logits, random_outputs), reps), masked)
    _row(f"jit(modify_output) [{B}, {C}] (NaN rows rule)", masked,
         _best_seconds(lambda: bare_modify(logits, random_outputs, break_ties=True), reps))

    # predict_many: the added check_finite("x", x).
    N, D, M = args.examples, args.features, args.models
    init_fn, apply_fn = model_functions(get_model("fc", C, hidden_sizes=(256,)))
    x = rng.normal(size=(N, D)).astype(np.float32)
    variables = jax.vmap(init_fn, in_axes=(0, None))(jax.random.split(jax.random.key(0), M),
                                                      x[:1])
    whole = _best_seconds(lambda: predict_many(apply_fn, variables, x), max(3, reps // 10))
    check = _best_seconds(lambda: validation.check_finite("x", x), reps)
    _row(f"predict_many fc {M} models x [{N}, {D}] (NumPy x)", whole, whole - check)
    x_dev = jnp.asarray(x)
    whole = _best_seconds(lambda: predict_many(apply_fn, variables, x_dev), max(3, reps // 10))
    check = _best_seconds(lambda: validation.check_finite("x", x_dev), reps)
    _row(f"predict_many fc {M} models x [{N}, {D}] (device x)", whole, whole - check)

    # train_many: the pre-checks against one epoch of training.
    y = rng.integers(0, C, N)
    keep = np.ones((M, N), bool)
    pre = _best_seconds(lambda: engine._check_data_fits_model(init_fn, apply_fn, x, y, None, keep),
                        max(3, reps // 10))
    recipe = undefended_recipe("purchase100", epochs=1, selection="last")
    t0 = time.perf_counter()
    train_many((init_fn, apply_fn), recipe, x, y, keep, seed=0, progress=False)
    epoch = time.perf_counter() - t0
    _row(f"train_many fc {M} models x [{N}, {D}], 1 epoch (incl. compile)", epoch, epoch - pre)


if __name__ == "__main__":
    main()
