"""DMP's GANs (hampjax.models.gan) and their batched trainer (hampjax.training.gan)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models.gan import DCDiscriminator, DCGenerator, TabularGenerator
from hampjax.training import ReferenceSpec
from hampjax.training.gan import (
    Scaling,
    gan_functions,
    gan_step,
    generate,
    init_gan,
    sample_key,
    train_gans,
)


def tabular_spec(**changes):
    settings = dict(kind="gan", generator="tabular", size=64, hidden=(64,), gan_epochs=40,
                    gan_batch_size=64, noise_dim=16, gan_learning_rate=2e-3, beta2=0.9,
                    threshold=0.5)
    return ReferenceSpec(**{**settings, **changes})


def binary_data(n=512, d=16, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, size=d)
    return (rng.uniform(size=(n, d)) < p).astype(np.float32)


def test_tabular_gan_learns_the_marginals_of_binary_data():
    # 320 steps on 512 rows of 16 independent bits: the thresholded samples' per-feature
    # means are within 0.15 of the data's (0.06 on average), far closer than before training.
    x = binary_data()
    spec = tabular_spec()
    result = train_gans(spec, x, np.ones((1, len(x)), bool), seed=0, devices=jax.devices()[:1])
    fns = gan_functions(spec, (16,))
    gen = jax.jit(lambda g: generate(fns, g, Scaling.of(None), sample_key(0, 0),
                                     jnp.arange(4096)))
    trained = np.asarray(gen(jax.tree_util.tree_map(lambda a: a[0], result.generator)))
    assert set(np.unique(trained)) <= {0.0, 1.0}
    error = np.abs(trained.mean(0) - x.mean(0))
    assert error.max() < 0.15 and error.mean() < 0.06, error
    fresh = jax.jit(lambda k: init_gan(fns, k).generator)(jax.random.key(1))
    untrained = np.asarray(gen(fresh))
    assert np.abs(untrained.mean(0) - x.mean(0)).mean() > 2 * error.mean()
    assert result.g_loss.shape == (1, 40) and np.all(np.isfinite(result.d_loss))


@pytest.fixture(scope="module")
def tiny_dcgan():
    spec = ReferenceSpec(kind="gan", generator="dcgan", size=8, image_size=8, filters=4,
                         noise_dim=5, gan_batch_size=4, gan_epochs=1)
    return gan_functions(spec, (6, 6, 3))  # members resized 6 -> 8, samples 8 -> 6


def test_dcgan_shapes_and_output_range():
    g = DCGenerator(channels=3, image_size=8, filters=2)
    d = DCDiscriminator(image_size=8, filters=2)

    @jax.jit
    def run(z):
        v = g.init(jax.random.key(0), z, train=False)
        images = g.apply(v, z, train=False)
        return v, images, d.apply(d.init(jax.random.key(2), images, train=False), images,
                                  train=False)

    v, images, logits = run(10 * jax.random.normal(jax.random.key(1), (4, 5)))
    assert images.shape == (4, 8, 8, 3) and float(jnp.abs(images).max()) <= 1.0
    assert v["params"]["project"]["kernel"].shape == (5, 4 * 4 * 2)  # 8x8: 4x4 with ngf
    assert logits.shape == (4,)
    with pytest.raises(ValueError, match="power of 2"):
        DCGenerator(channels=3, image_size=12).init(jax.random.key(0), jnp.zeros((1, 2)),
                                                   train=False)
    with pytest.raises(ValueError, match="8x8 images"):
        d.init(jax.random.key(0), jnp.zeros((1, 6, 6, 3)), train=False)


@pytest.mark.slow
def test_dcgan_one_step_and_the_sampling_modes(tiny_dcgan):
    scaling = Scaling.of(((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))
    state = init_gan(tiny_dcgan, jax.random.key(0))
    # One step (members 6x6 resized to 8x8); a padding row carries no weight.
    x = jax.random.uniform(jax.random.key(2), (4, 6, 6, 3), minval=-1.0, maxval=1.0)
    step = jax.jit(lambda s, w: gan_step(tiny_dcgan, s, x, w, jax.random.key(3), scaling))
    new, out = step(state, jnp.array([True, True, True, False]))
    assert np.isfinite(float(out.g_loss)) and np.isfinite(float(out.d_loss))
    assert float(out.count) == 3.0
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), new.generator["params"],
                                     state.generator["params"])
    assert all(jax.tree_util.tree_leaves(changed))
    assert not jnp.array_equal(new.generator["batch_stats"]["bn0"]["mean"],
                               state.generator["batch_stats"]["bn0"]["mean"])
    same, _ = step(state, jnp.zeros(4, bool))  # no real row: nothing changes
    for a, b in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(a, b)
    # Samples come back at the data's size, normalized: (v - mean) / std with v in [0, 1].
    # train_bn: a row depends on the rows generated with it; eval_bn: it does not. Both
    # regenerate bit-identically from the same key; another key gives other samples.
    key, g = jax.random.key(5), new.generator
    eval_fns = gan_functions(tiny_dcgan.spec.replace(sample_mode="eval_bn"), (6, 6, 3))
    for fns, depends in ((tiny_dcgan, True), (eval_fns, False)):
        gen = jax.jit(lambda k, rows: generate(fns, g, scaling, k, rows))
        together = gen(key, jnp.arange(4))
        assert together.shape == (4, 6, 6, 3)
        v = np.asarray(together) * np.asarray(scaling.std) + np.asarray(scaling.mean)
        assert v.min() >= -1e-5 and v.max() <= 1 + 1e-5
        other = gen(key, jnp.array([0, 1, 2, 7]))
        assert bool(jnp.allclose(together[:3], other[:3], atol=1e-6)) != depends
        np.testing.assert_array_equal(together, gen(key, jnp.arange(4)))
        assert not jnp.allclose(together, gen(jax.random.key(6), jnp.arange(4)))


def test_tabular_generator_is_sigmoid_and_continuous_without_threshold():
    spec = tabular_spec(threshold=None)
    fns = gan_functions(spec, (5,))
    init = jax.jit(lambda k: init_gan(fns, k).generator)
    g = init(jax.random.key(0))
    x = np.asarray(jax.jit(lambda k: generate(fns, g, Scaling.of(((0.3,), (2.0,))), k,
                                              jnp.arange(32)))(jax.random.key(1)))
    v = x * 2.0 + 0.3
    assert v.min() > 0 and v.max() < 1 and len(np.unique(v)) > 2
    assert isinstance(fns.generator, TabularGenerator)
    # Regenerated bit-identically from the same key (row r's noise: fold_in(key, r)); in
    # train_bn a row depends on the rows generated with it, in eval_bn it does not.
    scaling, key = Scaling.of(None), jax.random.key(2)
    g = init(jax.random.key(3))
    g = {**g, "batch_stats": jax.tree_util.tree_map(lambda a: a + 0.5, g["batch_stats"])}
    for mode, depends in (("train_bn", True), ("eval_bn", False)):
        f = gan_functions(spec.replace(sample_mode=mode), (5,))
        gen = jax.jit(lambda k, r: generate(f, g, scaling, k, r))  # noqa: B023
        rows = gen(key, jnp.arange(6))
        np.testing.assert_array_equal(rows, gen(key, jnp.arange(6)))
        assert not np.allclose(rows, gen(jax.random.key(4), jnp.arange(6)))
        other = gen(key, jnp.array([0, 1, 2, 9, 10, 11]))
        assert np.allclose(rows[:3], other[:3], atol=1e-6) != depends
    with pytest.raises(ValueError, match="flat rows"):
        gan_functions(spec, (4, 4, 1))
    with pytest.raises(ValueError, match="square NHWC"):
        gan_functions(ReferenceSpec(kind="gan", size=4), (5,))


@pytest.mark.slow
def test_batched_gans_equal_each_gan_alone_and_resume(tmp_path):
    x = binary_data(n=96, d=6, seed=1)
    keep = np.zeros((3, 96), bool)
    keep[0, :50], keep[1, 30:], keep[2, ::2] = True, True, True
    spec = tabular_spec(hidden=(8,), gan_epochs=2, gan_batch_size=16, noise_dim=4)
    one_device = jax.devices()[:1]
    together = train_gans(spec, x, keep, seed=3, chunk_size=3, devices=one_device)
    alone = train_gans(spec, x, keep, seed=3, chunk_size=1, devices=one_device)
    # vmapped matmuls sum in another order; Adam's normalized steps carry the float32
    # differences of near-zero gradients to ~1e-5 of the parameters after 8 steps.
    for a, b in zip(jax.tree_util.tree_leaves(together.generator),
                    jax.tree_util.tree_leaves(alone.generator)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(together.g_loss, alone.g_loss, rtol=1e-4)
    workdir = str(tmp_path / "gan")
    first = train_gans(spec, x, keep, seed=3, workdir=workdir, chunk_size=3,
                       devices=one_device)
    assert (first.models_trained, first.models_loaded) == (3, 0)
    for a, b in zip(jax.tree_util.tree_leaves(first.generator),
                    jax.tree_util.tree_leaves(together.generator)):
        np.testing.assert_array_equal(a, b)
    again = train_gans(spec, x, keep, seed=3, workdir=workdir, devices=one_device)
    assert (again.models_trained, again.models_loaded) == (0, 3)
    np.testing.assert_array_equal(again.g_loss, first.g_loss)
    with pytest.raises(ValueError, match="differs in: gan.gan_epochs"):
        train_gans(spec.replace(gan_epochs=3), x, keep, seed=3, workdir=workdir)
    # Killed after the checkpoint of epoch 1: the rerun resumes there, bit-identically.
    from hampjax.training import checkpoint

    save = checkpoint.RunDirectory.save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise RuntimeError("killed")

    killed = str(tmp_path / "killed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint.RunDirectory, "save_checkpoint", save_then_die)
        with pytest.raises(RuntimeError, match="killed"):
            train_gans(spec, x, keep, seed=3, workdir=killed, devices=one_device, save_every=1,
                           chunk_size=3)
    assert os.listdir(os.path.join(killed, "models_00000-00002", "ckpt")) == ["1"]
    resumed = train_gans(spec, x, keep, seed=3, workdir=killed, devices=one_device,
                         chunk_size=3)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.generator),
                    jax.tree_util.tree_leaves(first.generator)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.d_acc, first.d_acc)
