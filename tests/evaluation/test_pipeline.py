"""The evaluation pipeline step by step on a tiny run (digits subset, 4 models, 2 epochs, fc).

One module-level evaluate_defenses run trains the models; each step is then called alone on
them (training reloads the finished workdir), and the attack phase is killed and resumed.
"""

import dataclasses
import os

import jax
import numpy as np
import pytest

from _eval_helpers import NUM_MODELS, defenses, digits_data
from hampjax.defenses import OutputModifier, modify_output, sample_from_pool
from hampjax.evaluation import (
    FAMILIES,
    FAMILY_ORDER,
    AttackSettings,
    attack_inputs,
    evaluate_defenses,
    predict_outputs,
    score_attacks,
    score_family,
    statistics,
    train_models,
)
from hampjax.evaluation import families as families_module
from hampjax.evaluation import pipeline as pipeline_module
from hampjax.models import get_model, model_functions
from hampjax.report import load_evaluation, rebuild, verify_run_dir
from hampjax.training import paired_keep, predict_many

SETTINGS = AttackSettings(nn_epochs=1, top3_max_epochs=1, noise_variants=2,
                          boundary_samples=3, boundary_iterations=1, boundary_evals=4)
MODEL = get_model("fc", 10, hidden_sizes=(16,))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = digits_data()
    run_dir = str(tmp_path_factory.mktemp("evaluation"))
    evaluation, report = evaluate_defenses(MODEL, defenses(), data, num_models=NUM_MODELS,
                                           seed=0, run_dir=run_dir, settings=SETTINGS,
                                           bootstrap_resamples=3, plots=False)
    return data, run_dir, evaluation, report


@pytest.fixture(scope="module")
def trained(run):
    data, run_dir, _, _ = run
    undefended, hamp = defenses()
    models = {d.name: train_models(MODEL, d, data, num_models=NUM_MODELS, seed=0,
                                   workdir=os.path.join(run_dir, "train", d.name))
              for d in (undefended, hamp)}
    return data, models, {"undefended": undefended, "hamp": hamp}


def test_step1_train_models_on_the_paired_keep_matrix(trained):
    data, models, _ = trained
    result = models["undefended"]
    np.testing.assert_array_equal(result.keep, paired_keep(NUM_MODELS, len(data.x), seed=0))
    assert np.all(result.keep[0] == ~result.keep[1]) and np.all(result.keep[2] == ~result.keep[3])
    assert all(leaf.shape[0] == NUM_MODELS for leaf in jax.tree_util.tree_leaves(result.variables))
    # The module's evaluate_defenses run trained them; this call loads the finished workdir.
    assert (result.models_trained, result.models_loaded) == (0, NUM_MODELS)


def test_step2_predict_plain_and_through_hamp_output_modification(trained):
    data, models, defs = trained
    _, apply_fn = model_functions(MODEL)
    plain = predict_outputs(MODEL, models["undefended"].variables, defs["undefended"], data, seed=0)
    np.testing.assert_array_equal(plain.outputs, predict_many(apply_fn, models["undefended"].variables, data.x))
    assert plain.test_outputs.shape == (NUM_MODELS, len(data.x_test), 1, 10)

    variables = models["hamp"].variables
    hamp = predict_outputs(MODEL, variables, defs["hamp"], data, seed=0)
    logits = predict_many(apply_fn, variables, data.x)
    np.testing.assert_array_equal(hamp.outputs.argmax(-1), logits.argmax(-1))  # ranking kept
    # Row (m, j): the pure functions on model m's own pool with the row's explicit key.
    keys = jax.random.split(jax.random.fold_in(jax.random.key(0), 7), 4)
    pools = predict_many(apply_fn, variables, data.random_inputs(keys[0], 64))[:, :, 0]
    for m, j in ((0, 0), (3, 17)):
        row_key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(keys[1], m), j), 0)
        expected = modify_output(logits[m, j, 0], sample_from_pool(pools[m], row_key, ()))
        np.testing.assert_allclose(hamp.outputs[m, j, 0], expected, rtol=1e-6)
        one = jax.jit(lambda mod, z, k: mod(z, k))(OutputModifier.from_pool(pools[m]), logits[m, j, 0], row_key)
        np.testing.assert_allclose(hamp.outputs[m, j, 0], one, rtol=1e-6)


@pytest.fixture(scope="module")
def inputs(trained):
    data, models, defs = trained
    predictions = predict_outputs(MODEL, models["hamp"].variables, defs["hamp"], data, seed=0)
    return attack_inputs(MODEL, models["hamp"].variables, predictions, data, models["hamp"].keep,
                         target=0, seed=0, settings=SETTINGS), predictions


EXPECTED = {
    "metric": ["correctness", "confidence", "entropy", "modified_entropy", "loss"],
    "lira": ["lira_online", "lira_online_fixed_variance", "lira_offline",
             "lira_offline_fixed_variance", "global_threshold"],
    "rmia": ["rmia"], "nn": ["nn", "top3"],
    "label_only": ["label_only_gap", "label_only_augmentation"],
    "boundary": ["label_only_boundary"],
}


@pytest.mark.parametrize("family", FAMILY_ORDER)
def test_step3_each_attack_family_alone(inputs, family):
    attack_in, _ = inputs
    scores = score_family(family, attack_in)
    assert list(scores) == EXPECTED[family]
    size = 6 if family == "boundary" else int(attack_in.evaluated.sum())
    for s, member in scores.values():
        assert s.shape == member.shape == (size,) and np.all(np.isfinite(s))
        assert 0 < member.mean() < 1


def test_label_only_noise_on_binary_features(inputs):
    attack_in, _ = inputs
    binary = dataclasses.replace(attack_in, x=(attack_in.x > 0).astype(np.float32),
                                 binary_features=True, image_shape=None)
    assert list(score_family("label_only", binary)) == ["label_only_gap", "label_only_noise"]


def test_step4_statistics(trained, inputs):
    data, models, _ = trained
    _, predictions = inputs
    keep = models["hamp"].keep
    train_acc, test_acc, stats = statistics(predictions, data, keep, target=0)
    released = predictions.outputs[0, :, 0]
    assert train_acc == np.mean(released[keep[0]].argmax(-1) == data.y[keep[0]])
    assert 0 <= test_acc <= 1 and set(stats) == {"entropy_members", "entropy_nonmembers"}


def test_attack_phase_resumes_after_a_kill(run, inputs, tmp_path, monkeypatch):
    attack_in, _ = inputs
    config = {"defense": "hamp"}
    # The module's evaluate_defenses run scored the same target with the same inputs.
    uninterrupted = {a: (s.scores, s.is_member) for a, s in run[2].defenses["hamp"].attacks.items()}
    calls = []
    originals = dict(FAMILIES)

    def counting(name):
        def scorer(x):
            calls.append(name)
            return originals[name](x)
        return scorer

    def killed(x):
        raise KeyboardInterrupt("killed during the nn family")

    for name in FAMILY_ORDER:
        monkeypatch.setitem(families_module.FAMILIES, name, counting(name))
    monkeypatch.setitem(families_module.FAMILIES, "nn", killed)
    with pytest.raises(KeyboardInterrupt):
        score_attacks(attack_in, attack_dir=str(tmp_path), config=config)
    assert calls == ["metric", "lira", "rmia"]
    assert sorted(os.listdir(tmp_path)) == ["lira.npz", "metric.npz", "rmia.npz"]
    monkeypatch.setitem(families_module.FAMILIES, "nn", counting("nn"))
    calls.clear()
    resumed, seconds = score_attacks(attack_in, attack_dir=str(tmp_path), config=config)
    assert calls == ["nn", "label_only", "boundary"]  # finished families are not recomputed
    assert list(resumed) == list(uninterrupted) and set(seconds) == set(FAMILY_ORDER)
    for name, (s, member) in uninterrupted.items():
        np.testing.assert_array_equal(resumed[name][0], s)
        np.testing.assert_array_equal(resumed[name][1], member)
    calls.clear()
    assert list(score_attacks(attack_in, attack_dir=str(tmp_path), config=config)[0]) == list(resumed)
    assert calls == []
    # A different config (or different outputs) does not reuse the stored scores.
    for name in FAMILY_ORDER:
        monkeypatch.setitem(families_module.FAMILIES, name, lambda x, name=name: calls.append(name) or {})
    score_attacks(attack_in, attack_dir=str(tmp_path), config={"defense": "other"})
    score_attacks(dataclasses.replace(attack_in, outputs=attack_in.outputs + 1.0),
                  attack_dir=str(tmp_path), config=config)
    assert calls == list(FAMILY_ORDER) * 2


def test_evaluate_defenses_result_report_and_rebuild(run):
    data, run_dir, evaluation, report = run
    assert list(evaluation.defenses) == ["undefended", "hamp"]
    hamp = evaluation.defenses["hamp"]
    assert list(hamp.attacks) == [a for f in FAMILY_ORDER for a in EXPECTED[f]]
    assert hamp.config["output"]["kind"] == "hamp" and hamp.config["output"]["pool_size"] == 64
    assert evaluation.defenses["undefended"].config["output"]["kind"] == "none"
    assert hamp.config["num_models"] == NUM_MODELS and hamp.config["settings"]["nn_epochs"] == 1
    assert set(hamp.timings) == {"train", "predict", *FAMILY_ORDER}
    assert set(hamp.stats) == {"entropy_members", "entropy_nonmembers"}
    assert (hamp.models_trained, hamp.models_loaded) == (NUM_MODELS, 0)
    # Output modification keeps the top-1 label: correctness equals the gap attack.
    np.testing.assert_array_equal(hamp.attacks["correctness"].scores, hamp.attacks["label_only_gap"].scores)
    np.testing.assert_array_equal(evaluation.keep, paired_keep(NUM_MODELS, len(data.x), seed=0))
    entry = report["defenses"]["hamp"]
    assert entry["config"] == hamp.config and entry["stats"] == hamp.stats
    assert sorted(os.listdir(os.path.join(run_dir, "attacks", "hamp"))) == sorted(
        f"{f}.npz" for f in FAMILY_ORDER)
    verify_run_dir(run_dir)
    with open(os.path.join(run_dir, "report.json"), "rb") as f:
        before = f.read()
    assert rebuild(run_dir, plots=False) == report
    with open(os.path.join(run_dir, "report.json"), "rb") as f:
        assert f.read() == before
    assert load_evaluation(run_dir).defenses["hamp"].config == hamp.config


def test_a_rerun_loads_every_family_and_reproduces_the_scores(run, monkeypatch):
    data, run_dir, evaluation, _ = run
    locked = []

    class RecordingLock(pipeline_module.RunLock):
        def __enter__(self):
            locked.append((self.directory, self.what))
            return super().__enter__()

    monkeypatch.setattr(pipeline_module, "RunLock", RecordingLock)

    def not_again(x):
        raise AssertionError("a finished family was recomputed")

    for name in FAMILY_ORDER:
        monkeypatch.setitem(families_module.FAMILIES, name, not_again)
    again, report = evaluate_defenses(MODEL, defenses(), data, num_models=NUM_MODELS, seed=0,
                                      run_dir=run_dir, settings=SETTINGS, bootstrap_resamples=3,
                                      plots=False)
    for d, result in evaluation.defenses.items():
        for a, scores in result.attacks.items():
            np.testing.assert_array_equal(again.defenses[d].attacks[a].scores, scores.scores)
    assert report["defenses"]["hamp"]["attacks"] == run[3]["defenses"]["hamp"]["attacks"]
    assert [(r.models_trained, r.models_loaded) for r in again.defenses.values()] == [(0, 4)] * 2
    assert locked == [(os.path.abspath(run_dir), "evaluation")]
    verify_run_dir(run_dir)


def test_validation(run):
    data = run[0]
    with pytest.raises(ValueError, match="distinct names"):
        evaluate_defenses(MODEL, defenses()[:1] * 2, data, num_models=4, seed=0)
    with pytest.raises(ValueError, match="num_models must be an even integer"):
        evaluate_defenses(MODEL, defenses()[:1], data, num_models=5, seed=0)
    with pytest.raises(ValueError, match="data.random_inputs is required"):
        evaluate_defenses(MODEL, defenses()[1:], dataclasses.replace(data, random_inputs=None),
                          num_models=4, seed=0)
