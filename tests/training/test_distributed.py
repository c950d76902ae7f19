"""Two jax.distributed processes on localhost CPU split the chunks and agree with one process."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from hampjax.models import get_model
from hampjax.training import balanced_keep, train_many, undefended_recipe
from hampjax.training import distributed

WORKER = os.path.join(os.path.dirname(__file__), "_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_maybe_initialize_does_nothing_unless_asked(monkeypatch):
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.delenv("HAMPJAX_DISTRIBUTED", raising=False)
    assert distributed.maybe_initialize() is False
    assert distributed.process_count() == 1 and distributed.is_main_process()


def test_two_process_run_matches_single_process(tmp_path):
    # Each process trains its chunks with mid-training orbax checkpoints (save_every=1).
    port = _free_port()
    workdir = str(tmp_path / "run")
    procs = []
    for pid in range(2):
        env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_")}
        env.update(JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid),
                   JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, workdir, str(tmp_path / f"out{pid}.npz")], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("distributed workers timed out")
        outputs.append(out)
        assert p.returncode == 0, out[-3000:]
    # Each process trained its own chunks (0, 2 and 1, 3) and read the others from workdir.
    for c in range(4):
        assert os.path.exists(os.path.join(workdir, f"models_{c:05d}-{c:05d}", "result.npz"))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    single = train_many(get_model("fc", 3, hidden_sizes=(8,)),
                        undefended_recipe("digits", epochs=3, batch_size=8), x, y,
                        balanced_keep(4, 64, seed=0), seed=0, chunk_size=1,
                        devices=jax.devices()[:1], progress=False)
    flat = {"/".join(str(k.key) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(single.variables)[0]}
    for pid in range(2):
        with np.load(tmp_path / f"out{pid}.npz") as got:
            assert sorted(got.files) == sorted(flat)
            for name in flat:
                np.testing.assert_allclose(got[name], flat[name], rtol=1e-5, atol=1e-6)


def test_importing_hampjax_leaves_the_backend_uninitialized():
    # jax.distributed.initialize() must run before any backend work, so imports must not do any.
    code = ("import hampjax, hampjax.training, hampjax.models, hampjax.attacks, hampjax.data\n"
            "from jax._src import xla_bridge\n"
            "assert not xla_bridge._backends, 'importing hampjax initialized a JAX backend'\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
