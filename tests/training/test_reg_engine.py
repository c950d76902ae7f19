"""train_many's per-example targets (distillation's teacher logits) and early-stopping snapshots.

Tiny random data, an FC net, 2 models with unequal member counts (padding rows and skipped
steps occur)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hampjax.defenses import distillation_loss
from hampjax.models import get_model, model_functions
from hampjax.training import (
    CrossEntropyParams,
    DistillationParams,
    OptimizerSpec,
    RecipeSpec,
    ScheduleSpec,
    build_recipe,
    epoch_batches,
    model_key,
    train_many,
)

N, C = 40, 4


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype(np.float32)
    y = rng.integers(0, C, N).astype(np.int32)
    keep = np.zeros((2, N), bool)
    keep[0, :23], keep[1, 15:] = True, True  # 23 and 25 members, batch 8: 3 and 4 steps
    targets = (3.0 * rng.normal(size=(2, N, C))).astype(np.float32)
    model = get_model("fc", C, hidden_sizes=(8,))
    spec = RecipeSpec(name="distill", defense=DistillationParams(temperature=2.0, kl_weight=0.7),
                      optimizer=OptimizerSpec(kind="sgd", learning_rate=0.2, momentum=0.9),
                      schedule=ScheduleSpec(kind="step", milestones=(1,), factor=0.5),
                      epochs=2, batch_size=8)
    return x, y, keep, targets, model, spec


def reference(model, recipe, x, y, keep, targets, seed):
    """Each model plainly: Python loops over epochs and steps, the loss averaged over the real
    rows of each batch, with their target rows."""
    init_fn, apply_fn = model_functions(model)
    tx = optax.inject_hyperparams(recipe.optimizer)(learning_rate=recipe.learning_rate(0))
    d = recipe.spec.defense

    @jax.jit
    def step(params, opt_state, xb, yb, tb, wb):  # wb: the batch's real rows (mean over them)
        def loss_fn(p):
            logits, _ = apply_fn({"params": p}, xb, train=True)
            loss = distillation_loss(logits, yb, tb, temperature=d.temperature,
                                     kl_weight=d.kl_weight)
            return jnp.sum(loss * wb) / jnp.sum(wb)

        updates, opt_state = tx.update(jax.grad(loss_fn)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    batches = jax.jit(epoch_batches, static_argnames=("batch_size", "num_steps", "shuffle"))

    out = []
    for m, keep_row in enumerate(keep):
        key = model_key(seed, m)
        params = init_fn(jax.random.fold_in(key, 0), jnp.asarray(x[:1]))["params"]
        opt_state = tx.init(params)
        num_steps = int(np.ceil(keep_row.sum() / recipe.batch_size))
        for epoch in range(recipe.epochs):
            opt_state.hyperparams["learning_rate"] = recipe.learning_rate(epoch)
            idx, where = batches(key, jnp.asarray(keep_row), jnp.int32(epoch),
                                 batch_size=recipe.batch_size, num_steps=num_steps,
                                 shuffle=recipe.shuffle)
            idx, where = np.asarray(idx), np.asarray(where, np.float32)
            for s in range(num_steps):
                rows = idx[s]
                params, opt_state = step(params, opt_state, x[rows], y[rows], targets[m][rows],
                                         where[s])
        out.append(params)
    return out


def test_targets_are_gathered_per_batch(setup):
    x, y, keep, targets, model, spec = setup
    recipe = build_recipe(spec)
    scan = train_many(model, recipe, x, y, keep, seed=3, targets=targets, progress=False,
                      loop="scan", chunk_size=2)
    for m, want in enumerate(reference(model, recipe, x, y, keep, targets, 3)):
        got = jax.tree_util.tree_map(lambda a: a[m], scan.variables["params"])
        jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-5,
                                                                       atol=1e-6), got, want)
    # The host loop threads the targets as the scan does (dense: bit-identical on CPU).
    host = train_many(model, recipe, x, y, keep, seed=3, targets=targets, progress=False,
                      loop="host", chunk_size=2)
    for u, v in zip(jax.tree_util.tree_leaves(scan.variables),
                    jax.tree_util.tree_leaves(host.variables)):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(scan.train_loss, host.train_loss)


def test_targets_validation_and_fingerprint(setup, tmp_path):
    x, y, keep, targets, model, spec = setup
    distill, plain = build_recipe(spec), build_recipe(spec.replace(defense=CrossEntropyParams()))
    with pytest.raises(ValueError, match="targets is required for defense.kind='distillation'"):
        train_many(model, distill, x, y, keep, seed=0, progress=False)
    with pytest.raises(ValueError, match="targets must be None for defense.kind='cross_entropy'"):
        train_many(model, plain, x, y, keep, seed=0, targets=targets, progress=False)
    with pytest.raises(ValueError, match=r"targets must have shape \[M, N, C\]"):
        train_many(model, distill, x, y, keep, seed=0, targets=targets[:, :5], progress=False)
    with pytest.raises(ValueError, match="finite"):
        train_many(model, distill, x, y, keep, seed=0, targets=targets * np.nan, progress=False)
    one = distill.replace(epochs=1)
    train_many(model, one, x, y, keep, seed=0, targets=targets, progress=False,
               workdir=str(tmp_path))
    again = train_many(model, one, x, y, keep, seed=0, targets=targets, progress=False,
                       workdir=str(tmp_path))
    assert again.models_loaded == 2 and again.models_trained == 0
    changed = targets.copy()
    changed[1, 3] += 1.0
    with pytest.raises(ValueError, match="differs in: targets, model 1"):
        train_many(model, one, x, y, keep, seed=0, targets=changed, progress=False,
                   workdir=str(tmp_path))
    # More models whose first rows match: only the new one trains.
    more = train_many(model, one, x, y, np.concatenate([keep, keep[:1]]), seed=0,
                      targets=np.concatenate([targets, changed[1:]]), progress=False,
                      workdir=str(tmp_path))
    assert (more.models_loaded, more.models_trained) == (2, 1)


def test_snapshot_equals_a_run_stopped_at_that_epoch(setup):
    x, y, keep, _, model, spec = setup
    spec = spec.replace(defense=CrossEntropyParams(), epochs=3, early_stopping_epochs=(1, 2))
    full = train_many(model, build_recipe(spec), x, y, keep, seed=1, progress=False,
                      snapshot_epochs=[e - 1 for e in spec.early_stopping_epochs])
    for e in spec.early_stopping_epochs:
        stopped = train_many(model, build_recipe(spec.replace(epochs=e, early_stopping_epochs=())),
                             x, y, keep, seed=1, progress=False)
        for u, v in zip(jax.tree_util.tree_leaves(full.snapshots[e - 1]),
                        jax.tree_util.tree_leaves(stopped.variables)):
            np.testing.assert_array_equal(u, v)  # bit-identical on CPU (dense)
