"""Batched eval-mode inference: equality with a per-example loop, the BatchNorm eval-mode guard,
HAMP's output modifier with per-model pools, streaming to .npy, sharding and validation.

Variables are filled from NumPy (``jax.eval_shape`` gives the shapes): jitted threefry draws
compile slowly on XLA:CPU, so the tests keep the number of random programs small.
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models.registry import get_model, model_functions
from hampjax.models.resnet import ResNet20
from hampjax.training import predict as predict_module
from hampjax.defenses.output_modification import OutputModifier, modify_output, sample_from_pool
from hampjax.training.predict import predict_many, predict_single
from hampjax.training.queries import QuerySet

TOL = dict(rtol=1e-5, atol=1e-5)
BN_EPS = 1e-5


class BNMLP(nn.Module):
    """Dense -> BatchNorm -> tanh -> Dense, small enough for a NumPy reference."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x, *, train):
        h = nn.Dense(6, name="dense0")(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=BN_EPS, name="bn")(h)
        return nn.Dense(self.num_classes, name="dense1")(jnp.tanh(h))


class TinyBNConv(nn.Module):
    """Conv -> BatchNorm -> ReLU -> global mean -> Dense, on NHWC images."""

    num_classes: int = 4

    @nn.compact
    def __call__(self, x, *, train):
        h = nn.Conv(3, (3, 3), name="conv")(x)
        h = nn.BatchNorm(use_running_average=not train, epsilon=BN_EPS, name="bn")(h)
        h = jnp.mean(nn.relu(h), axis=(1, 2))
        return nn.Dense(self.num_classes, name="head")(h)


def stacked_variables(init_fn, sample_x, num_models, seed, *, bn_mean=3.0, bn_var=(0.05, 0.2)):
    """Variables [M, ...] from NumPy; BatchNorm running stats far from the data statistics."""
    shapes = jax.eval_shape(init_fn, jax.random.key(0), sample_x)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        names = [getattr(p, "key", "") for p in path]
        shape = (num_models,) + leaf.shape
        if "batch_stats" in names and names[-1] == "mean":
            return jnp.asarray(bn_mean + rng.normal(size=shape), jnp.float32)
        if "batch_stats" in names and names[-1] == "var":
            return jnp.asarray(rng.uniform(*bn_var, size=shape), jnp.float32)
        return jnp.asarray(rng.normal(scale=0.5, size=shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def model_slice(variables, m):
    return jax.tree.map(lambda leaf: leaf[m], variables)


def np_query(x, query):
    """NumPy reference of one query on [N, H, W, C] images."""
    if query.mirrored:
        x = np.flip(x, axis=2)
    dy, dx = query.dy, query.dx
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w, :]


def loop_reference(apply_fn, variables, x, queries, num_models):
    """Obviously correct: one model, one query, one example at a time."""
    one = jax.jit(functools.partial(apply_fn, train=False))
    out = []
    for m in range(num_models):
        vm = model_slice(variables, m)
        per_example = []
        for j in range(x.shape[0]):
            xj = x[j:j + 1]
            per_query = [
                np.asarray(one(vm, xj if q.is_identity else np_query(xj, q))[0])[0]
                for q in queries.queries
            ]
            per_example.append(per_query)
        out.append(per_example)
    return np.asarray(out, np.float32)


@pytest.fixture(scope="module")
def fc():
    init_fn, apply_fn = model_functions(get_model("fc", 5, hidden_sizes=(16,)))
    x = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    return apply_fn, stacked_variables(init_fn, x[:1], 3, seed=2), x


@pytest.fixture(scope="module")
def conv():
    init_fn, apply_fn = model_functions(TinyBNConv())
    x = np.random.default_rng(3).normal(size=(5, 8, 8, 2)).astype(np.float32)
    return apply_fn, stacked_variables(init_fn, x[:1], 2, seed=4), x


def test_fc_matches_loop_with_partial_last_batch(fc):
    apply_fn, variables, x = fc
    out = predict_many(apply_fn, variables, x, batch_size=3)  # 7 = 3 + 3 + 1
    assert out.shape == (3, 7, 1, 5) and out.dtype == np.float32 and isinstance(out, np.ndarray)
    reference = loop_reference(apply_fn, variables, x, QuerySet.none(), 3)
    np.testing.assert_allclose(out, reference, **TOL)
    # The batch size is a performance setting only; JAX input gives the same as NumPy input.
    np.testing.assert_allclose(predict_many(apply_fn, variables, x, batch_size=100), out, **TOL)
    from_device = predict_many(apply_fn, variables, jnp.asarray(x), batch_size=3)
    np.testing.assert_allclose(from_device, out, **TOL)


def test_images_18_queries_match_loop(conv):
    apply_fn, variables, x = conv
    queries = QuerySet.mirror_shifts()
    out = predict_many(apply_fn, variables, x, queries=queries, batch_size=2)  # 5 = 2 + 2 + 1
    assert out.shape == (2, 5, 18, 4)
    np.testing.assert_allclose(out, loop_reference(apply_fn, variables, x, queries, 2), **TOL)
    # Query 0 is the plain input: the same as a run without augmentation.
    plain = predict_many(apply_fn, variables, x, batch_size=2)
    np.testing.assert_allclose(out[:, :, :1], plain, **TOL)


def test_one_compile_for_all_batches(fc):
    apply_fn, variables, x = fc
    traces = []

    def counting_apply(v, inputs, *, train):
        traces.append(inputs.shape)
        return apply_fn(v, inputs, train=train)

    predict_many(counting_apply, variables, x, batch_size=2)  # 4 batches, the last padded
    assert traces == [(2, 4)]


def np_bn_mlp(variables, x):
    """NumPy forward pass of BNMLP with BatchNorm RUNNING statistics."""
    p, s = variables["params"], variables["batch_stats"]
    h = x @ np.asarray(p["dense0"]["kernel"]) + np.asarray(p["dense0"]["bias"])
    h = (h - np.asarray(s["bn"]["mean"])) / np.sqrt(np.asarray(s["bn"]["var"]) + BN_EPS)
    h = h * np.asarray(p["bn"]["scale"]) + np.asarray(p["bn"]["bias"])
    return np.tanh(h) @ np.asarray(p["dense1"]["kernel"]) + np.asarray(p["dense1"]["bias"])


def test_eval_mode_guard_uses_running_statistics():
    """Fails if inference normalizes with batch statistics (the authors' train-mode bug)."""
    init_fn, apply_fn = model_functions(BNMLP())
    x = np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32)
    variables = stacked_variables(init_fn, x[:1], 2, seed=6)
    reference = np.stack([np_bn_mlp(model_slice(variables, m), x) for m in range(2)])[:, :, None]
    # The guard can fail: train mode (batch statistics) gives clearly different logits.
    train_logits, _ = apply_fn(model_slice(variables, 0), x, train=True)
    assert np.max(np.abs(np.asarray(train_logits) - reference[0, :, 0])) > 0.1
    full = predict_many(apply_fn, variables, x, batch_size=6)
    alone = predict_many(apply_fn, variables, x, batch_size=1)
    np.testing.assert_allclose(full, reference, **TOL)
    np.testing.assert_allclose(alone, full, **TOL)  # independent of the other examples


def test_eval_mode_guard_zoo_resnet(conv):
    _, _, x = conv
    init_fn, apply_fn = model_functions(ResNet20(3, depth=8, width=4))
    x = x[:4, :, :, :1].repeat(3, axis=-1)
    variables = stacked_variables(init_fn, x[:1], 2, seed=7, bn_mean=0.5, bn_var=(0.5, 2.0))
    full = predict_many(apply_fn, variables, x, queries=QuerySet.mirror(), batch_size=4)
    alone = predict_many(apply_fn, variables, x, queries=QuerySet.mirror(), batch_size=1)
    np.testing.assert_allclose(alone, full, rtol=1e-4, atol=1e-4)
    eval_logits, _ = apply_fn(model_slice(variables, 1), x, train=False)
    np.testing.assert_allclose(full[1, :, 0], eval_logits, rtol=1e-4, atol=1e-4)
    train_logits, _ = apply_fn(model_slice(variables, 1), x, train=True)
    assert np.max(np.abs(np.asarray(train_logits) - full[1, :, 0])) > 1e-2


@pytest.fixture(scope="module")
def pool_setup(fc):
    apply_fn, variables, x = fc
    pools = np.random.default_rng(8).normal(size=(3, 4, 5)).astype(np.float32)  # [M, P, C]
    return apply_fn, variables, x, pools, OutputModifier.from_pools(pools)


def test_output_modifier_rows_keys_and_batch_size_independence(pool_setup):
    apply_fn, variables, x, pools, modifier = pool_setup
    key = jax.random.key(11)
    run = functools.partial(predict_many, apply_fn, variables, x, output_modifier=modifier,
                            output_key=key)
    out = run(batch_size=3)
    np.testing.assert_array_equal(run(batch_size=7), out)  # independent of batch composition
    logits = predict_many(apply_fn, variables, x, batch_size=3)
    for m in range(3):
        one = OutputModifier.from_pool(pools[m])
        for j in range(7):
            row_key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, m), j), 0)
            # Equals the pure functions on model m's own pool, and the single-model modifier.
            expected = np.asarray(modify_output(logits[m, j, 0],
                                                sample_from_pool(pools[m], row_key, ())))
            np.testing.assert_allclose(out[m, j, 0], expected, **TOL)
            np.testing.assert_allclose(out[m, j, 0], np.asarray(one(logits[m, j, 0], row_key)), **TOL)
            index = int(jax.random.randint(row_key, (), 0, 4))
            np.testing.assert_allclose(np.sort(out[m, j, 0]), np.sort(pools[m, index]), **TOL)
            np.testing.assert_array_equal(np.argsort(out[m, j, 0]), np.argsort(logits[m, j, 0]))
    # A different key draws different pool rows somewhere.
    assert not np.array_equal(run(batch_size=3, output_key=jax.random.key(12)), out)


def test_output_modifier_errors(pool_setup):
    apply_fn, variables, x, pools, modifier = pool_setup
    call = functools.partial(predict_many, apply_fn, variables, x)
    with pytest.raises(ValueError, match="output_key is required"):
        call(output_modifier=modifier)
    with pytest.raises(ValueError, match="output_key must be None when output_modifier is None"):
        call(output_key=jax.random.key(0))
    with pytest.raises(ValueError, match="output_key must be a jax.random key"):
        call(output_modifier=modifier, output_key=0)
    with pytest.raises(ValueError, match=r"pool shape \[M=3, P, C\]"):
        call(output_modifier=OutputModifier.from_pools(pools[:2]), output_key=jax.random.key(0))
    with pytest.raises(ValueError, match="must be a pool-mode OutputModifier"):
        call(output_modifier="hamp", output_key=jax.random.key(0))
    with pytest.raises(ValueError, match="stacks one pool per model"):
        modifier(jnp.zeros((2, 5)), jax.random.key(0))
    with pytest.raises(ValueError, match="pools must have 3 dimensions"):
        OutputModifier.from_pools(pools[0])


def test_out_path_streams_same_values_and_leaves_no_temp(fc, tmp_path):
    apply_fn, variables, x = fc
    expected = predict_many(apply_fn, variables, x, batch_size=3)
    path = tmp_path / "preds.npy"
    out = predict_many(apply_fn, variables, x, batch_size=3, out_path=path)
    assert isinstance(out, np.memmap) and not out.flags.writeable
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.load(path), expected)
    assert sorted(os.listdir(tmp_path)) == ["preds.npy"]


def test_out_path_failed_run_leaves_nothing(fc, tmp_path, monkeypatch):
    apply_fn, variables, x = fc
    real = predict_module._predict_batch
    calls = []

    def fail_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "_predict_batch", fail_on_third_batch)
    with pytest.raises(RuntimeError, match="killed"):
        predict_many(apply_fn, variables, x, batch_size=2, out_path=tmp_path / "preds.npy")
    assert os.listdir(tmp_path) == []


def test_predict_single(fc, tmp_path):
    apply_fn, variables, x = fc
    many = predict_many(apply_fn, variables, x, batch_size=3)
    one = model_slice(variables, 1)
    out = predict_single(apply_fn, one, x, batch_size=3)
    assert out.shape == (7, 1, 5)
    np.testing.assert_allclose(out, many[1], **TOL)
    path = tmp_path / "single.npy"
    saved = predict_single(apply_fn, one, x, batch_size=4, out_path=str(path),
                           output_modifier=OutputModifier.from_pool(np.full((3, 5), 2.0, np.float32)),
                           output_key=jax.random.key(0))
    assert np.load(path).shape == (7, 1, 5)
    np.testing.assert_allclose(saved, np.full((7, 1, 5), 2.0), **TOL)
    with pytest.raises(ValueError, match="variables must be a non-empty pytree"):
        predict_single(apply_fn, {}, x)
    with pytest.raises(ValueError, match="one pool"):
        predict_single(apply_fn, one, x, output_modifier=OutputModifier.from_pools(np.ones((1, 3, 5))),
                       output_key=jax.random.key(0))


def test_sharded_over_8_devices_equals_unsharded(pool_setup):
    apply_fn, variables, x, pools, _ = pool_setup
    devices = jax.devices()
    assert len(devices) == 8
    variables8 = jax.tree.map(lambda leaf: jnp.concatenate([leaf] * 3)[:8], variables)
    pools8 = np.concatenate([pools] * 3)[:8]
    key = jax.random.key(3)
    kwargs = dict(batch_size=3, output_modifier=OutputModifier.from_pools(pools8), output_key=key)
    unsharded = predict_many(apply_fn, variables8, x, **kwargs)
    sharded = predict_many(apply_fn, variables8, jnp.asarray(x), devices=devices, **kwargs)
    np.testing.assert_allclose(sharded, unsharded, **TOL)
    one_device = predict_many(apply_fn, variables8, x, devices=[devices[5]], **kwargs)
    np.testing.assert_allclose(one_device, unsharded, **TOL)
    # Models 0 and 3 share weights and pools but not keys: different draws.
    assert not np.array_equal(unsharded[0], unsharded[3])


def test_validation_errors(fc, tmp_path):
    apply_fn, variables, x = fc
    call = functools.partial(predict_many, apply_fn, variables, x)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        call(batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        call(batch_size=2.0)
    with pytest.raises(ValueError, match="apply_fn must be callable"):
        predict_many(None, variables, x)
    with pytest.raises(ValueError, match="x must contain at least 1 example"):
        call.func(apply_fn, variables, x[:0])
    with pytest.raises(ValueError, match="x must be 4-D"):
        call(queries=QuerySet.mirror())
    with pytest.raises(ValueError, match="queries must be a QuerySet"):
        call(queries="mirror")
    bad = dict(variables)
    bad["params"] = dict(bad["params"], extra=jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"variables must have the same leading \(model\) axis"):
        predict_many(apply_fn, bad, x)
    with pytest.raises(ValueError, match="variables must have a leading model axis on every"):
        predict_many(apply_fn, {"params": {"w": jnp.float32(1.0)}}, x)
    with pytest.raises(ValueError, match="variables must be a non-empty pytree"):
        predict_many(apply_fn, {}, x)
    with pytest.raises(ValueError, match="variables must stack at least 1 model"):
        predict_many(apply_fn, jax.tree.map(lambda leaf: leaf[:0], variables), x)
    with pytest.raises(ValueError, match="devices: the number of models M=3 must be divisible"):
        call(devices=jax.devices()[:2])
    with pytest.raises(ValueError, match="devices must be a non-empty sequence of jax devices"):
        call(devices=[])
    with pytest.raises(ValueError, match="devices must be a non-empty sequence of jax devices"):
        call(devices=["cpu:0"])
    with pytest.raises(ValueError, match="devices must be a sequence of jax devices"):
        call(devices="cpu")
    with pytest.raises(ValueError, match="devices must not repeat a device"):
        call(devices=[jax.devices()[0]] * 3)
    with pytest.raises(ValueError, match="out_path must end with '.npy'"):
        call(out_path=tmp_path / "preds.bin")
    with pytest.raises(ValueError, match="out_path must be in an existing directory"):
        call(out_path=tmp_path / "missing" / "preds.npy")
    with pytest.raises(ValueError, match="out_path must be a str or os.PathLike"):
        call(out_path=3)
    assert os.listdir(tmp_path) == []
