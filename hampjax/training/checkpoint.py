"""Run directories: resumable, extendable training runs (orbax checkpoints, atomic results).

Layout of a ``workdir``::

    run.json                          what was trained: the full recipe config, the seed, data
                                      hashes, validation size, snapshot epochs (not the number
                                      of models, nor chunk sizes or devices)
    keep.npy                          the membership matrix [M, N] (extended as M grows)
    models_00000-00003/result.npz     finished models 0..3: selected variables, histories,
                                      snapshots
    models_00004-00007/ckpt/<epoch>/  orbax checkpoints of unfinished models 4..7 (latest 2)
    .lock, .lock.json                 the :class:`~hampjax.runlock.RunLock` of a live run

Results are stored by model range, not by chunk number: starting a run again resumes it with
any chunk size or device count (a model's randomness derives from ``(seed, model index)``), and
asking for more models than the directory holds trains only the new ones. A ``workdir`` whose
``run.json`` records a different setting is refused with the dotted name of the setting (e.g.
``recipe.optimizer.learning_rate``); one whose ``keep.npy`` disagrees with the first rows of
the requested keep matrix is refused naming ``keep``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any

import jax
import numpy as np

from hampjax import atomic
from hampjax.training.membership import load_keep, save_keep
from hampjax.training.spec import diff_paths

__all__ = [
    "RunDirectory",
    "run_fingerprint",
    "FORMAT",
    "flatten_dict",
    "unflatten_dict",
    "range_name",
    "write_json_atomic",
    "save_npz_atomic",
]

# Version of the run-directory layout recorded in run.json.
FORMAT = 2

_SEP = "/"
_RANGE = re.compile(r"^models_(\d{5,})-(\d{5,})$")
_NEW_WORKDIR = "use a new workdir (or delete this one to start over)"


def flatten_dict(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays -> ``{"a/b/c": array}``."""
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            if _SEP in str(key):
                raise ValueError(f"dictionary keys must not contain {_SEP!r}, got {key!r}")
            out.update(flatten_dict(value, f"{prefix}{key}{_SEP}"))
    else:
        out[prefix.rstrip(_SEP)] = np.asarray(tree)
    return out


def unflatten_dict(flat: dict[str, Any]) -> dict:
    """Inverse of :func:`flatten_dict`."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split(_SEP)
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def write_json_atomic(path: str, payload: Any) -> None:
    atomic.write_json(path, payload, sort_keys=True)


def save_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    atomic.write_with(path, lambda f: np.savez(f, **arrays))


def range_name(lo: int, hi: int) -> str:
    """Directory name of models ``lo .. hi - 1``: ``models_<lo>-<hi - 1>``."""
    return f"models_{lo:05d}-{hi - 1:05d}"


def _sha256(*arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(f"{tuple(a.shape)} {np.asarray(a[:1]).dtype};".encode())
        for start in range(0, len(a), 4096):  # in slices (a may live on a device)
            digest.update(np.ascontiguousarray(np.asarray(a[start:start + 4096])).tobytes())
    return digest.hexdigest()[:16]


def run_fingerprint(recipe, *, seed: int, x, y, val_data, snapshot_epochs) -> dict:
    """The results-changing settings of a run, as recorded in its ``run.json``.

    The full recipe config, the seed, hashes of the candidates and of the validation data,
    the number of validation examples and the snapshot epochs. Not recorded: the number of
    models and the keep matrix (a run is extendable; ``keep.npy`` is checked row by row), and
    performance settings (chunk size, devices, eval batch size).
    """
    config = json.loads(json.dumps(dict(recipe.config), default=str))
    config.setdefault("name", recipe.name)
    record = {
        "recipe": config,
        "seed": int(seed),
        "num_examples": int(x.shape[0]),
        "data_sha256": _sha256(np.asarray(y), x),
        "val_examples": 0,
        "val_sha256": None,
        "snapshot_epochs": [int(e) for e in snapshot_epochs],
    }
    if val_data is not None:
        x_val, y_val = val_data
        record["val_examples"] = int(np.shape(x_val)[0])
        record["val_sha256"] = _sha256(np.asarray(y_val), np.asarray(x_val))
    return record


class RunDirectory:
    """One training run's directory (see the module docstring).

    Args:
      workdir: the directory (created if missing).
      fingerprint: the run's results-changing settings (plain JSON data), compared with
        ``run.json``.
      keep: the requested keep matrix ``[M, N]``.
      writer: whether this process writes the shared files (``run.json``, ``keep.npy``) and
        cleans up temp files of interrupted writes; in multi-process runs only process 0 does.

    Raises:
      ValueError: when the directory holds a different run (naming the differing settings or
        ``keep``), or a state file is corrupt (naming it and how to recover).
    """

    def __init__(self, workdir: str | os.PathLike, fingerprint: dict, keep: np.ndarray, *,
                 writer: bool = True):
        self.path = os.fspath(workdir)
        os.makedirs(self.path, exist_ok=True)
        if writer:
            atomic.clean_stale_temps(self.path)
        fingerprint = {"format": FORMAT, **fingerprint}
        meta = os.path.join(self.path, "run.json")
        existing = atomic.read_json(meta, recover=_NEW_WORKDIR)
        if existing is not None:
            if not isinstance(existing, dict) or existing.get("format") != FORMAT:
                raise ValueError(
                    f"{meta} was written by another version of hampjax (run-directory format "
                    f"{existing.get('format') if isinstance(existing, dict) else None!r}, this "
                    f"one writes {FORMAT}); {_NEW_WORKDIR}")
            changed = diff_paths(existing, fingerprint)
            if changed:
                raise ValueError(
                    f"workdir {self.path!r} holds a different run (differs in: "
                    f"{', '.join(changed)}); {_NEW_WORKDIR}")
        elif writer:
            write_json_atomic(meta, fingerprint)
        self._check_keep(keep, writer)
        self._managers: dict[tuple[int, int], Any] = {}

    def _check_keep(self, keep: np.ndarray, writer: bool) -> None:
        path = os.path.join(self.path, "keep.npy")
        if not os.path.exists(path):
            if writer:
                save_keep(path, keep)
            return
        stored = load_keep(path, recover=_NEW_WORKDIR)  # bool [M, N], never cast
        rows = min(len(stored), len(keep))
        if stored.shape[1] != keep.shape[1] or not np.array_equal(stored[:rows], keep[:rows]):
            raise ValueError(
                f"workdir {self.path!r} holds a different run (differs in: keep): the stored "
                f"keep matrix {stored.shape} does not match the first rows of the requested one "
                f"{keep.shape}; {_NEW_WORKDIR}")
        if writer and len(keep) > len(stored):
            save_keep(path, keep)  # extended: the first rows are unchanged

    def _range_dir(self, lo: int, hi: int) -> str:
        return os.path.join(self.path, range_name(lo, hi))

    def _result_path(self, lo: int, hi: int) -> str:
        return os.path.join(self._range_dir(lo, hi), "result.npz")

    def _manager(self, lo: int, hi: int):
        if (lo, hi) not in self._managers:
            import orbax.checkpoint as ocp

            # Each process checkpoints its own models independently: with several processes,
            # orbax must neither wait for the others nor leave the writing to process 0.
            index = jax.process_index()
            multiprocessing = ocp.options.MultiprocessingOptions(
                primary_host=index, active_processes={index},
                barrier_sync_key_prefix=range_name(lo, hi))
            directory = os.path.abspath(os.path.join(self._range_dir(lo, hi), "ckpt"))
            os.makedirs(directory, exist_ok=True)
            self._managers[(lo, hi)] = ocp.CheckpointManager(
                directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=2, create=False, multiprocessing_options=multiprocessing,
                    enable_async_checkpointing=False),
            )
        return self._managers[(lo, hi)]

    # -- finished models -------------------------------------------------------------------

    def finished_ranges(self) -> list[tuple[int, int]]:
        """The ``(lo, hi)`` model ranges with a finished result, sorted."""
        out = []
        for name in os.listdir(self.path):
            match = _RANGE.match(name)
            if match and os.path.exists(os.path.join(self.path, name, "result.npz")):
                out.append((int(match.group(1)), int(match.group(2)) + 1))
        return sorted(out)

    def save_result(self, lo: int, hi: int, result: dict) -> None:
        """Store the finished models ``lo .. hi - 1`` and drop their checkpoints."""
        os.makedirs(self._range_dir(lo, hi), exist_ok=True)
        arrays = flatten_dict({
            "variables": result["variables"],
            "snapshots": {f"epoch_{e}": v for e, v in result["snapshots"].items()},
            "history": {k: result[k] for k in ("train_loss", "train_acc", "val_acc", "best_epoch",
                                               "dp_overflow") if k in result},
        })
        save_npz_atomic(self._result_path(lo, hi), arrays)
        if (lo, hi) in self._managers:
            self._managers.pop((lo, hi)).close()
        shutil.rmtree(os.path.join(self._range_dir(lo, hi), "ckpt"), ignore_errors=True)

    def load_result(self, lo: int, hi: int) -> dict:
        """The stored result of models ``lo .. hi - 1`` (as :meth:`save_result` was given)."""
        path = self._result_path(lo, hi)
        recover = f"delete {os.path.dirname(path)!r} to retrain models {lo}..{hi - 1}"
        flat = atomic.load_npz(path, recover=recover)
        try:
            tree = unflatten_dict(flat)
            history = tree["history"]
            result = {
                "variables": tree["variables"],
                "snapshots": {int(k.split("_")[1]): v
                              for k, v in tree.get("snapshots", {}).items()},
                **{k: history[k] for k in ("train_loss", "train_acc", "val_acc", "best_epoch")},
                # DP-SGD Poisson overflow counts (absent from results written before them).
                "dp_overflow": history.get("dp_overflow",
                                           np.zeros(np.shape(history["best_epoch"]), np.int64)),
            }
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ValueError(f"{path} is not a training result ({type(e).__name__}: {e}); "
                             f"{recover}") from None
        if any(np.shape(a)[:1] != (hi - lo,) for a in jax.tree_util.tree_leaves(result)):
            raise ValueError(f"{path} does not hold {hi - lo} models; {recover}")
        return result

    def remove_superseded(self) -> list[str]:
        """Remove the checkpoints of unfinished model ranges whose models all have finished
        results now (left by a run with another chunking). Call once every result is written."""
        finished = self.finished_ranges()
        removed = []
        for name in os.listdir(self.path):
            match = _RANGE.match(name)
            path = os.path.join(self.path, name)
            if not match or os.path.exists(os.path.join(path, "result.npz")):
                continue
            lo, hi = int(match.group(1)), int(match.group(2)) + 1
            covered = np.zeros(hi - lo, bool)
            for a, b in finished:
                covered[max(a, lo) - lo:max(min(b, hi) - lo, 0)] = True
            if covered.all():
                if (lo, hi) in self._managers:
                    self._managers.pop((lo, hi)).close()
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    # -- in-progress checkpoints -----------------------------------------------------------

    def save_checkpoint(self, lo: int, hi: int, epochs_done: int, state: Any, history: dict,
                        snapshots: dict) -> None:
        """Checkpoint the unfinished models ``lo .. hi - 1`` (state of the padded chunk)."""
        import orbax.checkpoint as ocp

        # Host NumPy copies: a process-local jax.Array cannot be serialized by orbax in a
        # multi-process run (and the state of one chunk lives on this process only).
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]
        tree = {
            "state": {f"{i:05d}": leaf for i, leaf in enumerate(leaves)},
            "history": {k: np.stack(v, axis=1) for k, v in history.items()},
            "snapshots": {f"epoch_{e}": v for e, v in snapshots.items()},
        }
        manager = self._manager(lo, hi)
        manager.save(epochs_done, args=ocp.args.StandardSave(tree))
        manager.wait_until_finished()

    def restore(self, lo: int, hi: int, template_state: Any):
        """Latest checkpoint of models ``lo .. hi - 1`` as ``(state, history, snapshots,
        epochs_done)``, or None when there is none (a checkpoint of another model range, from
        a run with other chunking, is not used)."""
        ckpt_dir = os.path.join(self._range_dir(lo, hi), "ckpt")
        if not os.path.isdir(ckpt_dir):
            return None
        manager = self._manager(lo, hi)
        step = manager.latest_step()
        if step is None:
            return None
        where = os.path.join(ckpt_dir, str(step))
        recover = f"delete {ckpt_dir!r} to retrain models {lo}..{hi - 1} from the start"
        try:
            tree = manager.restore(step)
        except Exception as e:  # orbax raises many kinds of errors on damaged files
            raise ValueError(f"checkpoint {where} is corrupt or truncated ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); {recover}") from None
        treedef = jax.tree_util.tree_structure(template_state)
        try:
            leaves = [np.asarray(tree["state"][k]) for k in sorted(tree["state"])]
            history = {k: list(np.asarray(v).T) for k, v in tree["history"].items()}
            snapshots = {int(k.split("_")[1]): jax.tree_util.tree_map(np.asarray, v)
                         for k, v in (tree.get("snapshots") or {}).items()}
        except (KeyError, TypeError, AttributeError, IndexError, ValueError):
            leaves = None
        template_leaves = jax.tree_util.tree_leaves(template_state)
        if leaves is None or len(leaves) != len(template_leaves) or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(leaves, template_leaves)
        ):
            raise ValueError(f"checkpoint {where} does not match this run's model state; "
                             f"{recover}")
        state = jax.tree_util.tree_unflatten(treedef, leaves)
        return state, history, snapshots, int(step)
