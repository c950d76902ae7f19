"""Recipe presets carry the authors' hyperparameters; schedules match their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.training.recipes import (
    exponential_schedule,
    hamp_recipe,
    label_smoothing_recipe,
    relaxloss_recipe,
    step_schedule,
    undefended_recipe,
    weighted_smoothing_recipe,
)


def test_step_schedule_is_multistep_lr():
    lr = step_schedule(0.5, (60, 90, 150))
    got = [float(lr(jnp.int32(e))) for e in (0, 59, 60, 89, 90, 149, 150, 199)]
    np.testing.assert_allclose(got, [0.5, 0.5, 0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005], rtol=1e-6)


def test_exponential_schedule():
    lr = exponential_schedule(0.022, 0.991)
    np.testing.assert_allclose(float(lr(jnp.int32(10))), 0.022 * 0.991 ** 10, rtol=1e-6)


@pytest.mark.parametrize("dataset,gamma,alpha,epochs,batch", [
    ("purchase100", 0.8, 0.01, 200, 32), ("texas100", 0.6, 0.01, 100, 32),
    ("location30", 0.5, 0.001, 100, 64), ("cifar10", 0.95, 0.001, 200, 64),
    ("cifar100", 0.5, 0.005, 200, 64),
])
def test_hamp_presets(dataset, gamma, alpha, epochs, batch):
    r = hamp_recipe(dataset)
    d = r.config["defense"]
    assert (d["entropy_threshold"], d["alpha"], r.epochs, r.batch_size) == (gamma, alpha, epochs, batch)
    assert r.selection == "best_val" and r.shuffle == "once"
    assert r.min_improvement == (0.01 if dataset.startswith("cifar") else 0.0)
    assert d["kl_reduction"] == "mean_over_classes"
    base = 1.0 if dataset == "cifar100" else 0.5
    assert float(r.learning_rate(jnp.int32(0))) == pytest.approx(base)
    assert float(r.learning_rate(jnp.int32(60))) == pytest.approx(base * 0.1)


def test_hamp_loss_in_recipe_matches_defense():
    from hampjax.defenses import hamp_loss, hamp_soft_labels
    from hampjax.training.recipes import LossContext

    r = hamp_recipe("purchase100")
    logits = jnp.linspace(-2, 2, 300).reshape(3, 100)
    labels = jnp.array([0, 5, 99])
    ctx = LossContext(jnp.int32(0), None, jnp.ones(3, bool), jnp.zeros(3))
    want = hamp_loss(logits, hamp_soft_labels(labels, 100, 0.8), 0.01,
                     kl_reduction="mean_over_classes")
    np.testing.assert_allclose(r.loss(logits, labels, ctx), want, rtol=1e-6)


def test_other_presets():
    assert undefended_recipe("texas100").epochs == 20
    assert undefended_recipe("cifar10").batch_size == 64
    rl = relaxloss_recipe("texas100_fc")
    assert (rl.spec.defense.alpha, rl.spec.defense.upper, rl.epochs, rl.batch_size) == (2.5, 0.1, 120, 128)
    assert float(rl.learning_rate(jnp.int32(50))) == pytest.approx(0.01)
    ws = weighted_smoothing_recipe(sigma=0.01)
    assert ws.batch_size == 128 and ws.example_state is not None
    ls = label_smoothing_recipe("purchase100")
    assert ls.config["defense"] == {"kind": "label_smoothing", "entropy_threshold": 0.05,
                                    "method": "grid"}


def test_replace_updates_config():
    r = hamp_recipe("digits").replace(epochs=3)
    assert r.epochs == 3 and r.config["epochs"] == 3
    r = r.replace(**{"optimizer.learning_rate": 0.2}, reset_optimizer_each_epoch=True)
    assert r.config["optimizer"]["learning_rate"] == 0.2 and r.config["reset_optimizer_each_epoch"]
    assert float(r.learning_rate(jnp.int32(0))) == pytest.approx(0.2)


@pytest.mark.parametrize("call,match", [
    (lambda: hamp_recipe("mnist"), "dataset must be one of"),
    (lambda: hamp_recipe("purchase100", entropy_threshold=1.2), r"entropy_threshold must be in \[0, 1\)"),
    (lambda: hamp_recipe("purchase100", alpha=-1), r"alpha must be in \[0, inf\)"),
    (lambda: hamp_recipe("purchase100", epochs=0), "epochs must be an integer >= 1"),
    (lambda: hamp_recipe("purchase100", selection="best"), "selection must be one of"),
    (lambda: relaxloss_recipe("nope"), "preset must be one of"),
    (lambda: weighted_smoothing_recipe(sigma=-0.1), r"sigma must be in \[0, inf\)"),
])
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _ctx(n):
    from hampjax.training.recipes import LossContext

    return LossContext(jnp.int32(0), None, jnp.ones(n, bool), jnp.zeros(n))


def test_trust_recipes():
    from hampjax.training.recipes import trust_recipe

    logits = jnp.linspace(-3, 3, 40).reshape(4, 10)
    labels = jnp.array([0, 3, 9, 9])
    # Cross-entropy against (1 - eps) one-hot + eps / C, computed by hand.
    eps = 0.0083
    targets = (1 - eps) * np.eye(10)[np.asarray(labels)] + eps / 10
    want = -np.sum(targets * np.asarray(jax_log_softmax(logits)), axis=-1)
    ls = trust_recipe("label_smoothing")
    np.testing.assert_allclose(ls.loss(logits, labels, _ctx(4)), want, rtol=1e-5)
    std = trust_recipe("standard", learning_rate=0.001)
    want_ce = -np.asarray(jax_log_softmax(logits))[np.arange(4), np.asarray(labels)]
    np.testing.assert_allclose(std.loss(logits, labels, _ctx(4)), want_ce, rtol=1e-5)
    assert (std.batch_size, std.epochs, std.selection) == (64, 100, "last")
    assert float(std.learning_rate(jnp.int32(99))) == pytest.approx(0.001)
    # L2 is coupled weight decay: with a zero gradient Adam's update is driven by wd * w alone.
    params = {"w": jnp.array([2.0, -1.0])}
    zero = {"w": jnp.zeros(2)}
    for variant, moves in (("l2", True), ("standard", False)):
        opt = trust_recipe(variant).optimizer(0.01)
        update, _ = opt.update(zero, opt.init(params), params)
        assert bool(jnp.any(update["w"] != 0)) == moves, variant
        if moves:  # Adam's first step has magnitude lr in the direction of -(wd * w).
            np.testing.assert_allclose(update["w"], -0.01 * np.sign([2.0, -1.0]), rtol=1e-3)
    assert trust_recipe("l2").config["optimizer"]["weight_decay"] == 3e-4
    assert trust_recipe("standard").config["optimizer"]["weight_decay"] == 0.0


def jax_log_softmax(x):
    return jax.nn.log_softmax(x, axis=-1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(variant="dropout"), "variant must be one of"),
    (dict(variant="standard", learning_rate=0.0), "learning_rate must be"),
    (dict(variant="label_smoothing", smoothing=1.0), r"smoothing must be in \[0, 1\)"),
    (dict(variant="l2", weight_decay=-1.0), r"weight_decay must be in \[0, inf\)"),
])
def test_trust_recipe_errors(kwargs, match):
    from hampjax.training.recipes import trust_recipe

    variant = kwargs.pop("variant")
    with pytest.raises(ValueError, match=match):
        trust_recipe(variant, **kwargs)
