"""Run directories: resumable checkpoints (orbax) and atomically written results.

Layout of a ``workdir``::

    run.json                  what was trained (recipe config, seed, keep and data hashes, ...)
    keep.npy                  the membership matrix [M, N]
    chunk_00000/ckpt/<epoch>/ orbax checkpoints of an unfinished chunk (the latest 2 kept)
    chunk_00000/result.npz    a finished chunk: selected variables, histories, snapshots

Starting a run again in the same ``workdir`` resumes it: finished chunks are loaded, unfinished
ones continue from their latest checkpoint. A ``workdir`` whose ``run.json`` describes a
different run is refused rather than silently mixed.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from hampjax import atomic
from hampjax.training.membership import save_keep

__all__ = ["RunDirectory", "flatten_dict", "unflatten_dict", "write_json_atomic", "save_npz_atomic"]

_SEP = "/"


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
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    atomic.write_bytes(path, text.encode("utf-8"))


def save_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    atomic.write_with(path, lambda f: np.savez(f, **arrays))


class RunDirectory:
    """One training run's directory (see the module docstring)."""

    def __init__(self, workdir: str | os.PathLike, fingerprint: dict, keep: np.ndarray):
        self.path = os.fspath(workdir)
        os.makedirs(self.path, exist_ok=True)
        meta = os.path.join(self.path, "run.json")
        if os.path.exists(meta):
            with open(meta) as f:
                existing = json.load(f)
            if existing != json.loads(json.dumps(fingerprint)):
                changed = sorted(k for k in set(existing) | set(fingerprint)
                                 if existing.get(k) != fingerprint.get(k))
                raise ValueError(
                    f"workdir {self.path!r} holds a different run (differs in: "
                    f"{', '.join(changed)}); use a new workdir or delete it"
                )
        else:
            write_json_atomic(meta, fingerprint)
        if not os.path.exists(os.path.join(self.path, "keep.npy")):
            save_keep(os.path.join(self.path, "keep.npy"), keep)
        self._managers: dict[int, Any] = {}

    def _chunk_dir(self, chunk: int) -> str:
        return os.path.join(self.path, f"chunk_{chunk:05d}")

    def _result_path(self, chunk: int) -> str:
        return os.path.join(self._chunk_dir(chunk), "result.npz")

    def _manager(self, chunk: int):
        if chunk not in self._managers:
            import orbax.checkpoint as ocp

            # Each process checkpoints its own chunks independently: with several processes,
            # orbax must neither wait for the others nor leave the writing to process 0.
            index = jax.process_index()
            multiprocessing = ocp.options.MultiprocessingOptions(
                primary_host=index, active_processes={index},
                barrier_sync_key_prefix=f"chunk_{chunk:05d}")
            directory = os.path.abspath(os.path.join(self._chunk_dir(chunk), "ckpt"))
            os.makedirs(directory, exist_ok=True)
            self._managers[chunk] = ocp.CheckpointManager(
                directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=2, create=False, multiprocessing_options=multiprocessing,
                    enable_async_checkpointing=False),
            )
        return self._managers[chunk]

    # -- finished chunks -------------------------------------------------------------------

    def chunk_done(self, chunk: int) -> bool:
        return os.path.exists(self._result_path(chunk))

    def save_chunk(self, chunk: int, result: dict) -> None:
        os.makedirs(self._chunk_dir(chunk), exist_ok=True)
        arrays = flatten_dict({
            "variables": result["variables"],
            "snapshots": {f"epoch_{e}": v for e, v in result["snapshots"].items()},
            "history": {k: result[k] for k in ("train_loss", "train_acc", "val_acc", "best_epoch")},
        })
        save_npz_atomic(self._result_path(chunk), arrays)
        # The checkpoints of a finished chunk are no longer needed.
        if chunk in self._managers:
            self._managers.pop(chunk).close()
        shutil.rmtree(os.path.join(self._chunk_dir(chunk), "ckpt"), ignore_errors=True)

    def load_chunk(self, chunk: int) -> dict:
        with np.load(self._result_path(chunk), allow_pickle=False) as data:
            tree = unflatten_dict({k: data[k] for k in data.files})
        history = tree["history"]
        return {
            "variables": tree["variables"],
            "snapshots": {int(k.split("_")[1]): v for k, v in tree.get("snapshots", {}).items()},
            **{k: history[k] for k in ("train_loss", "train_acc", "val_acc", "best_epoch")},
        }

    # -- in-progress checkpoints -----------------------------------------------------------

    def save_checkpoint(self, chunk: int, epochs_done: int, state: Any, history: dict,
                        snapshots: dict) -> None:
        import orbax.checkpoint as ocp

        # Host NumPy copies: a process-local jax.Array cannot be serialized by orbax in a
        # multi-process run (and the state of one chunk lives on this process only).
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]
        tree = {
            "state": {f"{i:05d}": leaf for i, leaf in enumerate(leaves)},
            "history": {k: np.stack(v, axis=1) for k, v in history.items()},
            "snapshots": {f"epoch_{e}": v for e, v in snapshots.items()},
        }
        manager = self._manager(chunk)
        manager.save(epochs_done, args=ocp.args.StandardSave(tree))
        manager.wait_until_finished()

    def restore(self, chunk: int, template_state: Any):
        """Latest checkpoint of a chunk as ``(state, history, snapshots, epochs_done)``, or None."""
        manager = self._manager(chunk)
        step = manager.latest_step()
        if step is None:
            return None
        tree = manager.restore(step)
        treedef = jax.tree_util.tree_structure(template_state)
        leaves = [np.asarray(tree["state"][k]) for k in sorted(tree["state"])]
        template_leaves = jax.tree_util.tree_leaves(template_state)
        if len(leaves) != len(template_leaves) or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(leaves, template_leaves)
        ):
            raise ValueError(
                f"checkpoint {os.path.join(self._chunk_dir(chunk), 'ckpt', str(step))} does not "
                "match this run's model state; use a new workdir"
            )
        state = jax.tree_util.tree_unflatten(treedef, leaves)
        history = {k: list(np.asarray(v).T) for k, v in tree["history"].items()}
        snapshots = {int(k.split("_")[1]): jax.tree_util.tree_map(np.asarray, v)
                     for k, v in (tree.get("snapshots") or {}).items()}
        return state, history, snapshots, int(step)
