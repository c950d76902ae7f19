"""DMP (Shejwalkar & Houmansadr 2021): the reference spec, students on regenerated and
teacher-labelled reference sets, the given-set path and the evaluation end to end."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.evaluation import Defense, EvalData, evaluate_defense
from hampjax.evaluation import families as families_module
from hampjax.models import get_model, model_functions
from hampjax.training import (
    PRESETS,
    AdversarySpec,
    CrossEntropyParams,
    RecipeSpec,
    ReferenceInputs,
    ReferenceSpec,
    StudentData,
    build_recipe,
    load_reference_npy,
    model_key,
    preset_spec,
    reference_sha256,
    train_many,
    train_students,
)
from hampjax.training import reference as reference_module
from hampjax.training.gan import SAMPLE_STREAM, gan_functions, init_gan

MODEL = get_model("fc", 10, hidden_sizes=(8,))
D = 12  # features of the synthetic tests


def digits_data(num_candidates=120, num_test=40):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0 - 0.3).astype(np.float32).reshape(len(digits.images), -1)
    y = digits.target.astype(np.int32)
    n = num_candidates + num_test
    return EvalData(x=x[num_test:n], y=y[num_test:n], x_test=x[:num_test], y_test=y[:num_test],
                    normalization=((0.3,), (1.0,)))


def dmp_spec(**changes):
    spec = preset_spec("dmp", "digits", epochs=1, **{
        "reference.size": 40, "reference.gan_epochs": 1, "reference.gan_batch_size": 32,
        "reference.hidden": (8,), "reference.noise_dim": 4, "batch_size": 16, **changes})
    return spec.replace(teacher=spec.teacher.replace(epochs=1))


# -- spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=5), "reference.size is not used"),
    (dict(kind="gan"), "reference.size .* must be >= 1"),
    (dict(kind="gan", size=3, hidden=(4,)), "reference.hidden is not used with reference.gen"),
    (dict(kind="gan", size=3, generator="tabular", filters=8),
     "reference.filters is not used with reference.generator='tabular'"),
    (dict(kind="gan", size=3, hidden=()), "reference.hidden must be a non-empty"),
    (dict(kind="gan", size=3, gan_learning_rate=0.0), "reference.gan_learning_rate"),
    (dict(kind="gan", size=3, image_size=12), "power of 2"),
    (dict(kind="gan", size=3, generator="tabular", threshold=1.5), "reference.threshold"),
    (dict(kind="gan", size=3, sample_mode="batch"), "reference.sample_mode"),
    (dict(kind="gan", size=3, given_sha256="ab"), "reference.given_sha256 is not used"),
    (dict(kind="given"), "reference.given_sha256 must be the 64"),
    (dict(kind="given", given_sha256="0" * 64, size=3), "reference.size is not used"),
    (dict(kind="what"), "reference.kind"),
])
def test_reference_spec_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReferenceSpec(**kwargs)


def test_reference_needs_a_distillation_student_and_round_trips():
    spec = preset_spec("dmp", "cifar10")
    assert spec.reference.kind == "gan" and spec.teacher == PRESETS["undefended"]["cifar10"]
    assert RecipeSpec.from_dict(spec.to_dict()) == spec
    assert spec.replace(**{"reference.size": 10}).reference.size == 10
    with pytest.raises(ValueError, match="needs a defense whose loss reads teacher logits"):
        spec.replace(defense=CrossEntropyParams(), teacher=None)
    with pytest.raises(ValueError, match="cannot be combined with adversary.kind"):
        spec.replace(adversary=AdversarySpec(kind="advreg"))
    with pytest.raises(ValueError, match="teacher must be a plain recipe"):
        spec.replace(teacher=spec.teacher.replace(
            defense=spec.defense, reference=spec.reference))
    assert set(PRESETS["dmp"]) == {"texas100", "location30", "cifar10", "cifar100", "digits"}
    location = PRESETS["dmp"]["location30"]
    assert (location.reference.passes_per_epoch, location.reference.threshold) == (2, 0.5)
    assert location.optimizer.momentum == 0.99 and location.reset_optimizer_each_epoch


# -- students on generated samples --------------------------------------------------------------


@pytest.fixture(scope="module")
def students():
    """Two models' teachers (fresh fc nets) and generators (fresh tabular GANs)."""
    spec = dmp_spec()
    init_fn, _ = model_functions(MODEL)
    teachers = jax.jit(jax.vmap(lambda k: init_fn(k, jnp.zeros((1, D)))))(
        jax.random.split(jax.random.key(0), 2))
    fns = gan_functions(spec.reference, (D,))
    generators = jax.jit(jax.vmap(lambda k: init_gan(fns, k).generator))(
        jax.random.split(jax.random.key(1), 2))
    data = StudentData(jax.device_get(teachers), jax.device_get(generators),
                       np.full((2, 1), 0.3, np.float32), np.full((2, 1), 2.0, np.float32))
    return spec, data


def _config(recipe, data, keep):
    programs = reference_module.build_programs(
        MODEL, *model_functions(MODEL), recipe, keep=keep, sample_x=np.zeros((1, D), np.float32),
        has_val=False, eval_batch_size=64, donate=False, loop="scan", steps_per_call=4,
        students=data)
    return programs.epoch_fn.config


@pytest.mark.parametrize("mode", ["train_bn", pytest.param("eval_bn", marks=pytest.mark.slow)])
def test_student_batches_are_teacher_logits_on_regenerated_samples(students, mode):
    spec, data = students
    spec = spec.replace(**{"reference.sample_mode": mode, "reference.passes_per_epoch": 2,
                           "shuffle": "every_epoch"})
    config = _config(build_recipe(spec), data, np.ones((2, 5), bool))
    R, B = spec.reference.size, spec.batch_size  # 40 rows, batches of 16: 3 steps per pass
    fns = gan_functions(spec.reference, (D,))
    _, apply_fn = model_functions(MODEL)
    m, seed, epoch = 1, 7, 3
    key = model_key(seed, m)
    one = jax.tree_util.tree_map(lambda a: a[m], data)
    rows, where, _ = jax.jit(lambda k: reference_module.student_steps(config, k, epoch))(key)
    rows, where = np.asarray(rows), np.asarray(where)
    assert rows.shape == (6, B)
    for p in range(2):  # every pass covers every row once
        real = rows[3 * p:3 * p + 3][where[3 * p:3 * p + 3]]
        assert sorted(real.tolist()) == list(range(R))
    if mode == "train_bn":  # batches are whole groups of consecutive rows
        assert all((r - r[0] == np.arange(B)).all() and r[0] % B == 0 for r in rows)
    assert not np.array_equal(rows[:3], rows[3:])  # a fresh order per pass
    batch = jax.jit(lambda r: reference_module.student_batch(config, one, key, None, r))
    skey = jax.random.fold_in(key, SAMPLE_STREAM)
    for s in range(len(rows)):
        inputs, logits = batch(jnp.asarray(rows[s]))
        # Slow reference: each row's noise alone, the generator on the batch (its BatchNorm
        # statistics in train_bn), then each row through the teacher alone.
        z = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(skey, int(r)), (4,)))
                      for r in rows[s]])
        if mode == "train_bn":
            g, _ = fns.generator.apply(one.generator, z, train=True, mutable=["batch_stats"])
        else:
            g = fns.generator.apply(one.generator, z, train=False)
        expected_x = (np.asarray(g) - 0.3) / 2.0
        np.testing.assert_allclose(inputs, expected_x, rtol=1e-5, atol=1e-6)
        expected = np.concatenate([np.asarray(apply_fn(one.teacher, expected_x[i:i + 1],
                                                       train=False)[0]) for i in range(B)])
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_students_never_see_the_candidates_and_loops_agree(students):
    spec, data = students
    recipe = build_recipe(spec)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, D)).astype(np.float32), rng.integers(0, 10, 30)
    keep = np.zeros((2, 30), bool)
    keep[0, :15], keep[1, 15:] = True, True
    def run(xs, **kw):
        return train_many(MODEL, recipe, xs, y, keep, seed=0, targets=data, progress=False,
                          devices=jax.devices()[:1], **kw)

    first = run(x, loop="scan")
    other = run(rng.normal(size=x.shape).astype(np.float32), loop="scan")
    host = run(x, loop="host")
    assert host.performance["loop"] == "host"
    for a, b, c in zip(*(jax.tree_util.tree_leaves(r.variables) for r in (first, other, host))):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(first.train_loss))
    # The accelerators' chunk size comes from the compiled epoch program's footprint.
    from hampjax.training import engine

    programs = reference_module.build_programs(
        MODEL, *model_functions(MODEL), recipe, keep=keep, sample_x=x[:1], has_val=False,
        eval_batch_size=64, donate=False, loop="scan", steps_per_call=4, students=data)
    dummy = engine.TrainData(jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(x[:1]),
                             jnp.zeros((1,), jnp.int32))
    footprint = engine.measure_footprint(programs, 0, dummy)
    assert footprint.per_model > 0 and footprint.shared > 0
    with pytest.raises(ValueError, match="targets must be the per-model data"):
        train_many(MODEL, recipe, x, y, keep, seed=0, progress=False)


# -- the given path --------------------------------------------------------------------------


def test_load_reference_npy_checks_the_file(tmp_path):
    good = np.random.default_rng(0).normal(size=(6, D)).astype(np.float32)
    path = str(tmp_path / "ref.npy")
    np.save(path, good)
    np.testing.assert_array_equal(load_reference_npy(path, (D,)), good)
    cases = {
        "objects.npy": (np.array([{"a": 1}], dtype=object), "pickled objects"),
        "shape.npy": (good[:, :5], r"must have shape \[R, 12\]"),
        "ints.npy": (np.ones((3, D), np.int64), "must hold floats"),
        "nan.npy": (np.where(np.eye(6, D) > 0, np.nan, good), "must be finite"),
        "empty.npy": (np.zeros((0, D), np.float32), "at least one row"),
    }
    for name, (array, match) in cases.items():
        np.save(str(tmp_path / name), array, allow_pickle=True)
        with pytest.raises(ValueError, match=match):
            load_reference_npy(str(tmp_path / name), (D,))
    with pytest.raises(ValueError, match="not a readable .npy"):
        load_reference_npy(str(tmp_path / "missing.npy"), (D,))


def test_given_reference_set_trains_students_labelled_by_their_teachers(students):
    _, data = students
    teachers = data.teacher
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, D)).astype(np.float32), rng.integers(0, 10, 30)
    keep = np.zeros((2, 30), bool)
    keep[0, :15], keep[1, 15:] = True, True
    x_ref = rng.normal(size=(20, D)).astype(np.float32)
    digest = reference_sha256(x_ref)
    spec = dmp_spec().replace(reference=ReferenceSpec(kind="given", given_sha256=digest))
    run = lambda xr, recipe=build_recipe(spec): train_students(  # noqa: E731
        MODEL, recipe, teachers, x, y, keep, seed=0, inputs=ReferenceInputs(x_reference=xr))
    result = run(x_ref)
    assert result.gans is None and np.all(np.isfinite(result.students.train_loss))
    assert result.students.keep.shape == (2, 20) and result.students.keep.all()
    with pytest.raises(ValueError, match="not the set the recipe names"):
        run(x_ref[::-1].copy())
    with pytest.raises(ValueError, match="needs the reference set"):
        run(None)
    with pytest.raises(ValueError, match="x_reference must have shape"):
        run(x_ref[:, :3])


# -- end to end --------------------------------------------------------------------------------


def test_dmp_evaluation_end_to_end_resumes_without_retraining(tmp_path, monkeypatch):
    monkeypatch.setattr(families_module, "FAMILY_ORDER", ("metric",))
    data = digits_data()
    defense = Defense("dmp", build_recipe(dmp_spec()))
    workdir = str(tmp_path / "train")
    result = evaluate_defense(MODEL, defense, data, num_models=4, seed=0, workdir=workdir)
    assert sorted(os.listdir(workdir)) == ["gan", "student", "teacher"]
    assert result.models_trained == 8 and result.config["recipe"]["reference"]["kind"] == "gan"
    assert 0.0 <= result.test_acc <= 1.0 and result.attacks
    gan_results = sorted(os.path.join(root, f) for root, _, files in
                         os.walk(os.path.join(workdir, "gan")) for f in files
                         if f == "result.npz")
    stamps = [os.stat(p).st_mtime_ns for p in gan_results]
    again = evaluate_defense(MODEL, defense, data, num_models=4, seed=0, workdir=workdir)
    assert (again.models_trained, again.models_loaded) == (0, 8)
    assert [os.stat(p).st_mtime_ns for p in gan_results] == stamps and gan_results
    assert again.test_acc == result.test_acc


@pytest.mark.slow
def test_dcgan_students_on_tiny_images_resume(tmp_path):
    # The image path: DC-GANs on 6x6x3 members (resized to 8), a conv student (host loop on
    # CPU), teachers' logits on regenerated images; the second call loads everything.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 6, 3)).astype(np.float32)
    y = rng.integers(0, 10, 40).astype(np.int32)
    keep = np.zeros((2, 40), bool)
    keep[0, :20], keep[1, 20:] = True, True
    model = get_model("salem_cnn", 10, channels=4)
    init_fn, _ = model_functions(model)
    init = jax.jit(jax.vmap(lambda k: init_fn(k, jnp.zeros((1, 6, 6, 3)))))
    teachers = jax.device_get(init(jax.random.split(jax.random.key(0), 2)))
    spec = dmp_spec().replace(reference=ReferenceSpec(
        kind="gan", generator="dcgan", size=24, image_size=8, filters=2, noise_dim=4,
        gan_epochs=2, gan_batch_size=8), epochs=2, batch_size=8)
    inputs = ReferenceInputs(normalization=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    def run():
        return train_students(model, build_recipe(spec), teachers, x, y, keep, seed=0,
                              inputs=inputs, workdir=str(tmp_path))

    first = run()
    assert first.students.performance["loop"] == "host"
    assert first.gans.g_loss.shape == (2, 2) and np.all(np.isfinite(first.students.train_loss))
    again = run()
    assert (again.students.models_loaded, again.gans.models_loaded) == (2, 2)
    for a, b in zip(jax.tree_util.tree_leaves(first.students.variables),
                    jax.tree_util.tree_leaves(again.students.variables)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_given_reference_set_through_the_evaluation(tmp_path, monkeypatch):
    monkeypatch.setattr(families_module, "FAMILY_ORDER", ("metric",))
    data = digits_data()
    from sklearn.datasets import load_digits

    images = load_digits().images[-200:]  # rows no candidate, test or validation row uses
    x_reference = (images / 16.0 - 0.3).astype(np.float32).reshape(len(images), -1)
    spec = dmp_spec().replace(reference=ReferenceSpec(
        kind="given", given_sha256=reference_sha256(x_reference)))
    defense = Defense("dmp_given", build_recipe(spec))
    workdir = str(tmp_path / "train")
    with pytest.raises(ValueError, match="needs the reference set"):
        evaluate_defense(MODEL, defense, data, num_models=4, seed=0, workdir=workdir)
    import dataclasses

    data = dataclasses.replace(data, x_reference=x_reference)
    result = evaluate_defense(MODEL, defense, data, num_models=4, seed=0, workdir=workdir)
    assert sorted(os.listdir(workdir)) == ["student", "teacher"]
    assert result.config["recipe"]["reference"]["given_sha256"] == reference_sha256(x_reference)
    keep = np.load(os.path.join(workdir, "student", "keep.npy"))
    assert keep.shape == (4, 200) and keep.all()
