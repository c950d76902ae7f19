"""AdvReg's inference model and losses (hampjax.defenses.advreg): architectures, inputs,
per-example losses, jit/vmap, and that training moves the gain the right way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hampjax.defenses.advreg import (
    InferenceModel,
    advreg_penalty,
    attack_features,
    inference_scores,
    init_inference_model,
    label_encoding,
    membership_mse,
)

C = 5


def _init(model, seed=0, num_classes=C):
    # One compiled program (eager flax init compiles every op of every shape on its own).
    return jax.jit(lambda k: init_inference_model(model, k, num_classes))(jax.random.key(seed))


def _param_shapes(variables, collection="params"):
    return {"/".join(k.key for k in path): leaf.shape for path, leaf in
            jax.tree_util.tree_leaves_with_path(variables.get(collection, {}))}


def test_attack_features_and_label_encoding():
    logits = jnp.array([[1.0, 3.0, 2.0]])
    np.testing.assert_allclose(attack_features(logits, "logits"), logits)
    np.testing.assert_allclose(attack_features(logits, "softmax"), jax.nn.softmax(logits))
    np.testing.assert_allclose(attack_features(logits, "sorted_logits"), [[3.0, 2.0, 1.0]])
    np.testing.assert_allclose(label_encoding(jnp.array([2]), 3, "hamp"), [[0, 0, 1]])
    np.testing.assert_allclose(label_encoding(jnp.array([2]), 3, "relaxloss_tabular"),
                               [[-1, -1, 1]])
    with pytest.raises(ValueError, match="attack_input"):
        attack_features(logits, "probs")
    with pytest.raises(ValueError, match="attack_arch"):
        label_encoding(jnp.array([0]), 3, "nasr")


def _shapes(model, collection="params"):
    return _param_shapes(jax.eval_shape(lambda: init_inference_model(model, jax.random.key(0), C)),
                         collection)


def test_architectures_match_the_authors():
    kernels = sorted(s for k, s in _shapes(InferenceModel(arch="hamp")).items()
                     if k.endswith("kernel"))
    assert kernels == sorted([(C, 1024), (1024, 512), (512, 64), (C, 128), (128, 64),
                              (128, 512), (512, 256), (256, 128), (128, 64), (64, 1)])
    tab = _shapes(InferenceModel(arch="relaxloss_tabular"))
    assert sorted(s for k, s in tab.items() if k.endswith("kernel")) == sorted(
        [(C, 512), (512, 64), (C, 64), (128, 64), (64, 1)])
    trainable = _shapes(InferenceModel(arch="relaxloss_cifar"))
    assert sorted(trainable.values()) == sorted([(C, 100), (100,), (100, 1), (1,)])
    frozen = InferenceModel(arch="relaxloss_cifar", hidden="frozen")
    # The frozen hidden layer sits outside "params": an optimizer over params never moves it.
    assert sorted(_shapes(frozen).values()) == sorted([(1,), (100, 1)])
    assert sorted(_shapes(frozen, "frozen").values()) == sorted([(100,), (C, 100)])
    with pytest.raises(ValueError, match="frozen"):
        _shapes(InferenceModel(arch="hamp", hidden="frozen"))


def test_scores_jit_and_vmap():
    model = InferenceModel(arch="relaxloss_cifar", hidden="frozen")
    variables = _init(model, 1)
    logits = jax.random.normal(jax.random.key(2), (3, 4, C)) * 3
    labels = jnp.array([[0, 1, 2, 3], [4, 0, 1, 2], [3, 4, 0, 1]])

    def f(lg, lb):
        return inference_scores(model, variables, lg, lb, attack_input="sorted_logits")

    batched, flat = jax.jit(lambda lg, lb: (jax.vmap(f)(lg, lb),
                                            f(lg.reshape(12, C), lb.reshape(12))))(logits, labels)
    assert batched.shape == (3, 4)
    np.testing.assert_allclose(batched.reshape(12), flat, rtol=1e-6)
    assert bool(jnp.all((batched > 0) & (batched < 1)))


def test_losses_per_example():
    scores = jnp.array([0.9, 0.2, 0.5])
    member = jnp.array([True, False, True])
    np.testing.assert_allclose(membership_mse(scores, member), [0.01, 0.04, 0.25], rtol=1e-6)
    np.testing.assert_allclose(advreg_penalty(scores, 3.0), [1.2, -0.9, 0.0], rtol=1e-6)
    # The batch mean of the penalty is lambda (mean h - 0.5) (HAMP code).
    assert abs(float(advreg_penalty(scores, 3.0).mean()) - 3.0 * (0.5333333 - 0.5)) < 1e-5


def test_gain_moves_as_expected():
    """Training h (HAMP's architecture, N(0, 0.01) init) separates confident members from
    flat reference outputs; the classifier's penalty then pushes its members' scores down."""
    rng = np.random.default_rng(0)
    b = 16
    labels = jnp.asarray(rng.integers(0, C, 2 * b))
    logits = rng.normal(size=(2 * b, C)).astype(np.float32)
    logits[np.arange(b), labels[:b]] += 6.0  # members: confident on their label
    logits = jnp.asarray(logits)
    is_member = jnp.arange(2 * b) < b
    model = InferenceModel(arch="hamp")
    variables = _init(model)
    # HAMP code: N(0, 0.01) kernels, zero biases.
    assert abs(float(jnp.std(variables["params"]["features_0"]["kernel"])) - 0.01) < 1e-3
    assert all(float(jnp.abs(leaf).max()) == 0.0 for path, leaf in
               jax.tree_util.tree_leaves_with_path(variables["params"]) if path[-1].key == "bias")
    tx = optax.adam(3e-3)

    def scores(params, lg):
        return inference_scores(model, {"params": params}, lg, labels, attack_input="logits")

    def step(params, opt):
        loss, grads = jax.value_and_grad(
            lambda p: membership_mse(scores(p, logits), is_member).mean())(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    member_labels = labels[:b]

    def penalty(params, lg):
        h = inference_scores(model, {"params": params}, lg, member_labels, attack_input="logits")
        return advreg_penalty(h, 3.0).mean()

    @jax.jit
    def train_and_probe(params):
        s0 = scores(params, logits)
        params, _, _ = jax.lax.fori_loop(0, 25, lambda i, c: step(*c[:2]),
                                         (params, tx.init(params), jnp.float32(0)))
        s1 = scores(params, logits)
        # The classifier's side: a descent step on the penalty lowers h on the members.
        grads = jax.grad(penalty, argnums=1)(params, logits[:b])
        moved = logits[:b] - 0.5 * grads / (jnp.abs(grads).max() + 1e-12)
        return s0, s1, penalty(params, logits[:b]), penalty(params, moved)

    s0, s1, before, after = train_and_probe(variables["params"])
    gap0 = float(s0[:b].mean() - s0[b:].mean())
    assert float(s1[:b].mean() - s1[b:].mean()) > max(0.3, gap0 + 0.3)
    assert float(after) < float(before)
