"""Benchmark: scoring attacks on many models' outputs (synthetic), with time and peak memory.

Default scale (quick): 128 models x 20,000 examples x 2 queries, synthetic logits of 100 classes
turned into logit-scaled scores. ``--big``: the LiRA paper's scale, 256 models x 50,000 examples
x 18 queries (synthetic scores drawn directly; one float32 score array is 921 MB).

Times, after a warm-up on the same shapes:
  * every LiRA variant for one target (model 0) against all other models as shadows
    (``leave_one_out(targets=[0])``, chunked over examples) and the global threshold;
  * online RMIA for that target with a population of held-out examples (chunked over x);
  * leave-one-model-out LiRA over ``--loo-targets`` targets (online and online fixed variance);
  * a straightforward NumPy implementation of the LiRA reference algorithm (per target: NaN-masked
    median and std over the IN and OUT models, Gaussian log-likelihood ratio), on
    ``--reference-targets`` targets, with its largest deviation from hampjax's scores.
Peak memory: the largest resident-set increase over the step's starting RSS (sampled every
5 ms; includes XLA's buffers, which tracemalloc cannot see).

    python experiments/bench_attacks.py                   # ~1 min on 2 CPU cores
    python experiments/bench_attacks.py --big --chunk-size 2048 --target-chunk-size 8
        [--models M] [--examples N] [--queries Q] [--classes C] [--population Z]
        [--loo-targets T] [--reference-targets R] [--json PATH]
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import atomic
from hampjax.cli import ArgumentParser, check_output_file, int_at_least
from hampjax.attacks import global_threshold_score, leave_one_out, rmia
from hampjax.attacks.leave_one_out import DEFAULT_LOO_CHUNK_SIZE, DEFAULT_LOO_TARGET_CHUNK_SIZE
from hampjax.scores import logit_scaled_score
from hampjax.training import balanced_keep

VARIANTS = {
    "lira_online": dict(online=True, fix_variance=False),
    "lira_online_fixed_variance": dict(online=True, fix_variance=True),
    "lira_offline": dict(online=False, fix_variance=False),
    "lira_offline_fixed_variance": dict(online=False, fix_variance=True),
}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn):
    """``(result, seconds, peak RSS increase in MB)`` of ``fn()`` (blocks on JAX results)."""
    start_rss, peak, done = _rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    peak[0] = max(peak[0], _rss())
    return out, seconds, (peak[0] - start_rss) / 2**20


def reference_lira_numpy(scores, keep, target, *, fix_variance=False, chunk=2048):
    """The LiRA reference algorithm, written plainly: online, median centres, float64, per
    example (NaN-masked median/std over the IN and OUT models), ``chunk`` examples at a time."""
    others = np.arange(scores.shape[0]) != target
    parts, sq = [], np.zeros((2, scores.shape[2]))
    counts = np.zeros(2)
    for j0 in range(0, scores.shape[1], chunk):
        x = scores[others, j0 : j0 + chunk].astype(np.float64)
        k = keep[others, j0 : j0 + chunk][..., None]
        dat_in, dat_out = np.where(k, x, np.nan), np.where(~k, x, np.nan)
        part = [np.nanmedian(dat_in, axis=0), np.nanmedian(dat_out, axis=0),
                np.nanstd(dat_in, axis=0), np.nanstd(dat_out, axis=0)]
        for i, dat in enumerate((dat_in, dat_out)):  # pooled within-example variance
            sq[i] += np.nansum((dat - np.nanmean(dat, axis=0)) ** 2, axis=(0, 1))
            counts[i] += np.sum(~np.isnan(dat[..., 0]))
        parts.append(part)
    mu_in, mu_out, sd_in, sd_out = (np.concatenate(a) for a in zip(*parts))
    if fix_variance:
        sd_in, sd_out = np.sqrt(sq[0] / counts[0]), np.sqrt(sq[1] / counts[1])
    sd_in, sd_out = np.maximum(sd_in, 1e-6), np.maximum(sd_out, 1e-6)
    s = scores[target].astype(np.float64)
    log_in = -0.5 * ((s - mu_in) / sd_in) ** 2 - np.log(sd_in)
    log_out = -0.5 * ((s - mu_out) / sd_out) ** 2 - np.log(sd_out)
    return np.mean(log_in - log_out, axis=-1)


def synthetic_scores(m, n, q, classes, keep, rng, from_logits):
    """``[M, N, Q]`` float32 scores and seconds spent in logit_scaled_score (0 if not used)."""
    if not from_logits:
        hardness = rng.normal(size=(1, n, 1)).astype(np.float32) * 2.0
        gap = rng.uniform(0.0, 2.0, size=(1, n, 1)).astype(np.float32)
        scores = np.empty((m, n, q), np.float32)
        for i in range(m):  # model by model: never a second [M, N, Q] temporary
            noise = rng.standard_normal((n, q), dtype=np.float32)
            scores[i] = hardness[0] + gap[0] * keep[i][:, None] + noise
        return scores, 0.0
    labels = rng.integers(0, classes, n)
    scores = np.empty((m, n, q), np.float32)
    lss = jax.jit(logit_scaled_score)
    labels_q = jnp.asarray(np.broadcast_to(labels[:, None], (n, q)))
    seconds = 0.0
    for i in range(m):
        logits = jnp.asarray(rng.normal(size=(n, q, classes)).astype(np.float32)
                             + 2.0 * keep[i][:, None, None] * np.eye(classes)[labels][:, None])
        if i == 0:
            jax.block_until_ready(lss(logits, labels_q))
        out, dt, _ = measure(lambda: lss(logits, labels_q))
        scores[i] = np.asarray(out)
        seconds += dt
    return scores, seconds


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0], prog="bench_attacks.py")  # one-line errors, exit 2
    p.add_argument("--big", action="store_true", help="256 models x 50,000 examples x 18 queries")
    p.add_argument("--models", type=int_at_least(1), default=None)
    p.add_argument("--examples", type=int_at_least(1), default=None)
    p.add_argument("--queries", type=int_at_least(1), default=None)
    p.add_argument("--classes", type=int_at_least(1), default=100)
    p.add_argument("--population", type=int_at_least(1), default=5_000)
    p.add_argument("--loo-targets", type=int_at_least(1), default=None, help="default: every model")
    p.add_argument("--reference-targets", type=int_at_least(1), default=2)
    p.add_argument("--chunk-size", type=int_at_least(1), default=DEFAULT_LOO_CHUNK_SIZE)
    p.add_argument("--target-chunk-size", type=int_at_least(1), default=DEFAULT_LOO_TARGET_CHUNK_SIZE)
    p.add_argument("--rmia-chunk", type=int_at_least(1), default=10_000, help="candidates per RMIA call")
    p.add_argument("--json", type=str, default=None)
    args = p.parse_args(argv)
    if args.json is not None:
        try:
            check_output_file("--json", args.json)
        except ValueError as e:
            p.error(str(e))
    m = args.models or (256 if args.big else 128)
    n = args.examples or (50_000 if args.big else 20_000)
    q = args.queries or (18 if args.big else 2)
    for name, value in (("models", m), ("examples", n), ("queries", q), ("classes", args.classes),
                        ("population", args.population), ("reference-targets", args.reference_targets),
                        ("chunk-size", args.chunk_size), ("target-chunk-size", args.target_chunk_size),
                        ("rmia-chunk", args.rmia_chunk)):
        if value < 1:
            p.error(f"--{name} must be >= 1")
    rng = np.random.default_rng(0)
    keep = balanced_keep(m, n, seed=0)
    scores, seconds_lss = synthetic_scores(m, n, q, args.classes, keep, rng, from_logits=not args.big)
    chunks = dict(chunk_size=args.chunk_size, target_chunk_size=args.target_chunk_size)
    figures = {"models": m, "examples": n, "queries": q, "backend": jax.default_backend(),
               "cpu_count": os.cpu_count(), "scores_mb": scores.nbytes / 2**20, **chunks}
    if seconds_lss:
        figures["logit_scaled_scores_s"] = seconds_lss

    def record(name, fn):
        out, seconds, mb = measure(fn)
        figures[f"{name}_s"], figures[f"{name}_peak_mb"] = seconds, mb
        return out

    with warnings.catch_warnings():
        # Per-example variants with few shadows warn; every variant is reported all the same.
        warnings.filterwarnings("ignore", message="LiRA with per-example variances", category=UserWarning)
        # Warm-up (compilation) on the real shapes; with --big on one full and one partial chunk.
        warm = n if not args.big else min(n, args.chunk_size + n % args.chunk_size)
        one = {}
        for name, config in VARIANTS.items():
            leave_one_out(scores[:, :warm], keep[:, :warm], targets=[0], **config, **chunks)
            one[name] = record(f"{name}_one_target", lambda: leave_one_out(
                scores, keep, targets=[0], **config, **chunks).scores[0])
        record("global_threshold_one_target", lambda: global_threshold_score(scores[0]))

        probs = 1.0 / (1.0 + np.exp(-scores[:, : args.population + args.rmia_chunk]))  # p_y
        pop = probs[:, : args.population]
        cand = 1.0 / (1.0 + np.exp(-scores[:, args.population :][:, : args.rmia_chunk]))

        def rmia_all():  # chunks of candidates: each x's score depends only on x and z
            out = []
            for j0 in range(0, n, args.rmia_chunk):
                x = 1.0 / (1.0 + np.exp(-scores[:, j0 : j0 + args.rmia_chunk]))
                out.append(rmia(x[0], x[1:], keep[1:, j0 : j0 + args.rmia_chunk], pop[0], pop[1:]))
            return np.concatenate(out)

        rmia(cand[0], cand[1:], keep[1:, args.population :][:, : cand.shape[1]], pop[0], pop[1:])
        del probs, cand
        record("rmia_online_one_target", rmia_all)

        targets = np.arange(min(args.loo_targets or m, m))
        figures["loo_targets"] = int(len(targets))
        for name in ("lira_online", "lira_online_fixed_variance"):
            leave_one_out(scores[:, :warm], keep[:, :warm], targets=targets[: args.target_chunk_size],
                          **VARIANTS[name], **chunks)
            loo = record(f"{name}_leave_one_out", lambda: leave_one_out(
                scores, keep, targets=targets, **VARIANTS[name], **chunks).scores)
            if name == "lira_online":
                np.testing.assert_array_equal(loo[0], one["lira_online"])

        ref_targets = range(min(args.reference_targets, m))
        for name, fixed in (("lira_online", False), ("lira_online_fixed_variance", True)):
            ref = record(f"reference_numpy_{name}_{len(ref_targets)}_targets", lambda: np.stack(
                [reference_lira_numpy(scores, keep, t, fix_variance=fixed) for t in ref_targets]))
            ours = np.stack([leave_one_out(scores, keep, targets=[t], **VARIANTS[name], **chunks).scores[0]
                             for t in ref_targets])
            figures[f"reference_numpy_{name}_max_rel_diff"] = float(
                np.max(np.abs(ours - ref) / (1.0 + np.abs(ref))))
            per_target = figures[f"reference_numpy_{name}_{len(ref_targets)}_targets_s"] / len(ref_targets)
            figures[f"reference_numpy_{name}_all_targets_estimate_s"] = per_target * len(targets)
    for key, value in figures.items():
        print(f"{key:>66}: {value:.4g}" if isinstance(value, float) else f"{key:>66}: {value}")
    if args.json:
        atomic.write_bytes(args.json, json.dumps(figures, indent=2).encode())


if __name__ == "__main__":
    main()
