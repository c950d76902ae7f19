"""MemGuard (hampjax.defenses.memguard): the defender's classifier, Phase I against a slow
single-query loop written here, the released label, edge cases, Phase II, and its spec."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses import memguard as mg
from hampjax.training import MemGuardSpec, OutputSpec, RecipeSpec, preset_spec
from hampjax.training.presets import UNDEFENDED

C = 10
H = (16,)
# A small budget that still sees every path: rounds ending in success, a failed first round
# and searches that run through every round.
FAST = dict(hidden_sizes=H, step_size=0.5, max_steps=60, c3_rounds=5)
Q = 40  # queries per model: every default test runs the one compiled shape [2, Q, C] / [Q, C]


@pytest.fixture(scope="module")
def setup():
    """Two models' logits (members confident, non-members not) and a classifier per model."""
    key = jax.random.key(0)
    member = np.arange(2 * 128).reshape(2, 128) % 2 == 0
    logits = np.asarray(jax.random.normal(key, (2, 128, C))) * np.where(member, 4.0, 1.0)[..., None]
    g = mg.train_memguard_classifiers(key, logits, member, hidden_sizes=H, epochs=60,
                                      batch_size=16, learning_rate=0.1)
    logits = logits.astype(np.float32)
    searched = [mg.memguard_logits(_model(g, m), logits[m, :Q], **FAST) for m in range(2)]
    released, success, steps = mg.memguard_many(g, logits[:, :Q], shared=False, **FAST)
    return dict(logits=logits, member=member, g=g, queries=logits[:, :Q],
                raw=np.stack([np.asarray(o.logits) for o in searched]),
                success=np.stack([np.asarray(o.success) for o in searched]),
                steps=np.stack([np.asarray(o.steps) for o in searched]),
                many=(released, success, steps))


def _model(g, m):
    return jax.tree_util.tree_map(lambda a: a[m], g)


def _in_frame_logit(g, z0, z):
    """g's logit on softmax(z) in the sorted order of z0 (label last), as the search sees it."""
    order = np.stack([np.concatenate([sorted(np.delete(np.arange(C), row.argmax()),
                                             key=lambda j: row[j]), [row.argmax()]])
                      for row in np.asarray(z0)])
    zs = np.take_along_axis(np.asarray(z), order, axis=-1)
    return np.asarray(mg.memguard_classifier_logit(g, jax.nn.softmax(jnp.asarray(zs), -1),
                                                   hidden_sizes=H))


def test_classifier_learns(setup):
    logits, member, g = setup["logits"], setup["member"], setup["g"]
    for m in range(2):
        scores = mg.memguard_classifier_logit(_model(g, m), mg.memguard_features(logits[m]),
                                              hidden_sizes=H)
        assert np.mean((np.asarray(scores) > 0) == member[m]) > 0.8


@pytest.mark.slow
def test_batched_classifier_training_equals_one_model_at_a_time(setup):
    logits, member, g = setup["logits"], setup["member"], setup["g"]
    for m in range(2):
        alone = mg.train_memguard_classifiers(jax.random.key(0), logits[m:m + 1], member[m:m + 1],
                                              model_ids=[m], hidden_sizes=H, epochs=60,
                                              batch_size=16, learning_rate=0.1)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a[0], b, atol=1e-6),
                               alone, _model(g, m))


def test_label_kept_everywhere_and_g_crosses_where_the_search_succeeds(setup):
    logits, g, released, success = setup["queries"], setup["g"], setup["raw"], setup["success"]
    np.testing.assert_array_equal(released.argmax(-1), logits.argmax(-1))  # accuracy identical
    assert 0.5 < success.mean() < 1.0  # both outcomes occur
    for m in range(2):
        before = _in_frame_logit(_model(g, m), logits[m], logits[m])
        after = _in_frame_logit(_model(g, m), logits[m], released[m])
        s = success[m]
        assert np.all(before[s] * after[s] <= 0)  # crossed 0.5 from its initial side
        np.testing.assert_array_equal(released[m][~s], logits[m][~s])  # failures: z0 as is


# --- the slow reference: one query at a time, plain Python loops -----------------------------


@jax.jit
def _ref_g_logit(g, z):
    return mg.memguard_classifier_logit(g, jax.nn.softmax(z), hidden_sizes=H)


@jax.jit
def _ref_grad(g, z, p0, c3, c1, c2):
    def loss(z):
        return (c1 * jnp.abs(_ref_g_logit(g, z)) + c2 * jnp.maximum(jnp.max(z[:-1]) - z[-1], 0.0)
                + c3 * jnp.sum(jnp.abs(jax.nn.softmax(z) - p0)))

    return jax.grad(loss)(z)


def _reference(g, z0, *, hidden_sizes, step_size, max_steps, c3_rounds, c1=1.0, c2=10.0,
               c3_initial=0.1, c3_factor=10.0, tolerance=1e-5):
    assert hidden_sizes == H
    z0 = np.asarray(z0, np.float32)
    label = int(np.argmax(z0))
    order = sorted(np.delete(np.arange(C), label), key=lambda j: z0[j]) + [label]
    zs0 = z0[order]
    p0 = jax.nn.softmax(jnp.asarray(zs0))
    l0 = float(_ref_g_logit(g, jnp.asarray(zs0)))
    best, rounds, steps = zs0, 0, 0
    if abs(float(jax.nn.sigmoid(l0)) - 0.5) > tolerance:
        for r in range(c3_rounds):
            c3 = c3_initial * c3_factor ** r
            z, ok = jnp.asarray(zs0), False
            for _ in range(max_steps):
                d = _ref_grad(g, z, p0, c3, c1, c2)
                norm = float(jnp.linalg.norm(d))
                if norm > 0:
                    z = z - step_size * d / norm
                steps += 1
                if int(jnp.argmax(z)) == C - 1 and float(_ref_g_logit(g, z)) * l0 <= 0:
                    ok = True
                    break
            if not ok:
                break
            best, rounds = np.asarray(z), rounds + 1
    out = np.empty(C, np.float32)
    out[order] = best
    return out, rounds, steps


def test_many_models_release_the_log_softmax_of_the_search(setup):
    released, success, steps = setup["many"]
    np.testing.assert_array_equal(success, setup["success"])
    np.testing.assert_array_equal(steps, setup["steps"])
    np.testing.assert_allclose(released, jax.nn.log_softmax(setup["raw"], -1), atol=1e-6)
    np.testing.assert_array_equal(released.argmax(-1), setup["queries"].argmax(-1))
    # The searched logits keep z0's mean (every loss term is shift-invariant); the release
    # does not carry it.
    np.testing.assert_allclose(setup["raw"].mean(-1), setup["queries"].mean(-1), atol=1e-4)
    np.testing.assert_allclose(np.exp(released).sum(-1), 1.0, atol=1e-5)


def test_vectorized_search_equals_the_single_query_loop(setup):
    logits, g, released, steps = setup["queries"], setup["g"], setup["raw"], setup["steps"]
    for m in range(2):
        rounds_seen = set()
        # A failed first round, a search through every round, and some in between.
        for n in sorted(range(Q), key=lambda n: steps[m, n])[::7][:4]:
            want, want_rounds, want_steps = _reference(_model(g, m), logits[m, n], **FAST)
            assert int(steps[m, n]) == want_steps
            assert bool(setup["success"][m, n]) == (want_rounds > 0)
            np.testing.assert_allclose(released[m, n], want, rtol=1e-5, atol=1e-5)
            rounds_seen.add(want_rounds)
        assert len(rounds_seen) >= 2


@pytest.mark.slow
def test_many_models_chunks_jit_vmap_and_early_exit_agree(setup):
    logits, g = setup["queries"], setup["g"]
    small = mg.memguard_many(g, logits, shared=False, chunk_size=7, release="logits", **FAST)
    for a, b in zip(small, (setup["raw"], setup["success"], setup["steps"])):
        np.testing.assert_array_equal(a, b)
    fixed = mg.memguard_logits(_model(g, 1), logits[1], early_exit=False, **FAST)
    np.testing.assert_array_equal(np.asarray(fixed.logits), setup["raw"][1])
    np.testing.assert_array_equal(np.asarray(fixed.steps), setup["steps"][1])
    shared = mg.memguard_many(_model(g, 0), logits, shared=True, release="logits", **FAST)
    vmapped = jax.jit(jax.vmap(lambda z: mg.memguard_logits(_model(g, 0), z, **FAST).logits))(
        jnp.asarray(logits))
    np.testing.assert_allclose(shared[0], np.asarray(vmapped), atol=1e-6)
    np.testing.assert_array_equal(shared[0][0], setup["raw"][0])


def test_undecided_classifier_and_zero_gradients_release_z0(setup):
    g = _model(setup["g"], 0)
    zero = jax.tree_util.tree_map(jnp.zeros_like, g)  # g(z) = 0.5 everywhere
    z0 = jnp.asarray(setup["queries"][0])
    out = mg.memguard_logits(zero, z0, **FAST)
    np.testing.assert_array_equal(np.asarray(out.logits), np.asarray(z0))
    assert not np.any(out.success) and not np.any(out.steps)
    # Rows 0-1: a saturated softmax (exactly one-hot in float32): every gradient is exactly
    # zero. Rows 2-9: tied maxima; the first maximal class (jnp.argmax) stays the label.
    edge = z0.at[:2].set(0.0).at[:2, 3].set(200.0).at[1, 0].set(-200.0)
    edge = edge.at[2:10].multiply(0.25).at[2:10, 2].set(4.0).at[2:10, 6].set(4.0)
    out = mg.memguard_logits(g, edge, **FAST)  # the same compiled program as above
    np.testing.assert_array_equal(np.asarray(out.logits[:2]), np.asarray(edge[:2]))
    assert not np.any(out.success[:2]) and np.all(np.asarray(out.steps[:2]) == FAST["max_steps"])
    assert np.all(np.isfinite(np.asarray(out.logits)))
    assert np.all(np.asarray(out.logits[2:10]).argmax(-1) == 2)
    assert np.any(out.success[2:10])


def test_phase2_applies_the_noise_with_probability_budget_over_distortion(setup):
    z0, z = setup["queries"][0], setup["raw"][0]
    key = jax.random.key(3)
    np.testing.assert_array_equal(mg.memguard_phase2(key, z0, z, distortion_budget=2.0), z)
    np.testing.assert_array_equal(mg.memguard_phase2(key, z0, z, distortion_budget=0.0)[
        setup["success"][0]], z0[setup["success"][0]])
    n = int(np.flatnonzero(setup["success"][0])[0])
    d = float(np.abs(jax.nn.softmax(z[n]) - jax.nn.softmax(z0[n])).sum())
    rows = jax.vmap(lambda k: mg.memguard_phase2(k, z0[n], z[n], distortion_budget=d / 4))(
        jax.random.split(key, 4000))
    applied = np.mean(np.any(np.asarray(rows) != z0[n], axis=-1))
    assert abs(applied - 0.25) < 0.03
    with pytest.raises(ValueError, match="key is required"):
        mg.memguard_many(setup["g"], setup["logits"][:, :4], shared=False, phase2=True, **FAST)


@pytest.mark.slow
def test_phase2_through_many_models(setup):
    key = jax.random.key(3)
    kw = dict(shared=False, key=key, phase2=True, release="logits", **FAST)
    none = mg.memguard_many(setup["g"], setup["queries"], distortion_budget=0.0, **kw)
    np.testing.assert_array_equal(none[0], setup["queries"])
    every = mg.memguard_many(setup["g"], setup["queries"], distortion_budget=2.0, **kw)
    np.testing.assert_array_equal(every[0], setup["raw"])


def test_bad_arguments_name_themselves(setup):
    g = _model(setup["g"], 0)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        mg.memguard_logits(g, setup["logits"][0], max_steps=0, hidden_sizes=H)
    with pytest.raises(ValueError, match="logits.shape"):
        mg.memguard_logits(g, jnp.zeros((3, 1)), hidden_sizes=H)
    with pytest.raises(ValueError, match="is_member must have shape"):
        mg.train_memguard_classifiers(jax.random.key(0), setup["logits"], setup["member"][:1])
    with pytest.raises(ValueError, match="release must be one of"):
        mg.memguard_many(setup["g"], setup["queries"], shared=False, release="probs", **FAST)
    with pytest.raises(ValueError, match="logits must be finite"):
        mg.memguard_many(setup["g"], np.full((2, 3, C), np.nan, np.float32), shared=False,
                         **FAST)
    with pytest.raises(ValueError, match="distortion_budget must be in"):
        mg.memguard_phase2(jax.random.key(0), jnp.zeros(3), jnp.zeros(3), distortion_budget=3.0)


# --- the spec -------------------------------------------------------------------------------


def test_spec_defaults_round_trip_and_presets():
    spec = preset_spec("memguard", "purchase100")
    assert spec.defense.kind == "cross_entropy" and spec.output.kind == "memguard"
    assert spec.replace(name="undefended", output=OutputSpec()) == UNDEFENDED["purchase100"]
    m = spec.output.memguard
    assert (m.classifier, m.hidden_sizes, m.epochs, m.learning_rate, m.batch_size) == (
        "target", (256, 128, 64), 400, 1e-3, 256)
    assert (m.c1, m.c2, m.c3_initial, m.c3_factor, m.c3_rounds, m.step_size, m.max_steps,
            m.tolerance, m.phase2, m.release) == (1.0, 10.0, 0.1, 10.0, 7, 0.1, 299, 1e-5, False,
                                                  "log_softmax")
    changed = spec.replace(**{"output.memguard.classifier": "per_shadow",
                              "output.memguard.phase2": True,
                              "output.memguard.distortion_budget": 0.5,
                              "output.memguard.hidden_sizes": [32, 8]})
    assert RecipeSpec.from_dict(changed.to_dict()) == changed
    assert changed.output.memguard.hidden_sizes == (32, 8)
    for dataset in UNDEFENDED:
        assert preset_spec("memguard", dataset).output.kind == "memguard"


@pytest.mark.parametrize("changes, message", [
    ({"output.memguard.classifier": "mine"}, "output.memguard.classifier must be one of"),
    ({"output.memguard.hidden_sizes": []}, "output.memguard.hidden_sizes must be a non-empty"),
    ({"output.memguard.hidden_sizes": [8, 0]}, r"output.memguard.hidden_sizes\[1\] must be"),
    ({"output.memguard.epochs": 0}, "output.memguard.epochs must be an integer >= 1"),
    ({"output.memguard.learning_rate": 0.0}, r"output.memguard.learning_rate must be in \(0"),
    ({"output.memguard.c2": -1.0}, r"output.memguard.c2 must be in \[0"),
    ({"output.memguard.c3_factor": 0.0}, "output.memguard.c3_factor must be in"),
    ({"output.memguard.step_size": "big"}, "output.memguard.step_size must be a number"),
    ({"output.memguard.tolerance": 0.5}, r"output.memguard.tolerance must be in \[0, 0.5\)"),
    ({"output.memguard.phase2": 1}, "output.memguard.phase2 must be a Python bool"),
    ({"output.memguard.distortion_budget": 0.3}, "distortion_budget is not used with "
                                                 "output.memguard.phase2=False"),
    ({"output.memguard.phase2": True, "output.memguard.distortion_budget": 2.5},
     r"output.memguard.distortion_budget must be in \[0, 2\]"),
    ({"output.pool_size": 10}, "output.pool_size is not used with output.kind='memguard'"),
    ({"output.memguard.bogus": 1}, "unknown field 'output.memguard.bogus'"),
    ({"output.memguard.release": "probs"}, "output.memguard.release must be one of"),
])
def test_spec_validation_names_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        preset_spec("memguard", "digits", **changes)


def test_memguard_settings_stay_at_defaults_for_other_kinds():
    with pytest.raises(ValueError, match=r"output.memguard is not used with output.kind='hamp'"
                                         r".*output.memguard.c1"):
        preset_spec("hamp", "digits", **{"output.memguard.c1": 2.0})
    with pytest.raises(ValueError, match="output.memguard must be a dict or a MemGuardSpec"):
        OutputSpec(kind="memguard", memguard={"c1": 1.0})
    assert OutputSpec(kind="memguard", memguard=MemGuardSpec(c1=0.0)).memguard.c1 == 0.0
