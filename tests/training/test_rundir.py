"""Run directories: extendable runs, resume across chunkings, refusals, corrupt files, locking."""

import glob
import os

import jax
import numpy as np
import pytest

from hampjax.models import get_model
from hampjax.runlock import RunLock, RunLockError
from hampjax.training import balanced_keep, train_many, undefended_recipe
from hampjax.training import engine

N, D, C = 32, 5, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, D)).astype(np.float32), rng.integers(0, C, N)


@pytest.fixture(scope="module")
def model():
    return get_model("fc", C, hidden_sizes=(4,))


def recipe(**kw):
    return undefended_recipe("digits", epochs=2, batch_size=8).replace(**kw)


ONE_DEVICE = dict(devices=jax.devices()[:1], progress=False)


def assert_equal_trees(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def rows(tree, start, stop):
    return jax.tree_util.tree_map(lambda a: a[start:stop], tree)


def test_extended_run_trains_only_the_new_models(data, model, tmp_path):
    x, y = data
    keep = balanced_keep(4, N, seed=0)
    workdir = str(tmp_path / "run")
    reference = train_many(model, recipe(), x, y, keep, seed=1, chunk_size=2, **ONE_DEVICE)
    first = train_many(model, recipe(), x, y, keep[:2], seed=1, chunk_size=2, workdir=workdir,
                       **ONE_DEVICE)
    assert (first.models_trained, first.models_loaded) == (2, 0)
    assert os.listdir(workdir).count("models_00000-00001") == 1

    ran = engine.TRACE_COUNTS["epochs_run"]
    extended = train_many(model, recipe(), x, y, keep, seed=1, chunk_size=2, workdir=workdir,
                          **ONE_DEVICE)
    assert engine.TRACE_COUNTS["epochs_run"] - ran == 2  # one new chunk of 2 models, 2 epochs
    assert (extended.models_trained, extended.models_loaded) == (2, 2)
    assert_equal_trees(rows(extended.variables, 0, 2), first.variables)
    assert_equal_trees(extended.variables, reference.variables)
    np.testing.assert_array_equal(extended.train_loss, reference.train_loss)
    np.testing.assert_array_equal(np.load(os.path.join(workdir, "keep.npy")), keep)
    assert sorted(glob.glob(os.path.join(workdir, "models_*"))) == [
        os.path.join(workdir, "models_00000-00001"), os.path.join(workdir, "models_00002-00003")]

    # Fewer models than stored: everything is loaded, nothing trains.
    fewer = train_many(model, recipe(), x, y, keep[:3], seed=1, workdir=workdir, **ONE_DEVICE)
    assert (fewer.models_trained, fewer.models_loaded) == (0, 3)
    assert_equal_trees(fewer.variables, rows(reference.variables, 0, 3))

    # A keep matrix whose first rows differ from the stored ones is refused, naming keep.
    other = keep.copy()
    other[0] = ~other[0]
    with pytest.raises(ValueError, match=r"holds a different run \(differs in: keep\)"):
        train_many(model, recipe(), x, y, other, seed=1, workdir=workdir, **ONE_DEVICE)


class _Interrupt(Exception):
    pass


def _interrupt_after(updates):
    calls = {"n": 0}

    class Bar(engine._NoBar):
        def update(self, n=1):
            calls["n"] += 1
            if calls["n"] > updates:
                raise _Interrupt()

    return lambda total, enabled: Bar()


def _interrupted(model, x, y, keep, workdir, monkeypatch, updates, **kw):
    with monkeypatch.context() as mp:
        mp.setattr(engine, "_progress_bar", _interrupt_after(updates))
        with pytest.raises(_Interrupt):
            train_many(model, recipe(epochs=3), x, y, keep, seed=2, workdir=workdir,
                       save_every=1, devices=jax.devices()[:1], **kw)


def test_resume_with_another_chunk_size(data, model, tmp_path, monkeypatch):
    x, y = data
    keep = balanced_keep(4, N, seed=3)
    workdir = str(tmp_path / "run")
    # Chunks of 2: models 0-1 finish (3 updates), models 2-3 stop after 1 checkpointed epoch.
    _interrupted(model, x, y, keep, workdir, monkeypatch, 3 + 1, chunk_size=2)
    assert os.path.exists(os.path.join(workdir, "models_00000-00001", "result.npz"))
    assert os.path.isdir(os.path.join(workdir, "models_00002-00003", "ckpt"))
    # Chunks of 1: 0-1 are loaded, 2 and 3 train as single-model chunks (the checkpoint of the
    # range 2-3 does not match the new chunking and is not used).
    ran = engine.TRACE_COUNTS["epochs_run"]
    resumed = train_many(model, recipe(epochs=3), x, y, keep, seed=2, workdir=workdir,
                         chunk_size=1, **ONE_DEVICE)
    assert engine.TRACE_COUNTS["epochs_run"] - ran == 6
    assert (resumed.models_trained, resumed.models_loaded) == (2, 2)
    assert sorted(n for n in os.listdir(workdir) if not n.startswith(".")) == [
        "keep.npy", "models_00000-00001", "models_00002-00002", "models_00003-00003",
        "run.json"]  # the superseded checkpoint of 2-3 is removed
    reference = train_many(model, recipe(epochs=3), x, y, keep, seed=2, chunk_size=1,
                           **ONE_DEVICE)
    assert_equal_trees(rows(resumed.variables, 2, 4), rows(reference.variables, 2, 4))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                           resumed.variables, reference.variables)


@pytest.mark.parametrize("change, field", [
    (dict(epochs=1), "recipe.epochs"),
    (dict(batch_size=4), "recipe.batch_size"),
    (dict(shuffle="once"), "recipe.shuffle"),
    (dict(selection="best_val"), "recipe.selection"),
])
def test_changed_setting_is_refused_naming_the_field(data, model, tmp_path, change, field):
    x, y = data
    keep = balanced_keep(2, N, seed=0)
    workdir = str(tmp_path / "run")
    val = (x[:4], y[:4])
    train_many(model, recipe(epochs=2), x, y, keep[:1], seed=0, val_data=val, workdir=workdir,
               **ONE_DEVICE)
    ran = engine.TRACE_COUNTS["epochs_run"]
    with pytest.raises(ValueError, match=rf"differs in: {field}\)"):
        train_many(model, recipe(epochs=2).replace(**change), x, y, keep, seed=0, val_data=val,
                   workdir=workdir, **ONE_DEVICE)
    assert engine.TRACE_COUNTS["epochs_run"] == ran  # refused before training


def test_changed_data_seed_or_snapshots_are_refused(data, model, tmp_path):
    x, y = data
    keep = balanced_keep(2, N, seed=0)[:1]
    workdir = str(tmp_path / "run")
    kw = dict(workdir=workdir, **ONE_DEVICE)
    train_many(model, recipe(epochs=1), x, y, keep, seed=0, **kw)
    for args, extra, field in [
        ((x, y), dict(seed=1), "seed"),
        ((x + 1, y), dict(seed=0), "data_sha256"),
        ((x, y), dict(seed=0, val_data=(x[:3], y[:3])), "val_examples, val_sha256"),
        ((x, y), dict(seed=0, snapshot_epochs=(0,)), "snapshot_epochs"),
    ]:
        with pytest.raises(ValueError, match=rf"differs in: {field}\)"):
            train_many(model, recipe(epochs=1), *args, keep, **extra, **kw)
    # Performance settings do not block: another chunk size and eval batch size load the run.
    again = train_many(model, recipe(epochs=1), x, y, keep, seed=0, chunk_size=4,
                       eval_batch_size=7, **kw)
    assert again.models_loaded == 1


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(max(1, os.path.getsize(path) // 2))


def test_corrupt_state_files_are_named_with_a_way_out(data, model, tmp_path, monkeypatch):
    x, y = data
    keep = balanced_keep(4, N, seed=0)
    workdir = str(tmp_path / "run")
    # Models 0-1 finish; models 2-3 stop after one checkpointed epoch.
    _interrupted(model, x, y, keep, workdir, monkeypatch, 3 + 1, chunk_size=2, progress=False)
    run = lambda: train_many(model, recipe(epochs=3), x, y, keep, seed=2, workdir=workdir,
                             save_every=1, chunk_size=2, **ONE_DEVICE)

    ckpt_dir = os.path.join(workdir, "models_00002-00003", "ckpt")
    for path in glob.glob(os.path.join(ckpt_dir, "1", "**", "*"), recursive=True):
        if os.path.isfile(path) and os.path.getsize(path) > 1:
            _truncate(path)
    with pytest.raises(ValueError, match=r"checkpoint .*models_00002-00003.* delete .* retrain"):
        run()

    result = os.path.join(workdir, "models_00000-00001", "result.npz")
    _truncate(result)
    with pytest.raises(ValueError, match=r"result\.npz is corrupt or truncated.*delete .*"
                                         r"models_00000-00001.* to retrain models 0\.\.1"):
        run()
    os.unlink(result)

    keep_path = os.path.join(workdir, "keep.npy")
    _truncate(keep_path)
    with pytest.raises(ValueError, match=r"keep\.npy is corrupt or truncated.*new workdir"):
        run()

    meta = os.path.join(workdir, "run.json")
    _truncate(meta)
    with pytest.raises(ValueError, match=r"run\.json is corrupt or truncated.*new workdir"):
        run()
    with open(meta, "w") as f:  # the chunk_<i> layout of older versions had no "format"
        f.write('{"recipe": "undefended", "recipe_config": {}}')
    with pytest.raises(ValueError, match=r"another version of hampjax.*new workdir"):
        run()


def test_stale_temp_files_are_removed_and_the_lock_is_held(data, model, tmp_path):
    x, y = data
    keep = balanced_keep(2, N, seed=0)[:1]
    workdir = tmp_path / "run"
    (workdir / "models_00000-00000").mkdir(parents=True)
    stale = workdir / "models_00000-00000" / ".tmp-abc123-result.npz.tmp"
    stale.write_bytes(b"half a file")
    os.utime(stale, (1, 1))  # left by a process killed long ago
    other = workdir / "notes.tmp"
    other.write_bytes(b"not ours")
    os.utime(other, (1, 1))
    train_many(model, recipe(epochs=1), x, y, keep, seed=0, workdir=str(workdir), **ONE_DEVICE)
    assert not stale.exists() and other.exists()
    assert not (workdir / ".lock.json").exists()  # released

    with RunLock(workdir, what="evaluation"):
        with pytest.raises(RunLockError, match=rf"locked by pid {os.getpid()} .*evaluation"):
            train_many(model, recipe(epochs=1), x, y, keep, seed=0, workdir=str(workdir),
                       **ONE_DEVICE)
        # A nested lock on another directory (evaluation run_dir -> train/<defense>) works.
        train_many(model, recipe(epochs=1), x, y, keep, seed=0,
                   workdir=str(workdir / "train" / "d"), **ONE_DEVICE)
