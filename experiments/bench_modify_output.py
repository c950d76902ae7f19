"""Benchmark HAMP's output modification (``hampjax.defenses.output_modification``).

Times the public, jitted ``modify_output`` on a ``[batch, classes]`` float32 batch of logits
and random outputs on the default backend, after warm-up (``block_until_ready``; median of
``--repeats`` calls), in microseconds per sample. For comparison it times plain-jnp
formulations of the same map (with ``break_ties=False`` semantics) and a NumPy baseline.

    python experiments/bench_modify_output.py [--batch 20000] [--classes 100] [--repeats 15]
        [--json PATH] [--no-alternatives]

Runs in about 10 seconds on a 2-core CPU (3 with ``--no-alternatives``). Measured there
(jax 0.10.2, light load): about 0.9 us/sample for ``modify_output`` (1.0 with
``break_ties=False``), 10 to 30 us/sample for the plain argsort-based formulations and 3 to 6
for NumPy. Timings vary with machine load; the script prints the load average with them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hampjax import atomic
from hampjax.cli import MAX_SEED, ArgumentParser, check_output_file, float_in_range, int_in_range
from hampjax.defenses.output_modification import modify_output


def _scatter_sorted(outputs, random_outputs):
    """out[rows, argsort(z)] = sort(r): HAMP's formula as a scatter."""
    order = jnp.argsort(outputs, axis=-1, stable=True)
    rows = jnp.arange(outputs.shape[0])[:, None]
    return jnp.zeros_like(random_outputs).at[rows, order].set(jnp.sort(random_outputs, axis=-1))


def _double_argsort(outputs, random_outputs):
    """ranks = argsort(argsort(z)); out = sort(r)[ranks]."""
    ranks = jnp.argsort(jnp.argsort(outputs, axis=-1, stable=True), axis=-1)
    return jnp.take_along_axis(jnp.sort(random_outputs, axis=-1), ranks, axis=-1)


def _sort_with_iota(outputs, random_outputs):
    """lax.sort of (z, iota) for the order, then an inverse sort of (order, sort(r))."""
    iota = lax.broadcasted_iota(jnp.int32, outputs.shape, 1)
    _, order = lax.sort((outputs, iota), num_keys=1, is_stable=True)
    _, out = lax.sort((order, jnp.sort(random_outputs, axis=-1)), num_keys=1)
    return out


def _numpy_rows(outputs, random_outputs):
    """Row loop in NumPy (the slow reference)."""
    out = np.empty_like(random_outputs)
    for row in range(outputs.shape[0]):
        out[row, np.argsort(outputs[row], kind="stable")] = np.sort(random_outputs[row])
    return out


def _numpy_vectorized(outputs, random_outputs):
    order = np.argsort(outputs, axis=-1, kind="stable")
    out = np.empty_like(random_outputs)
    np.put_along_axis(out, order, np.sort(random_outputs, axis=-1), axis=-1)
    return out


def _time(fn, repeats: int, budget_s: float) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls after one warm-up call (compile + first run).

    Slow candidates stop early once ``budget_s`` seconds are spent (at least 3 calls).
    Returns the times and the warm-up call's result.
    """
    first = jax.block_until_ready(fn())
    times = []
    while len(times) < repeats and (len(times) < 3 or sum(times) < budget_s):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times, first


def _write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic.write_bytes(path, json.dumps(payload, indent=2).encode())


def main(argv=None) -> dict:
    parser = ArgumentParser(description=__doc__.splitlines()[0], prog="bench_modify_output.py")  # one-line errors, exit 2
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0)
    parser.add_argument("--budget", type=float_in_range(0.0, float("inf"), low_inclusive=False, high_inclusive=False), default=0.5,
                        help="seconds after which a slow candidate stops repeating (>= 3 calls)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--no-alternatives", dest="alternatives", action="store_false",
                        help="time modify_output only")
    args = parser.parse_args(argv)
    if args.json is not None:
        try:
            check_output_file("--json", args.json)
        except ValueError as e:
            parser.error(str(e))
    for name in ("batch", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.classes < 2:
        parser.error("--classes must be >= 2")

    key_z, key_r = jax.random.split(jax.random.key(args.seed))
    outputs = jax.random.normal(key_z, (args.batch, args.classes), jnp.float32)
    random_outputs = jax.random.normal(key_r, (args.batch, args.classes), jnp.float32)

    candidates = {
        "modify_output": lambda: modify_output(outputs, random_outputs),
        "modify_output(break_ties=False)": lambda: modify_output(outputs, random_outputs, break_ties=False),
    }
    if args.alternatives:
        for name, fn in (("jnp scatter of sort(r) at argsort(z)", _scatter_sorted),
                         ("jnp double argsort + take_along_axis", _double_argsort),
                         ("lax.sort with iota operand (2 sorts)", _sort_with_iota)):
            jitted = jax.jit(fn)
            candidates[name] = lambda jitted=jitted: jitted(outputs, random_outputs)
        z_np, r_np = np.asarray(outputs), np.asarray(random_outputs)
        candidates["numpy vectorized argsort + put_along_axis"] = lambda: _numpy_vectorized(z_np, r_np)
        candidates["numpy row loop"] = lambda: _numpy_rows(z_np, r_np)

    device = jax.devices()[0]
    print(f"{args.batch} x {args.classes} float32 on {jax.default_backend()} ({device.device_kind}), "
          f"jax {jax.__version__}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    reference = np.asarray(modify_output(outputs, random_outputs, break_ties=False))
    results = {}
    for name, fn in candidates.items():
        times, result = _time(fn, args.repeats, args.budget)
        if name != "modify_output":  # the default separates the few tied random values
            np.testing.assert_array_equal(np.asarray(result), reference)
        per_sample = [t / args.batch * 1e6 for t in times]
        results[name] = {"median_us_per_sample": statistics.median(per_sample),
                         "min_us_per_sample": min(per_sample), "repeats": len(times)}
        print(f"  {name:<45} {statistics.median(per_sample):9.3f} us/sample (median), "
              f"{min(per_sample):9.3f} (min)")
    payload = {
        "batch": args.batch, "classes": args.classes, "backend": jax.default_backend(),
        "device": device.device_kind, "jax": jax.__version__, "cpus": os.cpu_count(),
        "machine": platform.machine(), "load_average": os.getloadavg(), "results": results,
    }
    if args.json:
        _write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
