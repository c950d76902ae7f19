"""End to end on a tiny CPU run: engine-trained target and shadows, every attack, the report."""

import json
import os

import jax
import numpy as np
import pytest

from hampjax.attacks import AttackSettings, Defense, EvalData, attack_roles, evaluate_defenses
from hampjax.defenses import random_binary_inputs
from hampjax.models import get_model
from hampjax.report import rebuild
from hampjax.training import hamp_recipe, undefended_recipe


def test_attack_roles_split_each_side():
    is_member = np.arange(200) % 2 == 0
    roles = attack_roles(is_member, seed=0)
    for side in (True, False):
        counts = np.bincount(roles[is_member == side], minlength=3)
        np.testing.assert_array_equal(counts, [45, 5, 50])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, d, c = 240, 16, 4
    w = rng.normal(size=(d, c))
    x = rng.integers(0, 2, size=(n + 80, d)).astype(np.float32)
    y = np.argmax(x @ w + rng.normal(scale=2.0, size=(n + 80, c)), -1).astype(np.int32)
    data = EvalData(x=x[:n], y=y[:n], x_test=x[n:], y_test=y[n:], binary_features=True,
                    random_inputs=lambda k, m: np.asarray(random_binary_inputs(k, m, d)))
    defenses = [
        Defense("undefended", undefended_recipe("digits", epochs=3, batch_size=16)),
        Defense("hamp", hamp_recipe("digits", epochs=3, batch_size=16), output_modification=True,
                pool_size=64),
    ]
    run_dir = str(tmp_path_factory.mktemp("evaluation"))
    settings = AttackSettings(nn_epochs=2, top3_max_epochs=2, noise_variants=4,
                              boundary_samples=6, boundary_iterations=2, boundary_evals=8)
    results, report = evaluate_defenses(get_model("fc", c, hidden_sizes=(16,)), defenses, data,
                                        num_models=4, seed=0, run_dir=run_dir, settings=settings,
                                        bootstrap_resamples=5)
    return results, report, run_dir


def test_every_attack_runs_and_report_schema(run):
    results, report, run_dir = run
    expected = {"correctness", "confidence", "entropy", "modified_entropy", "loss", "lira_online",
                "lira_online_fixed_variance", "lira_offline", "lira_offline_fixed_variance",
                "global_threshold", "rmia", "nn", "top3", "label_only_gap", "label_only_noise",
                "label_only_boundary"}
    for r in results:
        assert set(r.attacks) == expected
        for scores, is_member in r.attacks.values():
            assert scores.shape == is_member.shape and np.all(np.isfinite(scores))
            assert 0 < is_member.mean() < 1
        assert len(r.attacks["label_only_boundary"][0]) == 12
    with open(os.path.join(run_dir, "report.json")) as f:
        on_disk = json.load(f)
    for name in ("undefended", "hamp"):
        entry = on_disk["defenses"][name]
        assert 0 <= entry["train_acc"] <= 1 and 0 <= entry["test_acc"] <= 1
        for attack in expected:
            for key in ("auc", "tpr@0.1%fpr", "tnr@0.1%fnr"):
                assert key in entry["attacks"][attack]
        assert "max_tpr@0.1%fpr" in entry and "max_tnr@0.1%fnr" in entry
    assert os.path.exists(os.path.join(run_dir, "scores.npz"))


def test_output_modification_is_applied_and_keeps_accuracy(run):
    results, _, _ = run
    hamp = results[1]
    assert hamp.config["output_modification"] is True
    # Output modification preserves argmax, so correctness equals the gap attack's scores.
    np.testing.assert_array_equal(hamp.attacks["correctness"][0], hamp.attacks["label_only_gap"][0])


def test_rebuild_reproduces_report(run):
    _, _, run_dir = run
    with open(os.path.join(run_dir, "report.json")) as f:
        before = f.read()
    rebuild(run_dir)
    with open(os.path.join(run_dir, "report.json")) as f:
        assert f.read() == before


def test_boundary_attacks_on_an_engine_trained_model():
    from hampjax.attacks import cw_l2_distance, hop_skip_jump_distance
    from hampjax.models import model_functions
    from hampjax.training import paired_keep, train_many

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    model = get_model("fc", 2, hidden_sizes=(8,))
    result = train_many(model, undefended_recipe("digits", epochs=20, batch_size=16), x, y,
                        paired_keep(2, 64, seed=0), seed=0, progress=False)
    _, apply_fn = model_functions(model)
    variables = jax.tree_util.tree_map(lambda a: a[0], result.variables)
    logits_fn = lambda inputs: apply_fn(variables, inputs, train=False)[0]
    predict = lambda inputs: logits_fn(inputs).argmax(-1)
    correct = np.asarray(predict(x[:8])) == y[:8]
    cw = np.asarray(cw_l2_distance(logits_fn, x[:8], y[:8], steps=60, lr=0.05))
    hsja = np.asarray(hop_skip_jump_distance(predict, x[:8], y[:8], jax.random.key(0),
                                             num_iterations=5, num_evals=20, gamma=0.01))
    assert np.all(cw[~correct] == 0) and np.all(hsja[~correct] == 0)
    assert np.all(cw[correct] > 0) and np.all(hsja[correct] > 0)
    # Both find a label-flipping perturbation for every correctly classified example.
    assert np.all(np.isfinite(cw)) and np.all(np.isfinite(hsja))


def test_defense_and_settings_validation():
    recipe = undefended_recipe("digits")
    with pytest.raises(ValueError, match="shadow_recipe .* cannot be combined with output_modification"):
        Defense("x", hamp_recipe("digits"), output_modification=True, shadow_recipe=recipe)
    assert Defense("x", hamp_recipe("digits"), shadow_recipe=recipe).shadow_recipe is recipe
    for bad in ((0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.3, 0.3)):
        with pytest.raises(ValueError, match="role_fractions must be three positive fractions"):
            AttackSettings(role_fractions=bad)
    roles = attack_roles(np.arange(200) < 100, seed=0, fractions=(0.3, 0.2, 0.5))
    assert [int(np.sum(roles[:100] == r)) for r in (0, 1, 2)] == [30, 20, 50]
