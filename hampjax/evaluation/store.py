"""Finished attack families, stored so that a killed evaluation does not recompute them.

Layout: ``<attack_dir>/<family>.npz`` (``run_dir/attacks/<defense>/<family>.npz`` under
:func:`~hampjax.evaluation.evaluate_defenses`), written atomically, holding
``"scores/<attack>"`` (float64), ``"is_member/<attack>"`` (bool), ``"attacks"`` (the attack
names in order), ``"seconds"`` (the time it took) and ``"fingerprint"``: the SHA-256 of
everything the family's scores depend on (the defense's config, settings, seed and number of
models, and the bytes of the model outputs, inputs, labels and keep matrix). A stored family
is used only when its fingerprint matches; otherwise it is recomputed and replaced (an
extended run with more shadows changes the outputs, so every family is recomputed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from typing import Any

import jax
import numpy as np

from hampjax import atomic

__all__ = ["fingerprint", "load_family", "save_family"]


def fingerprint(config: Any, arrays: dict[str, Any]) -> str:
    """SHA-256 (hex) of a JSON-able ``config`` and the bytes, dtypes and shapes of ``arrays``.

    ``arrays`` values may be pytrees of arrays (e.g. model variables); keys are hashed in
    sorted order.
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"),
                                       default=str).encode())
    for name in sorted(arrays):
        digest.update(name.encode())
        for leaf in jax.tree_util.tree_leaves(arrays[name]):
            leaf = np.ascontiguousarray(np.asarray(leaf))
            digest.update(f"{leaf.dtype.str}{leaf.shape}".encode())
            digest.update(leaf.tobytes())
    return digest.hexdigest()


def _path(attack_dir: str, family: str) -> str:
    return os.path.join(attack_dir, f"{family}.npz")


def save_family(attack_dir: str, family: str, scores: dict[str, tuple[np.ndarray, np.ndarray]],
                *, fingerprint: str, seconds: float) -> None:
    """Store a finished family's scores atomically (creates ``attack_dir``)."""
    os.makedirs(attack_dir, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "fingerprint": np.asarray(fingerprint),
        "attacks": np.asarray(list(scores), dtype=str),
        "seconds": np.asarray(float(seconds)),
    }
    for name, (s, member) in scores.items():
        arrays[f"scores/{name}"] = np.asarray(s, np.float64)
        arrays[f"is_member/{name}"] = np.asarray(member, bool)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.write_bytes(_path(attack_dir, family), buf.getvalue())


def load_family(attack_dir: str, family: str, *, fingerprint: str
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float] | None:
    """``(scores, seconds)`` of a stored family with this fingerprint, else ``None``.

    A missing, unreadable (e.g. truncated) or differently fingerprinted file reads as
    ``None``: the family is recomputed and the file replaced.
    """
    path = _path(attack_dir, family)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["fingerprint"]) != fingerprint:
                return None
            names = [str(a) for a in npz["attacks"]]
            scores = {a: (npz[f"scores/{a}"], npz[f"is_member/{a}"]) for a in names}
            return scores, float(npz["seconds"])
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError):
        return None
