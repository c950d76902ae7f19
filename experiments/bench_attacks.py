"""Benchmark: scoring attacks on 128 models x 20,000 examples x 2 queries (synthetic outputs).

Times, after a warm-up run of the same shapes, (1) the logit-scaled scores of all model outputs,
(2) the five LiRA variants for one target with 127 shadows, (3) online RMIA for that target with a
5,000-example population, and (4) leave-one-out LiRA (online) over all 128 targets.

    python experiments/bench_attacks.py [--models 128] [--examples 20000] [--queries 2]
                                        [--classes 100] [--loo-targets 128] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import atomic
from hampjax.attacks import leave_one_out, lira_variants, rmia
from hampjax.scores import logit_scaled_score
from hampjax.training import balanced_keep


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=128)
    p.add_argument("--examples", type=int, default=20_000)
    p.add_argument("--queries", type=int, default=2)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--population", type=int, default=5_000)
    p.add_argument("--loo-targets", type=int, default=128)
    p.add_argument("--json", type=str, default=None)
    args = p.parse_args(argv)
    for name in ("models", "examples", "queries", "classes", "population", "loo_targets"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    m, n, q = args.models, args.examples, args.queries
    rng = np.random.default_rng(0)
    keep = balanced_keep(m, n, seed=0)
    labels = rng.integers(0, args.classes, n)
    # Synthetic logits in chunks of models ([M, N, Q, C] float32 would be 2 GB at the defaults).
    scores = np.empty((m, n, q), np.float32)
    lss = jax.jit(logit_scaled_score)
    labels_q = jnp.asarray(np.broadcast_to(labels[:, None], (n, q)))
    seconds_lss = 0.0
    for i in range(m):
        logits = jnp.asarray(rng.normal(size=(n, q, args.classes)).astype(np.float32)
                             + 2.0 * keep[i][:, None, None] * np.eye(args.classes)[labels][:, None])
        if i == 0:
            jax.block_until_ready(lss(logits, labels_q))
        out, dt = timed(lambda: lss(logits, labels_q))
        scores[i] = np.asarray(out)
        seconds_lss += dt

    figures = {"models": m, "examples": n, "queries": q, "classes": args.classes,
               "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
               "logit_scaled_scores_s": seconds_lss}
    with warnings.catch_warnings():
        # Per-example variants with few shadows warn; every variant is reported all the same.
        warnings.filterwarnings("ignore", message="LiRA with per-example variances",
                                category=UserWarning)
        lira_variants(scores[0], scores[1:], keep[1:])  # warm-up (compile)
        _, figures["lira_five_variants_one_target_s"] = timed(
            lambda: lira_variants(scores[0], scores[1:], keep[1:]))
        probs = np.asarray(jax.nn.sigmoid(jnp.asarray(scores)))  # sigmoid(log-odds) = p_y
        pop = probs[:, : args.population]
        _, figures["rmia_online_one_target_s"] = timed(lambda: rmia(
            probs[0], probs[1:], keep[1:], pop[0], pop[1:]))
        targets = np.arange(min(args.loo_targets, m))
        leave_one_out(scores, keep, targets=targets[:1])  # warm-up
        _, figures["lira_leave_one_out_all_targets_s"] = timed(
            lambda: leave_one_out(scores, keep, targets=targets).scores)
    figures["loo_targets"] = int(len(targets))
    for key, value in figures.items():
        print(f"{key:>36}: {value:.3f}" if isinstance(value, float) else f"{key:>36}: {value}")
    if args.json:
        atomic.write_bytes(args.json, json.dumps(figures, indent=2).encode())


if __name__ == "__main__":
    main()
