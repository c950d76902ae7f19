r"""The bad-input campaign (issue 15): many bad inputs over the public API and every CLI.

    python experiments/bad_inputs.py [--json runs/bad_inputs.json] [--only SUBSTRING] [--workers 3]

Each case feeds one bad input to one public function or entry point and classifies what
happens, automatically:

- ``clear``: a ``ValueError`` (``FileNotFoundError`` for a missing file) whose message names
  the argument, flag or file (the case's ``names``); for a CLI, exit status 2 with ONE line on
  stderr naming it and no traceback. A case with a ``reference`` also counts as clear when the
  call returns a result equal to it (the input was acceptable and was handled exactly).
- ``unclear``: any other exception, a message that names none of ``names``, or a CLI error
  that is not one line / exit 2 / traceback-free.
- ``silent``: no error, and a result differing from the reference or containing NaN/inf (or,
  without a reference, any result at all: the bad input was accepted).

It prints a Markdown table (function, input, outcome, message) and the counts, and writes the
records as JSON. Runs on a CPU in a few minutes (the CLI cases run as subprocesses, a few at a
time). To add cases (e.g. for a new defense) append :class:`Case` records to :data:`CASES`,
or call :func:`case` / :func:`cli_case`; a case's ``run`` gets the :class:`Fixtures` (a temp
folder with datasets, run directories and configs written on demand).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # python experiments/bad_inputs.py from a checkout
    sys.path.insert(0, str(ROOT))

from hampjax.cli import ArgumentParser, check_output_file  # noqa: E402

OUTCOMES = ("clear", "unclear", "silent")


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
      function: the public function or entry point (``hampjax.scores.logit_scaled_score``,
        ``run.py``).
      input: what is bad about the input (one short phrase).
      names: a clear message names at least one of these (argument, flag, file name).
      run: ``run(fixtures)`` makes the call and returns its result (function cases), or
        returns the argv of the entry point (CLI cases, with ``cli`` set).
      reference: ``reference(fixtures)``, the result an acceptable input must give; ``None``
        when the input must be refused.
      cli: ``"subprocess"`` for an entry point run as ``python <argv...>``; ``None`` for a
        function call.
      owner: who fixes a failing case (``"harden_api"`` for the function-level checks).
    """

    function: str
    input: str
    names: tuple[str, ...]
    run: Callable[[Fixtures], Any]
    reference: Callable[[Fixtures], Any] | None = None
    cli: str | None = None
    owner: str = "harden_io"


CASES: list[Case] = []


def case(function: str, input: str, names: Sequence[str] | str, *, reference=None,
         owner: str = "harden_io"):
    """Decorator registering a function case: ``@case("f", "what", "arg") def _(fx): ...``."""
    names = (names,) if isinstance(names, str) else tuple(names)

    def register(run):
        CASES.append(Case(function, input, names, run, reference, None, owner))
        return run

    return register


def cli_case(function: str, input: str, names: Sequence[str] | str,
             argv: Callable[[Fixtures], list[str]] | list[str]):
    """Register an entry-point case; ``argv`` (or ``argv(fixtures)``) starts with the script."""
    names = (names,) if isinstance(names, str) else tuple(names)
    run = argv if callable(argv) else (lambda fx, a=list(argv): a)
    CASES.append(Case(function, input, names, run, None, "subprocess"))


# --------------------------------------------------------------------------------------------
# Fixtures: small files in the real formats, written on demand in one temp folder.
# --------------------------------------------------------------------------------------------


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def _csv(labels, x, quote=False) -> bytes:
    return "".join(",".join([f'"{a}"' if quote else str(a), *map(str, row.tolist())]) + "\n"
                   for a, row in zip(labels, x)).encode()


class Fixtures:
    """A temp folder and the small inputs the cases share."""

    def __init__(self, root: str):
        self.root = Path(root)
        rng = np.random.default_rng(0)
        self.logits = rng.normal(size=(8, 5)).astype(np.float32)
        self.labels = rng.integers(0, 5, size=8).astype(np.int32)
        self.scores = rng.normal(size=16)
        self.members = np.tile([0, 1], 8).astype(np.int32)
        self.probs = np.exp(self.logits) / np.exp(self.logits).sum(-1, keepdims=True)
        self.file = self.root / "a_file"
        self.file.write_text("x")
        self._n = 0

    def dir(self, name: str | None = None) -> Path:
        self._n += 1
        path = self.root / f"{name or 'd'}_{self._n}"
        path.mkdir(parents=True)
        return path

    def nan_logits(self):
        z = self.logits.copy()
        z[2, 3] = np.nan
        return z

    def purchase(self, rows=6, labels=None, content: bytes | None = None) -> Path:
        d = self.dir("purchase")
        x = np.random.default_rng(1).integers(0, 2, size=(rows, 600), dtype=np.uint8)
        labels = np.arange(1, rows + 1) if labels is None else labels
        _tgz(d / "dataset_purchase.tgz", {"dataset_purchase": content if content is not None
                                          else _csv(labels, x)})
        return d

    def cifar_folder(self, records=2, label=3) -> Path:
        d = self.dir("cifar")
        folder = d / "cifar-10-batches-bin"
        folder.mkdir()
        raw = np.zeros((records, 3073), np.uint8)
        raw[:, 0] = label
        (folder / "test_batch.bin").write_bytes(raw.tobytes())
        return d

    def run_dir(self, report: str | None = '{"defenses": {}}', experiment: str | None = None) -> Path:
        """A results directory as the runner writes it (experiment.json, one cell)."""
        d = self.dir("run")
        (d / "digits").mkdir()
        (d / "experiment.json").write_text(experiment if experiment is not None else json.dumps(
            {"experiment": "hamp_main", "name": "x", "config": {}, "cells": ["digits"]}))
        if report is not None:
            (d / "digits" / "report.json").write_text(report)
        return d

    def config(self, text: str, suffix=".py") -> Path:
        self._n += 1
        path = self.root / f"config_{self._n}{suffix}"
        path.write_text(text)
        return path


# --------------------------------------------------------------------------------------------
# Classification.
# --------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _equal(result: Any, reference: Any) -> bool:
    try:
        a, b = np.asarray(result, np.float64), np.asarray(reference, np.float64)
    except (TypeError, ValueError):
        return result == reference
    if a.shape != b.shape or bool(np.any(np.isnan(a))):
        return False
    same_inf = np.array_equal(np.isinf(a), np.isinf(b)) and np.array_equal(a[np.isinf(a)], b[np.isinf(b)])
    return same_inf and bool(np.allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-5, atol=1e-6))


def _classify_call(c: Case, fx: Fixtures) -> tuple[str, str]:
    try:
        result = c.run(fx)
        if hasattr(result, "block_until_ready"):
            result.block_until_ready()
    except (ValueError, FileNotFoundError) as e:
        message = str(e)
        named = any(n in message for n in c.names)
        return ("clear" if named else "unclear"), _one_line(f"{type(e).__name__}: {message}")
    except Exception as e:  # noqa: BLE001 (anything else is by definition unclear)
        return "unclear", _one_line(f"{type(e).__name__}: {e}")
    if c.reference is not None:
        reference = c.reference(fx)
        if _equal(result, reference):
            return "clear", "accepted: equal to the reference"
        return "silent", _one_line(f"returned {result!r}, reference {reference!r}")
    return "silent", _one_line(f"no error; returned {type(result).__name__} "
                               f"{_summary(result)}")


def _summary(result: Any) -> str:
    try:
        arr = np.asarray(result, np.float64)
    except (TypeError, ValueError):
        return repr(result)[:80]
    bad = "" if np.all(np.isfinite(arr)) else " (contains NaN/inf)"
    return f"shape {arr.shape}{bad}" if arr.ndim else f"{float(arr)!r}{bad}"


def _classify_cli(c: Case, fx: Fixtures, timeout: float) -> tuple[str, str]:
    argv = c.run(fx)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu")
    env.pop("HAMPJAX_TRACEBACK", None)
    try:
        out = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                             timeout=timeout, cwd=fx.root, env=env)
    except subprocess.TimeoutExpired:
        return "silent", f"accepted: still running after {timeout:.0f} s"
    err = out.stderr.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    if out.returncode == 0:
        return "silent", _one_line(f"exit 0 (accepted); stdout {out.stdout[-100:]!r}")
    message = _one_line(lines[-1] if lines else "(no message)")
    if out.returncode != 2 or len(lines) != 1 or "Traceback" in err:
        return "unclear", _one_line(f"exit {out.returncode}, {len(lines)} stderr lines; last: "
                                    f"{message}")
    named = any(n in lines[0] for n in c.names)
    return ("clear" if named else "unclear"), message


def run_cases(cases: Sequence[Case], *, workers: int = 3, timeout: float = 120.0) -> list[dict]:
    """Run ``cases`` (CLI cases in parallel subprocesses) and return one record per case."""
    with tempfile.TemporaryDirectory(prefix="hampjax_bad_inputs_") as root:
        fx = Fixtures(root)
        records: list[dict | None] = [None] * len(cases)

        def record(i: int, outcome: str, message: str, seconds: float) -> None:
            c = cases[i]
            records[i] = {"function": c.function, "input": c.input, "outcome": outcome,
                          "message": message, "names": list(c.names), "owner": c.owner,
                          "kind": "cli" if c.cli else "function", "seconds": round(seconds, 2)}

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {}
            for i, c in enumerate(cases):
                if c.cli:
                    start = time.perf_counter()
                    futures[pool.submit(_classify_cli, c, fx, timeout)] = (i, start)
            for i, c in enumerate(cases):  # the function cases in this thread meanwhile
                if not c.cli:
                    start = time.perf_counter()
                    outcome, message = _classify_call(c, fx)
                    record(i, outcome, message, time.perf_counter() - start)
            for future in concurrent.futures.as_completed(futures):
                i, start = futures[future]
                outcome, message = future.result()
                record(i, outcome, message, time.perf_counter() - start)
        return [r for r in records if r is not None]


def markdown(records: Sequence[dict]) -> str:
    rows = ["| # | function | input | outcome | message |", "|---|---|---|---|---|"]
    for i, r in enumerate(records, 1):
        msg = r["message"].replace("|", "\\|")
        rows.append(f"| {i} | `{r['function']}` | {r['input']} | {r['outcome']} | {msg} |")
    counts = {o: sum(r["outcome"] == o for r in records) for o in OUTCOMES}
    functions = len({r["function"] for r in records})
    rows.append("")
    rows.append(f"**{len(records)} bad inputs over {functions} functions and entry points: "
                + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES) + ".**")
    pending = [r for r in records if r["outcome"] != "clear"]
    owners = {}
    for r in pending:
        owners[r["owner"]] = owners.get(r["owner"], 0) + 1
    if owners:
        rows.append("Not clear, by owner: " + ", ".join(f"{k} {v}" for k, v in sorted(owners.items()))
                    + ".")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# The cases. Imports are inside the cases so that a broken module is one unclear case.
# --------------------------------------------------------------------------------------------

API = "harden_api"  # owner of the function-level checks (hampjax.validation, defenses, ...)


def _defenses():
    from hampjax import defenses
    return defenses


def _scores():
    from hampjax import scores
    return scores


def _metrics():
    from hampjax import metrics
    return metrics


def _attacks():
    from hampjax import attacks
    return attacks


def _data():
    from hampjax import data
    return data


def _training():
    from hampjax import training
    return training


def _key(seed: int = 0):
    import jax
    return jax.random.key(seed)


# ---- data: loaders on fixtures --------------------------------------------------------------

@case("hampjax.data.load_location30", "hand-placed 5-row archive (287,293 bytes expected)",
      ["dataset_location.tgz"])
def _(fx):
    d = fx.dir("location")
    x = np.zeros((5, 446), np.uint8)
    _tgz(d / "dataset_location.tgz", {"bangkok": _csv(range(1, 6), x, quote=True)})
    return _data().load_location30(d)


@case("hampjax.data.load_purchase100", "hand-placed 6-row archive (197,324 rows expected)",
      ["dataset_purchase.tgz"])
def _(fx):
    return _data().load_purchase100(fx.purchase())


def _tabular_fixture_source():
    from hampjax.data import tabular
    return dataclasses.replace(tabular.PURCHASE100, num_rows=None)


def _load_fixture(d, **kw):
    return _data().load_tabular(_tabular_fixture_source(), d, **kw)


@case("hampjax.data.load_tabular", "sha256=<wrong> with only the cache left", ["checksum mismatch", "sha256"])
def _(fx):
    d = fx.purchase()
    _load_fixture(d)
    (d / "dataset_purchase.tgz").unlink()
    return _load_fixture(d, sha256="0" * 64)


@case("hampjax.data.load_tabular", "archive replaced after the first load", ["dataset_purchase.tgz"])
def _(fx):
    d = fx.purchase()
    _load_fixture(d)
    x = np.ones((3, 600), np.uint8)
    _tgz(d / "dataset_purchase.tgz", {"dataset_purchase": _csv([1, 2, 3], x)})
    return _load_fixture(d)


@case("hampjax.data.load_tabular", "cache edited after it was written", ["purchase100-"])
def _(fx):
    d = fx.purchase()
    _load_fixture(d)
    (d / "dataset_purchase.tgz").unlink()
    cache = next(d.glob("purchase100-*.npz"))
    cache.write_bytes(cache.read_bytes()[:-10])
    return _load_fixture(d)


@case("hampjax.data.load_tabular", "consistent cache with label 100 (>= C)", ["purchase100-"])
def _(fx):
    d = fx.purchase()
    _load_fixture(d)
    (d / "dataset_purchase.tgz").unlink()
    manifest_path = d / "purchase100.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    cache = d / manifest["cache"]
    with np.load(cache) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["labels"] = np.full_like(arrays["labels"], 100)
    np.savez(cache, **arrays)
    manifest["cache_sha256"] = hashlib.sha256(cache.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    return _load_fixture(d)


@case("hampjax.data.load_tabular", "manifest truncated", ["purchase100.manifest.json"])
def _(fx):
    d = fx.purchase()
    _load_fixture(d)
    (d / "purchase100.manifest.json").write_text('{"dataset": ')
    return _load_fixture(d)


for _what, _content, _names in [
    ("truncated archive", None, ["dataset_purchase.tgz"]),
    ("label 0 (1-indexed file)", b"0," + b"0," * 599 + b"0\n", ["labels must be in 1..100"]),
    ("label 101", b"101," + b"0," * 599 + b"0\n", ["labels must be in 1..100"]),
    ("feature value 2", b"1," + b"0," * 599 + b"2\n", ["features must be 0 or 1"]),
    ("600 columns instead of 601", b"1," + b"0," * 598 + b"0\n", ["expected 601 columns"]),
    ("non-numeric field", b"x," + b"0," * 599 + b"0\n", ["dataset_purchase"]),
    ("no rows", b"\n\n", ["no rows"]),
]:
    def _make(content=_content):
        def run(fx):
            d = fx.purchase(content=content)
            if content is None:
                path = d / "dataset_purchase.tgz"
                path.write_bytes(path.read_bytes()[:40])
            return _load_fixture(d)
        return run
    case("hampjax.data.load_tabular", _what, _names)(_make())

case("hampjax.data.load_purchase100", "sha256='xyz'", "sha256")(
    lambda fx: _data().load_purchase100(fx.purchase(), sha256="xyz"))
case("hampjax.data.load_purchase100", "download=1", "download")(
    lambda fx: _data().load_purchase100(fx.dir(), download=1))
case("hampjax.data.load_purchase100", "url=''", "url")(
    lambda fx: _data().load_purchase100(fx.dir(), url=""))
case("hampjax.data.load_purchase100", "data_dir is a file", "data_dir")(
    lambda fx: _data().load_purchase100(fx.file))
case("hampjax.data.load_purchase100", "archive= missing file", "archive=")(
    lambda fx: _data().load_purchase100(fx.dir(), archive=fx.root / "nope.tgz"))
case("hampjax.data.load_purchase100", "no archive, no cache", "dataset_purchase.tgz")(
    lambda fx: _data().load_purchase100(fx.dir()))
case("hampjax.data.load_texas100", "download without accept_texas_terms", "accept_texas_terms")(
    lambda fx: _data().load_texas100(fx.dir(), download=True))
case("hampjax.data.load_texas100", "accept_texas_terms='yes'", "accept_texas_terms")(
    lambda fx: _data().load_texas100(fx.dir(), accept_texas_terms="yes"))


@case("hampjax.data.load_cifar10", "hand-placed small tarball (published size/sha256)",
      ["cifar-10-binary.tar.gz"])
def _(fx):
    d = fx.dir("cifar_tgz")
    _tgz(d / "cifar-10-binary.tar.gz", {"cifar-10-batches-bin/test_batch.bin": bytes(3073)})
    return _data().load_cifar10(d, split="test")


case("hampjax.data.load_cifar10", "extracted test_batch.bin with 2 records (10,000 expected)",
     "test_batch.bin")(lambda fx: _data().load_cifar10(fx.cifar_folder(), split="test"))


def _cifar_fixture(fn):
    def run(fx):
        from hampjax.data import cifar
        saved = cifar._CIFAR10
        cifar._CIFAR10 = dataclasses.replace(saved, archive_size=None, archive_sha256=None, records=None)
        try:
            return fn(fx)
        finally:
            cifar._CIFAR10 = saved
    return run


case("hampjax.data.load_cifar10", "record with label 12", "test_batch.bin")(
    _cifar_fixture(lambda fx: _data().load_cifar10(fx.cifar_folder(label=12), split="test")))


@case("hampjax.data.load_cifar10", "extracted file edited after the first load", "test_batch.bin")
@_cifar_fixture
def _(fx):
    d = fx.cifar_folder()
    _data().load_cifar10(d, split="test")
    path = d / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[5] ^= 1
    path.write_bytes(bytes(raw))
    return _data().load_cifar10(d, split="test")


case("hampjax.data.load_cifar10", "truncated record file", "test_batch.bin")(_cifar_fixture(
    lambda fx: _data().load_cifar10(_truncate(fx.cifar_folder() / "cifar-10-batches-bin" / "test_batch.bin"),
                                    split="test")))


def _truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:-5])
    return path.parents[1]


case("hampjax.data.load_cifar10", "split='val'", "split")(lambda fx: _data().load_cifar10(fx.dir(), split="val"))
case("hampjax.data.load_cifar10", "md5='zz'", "md5")(lambda fx: _data().load_cifar10(fx.dir(), split="test", md5="zz"))
case("hampjax.data.load_cifar10", "data_dir is a file", "data_dir")(
    lambda fx: _data().load_cifar10(fx.file, split="test"))
case("hampjax.data.load_cifar100", "label='medium'", "label")(
    lambda fx: _data().load_cifar100(fx.dir(), split="test", label="medium"))
case("hampjax.data.parse_cifar_records", "empty bytes", "data")(
    lambda fx: _data().parse_cifar_records(b"", label_bytes=1))
case("hampjax.data.parse_cifar_records", "3,000 bytes (not a record multiple)", "data")(
    lambda fx: _data().parse_cifar_records(bytes(3000), label_bytes=1))
case("hampjax.data.parse_cifar_records", "label_bytes=3", "label_bytes")(
    lambda fx: _data().parse_cifar_records(bytes(3075), label_bytes=3))


@case("hampjax.data.load_digits_dataset", "scikit-learn's digits with one label changed", "digits")
def _(fx):
    import sklearn.datasets
    real = sklearn.datasets.load_digits

    def tampered():
        bunch = real()
        bunch.target = bunch.target.copy()
        bunch.target[0] = (bunch.target[0] + 1) % 10
        return bunch

    sklearn.datasets.load_digits = tampered
    try:
        return _data().load_digits_dataset()
    finally:
        sklearn.datasets.load_digits = real


def _ds(x=None, y=None, num_classes=3, image_shape=None, binary=True, mean=None, std=None):
    x = np.zeros((4, 3), np.uint8) if x is None else x
    y = np.zeros(4, np.int32) if y is None else y
    return _data().Dataset(x, y, num_classes, "toy", image_shape, binary, mean, std)


case("hampjax.data.Dataset", "float32 x", "x")(lambda fx: _ds(x=np.zeros((4, 3), np.float32)))
case("hampjax.data.Dataset", "label 3 with num_classes=3", "y")(lambda fx: _ds(y=np.array([0, 1, 2, 3])))
case("hampjax.data.Dataset", "label -1", "y")(lambda fx: _ds(y=np.array([0, -1, 2, 1])))
case("hampjax.data.Dataset", "float labels", "y")(lambda fx: _ds(y=np.array([0.0, 1.5, 2.0, 1.0])))
case("hampjax.data.Dataset", "5 labels for 4 rows", ["x and y", "y"])(lambda fx: _ds(y=np.zeros(5, np.int32)))
case("hampjax.data.Dataset", "binary_features with a 2", "binary_features")(
    lambda fx: _ds(x=np.full((4, 3), 2, np.uint8)))
case("hampjax.data.Dataset", "image_shape (2, 2, 1) for 8x8 images", "image_shape")(
    lambda fx: _ds(x=np.zeros((4, 8, 8, 1), np.uint8), image_shape=(2, 2, 1), binary=False,
                   mean=(0.5,), std=(0.2,)))
case("hampjax.data.Dataset", "std 0", "std")(
    lambda fx: _ds(x=np.zeros((4, 8, 8, 1), np.uint8), image_shape=(8, 8, 1), binary=False,
                   mean=(0.5,), std=(0.0,)))
case("hampjax.data.Dataset", "num_classes=1", "num_classes")(lambda fx: _ds(num_classes=1))

# ---- data: splits ----------------------------------------------------------------------------

_X, _Y = np.zeros((100, 2)), np.zeros(100, np.int64)
case("hampjax.data.hamp_split", "sizes larger than the dataset", "needs")(
    lambda fx: _data().hamp_split(_X, _Y, _data().hamp_split_sizes(200), seed=0))
case("hampjax.data.hamp_split", "seed=-1", "seed")(
    lambda fx: _data().hamp_split(_X, _Y, _data().hamp_split_sizes(20), seed=-1))
case("hampjax.data.hamp_split", "seed=1.5", "seed")(
    lambda fx: _data().hamp_split(_X, _Y, _data().hamp_split_sizes(20), seed=1.5))
case("hampjax.data.hamp_split", "x 100 rows, y 99", ["x and y", "y"])(
    lambda fx: _data().hamp_split(_X, _Y[:99], _data().hamp_split_sizes(20), seed=0))
case("hampjax.data.hamp_split", "sizes a dict", "sizes")(
    lambda fx: _data().hamp_split(_X, _Y, {"members": 10}, seed=0))
case("hampjax.data.hamp_split", "empty x", "x")(
    lambda fx: _data().hamp_split(_X[:0], _Y[:0], _data().hamp_split_sizes(20), seed=0))
case("hampjax.data.hamp_split_sizes", "train_size=5", "train_size")(lambda fx: _data().hamp_split_sizes(5))
case("hampjax.data.hamp_split_sizes", "val_fraction=0", "val_fraction")(
    lambda fx: _data().hamp_split_sizes(100, val_fraction=0.0))
case("hampjax.data.hamp_split_sizes", "val_fraction=nan", "val_fraction")(
    lambda fx: _data().hamp_split_sizes(100, val_fraction=float("nan")))
case("hampjax.data.hamp_split_sizes", "test_size=0", "test_size")(
    lambda fx: _data().hamp_split_sizes(100, test_size=0))
case("hampjax.data.relaxloss_image_split", "slice_size 30 on 100 examples", "slice_size")(
    lambda fx: _data().relaxloss_image_split(_X, _Y, seed=0, slice_size=30))
case("hampjax.data.relaxloss_tabular_split", "4 examples", "needs")(
    lambda fx: _data().relaxloss_tabular_split(_X[:4], _Y[:4], seed=0))
case("hampjax.data.lira_candidate_pool", "num_members=0", "num_members")(
    lambda fx: _data().lira_candidate_pool(_X, _Y, num_members=0, seed=0))
case("hampjax.data.lira_candidate_pool", "num_members=60 on 100 examples", "num_members")(
    lambda fx: _data().lira_candidate_pool(_X, _Y, num_members=60, seed=0))

# ---- membership / keep matrices ---------------------------------------------------------------

case("hampjax.training.balanced_keep", "num_models=3", "num_models")(lambda fx: _training().balanced_keep(3, 10, seed=0))
case("hampjax.training.balanced_keep", "num_models=0", "num_models")(lambda fx: _training().balanced_keep(0, 10, seed=0))
case("hampjax.training.balanced_keep", "num_examples=0", "num_examples")(lambda fx: _training().balanced_keep(4, 0, seed=0))
case("hampjax.training.balanced_keep", "seed=-1", "seed")(lambda fx: _training().balanced_keep(4, 10, seed=-1))
case("hampjax.training.balanced_keep", "seed=True", "seed")(lambda fx: _training().balanced_keep(4, 10, seed=True))
case("hampjax.training.paired_keep", "num_examples=1", "num_examples")(lambda fx: _training().paired_keep(2, 1, seed=0))
case("hampjax.training.paired_keep", "float stratify_labels", "stratify_labels")(
    lambda fx: _training().paired_keep(2, 4, seed=0, stratify_labels=np.zeros(4)))
case("hampjax.training.check_keep", "float keep", "keep")(lambda fx: _training().check_keep(np.ones((2, 3))))
case("hampjax.training.check_keep", "a model with no example", "keep")(
    lambda fx: _training().check_keep(np.array([[True, False], [False, False]])))
case("hampjax.training.check_keep", "1-D keep", "keep")(lambda fx: _training().check_keep(np.ones(3, bool)))
case("hampjax.training.save_keep", "int keep", "keep")(
    lambda fx: _training().save_keep(fx.root / "k.npy", np.ones((2, 3), int)))
for _dtype in ("float32", "float64", "int64", "uint8"):
    def _keep_file(dtype=_dtype):
        def run(fx):
            path = fx.dir("keep") / "keep.npy"
            np.save(path, np.ones((2, 3), dtype))
            return _training().load_keep(path)
        return run
    case("hampjax.training.load_keep", f"{_dtype} keep.npy", "keep.npy")(_keep_file())


@case("hampjax.training.load_keep", "truncated keep.npy", "keep.npy")
def _(fx):
    path = fx.dir("keep") / "keep.npy"
    np.save(path, np.ones((4, 50), bool))
    path.write_bytes(path.read_bytes()[:60])
    return _training().load_keep(path)


@case("hampjax.training.load_keep", "keep.npy holding a pickle", "keep.npy")
def _(fx):
    path = fx.dir("keep") / "keep.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return _training().load_keep(path)

# ---- downloads ------------------------------------------------------------------------------------

case("hampjax.data.fetch", "url=''", "url")(lambda fx: _data().fetch("", fx.root / "f"))
case("hampjax.data.fetch", "mirrors a string", "mirrors")(lambda fx: _data().fetch("http://x/a", fx.root / "f", mirrors="http://y"))
case("hampjax.data.fetch", "timeout=0", "timeout")(lambda fx: _data().fetch("http://x/a", fx.root / "f", timeout=0))
case("hampjax.data.fetch", "sha256 of 10 characters", "sha256")(
    lambda fx: _data().fetch("http://x/a", fx.root / "f", sha256="abcdef0123"))
case("hampjax.data.verify_file", "size mismatch", ["a_file", "expected"])(
    lambda fx: _data().verify_file(fx.file, expected_size=10))
case("hampjax.data.verify_file", "sha256 mismatch", ["a_file"])(
    lambda fx: _data().verify_file(fx.file, sha256="0" * 64))
case("hampjax.data.file_digest", "algorithm='sha1'", "algorithm")(lambda fx: _data().file_digest(fx.file, "sha1"))

# ---- run directories and state files ----------------------------------------------------------------


def _rundir():
    from hampjax.repro import rundir
    return rundir


case("hampjax.repro.rundir.read_run", "workdir missing", "workdir")(lambda fx: _rundir().read_run(fx.root / "nope"))
case("hampjax.repro.rundir.read_run", "workdir is a file", "workdir")(lambda fx: _rundir().read_run(fx.file))
case("hampjax.repro.rundir.read_run", "no experiment.json", "experiment.json")(lambda fx: _rundir().read_run(fx.dir()))
case("hampjax.repro.rundir.read_run", "experiment.json truncated", "experiment.json")(
    lambda fx: _rundir().read_run(fx.run_dir(experiment='{"cells": [')))
case("hampjax.repro.rundir.read_run", "experiment.json a list", "experiment.json")(
    lambda fx: _rundir().read_run(fx.run_dir(experiment="[]")))
case("hampjax.repro.rundir.read_run", "cells not a list", "cells")(
    lambda fx: _rundir().read_run(fx.run_dir(experiment='{"cells": "digits"}')))
case("hampjax.repro.rundir.read_run", "cell name '../x'", "cells")(
    lambda fx: _rundir().read_run(fx.run_dir(experiment='{"cells": ["../x"]}')))
case("hampjax.repro.rundir.read_run", "report.json truncated", "report.json")(
    lambda fx: _rundir().read_run(fx.run_dir(report='{"defenses": {')))
case("hampjax.repro.rundir.read_run", "report.json without defenses", "report.json")(
    lambda fx: _rundir().read_run(fx.run_dir(report='{"x": 1}')))


@case("hampjax.repro.rundir.read_run", "stats.json a list", "stats.json")
def _(fx):
    d = fx.run_dir()
    (d / "digits" / "stats.json").write_text("[1]")
    return _rundir().read_run(d)


@case("hampjax.repro.rundir.read_run", "overhead.json truncated", "overhead.json")
def _(fx):
    d = fx.run_dir()
    (d / "overhead.json").write_text('{"a": ')
    return _rundir().read_run(d)


@case("hampjax.repro.rundir.read_run", "summary.json without fpr", "summary.json")
def _(fx):
    d = fx.run_dir(report=None)
    (d / "digits" / "summary.json").write_text('{"v": {"train_acc": 1}}')
    return _rundir().read_run(d)


case("hampjax.repro.rundir.open_experiment", "workdir is a file", "workdir")(
    lambda fx: _rundir().open_experiment(str(fx.file), kind="hamp_main", name="x", config={}))


@case("hampjax.repro.rundir.open_experiment", "experiment.json truncated", "experiment.json")
def _(fx):
    d = fx.dir()
    (d / "experiment.json").write_text('{"con')
    return _rundir().open_experiment(str(d), kind="hamp_main", name="x", config={})


@case("hampjax.repro.rundir.open_experiment", "workdir of a different config", "seed")
def _(fx):
    d = fx.dir()
    _rundir().open_experiment(str(d), kind="hamp_main", name="x", config={"seed": 0})
    return _rundir().open_experiment(str(d), kind="hamp_main", name="x", config={"seed": 1})


def _report():
    from hampjax import report
    return report


case("hampjax.report.load_report", "empty directory", ["report.json", "manifest.json", "run_dir"])(lambda fx: _report().load_report(fx.dir()))


@case("hampjax.report.load_report", "report.json truncated", ["report.json", "manifest.json"])
def _(fx):
    d = fx.dir()
    (d / "report.json").write_text('{"defenses"')
    return _report().load_report(d)


case("hampjax.report.verify_run_dir", "empty directory", ["manifest.json", "run_dir"])(
    lambda fx: _report().verify_run_dir(fx.dir()))


@case("hampjax.report.verify_run_dir", "manifest.json truncated", "manifest.json")
def _(fx):
    d = fx.dir()
    (d / "manifest.json").write_text('{"files"')
    return _report().verify_run_dir(d)


case("hampjax.report.load_evaluation", "empty directory", ["scores.npz", "run_dir", "evaluation.json"])(
    lambda fx: _report().load_evaluation(fx.dir()))
case("hampjax.report.import_lira_layout", "missing folder", ["path", "nope"])(
    lambda fx: _report().import_lira_layout(fx.root / "nope"))


def _atomic():
    from hampjax import atomic
    return atomic


@case("hampjax.atomic.read_json", "truncated JSON", "s.json")
def _(fx):
    (fx.root / "s.json").write_text('{"a": [1, 2')
    return _atomic().read_json(fx.root / "s.json")


@case("hampjax.atomic.load_npz", "truncated .npz", "r.npz")
def _(fx):
    np.savez(fx.root / "r.npz", a=np.arange(100))
    (fx.root / "r.npz").write_bytes((fx.root / "r.npz").read_bytes()[:50])
    return _atomic().load_npz(fx.root / "r.npz")


@case("hampjax.atomic.load_npy", "text file named .npy", "t.npy")
def _(fx):
    (fx.root / "t.npy").write_text("hello")
    return _atomic().load_npy(fx.root / "t.npy")

# ---- recipe specs and configs ------------------------------------------------------------------------

case("hampjax.training.preset_spec", "unknown defense", "defense")(lambda fx: _training().preset_spec("nope", "digits"))
case("hampjax.training.preset_spec", "unknown dataset", ["dataset", "preset"])(lambda fx: _training().preset_spec("hamp", "mnist"))
case("hampjax.training.preset_spec", "override of an unknown field", "no_such")(
    lambda fx: _training().preset_spec("hamp", "digits", no_such=1))
case("hampjax.training.preset_spec", "epochs=0", "epochs")(lambda fx: _training().preset_spec("hamp", "digits", epochs=0))
case("hampjax.training.preset_spec", "optimizer.learning_rate=-1", "learning_rate")(
    lambda fx: _training().preset_spec("hamp", "digits", **{"optimizer.learning_rate": -1.0}))
case("hampjax.training.preset_spec", "batch_size=0", "batch_size")(
    lambda fx: _training().preset_spec("hamp", "digits", batch_size=0))
case("hampjax.training.RecipeSpec.from_dict", "unknown key", "bogus")(
    lambda fx: _training().RecipeSpec.from_dict({**_training().preset_spec("hamp", "digits").to_dict(), "bogus": 1})
    if hasattr(_training().RecipeSpec, "to_dict") else _training().RecipeSpec.from_dict({"bogus": 1}))
case("hampjax.training.RecipeSpec.replace", "unknown field", "nope")(
    lambda fx: _training().preset_spec("hamp", "digits").replace(nope=1))
case("hampjax.training.build_recipe", "a dict instead of a spec", "spec")(lambda fx: _training().build_recipe({"kind": "hamp"}))


def _check_config(**changes):
    def run(fx):
        from hampjax.repro import check_config
        spec = importlib.util.spec_from_file_location("cfg_main", ROOT / "experiments" / "configs" / "hamp_main.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config("quick")
        with config.unlocked() if hasattr(config, "unlocked") else contextlib.nullcontext():
            for k, v in changes.items():
                setattr(config, k, v)
        return check_config(config)
    return run


case("hampjax.repro.check_config", "config.seed=-1", "config.seed")(_check_config(seed=-1))
case("hampjax.repro.check_config", "config.num_models=3", "config.num_models")(_check_config(num_models=3))
case("hampjax.repro.check_config", "config.experiment='nope'", "config.experiment")(_check_config(experiment="nope"))

# ---- function-level checks (owner: harden_api) ----------------------------------------------------------

_z = lambda fx: fx.logits  # noqa: E731
case("hampjax.defenses.cross_entropy_loss", "NaN logit", "logits", owner=API)(
    lambda fx: _defenses().cross_entropy_loss(fx.nan_logits(), fx.labels))
case("hampjax.defenses.cross_entropy_loss", "label 5 with C=5", "labels", owner=API)(
    lambda fx: _defenses().cross_entropy_loss(fx.logits, np.full(8, 5)))
case("hampjax.defenses.cross_entropy_loss", "int logits", "logits", owner=API)(
    lambda fx: _defenses().cross_entropy_loss(np.zeros((8, 5), np.int32), fx.labels))
case("hampjax.defenses.hamp_loss", "NaN logit", "logits", owner=API)(
    lambda fx: _defenses().hamp_loss(fx.nan_logits(), fx.probs, 0.5))
case("hampjax.defenses.hamp_loss", "inf logit", "logits", owner=API)(
    lambda fx: _defenses().hamp_loss(np.where(np.eye(8, 5, dtype=bool), np.inf, fx.logits), fx.probs, 0.5))
case("hampjax.defenses.hamp_loss", "soft labels summing to 2", "soft_labels", owner=API)(
    lambda fx: _defenses().hamp_loss(fx.logits, 2 * fx.probs, 0.5))
case("hampjax.defenses.hamp_loss", "alpha=-1", "alpha", owner=API)(
    lambda fx: _defenses().hamp_loss(fx.logits, fx.probs, -1.0))
case("hampjax.defenses.hamp_soft_labels", "entropy_threshold=1.5", "entropy_threshold", owner=API)(
    lambda fx: _defenses().hamp_soft_labels(fx.labels, 5, 1.5))
case("hampjax.defenses.hamp_soft_labels", "entropy_threshold=nan", "entropy_threshold", owner=API)(
    lambda fx: _defenses().hamp_soft_labels(fx.labels, 5, float("nan")))
case("hampjax.defenses.hamp_soft_labels", "label 7 with num_classes=5", "labels", owner=API)(
    lambda fx: _defenses().hamp_soft_labels(np.full(3, 7), 5, 0.5))


@case("hampjax.defenses.hamp_soft_labels", "vmap over entropy_threshold 0.5 / 1.2 / -0.3",
      "entropy_threshold", owner=API)
def _(fx):
    import jax
    import jax.numpy as jnp
    out = jax.vmap(lambda g: _defenses().hamp_soft_labels(jnp.asarray(fx.labels), 5, g))(
        jnp.array([0.5, 1.2, -0.3]))
    out = np.asarray(out)
    if np.all(np.isnan(out[1:])):  # the documented traced behavior: invalid values give NaN
        raise ValueError("entropy_threshold: invalid traced values gave NaN (as documented)")
    return out


case("hampjax.defenses.relaxloss_loss", "NaN logit", "logits", owner=API)(
    lambda fx: _defenses().relaxloss_loss(fx.nan_logits(), fx.labels, alpha=0.5, epoch=0))
case("hampjax.defenses.relaxloss_loss", "alpha=-1", "alpha", owner=API)(
    lambda fx: _defenses().relaxloss_loss(fx.logits, fx.labels, alpha=-1.0, epoch=0))
case("hampjax.defenses.relaxloss_loss", "epoch=-1", "epoch", owner=API)(
    lambda fx: _defenses().relaxloss_loss(fx.logits, fx.labels, alpha=0.5, epoch=-1))


def _ws(fx, logits=None, noise=None, sigma=0.1):
    noise = np.ones(8, np.float32) if noise is None else noise
    return _defenses().weighted_smoothing_loss(fx.logits if logits is None else logits, fx.labels, noise,
                                               _key(), sigma=sigma)


case("hampjax.defenses.weighted_smoothing_loss", "NaN logit", "logits", owner=API)(lambda fx: _ws(fx, logits=fx.nan_logits()))
case("hampjax.defenses.weighted_smoothing_loss", "NaN noise_scale", "noise_scale", owner=API)(
    lambda fx: _ws(fx, noise=np.array([np.nan] + [1.0] * 7, np.float32)))
case("hampjax.defenses.weighted_smoothing_loss", "sigma=-1", "sigma", owner=API)(lambda fx: _ws(fx, sigma=-1.0))
case("hampjax.defenses.ws_noise_scale", "one NaN score", "scores", owner=API)(
    lambda fx: _defenses().ws_noise_scale(np.array([0.1, np.nan, 0.3, 0.2]), np.zeros(4, np.int32), 2))
case("hampjax.defenses.ws_noise_scale", "label 2 with num_classes=2", "labels", owner=API)(
    lambda fx: _defenses().ws_noise_scale(np.array([0.1, 0.2, 0.3, 0.2]), np.array([0, 1, 2, 0]), 2))
case("hampjax.defenses.label_smoothing_loss", "smoothing=1.5", "smoothing", owner=API)(
    lambda fx: _defenses().label_smoothing_loss(fx.logits, fx.labels, 1.5))
case("hampjax.defenses.label_smoothing_loss", "NaN logit", "logits", owner=API)(
    lambda fx: _defenses().label_smoothing_loss(fx.nan_logits(), fx.labels, 0.1))
case("hampjax.defenses.confidence_penalty_loss", "NaN logit", "logits", owner=API)(
    lambda fx: _defenses().confidence_penalty_loss(fx.nan_logits(), fx.labels, 0.1))
case("hampjax.defenses.distillation_loss", "teacher_logits of another shape", "teacher_logits", owner=API)(
    lambda fx: _defenses().distillation_loss(fx.logits, fx.labels, fx.logits[:, :3]))
case("hampjax.defenses.distillation_loss", "temperature=0", "temperature", owner=API)(
    lambda fx: _defenses().distillation_loss(fx.logits, fx.labels, fx.logits, temperature=0.0))
case("hampjax.defenses.modify_output", "NaN output", "outputs", owner=API)(
    lambda fx: _defenses().modify_output(fx.nan_logits(), fx.logits[::-1]))
case("hampjax.defenses.modify_output", "NaN random output", "random_outputs", owner=API)(
    lambda fx: _defenses().modify_output(fx.logits, fx.nan_logits()))
case("hampjax.defenses.modify_output", "random_outputs of another shape", "random_outputs", owner=API)(
    lambda fx: _defenses().modify_output(fx.logits, fx.logits[:, :3]))
case("hampjax.defenses.fit_temperature", "one NaN logit", "logits", owner=API)(
    lambda fx: _defenses().fit_temperature(fx.nan_logits(), fx.labels))
case("hampjax.defenses.fit_temperature", "min_temperature > max_temperature", "temperature", owner=API)(
    lambda fx: _defenses().fit_temperature(fx.logits, fx.labels, min_temperature=10.0, max_temperature=1.0))
case("hampjax.defenses.temperature_scale", "temperature=0", "temperature", owner=API)(
    lambda fx: _defenses().temperature_scale(fx.logits, 0.0))
case("hampjax.defenses.temperature_scale", "temperature=nan", "temperature", owner=API)(
    lambda fx: _defenses().temperature_scale(fx.logits, float("nan")))
case("hampjax.defenses.smoothed_labels", "smoothing=-0.1", "smoothing", owner=API)(
    lambda fx: _defenses().smoothed_labels(fx.labels, 5, -0.1))
case("hampjax.defenses.dp_epsilon", "noise_multiplier=0 (no privacy: epsilon is inf)", "noise_multiplier",
     owner=API, reference=lambda fx: float("inf"))(
    lambda fx: _defenses().dp_epsilon(0.0, 0.01, 100, 1e-5))
case("hampjax.defenses.dp_epsilon", "delta=1", "delta", owner=API)(lambda fx: _defenses().dp_epsilon(1.0, 0.01, 100, 1.0))
case("hampjax.defenses.dp_epsilon", "sample_rate=1.5", "sample_rate", owner=API)(
    lambda fx: _defenses().dp_epsilon(1.0, 1.5, 100, 1e-5))
case("hampjax.defenses.add_gaussian_noise", "stddev=-1", "stddev", owner=API)(
    lambda fx: _defenses().add_gaussian_noise({"w": np.zeros(3)}, _key(), -1.0))
case("hampjax.defenses.random_image_inputs", "num_samples=0", "num_samples", owner=API)(
    lambda fx: _defenses().random_image_inputs(_key(), 0, (8, 8, 1), mean=(0.5,), std=(0.2,)))
case("hampjax.defenses.random_image_inputs", "std=0", "std", owner=API)(
    lambda fx: _defenses().random_image_inputs(_key(), 2, (8, 8, 1), mean=(0.5,), std=(0.0,)))

case("hampjax.scores.logit_scaled_score", "label 5 with C=5", "labels", owner=API)(
    lambda fx: _scores().logit_scaled_score(fx.logits, np.full(8, 5)))
case("hampjax.scores.logit_scaled_score", "NaN logit", "logits", owner=API)(
    lambda fx: _scores().logit_scaled_score(fx.nan_logits(), fx.labels))
case("hampjax.scores.logit_scaled_score", "9 labels for 8 rows", ["labels", "logits"], owner=API)(
    lambda fx: _scores().logit_scaled_score(fx.logits[:1], fx.labels[:2]))
case("hampjax.scores.true_class_log_prob", "label -1", "labels", owner=API)(
    lambda fx: _scores().true_class_log_prob(fx.logits, np.full(8, -1)))
case("hampjax.scores.entropy", "inf logit", "logits", owner=API)(
    lambda fx: _scores().entropy(np.where(np.eye(8, 5, dtype=bool), np.inf, fx.logits)))
case("hampjax.scores.modified_entropy", "label 5 with C=5", "labels", owner=API)(
    lambda fx: _scores().modified_entropy(fx.logits, np.full(8, 5)))

case("hampjax.metrics.auc", "NaN score", "scores", owner=API)(
    lambda fx: _metrics().auc(np.where(np.arange(16) == 3, np.nan, fx.scores), fx.members))
case("hampjax.metrics.auc", "label 2", "labels", owner=API)(
    lambda fx: _metrics().auc(fx.scores, np.where(np.arange(16) == 0, 2, fx.members)))
case("hampjax.metrics.auc", "only members", "labels", owner=API)(lambda fx: _metrics().auc(fx.scores, np.ones(16, int)))
case("hampjax.metrics.auc", "17 labels for 16 scores", ["labels", "scores"], owner=API)(
    lambda fx: _metrics().auc(fx.scores, np.concatenate([fx.members, [0]])))
case("hampjax.metrics.roc_curve", "empty", ["scores", "labels"], owner=API)(lambda fx: _metrics().roc_curve([], []))
case("hampjax.metrics.tpr_at_fpr", "fpr=2", "fpr", owner=API)(lambda fx: _metrics().tpr_at_fpr(fx.scores, fx.members, 2.0))
case("hampjax.metrics.tpr_at_fpr", "fpr=nan", "fpr", owner=API)(
    lambda fx: _metrics().tpr_at_fpr(fx.scores, fx.members, float("nan")))
case("hampjax.metrics.expected_calibration_error", "rows summing to 2", "probs", owner=API)(
    lambda fx: _metrics().expected_calibration_error(2 * fx.probs, fx.labels))
case("hampjax.metrics.expected_calibration_error", "num_bins=0", "num_bins", owner=API)(
    lambda fx: _metrics().expected_calibration_error(fx.probs, fx.labels, num_bins=0))
case("hampjax.metrics.expected_calibration_error", "label 5 with C=5", "labels", owner=API)(
    lambda fx: _metrics().expected_calibration_error(fx.probs, np.full(8, 5)))
case("hampjax.metrics.overconfidence_error", "negative probability", "probs", owner=API)(
    lambda fx: _metrics().overconfidence_error(fx.probs - 0.5, fx.labels))
case("hampjax.metrics.mean_max_prediction_score", "NaN probability", "probs", owner=API)(
    lambda fx: _metrics().mean_max_prediction_score(np.full((2, 3), np.nan)))
case("hampjax.metrics.clopper_pearson", "successes > trials", "successes", owner=API)(
    lambda fx: _metrics().clopper_pearson(5, 3))
case("hampjax.metrics.clopper_pearson", "confidence=1.5", "confidence", owner=API)(
    lambda fx: _metrics().clopper_pearson(1, 3, confidence=1.5))
case("hampjax.metrics.wasserstein_distance", "empty sample", ["a", "b"], owner=API)(
    lambda fx: _metrics().wasserstein_distance([], [1.0]))
case("hampjax.metrics.balanced_accuracy", "inf score", "scores", owner=API)(
    lambda fx: _metrics().balanced_accuracy(np.where(np.arange(16) == 1, np.inf, fx.scores), fx.members))

case("hampjax.attacks.metric_attack_scores", "NaN logit", "logits", owner=API)(
    lambda fx: _attacks().metric_attack_scores(fx.nan_logits(), fx.labels))
case("hampjax.attacks.metric_attack_scores", "label 5 with C=5", "labels", owner=API)(
    lambda fx: _attacks().metric_attack_scores(fx.logits, np.full(8, 5)))
case("hampjax.attacks.max_prediction_score", "1-D logits", "logits", owner=API)(
    lambda fx: _attacks().max_prediction_score(fx.logits[0]))
case("hampjax.attacks.global_threshold_score", "NaN score", "target_scores", owner=API)(
    lambda fx: _attacks().global_threshold_score(np.array([0.1, np.nan, 0.3])))
case("hampjax.attacks.yeom_threshold", "empty member losses", "member_losses", owner=API)(
    lambda fx: _attacks().yeom_threshold(np.zeros(0)))
case("hampjax.attacks.fit_thresholds", "is_member with a 2", "is_member", owner=API)(
    lambda fx: _attacks().fit_thresholds(fx.scores, np.where(np.arange(16) == 0, 2, fx.members)))
case("hampjax.attacks.true_class_probs", "temperature=0", "temperature", owner=API)(
    lambda fx: _attacks().true_class_probs(fx.logits, fx.labels, temperature=0.0))


def _lira(fx, keep=None, target=None):
    rng = np.random.default_rng(0)
    shadow = rng.normal(size=(4, 6, 1)).astype(np.float32)
    keep = np.tile([[True, False, True, False, True, False], [False, True, False, True, False, True]], (2, 1)) \
        if keep is None else keep
    target = rng.normal(size=(6, 1)).astype(np.float32) if target is None else target[:, None]
    return _attacks().lira(target, shadow, keep, min_models_per_side=1)


case("hampjax.attacks.lira", "keep of shape [4, 5] for 6 examples", "keep", owner=API)(
    lambda fx: _lira(fx, keep=np.ones((4, 5), bool)))
case("hampjax.attacks.lira", "NaN target score", "target_scores", owner=API)(
    lambda fx: _lira(fx, target=np.array([0.1, np.nan, 0, 0, 0, 0], np.float32)))
case("hampjax.attacks.lira", "float keep", "keep", owner=API)(lambda fx: _lira(fx, keep=np.ones((4, 6))))


def _rmia(fx, a=0.3):
    p = np.full((6, 3), 1 / 3, np.float32)
    ref = np.stack([p] * 4)
    keep = np.tile([[True, False], [False, True]], (2, 3))
    return _attacks().rmia(p, ref, keep, p[:2], ref[:, :2], a=a)


case("hampjax.attacks.rmia", "a=2", "a", owner=API)(lambda fx: _rmia(fx, a=2.0))


def _models():
    from hampjax import models
    return models


case("hampjax.models.get_model", "unknown name", "name")(lambda fx: _models().get_model("nope", 10))
case("hampjax.models.get_model", "num_classes=1", "num_classes")(lambda fx: _models().get_model("fc", 1))
case("hampjax.models.get_model", "unknown keyword", "nope")(lambda fx: _models().get_model("fc", 10, nope=3))


def _tiny_training(fx, *, labels=None, x=None):
    import jax
    from hampjax.training import paired_keep, preset_spec, build_recipe, train_many
    model = _models().get_model("fc", 3, hidden_sizes=(4,))
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32) if x is None else x
    labels = np.arange(8) % 3 if labels is None else labels
    recipe = build_recipe(preset_spec("undefended", "digits", epochs=1, batch_size=4))
    del jax
    return train_many(model, recipe, x, labels, paired_keep(2, 8, seed=0), seed=0, progress=False)


case("hampjax.training.train_many", "label 7 for a 3-class model", ["y", "labels"], owner=API)(
    lambda fx: _tiny_training(fx, labels=np.full(8, 7)))
case("hampjax.training.train_many", "NaN input", "x", owner=API)(
    lambda fx: _tiny_training(fx, x=np.where(np.eye(8, 4, dtype=bool), np.nan, 0.0).astype(np.float32)))


@case("hampjax.training.predict_many", "inputs with 5 features for a 4-feature model", "x", owner=API)
def _(fx):
    import jax
    from hampjax.training import predict_many
    model = _models().get_model("fc", 3, hidden_sizes=(4,))
    variables = jax.vmap(lambda k: model.init(k, np.zeros((1, 4), np.float32), train=False))(
        jax.random.split(jax.random.key(0), 2))
    def apply_fn(v, x, train=False):
        return model.apply(v, x, train=train), {}

    return predict_many(apply_fn, variables, np.zeros((3, 5), np.float32))


# ---- entry points -----------------------------------------------------------------------------------------

EXP = ROOT / "experiments"
DEMO, RUN, RESULTS = str(EXP / "demo.py"), str(EXP / "run.py"), str(EXP / "results.py")
LAUNCH = str(ROOT / "tpu_scripts" / "launch.py")
MAIN_CONFIG = str(EXP / "configs" / "hamp_main.py")
QUICK = f"--config={MAIN_CONFIG}:quick"

for _argv, _what, _names in [
    (["--seed", "-1"], "--seed -1", "--seed"),
    (["--seed", "x"], "--seed x", "--seed"),
    (["--models", "3"], "--models 3", "--models"),
    (["--models", "7"], "--models 7 (odd)", "--models"),
    (["--targets", "0"], "--targets 0", "--targets"),
    (["--models", "4", "--targets", "9"], "--targets 9 > --models 4", "--targets"),
    (["--epochs", "0"], "--epochs 0", "--epochs"),
    (["--nn-epochs", "-2"], "--nn-epochs -2", "--nn-epochs"),
    (["--defenses", "hamp,nope"], "--defenses with an unknown name", "--defenses"),
    (["--defenses", "hamp,hamp"], "--defenses naming one twice", "--defenses"),
    (["--defenses", "advreg", "--epochs", "1"], "--defenses advreg with --epochs 1", "--defenses"),
    (["--bogus"], "unknown flag", "--bogus"),
]:
    cli_case("demo.py", _what, _names, [DEMO, *_argv])
cli_case("demo.py", "--workdir a regular file", "--workdir", lambda fx: [DEMO, "--workdir", str(fx.file)])
cli_case("demo.py", "--workdir under a regular file", "--workdir",
         lambda fx: [DEMO, "--workdir", str(fx.file / "sub")])


def _demo_workdir_with(fx, writer) -> list[str]:
    d = fx.dir("demo")
    (d / "train" / "undefended").mkdir(parents=True)
    writer(d / "train" / "undefended")
    return [DEMO, "--workdir", str(d), "--models", "4", "--epochs", "1", "--nn-epochs", "1",
            "--targets", "1", "--defenses", "undefended", "--quiet"]


cli_case("demo.py", "workdir with a float keep.npy", "keep.npy", lambda fx: _demo_workdir_with(
    fx, lambda p: np.save(p / "keep.npy", np.ones((4, 1400), np.float32))))
cli_case("demo.py", "workdir with a truncated keep.npy", "keep.npy", lambda fx: _demo_workdir_with(
    fx, lambda p: (p / "keep.npy").write_bytes(b"\x93NUMPY\x01\x00")))
cli_case("demo.py", "workdir with a truncated run.json", "run.json", lambda fx: _demo_workdir_with(
    fx, lambda p: (p / "run.json").write_text('{"format"')))

for _argv, _what, _names in [
    ([f"--config={EXP}/configs/nope.py", "--workdir=w"], "--config missing file", "--config"),
    (["--config", f"{EXP}/configs/nope.py", "--workdir", "w"], "--config missing file (space form)", "--config"),
    ([f"--config={EXP}/configs", "--workdir=w"], "--config a directory", "--config"),
    ([f"--config={MAIN_CONFIG}:nosuch", "--workdir=w"], "--config with an unknown argument", "--config"),
    ([QUICK, "--config.no_such_field=1", "--workdir=w"], "--config.no_such_field=1", "--config.no_such_field"),
    ([QUICK, "--config.cells.digits.defenses.hamp.optimizer.lr=0.1", "--workdir=w"],
     "a misspelled nested field", "--config.cells.digits.defenses.hamp.optimizer.lr"),
    ([QUICK, "--config.seed=abc", "--workdir=w"], "--config.seed=abc", "--config.seed"),
    ([QUICK, "--config.seed=-1", "--workdir=w"], "--config.seed=-1", "config.seed"),
    ([QUICK, "--config.num_models=3", "--workdir=w"], "--config.num_models=3", "config.num_models"),
    ([QUICK], "no --workdir", "--workdir"),
    ([QUICK, "--workdir=w", "--bogus"], "unknown flag", "bogus"),
    ([QUICK, "--workdir=w", "extra"], "a positional argument", "extra"),
]:
    cli_case("run.py", _what, _names, [RUN, *_argv])
cli_case("run.py", "--workdir a regular file", "--workdir", lambda fx: [RUN, QUICK, f"--workdir={fx.file}"])
cli_case("run.py", "--workdir under a regular file", "--workdir", lambda fx: [RUN, QUICK, f"--workdir={fx.file}/x"])
cli_case("run.py", "config file with a syntax error", "--config",
         lambda fx: [RUN, f"--config={fx.config('def get_config(:')}", "--workdir=w"])
cli_case("run.py", "config file without get_config", "--config",
         lambda fx: [RUN, f"--config={fx.config('x = 1')}", "--workdir=w"])
cli_case("run.py", "config file that is not .py", "--config",
         lambda fx: [RUN, f"--config={fx.config('x = 1', suffix='.txt')}", "--workdir=w"])


def _workdir_with_experiment(fx, text: str) -> list[str]:
    d = fx.dir("runwd")
    (d / "experiment.json").write_text(text)
    return [RUN, QUICK, f"--workdir={d}"]


cli_case("run.py", "workdir with a truncated experiment.json", "experiment.json",
         lambda fx: _workdir_with_experiment(fx, '{"experiment": "hamp_main", "config": {'))
cli_case("run.py", "workdir holding another config's run", "fields differ",
         lambda fx: _workdir_with_experiment(fx, json.dumps({"experiment": "hamp_main", "name": "x",
                                                             "config": {"seed": 5}})))

cli_case("results.py", "no run directory", "run directory", [RESULTS])
cli_case("results.py", "missing run directory", "nope", lambda fx: [RESULTS, str(fx.root / "nope")])
cli_case("results.py", "a regular file", "a_file", lambda fx: [RESULTS, str(fx.file)])
cli_case("results.py", "a directory without experiment.json", "experiment.json", lambda fx: [RESULTS, str(fx.dir())])
cli_case("results.py", "truncated experiment.json", "experiment.json",
         lambda fx: [RESULTS, str(fx.run_dir(experiment='{"cells": ['))])
cli_case("results.py", "truncated report.json", "report.json",
         lambda fx: [RESULTS, str(fx.run_dir(report='{"defenses": {'))])
cli_case("results.py", "report.json without defenses", "report.json",
         lambda fx: [RESULTS, str(fx.run_dir(report='[]'))])
cli_case("results.py", "--fmt=xml", "--fmt", lambda fx: [RESULTS, "--fmt=xml", str(fx.run_dir())])
cli_case("results.py", "--out a directory", "--out", lambda fx: [RESULTS, f"--out={fx.root}", str(fx.run_dir())])
cli_case("results.py", "--out in a missing directory", "--out",
         lambda fx: [RESULTS, f"--out={fx.root}/no/x.md", str(fx.run_dir())])
cli_case("results.py", "unknown flag", "bogus", lambda fx: [RESULTS, "--bogus", str(fx.run_dir())])

for _script, _argv, _what, _names in [
    ("bench_attacks.py", ["--models", "0"], "--models 0", "--models"),
    ("bench_attacks.py", ["--classes", "-1"], "--classes -1", "--classes"),
    ("bench_attacks.py", ["--json", "/"], "--json a directory", "--json"),
    ("bench_shadow.py", ["--seed", "-3"], "--seed -3", "--seed"),
    ("bench_shadow.py", ["--models", "3"], "--models 3 (odd)", "--models"),
    ("bench_shadow.py", ["--chunk-size", "0"], "--chunk-size 0", "--chunk-size"),
    ("bench_shadow.py", ["--model", "nope"], "--model nope", "--model"),
    ("bench_modify_output.py", ["--budget", "nan"], "--budget nan", "--budget"),
    ("bench_modify_output.py", ["--classes", "1"], "--classes 1", "--classes"),
    ("bench_modify_output.py", ["--json", "/no/such/x.json"], "--json in a missing directory", "--json"),
]:
    cli_case(_script, _what, _names, [str(EXP / _script), *_argv])

_TPU = ["--name", "my-tpu", "--zone", "us-central2-b"]
for _argv, _what, _names in [
    ([], "no command", "COMMAND"),
    (["create", "--dry-run", "--name", "My_TPU", "--zone", "us-central2-b"], "invalid --name", "TPU name"),
    (["create", "--dry-run", "--name", "t", "--zone", "central"], "invalid --zone", "zone"),
    (["run", "--dry-run", *_TPU, "--workdir", "runs/x", "e.py"], "relative --workdir", "--workdir"),
    (["run", "--dry-run", *_TPU, "--workdir", "/w", "--worker", "first", "e.py"], "--worker first", "--worker"),
    (["local", "--dry-run", "-n", "0", "e.py"], "-n 0", "-n"),
    (["local", "--dry-run", "-n", "2", "--port", "70000", "e.py"], "--port 70000", "--port"),
]:
    cli_case("tpu_scripts/launch.py", _what, _names, [LAUNCH, *_argv])


# --------------------------------------------------------------------------------------------
# The issue-13 baselines: SELENA, DMP, MemGuard (their functions and spec parts).
# --------------------------------------------------------------------------------------------


def _spec_replace(preset: str, **changes):
    return _training().preset_spec(preset, "digits", **changes)


case("hampjax.defenses.split_ai_assignment", "num_excluded=num_submodels", "num_excluded")(
    lambda fx: _defenses().split_ai_assignment(10, 4, 4, seed=0))
case("hampjax.defenses.split_ai_assignment", "num_submodels=1", "num_submodels")(
    lambda fx: _defenses().split_ai_assignment(10, 1, 0, seed=0))
case("hampjax.defenses.split_ai_assignment", "a float member mask", "members")(
    lambda fx: _defenses().split_ai_assignment(np.ones(10, np.float32), 4, 2, seed=0))
case("hampjax.defenses.split_ai_keep", "a float keep matrix", "keep")(
    lambda fx: _defenses().split_ai_keep(np.ones((2, 10), np.float32), 4, 2, assignment_seed=0))
case("hampjax.defenses.split_ai_keep", "a model with 2 members for 4 sub-models", "member")(
    lambda fx: _defenses().split_ai_keep(np.eye(2, 10, dtype=bool) | np.eye(2, 10, 1, dtype=bool),
                                         4, 3, assignment_seed=0))
case("hampjax.defenses.split_ai_soft_labels", "NaN sub-model logits", "submodel_logits")(
    lambda fx: _defenses().split_ai_soft_labels(
        np.stack([fx.nan_logits(), fx.logits]), np.ones((8, 2), bool)))
case("hampjax.defenses.split_ai_soft_labels", "excluded of the wrong shape", "excluded")(
    lambda fx: _defenses().split_ai_soft_labels(np.stack([fx.logits] * 2), np.zeros((8, 3), bool)))
case("hampjax.defenses.split_ai_soft_labels", "average='mean'", "average")(
    lambda fx: _defenses().split_ai_soft_labels(np.stack([fx.logits] * 2), np.zeros((8, 2), bool),
                                                average="mean"))
case("hampjax.defenses.split_ai_soft_labels", "an example no sub-model left out", "excluded")(
    lambda fx: _defenses().split_ai_soft_labels(np.stack([fx.logits] * 2), np.zeros((8, 2), bool)))
case("RecipeSpec split_ai", "split_ai.num_excluded=25 with 25 sub-models", "split_ai.num_excluded")(
    lambda fx: _spec_replace("selena", **{"split_ai.num_excluded": 25}))
case("RecipeSpec split_ai", "split_ai.average='median'", "split_ai.average")(
    lambda fx: _spec_replace("selena", **{"split_ai.average": "median"}))
case("RecipeSpec split_ai", "SELENA on a cross-entropy recipe", "split_ai")(
    lambda fx: _spec_replace("undefended", **{"split_ai.kind": "selena"}))
case("RecipeSpec reference", "reference.size=0 for a GAN", "reference.size")(
    lambda fx: _spec_replace("dmp", **{"reference.size": 0}))
case("RecipeSpec reference", "reference.generator='vae'", "reference.generator")(
    lambda fx: _spec_replace("dmp", **{"reference.generator": "vae"}))
case("RecipeSpec reference", "reference.threshold=1.5", "reference.threshold")(
    lambda fx: _spec_replace("dmp", **{"reference.threshold": 1.5}))
case("RecipeSpec reference", "reference.sample_mode='random'", "reference.sample_mode")(
    lambda fx: _spec_replace("dmp", **{"reference.sample_mode": "random"}))
case("RecipeSpec reference", "SELENA and DMP at once", "reference")(
    lambda fx: _spec_replace("dmp", **{"split_ai.kind": "selena"}))


def _npy(fx, array, *, pickle=False):
    path = fx.dir("ref") / "synthetic.npy"
    np.save(path, array, allow_pickle=pickle)
    return path


def _load_reference(path, shape=(64,)):
    from hampjax.training.reference import load_reference_npy

    return load_reference_npy(path, shape)


case("hampjax.training.reference.load_reference_npy", "an object (pickled) .npy", "synthetic.npy")(
    lambda fx: _load_reference(_npy(fx, np.array([{"a": 1}], dtype=object), pickle=True)))
case("hampjax.training.reference.load_reference_npy", "NaN rows", "synthetic.npy")(
    lambda fx: _load_reference(_npy(fx, np.full((4, 64), np.nan, np.float32))))
case("hampjax.training.reference.load_reference_npy", "rows of 63 features for 64", "synthetic.npy")(
    lambda fx: _load_reference(_npy(fx, np.zeros((4, 63), np.float32))))
case("hampjax.training.reference.load_reference_npy", "an empty set", "synthetic.npy")(
    lambda fx: _load_reference(_npy(fx, np.zeros((0, 64), np.float32))))
case("hampjax.training.reference.load_reference_npy", "integer rows", "synthetic.npy")(
    lambda fx: _load_reference(_npy(fx, np.zeros((4, 64), np.int64))))
case("hampjax.training.reference.load_reference_npy", "a missing file", "missing.npy")(
    lambda fx: _load_reference(fx.root / "missing.npy"))


def _memguard():
    from hampjax.defenses import memguard

    return memguard


def _mg_variables(c=5):
    return _memguard().init_memguard_classifier(_key(), c)


case("hampjax.defenses.memguard_logits", "NaN logits", "logits")(
    lambda fx: _memguard().memguard_logits(_mg_variables(), fx.nan_logits()))
case("hampjax.defenses.memguard_logits", "max_steps=0", "max_steps")(
    lambda fx: _memguard().memguard_logits(_mg_variables(), fx.logits, max_steps=0))
case("hampjax.defenses.memguard_logits", "step_size=-0.1", "step_size")(
    lambda fx: _memguard().memguard_logits(_mg_variables(), fx.logits, step_size=-0.1))
case("hampjax.defenses.memguard_logits", "integer logits", "logits")(
    lambda fx: _memguard().memguard_logits(_mg_variables(), np.zeros((8, 5), np.int32)))
case("hampjax.defenses.train_memguard_classifiers", "is_member of the wrong length", "is_member")(
    lambda fx: _memguard().train_memguard_classifiers(
        _key(), fx.logits[None], np.ones((1, 7), bool), epochs=1))
case("hampjax.defenses.train_memguard_classifiers", "NaN logits", "logits")(
    lambda fx: _memguard().train_memguard_classifiers(
        _key(), fx.nan_logits()[None], fx.members[None, :8] > 0, epochs=1))
case("RecipeSpec output.memguard", "output.memguard.c3_rounds=0", "output.memguard.c3_rounds")(
    lambda fx: _spec_replace("memguard", **{"output.memguard.c3_rounds": 0}))
case("RecipeSpec output.memguard", "output.memguard.classifier='shadow'",
     "output.memguard.classifier")(
    lambda fx: _spec_replace("memguard", **{"output.memguard.classifier": "shadow"}))
case("RecipeSpec output.memguard", "a changed distortion budget without phase2",
     "output.memguard.distortion_budget")(
    lambda fx: _spec_replace("memguard", **{"output.memguard.distortion_budget": 0.5}))
case("RecipeSpec output.memguard", "MemGuard settings on HAMP's output", "output.memguard")(
    lambda fx: _spec_replace("hamp", **{"output.memguard.c1": 2.0}))


# --------------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict:
    p = ArgumentParser(description=__doc__.splitlines()[0], prog="bad_inputs.py")
    p.add_argument("--json", default="runs/bad_inputs.json", help="write the records here ('' for none)")
    p.add_argument("--only", default=None, help="run only the cases whose function contains this")
    p.add_argument("--workers", type=int, default=3, help="CLI subprocesses at a time (>= 1)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    if args.json:
        if args.json == "runs/bad_inputs.json":
            os.makedirs("runs", exist_ok=True)
        try:
            check_output_file("--json", args.json)
        except ValueError as e:
            p.error(str(e))
    cases = [c for c in CASES if args.only is None or args.only in c.function]
    if not cases:
        p.error(f"--only {args.only!r} matches no case")
    start = time.perf_counter()
    records = run_cases(cases, workers=args.workers)
    counts = {o: sum(r["outcome"] == o for r in records) for o in OUTCOMES}
    print(markdown(records))
    print(f"\n{time.perf_counter() - start:.0f} s")
    payload = {"counts": counts, "total": len(records), "records": records}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
    return payload


if __name__ == "__main__":
    main()
