"""Worker for test_distributed.py: one process of a 2-process jax.distributed CPU run."""

import sys

import jax
import numpy as np

from hampjax.models import get_model
from hampjax.training import balanced_keep, maybe_initialize, train_many, undefended_recipe


def main(workdir: str, out: str) -> None:
    assert maybe_initialize(), "the environment should have asked for jax.distributed"
    assert jax.process_count() == 2, jax.process_count()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    keep = balanced_keep(4, 64, seed=0)
    result = train_many(get_model("fc", 3, hidden_sizes=(8,)),
                        undefended_recipe("digits", epochs=3, batch_size=8), x, y, keep, seed=0,
                        workdir=workdir, chunk_size=1, save_every=1, progress=False)
    flat = {"/".join(str(k.key) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(result.variables)[0]}
    np.savez(out, **flat)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
