"""DP-SGD through train_many: sigma 0 and C inf is plain SGD bit for bit; Poisson overflow."""

import math

import flax.linen as nn
import jax
import numpy as np
import pytest

from hampjax.models.registry import get_model
from hampjax.training import PrivacySpec, build_recipe, preset_spec, train_many

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 64)
KEEP = np.zeros((2, 64), bool)
KEEP[0, :40] = True  # unequal member counts: 5 and 6 steps of 8, the last one partial
KEEP[1, 19:] = True
MODEL = get_model("fc", 3, hidden_sizes=(8,))
BASE = preset_spec("dp_sgd", "digits", epochs=2, batch_size=8)


def _train(spec, **kwargs):
    kwargs = {"seed": 0, "progress": False, "loop": "scan", **kwargs}
    return train_many(MODEL, build_recipe(spec), X, Y, KEEP, **kwargs)


def _leaves(result):
    return jax.tree_util.tree_leaves(result.variables)


def test_zero_noise_infinite_clip_is_plain_sgd_bit_for_bit():
    # The DP run goes through the whole DP step (dense per-example norms, clip factors, the
    # weighted backward pass; shuffled batches divided by their size): with C = inf every
    # factor is exactly 1 and sigma = 0 adds no noise, so it must equal the ordinary run. It
    # also runs on the host loop, which is bit-identical to the scan loop for dense models.
    plain = _train(BASE.replace(privacy=PrivacySpec()))
    dp = _train(BASE.replace(**{"privacy.sampling": "shuffle", "privacy.noise_multiplier": 0.0,
                                "privacy.clip_norm": math.inf}), loop="host")
    assert dp.performance["dp_per_example"] == "dense" and "dp_per_example" not in plain.performance
    for a, b in zip(_leaves(plain), _leaves(dp)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.train_loss, dp.train_loss)
    np.testing.assert_array_equal(dp.dp_overflow, [0, 0])


def test_poisson_batches_overflow_is_counted_and_reported():
    spec = BASE.replace(**{"privacy.poisson_cap": 0.01})  # cap = 8 + 1 rows
    with pytest.warns(RuntimeWarning, match="overflowed their padded size 9"):
        result = _train(spec)
    assert result.performance["dp_poisson_cap"] == 9
    assert result.dp_overflow.shape == (2,) and (result.dp_overflow > 0).all()
    assert np.isfinite(result.train_loss).all()
    first = [np.asarray(a) for a in _leaves(result)]
    assert not np.array_equal(first[0][0], first[0][1])  # each model its own batches and noise


class _BatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
        return nn.Dense(3)(nn.BatchNorm(use_running_average=not train)(x))


def test_batchnorm_models_are_refused_by_name():
    with pytest.raises(ValueError, match="cannot train model _BatchNormNet: it has BatchNorm"):
        train_many(_BatchNormNet(), build_recipe(BASE), X, Y, KEEP, seed=0, progress=False)


@pytest.mark.slow
def test_conv_net_trains_on_the_generic_path_and_loops_agree():
    x = RNG.uniform(size=(48, 8, 8, 3)).astype(np.float32)
    y = RNG.integers(0, 3, 48)
    keep = np.zeros((2, 48), bool)
    keep[0, :30], keep[1, 10:] = True, True
    model = get_model("salem_cnn", 3)
    recipe = build_recipe(BASE.replace(epochs=1))
    runs = [train_many(model, recipe, x, y, keep, seed=1, progress=False, loop=loop)
            for loop in ("host", "scan")]
    assert runs[0].performance["dp_per_example"] == "generic"
    for a, b in zip(*(jax.tree_util.tree_leaves(r.variables) for r in runs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert np.isfinite(runs[0].train_loss).all()
