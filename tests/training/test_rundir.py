"""Run directories: extendable runs, resume across chunkings, refusals naming the changed setting
(every leaf of the recipe spec), corrupt files, stale temp files, locking."""

import glob
import os
import re

import jax
import numpy as np
import pytest

from hampjax.models import get_model
from hampjax.runlock import RunLock, RunLockError
from hampjax.training import (
    PRESETS,
    balanced_keep,
    build_recipe,
    preset_spec,
    train_many,
    undefended_recipe,
)
from hampjax.training import checkpoint, engine
from hampjax.training import defense_params, spec_base, spec_parts
from hampjax.training import spec as spec_module

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


# Bases for the every-field test: one per defense kind, so that every kind's parameters are
# leaves of some base.
_BASES = [("undefended", "digits"), ("hamp", "digits"), ("label_smoothing", "digits"),
          ("relaxloss", "purchase100_fc"), ("weighted_smoothing", "cifar10"),
          ("trust", "standard"), ("trust", "label_smoothing"), ("trust", "l2"),
          ("advreg", "digits"), ("advreg", "cifar10_resnet20"), ("dp_sgd", "digits"),
          ("selena", "digits"), ("dmp", "digits"), ("memguard", "digits")]
# Settings a base needs besides epochs=1, batch_size=8 (AdvReg: more epochs than warm-ups, and
# digits with the default attack steps so that adversary.game can change alone).
_BASE_CHANGES = {("advreg", "digits"): {"epochs": 2, "adversary.attack_steps": 52,
                                        "adversary.attack_batch_size": 4},
                 ("advreg", "cifar10_resnet20"): {"epochs": 4},
                 # SELENA with the default teacher, so that "teacher" can change alone.
                 ("selena", "digits"): {"teacher": None},
                 # MemGuard with Phase II on, so that its budget can change alone.
                 ("memguard", "digits"): {"output.memguard.phase2": True}}


def _leaves(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# Every choice the spec modules know (theirs and the defenses' they import), as candidates.
_SPEC_MODULES = (spec_module, spec_base, spec_parts, defense_params)
_STRINGS = sorted({v for table in PRESETS.values() for s in table.values()
                   for _, v in _leaves(s.to_dict()) if isinstance(v, str)}
                  | {v for module in _SPEC_MODULES for name in dir(module) if name.isupper()
                     for v in (getattr(module, name) if isinstance(
                         getattr(module, name), tuple) else ()) if isinstance(v, str)})


def _candidates(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 0.5, value + 0.01, 0.5, 0.1, 2.0] if value else [0.1, 0.5, 1.0]
    if value is None:  # the last: a teacher recipe
        return [0.5, 1.0, 1, "x", preset_spec("undefended", "digits").to_dict()]
    if isinstance(value, list):
        return [value + [value[-1] + 7]] if value else [[3]]
    if isinstance(value, str):
        return [s for s in _STRINGS if s != value] + [value + "_x"]
    raise AssertionError(value)


def _changed_specs(base):
    """(dotted path, spec with only that leaf changed) for every leaf that can change alone."""
    out, fixed = [], []
    for path, value in _leaves(base.to_dict()):
        for candidate in _candidates(value):
            try:
                changed = base.replace(**{path: candidate})
            except (ValueError, TypeError):
                continue
            if spec_module.diff_paths(changed.to_dict(), base.to_dict()) == [path]:
                out.append((path, changed))
                break
        else:
            fixed.append(path)
    return out, fixed


def test_every_changed_spec_field_is_refused_by_name(data, model, tmp_path):
    x, y = data
    keep = balanced_keep(2, N, seed=0)[:1]
    val = (x[:4], y[:4])
    kw = dict(seed=0, val_data=val, **ONE_DEVICE)
    leaves, covered, fixed_everywhere = set(), set(), None
    for i, (defense, preset) in enumerate(_BASES):
        base = preset_spec(defense, preset, **{"epochs": 1, "batch_size": 8,
                                               **_BASE_CHANGES.get((defense, preset), {})})
        workdir = str(tmp_path / f"run{i}")
        distills = spec_module.DEFENSES[base.defense.kind].targets != "none"  # SELENA, DMP
        # DMP's students take per-model data (StudentData); any pytree with the model axis
        # first passes train_many's check before the run directory refuses the change.
        dmp_data = {"w": np.zeros((1, 3), np.float32)}
        targets = (dmp_data if base.reference.kind != "none"
                   else np.zeros((1, N, C), np.float32))
        base_kw = dict(kw, targets=targets) if distills else kw
        if i == 0:  # a tiny run writes run.json ...
            train_many(model, build_recipe(base), x, y, keep, workdir=workdir, **base_kw)
        else:  # ... as opening the run directory does (no need to train every base)
            fingerprint = checkpoint.run_fingerprint(
                build_recipe(base), seed=0, x=x, y=y, val_data=val, snapshot_epochs=())
            if distills:
                fingerprint["targets_shape"] = ([[3]] if base.reference.kind != "none"
                                                else [N, C])
            checkpoint.RunDirectory(workdir, fingerprint, keep)
        ran = engine.TRACE_COUNTS["epochs_run"]
        changes, fixed = _changed_specs(base)
        for path, changed in changes:
            with pytest.raises(ValueError, match=rf"differs in: recipe\.{re.escape(path)}\)"):
                train_many(model, build_recipe(changed), x, y, keep, workdir=workdir,
                           **base_kw)
            covered.add(path)
        assert engine.TRACE_COUNTS["epochs_run"] == ran  # every refusal came before training
        # A teacher recipe's own leaves (DMP's base) are a whole recipe's: those that can
        # change alone are refused above; the bases' own leaves must all be covered.
        leaves |= {path for path, _ in _leaves(base.to_dict()) if not path.startswith("teacher.")}
        fixed_everywhere = set(fixed) if fixed_everywhere is None else fixed_everywhere & set(fixed)
        if defense == "undefended":  # a kind changes with its part: another defense
            other = base.replace(defense=preset_spec("label_smoothing", preset).defense)
            with pytest.raises(ValueError, match=r"differs in: [^)]*recipe\.defense\.kind[,)]"):
                train_many(model, build_recipe(other), x, y, keep, workdir=workdir, **kw)
    # Every leaf of every base changed alone and was refused, except those that cannot change
    # alone: a defense's kind (its parameters change with it, above), the example state its
    # defense needs, the one valid source of random inputs, and the adversary's kind (AdvReg
    # needs more epochs than its warm-up, the default 1: none of the bases has epochs=1 with it).
    # DMP's reference set: its kind and generator change with their own settings (a given set
    # needs its digest, a DC-GAN its filters and image size), which stay at their defaults
    # for the tabular GAN of the base.
    assert fixed_everywhere == {"defense.kind", "example_state.kind", "output.random_inputs",
                                "adversary.kind", "reference.kind", "reference.generator",
                                "reference.filters", "reference.image_size",
                                "reference.given_sha256"}
    assert {"teacher.epochs", "teacher.optimizer.learning_rate"} <= covered
    assert {p for p in covered if not p.startswith("teacher.")} | fixed_everywhere == leaves
