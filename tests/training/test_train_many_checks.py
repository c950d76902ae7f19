"""train_many's checks (issue 15): labels against the model's classes, finite inputs, a stop at
the first non-finite loss naming the model and the epoch, and no NaN model recorded as done."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.data.digits import load_digits_dataset
from hampjax.models import get_model, model_functions
from hampjax.training import train_many, undefended_recipe

N = 120


@pytest.fixture(scope="module")
def digits():
    ds = load_digits_dataset()
    x = (ds.flat()[:N] / 255.0).astype(np.float32)
    return x, np.asarray(ds.y[:N])


@pytest.fixture(scope="module")
def model():
    return get_model("fc", 10, hidden_sizes=(16,))


def recipe(epochs=2):
    return undefended_recipe("digits", epochs=epochs, batch_size=40)


def keep(m=2):
    k = np.ones((m, N), bool)
    k[0, 0] = False  # model 0 never sees example 0
    return k


def test_labels_beyond_the_models_classes(digits, model):
    x, y = digits
    bad = y.copy()
    bad[7] = 10
    with pytest.raises(ValueError, match=r"^y must be in \[0, 10\) \(the model's number of "
                                         r"classes\), got 10 at index 7$"):
        train_many(model, recipe(), x, bad, keep(), seed=0, progress=False)
    with pytest.raises(ValueError, match=r"y must be in \[0, 5\) \(the model's number of classes\)"):
        train_many(get_model("fc", 5, hidden_sizes=(16,)), recipe(), x, y, keep(), seed=0,
                   progress=False)
    with pytest.raises(ValueError, match=r"val_data\[1\] must be in \[0, 10\)"):
        train_many(model, recipe(), x, y, keep(), seed=0, progress=False,
                   val_data=(x[:5], np.array([0, 1, 2, 3, -1])))


def test_non_finite_inputs(digits, model):
    x, y = digits
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite \(no NaN or inf\); found nan at "
                                         r"index \(3, 5\)"):
        train_many(model, recipe(), bad, y, keep(), seed=0, progress=False)


def test_stops_at_the_first_non_finite_loss_and_never_records_it(digits, model, tmp_path):
    x, y = digits
    huge = x.copy()
    huge[0, 0] = 1e4  # finite; the net below gives NaN logits on it: only model 1 trains on it
    init_fn, apply_fn = model_functions(model)

    def nan_apply(variables, inputs, *, train, key=None):
        logits, new = apply_fn(variables, inputs, train=train, key=key)
        return logits * jnp.where(inputs[:, :1] > 1e3, jnp.nan, 1.0), new

    net = (init_fn, nan_apply)
    workdir = str(tmp_path / "run")
    for _ in range(2):  # the rerun trains model 1 again (it was never recorded as finished)
        with pytest.raises(FloatingPointError, match=r"training loss of model 1 is (nan|inf) "
                                                     r"at epoch 0"):
            train_many(net, recipe(), huge, y, keep(), seed=0, workdir=workdir,
                       chunk_size=1, devices=jax.devices()[:1], progress=False)
        results = sorted(str(p.relative_to(workdir)) for p in (tmp_path / "run").rglob("result.npz"))
        assert len(results) == 1, results  # model 0 only
    ranges = [name for name in os.listdir(workdir) if os.path.isdir(os.path.join(workdir, name))]
    assert ranges, ranges
    # Model 0 (finite) finished and is loaded by a run of model 0 alone.
    ok = train_many(net, recipe(), huge, y, keep(1), seed=0, workdir=workdir, chunk_size=1,
                    progress=False)
    assert ok.models_loaded == 1 and ok.models_trained == 0
    assert np.isfinite(ok.train_loss).all()


def test_predict_many_wrong_feature_count_and_nan_inputs(digits, model):
    from hampjax.training import predict_many

    x, _ = digits
    init_fn, apply_fn = model_functions(model)
    variables = jax.vmap(init_fn, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 2), x[:1])
    assert predict_many(apply_fn, variables, x[:5]).shape == (2, 5, 1, 10)
    with pytest.raises(ValueError, match=r"^x must have the input shape the models were "
                                         r"initialized with; x.shape\[1:\]=\(63,\) does not fit"):
        predict_many(apply_fn, variables, x[:5, :63])
    bad = x[:5].copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"x must be finite \(no NaN or inf\); found inf at "
                                         r"index \(4, 1\)"):
        predict_many(apply_fn, variables, bad)
