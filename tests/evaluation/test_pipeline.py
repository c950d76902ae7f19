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
    boundary_attack,
    evaluate_defense,
    evaluate_defenses,
    multi_target_scores,
    predict_outputs,
    score_attacks,
    score_family,
    statistics,
    train_models,
)
from hampjax.evaluation import families as families_module
from hampjax.evaluation import pipeline as pipeline_module
from hampjax.models import get_model, model_functions
from hampjax.report import load_evaluation, verify_run_dir
from hampjax.report.report import rebuild  # (hampjax.report.rebuild may be the CLI module)
from hampjax.training import paired_keep, predict_many

SETTINGS = AttackSettings(nn_epochs=1, top3_max_epochs=1, noise_variants=2,
                          boundary_samples=3, boundary_iterations=1, boundary_evals=4,
                          boundary_cw_steps=10, boundary_cw_search_steps=2, shokri_steps=20)
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
    "rmia": ["rmia"], "nn": ["nn", "top3"], "shokri": ["shokri"], "risk_score": ["risk_score"],
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


def test_boundary_attack_cw_l2_on_images_hop_skip_jump_on_tabular(inputs):
    attack_in, _ = inputs
    assert boundary_attack(attack_in) == "cw_l2"  # digits: EvalData.image_shape is set
    tabular = dataclasses.replace(attack_in, image_shape=None)
    assert boundary_attack(tabular) == "hop_skip_jump"
    cw = score_family("boundary", attack_in)["label_only_boundary"]
    for choice, other in (("hop_skip_jump", attack_in), ("auto", tabular)):
        forced = dataclasses.replace(other, settings=dataclasses.replace(SETTINGS, boundary_attack=choice))
        assert boundary_attack(forced) == "hop_skip_jump"
        hsja = score_family("boundary", forced)["label_only_boundary"]
        np.testing.assert_array_equal(hsja[1], cw[1])  # the same subsample
        assert not np.array_equal(hsja[0], cw[0])
    with pytest.raises(ValueError, match="boundary_attack must be one of"):
        AttackSettings(boundary_attack="hsja")


def test_shokri_and_risk_score_learn_from_the_shadows_only(inputs):
    attack_in, _ = inputs
    shokri, risk = score_family("shokri", attack_in), score_family("risk_score", attack_in)
    assert 0 <= risk["risk_score"][0].min() and risk["risk_score"][0].max() <= 1
    assert 0 < shokri["shokri"][0].min() and shokri["shokri"][0].max() < 1
    # The target's membership is not used: flipping its keep row (labels aside) changes nothing.
    keep = attack_in.keep.copy()
    keep[0] = ~keep[0]
    flipped = dataclasses.replace(attack_in, keep=keep, roles=attack_in.roles)
    np.testing.assert_array_equal(score_family("shokri", flipped)["shokri"][0], shokri["shokri"][0])
    np.testing.assert_array_equal(score_family("risk_score", flipped)["risk_score"][0],
                                  risk["risk_score"][0])


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
    assert calls == ["nn", "shokri", "risk_score", "label_only", "boundary"]  # not the finished ones
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


def test_several_targets_mean_and_spread_with_target_0_as_the_main_results(run):
    data, run_dir, evaluation, report = run
    undefended = defenses()[0]
    # Models and every family load from the run directory; only the summary is computed.
    result = evaluate_defense(
        MODEL, undefended, data, num_models=NUM_MODELS, seed=0, settings=SETTINGS,
        workdir=os.path.join(run_dir, "train", "undefended"),
        attack_dir=os.path.join(run_dir, "attacks", "undefended"), targets=NUM_MODELS)
    multi = result.multi_target
    cheap = EXPECTED["metric"] + EXPECTED["lira"] + EXPECTED["rmia"]
    assert multi["targets"] == [0, 1, 2, 3] and list(multi["attacks"]) == cheap
    assert multi["metrics"] == ["auc", "tpr@0.1%fpr", "tnr@0.1%fnr"]
    main = report["defenses"]["undefended"]
    for attack in cheap:
        for metric in multi["metrics"]:
            spread = multi["attacks"][attack][metric]
            assert spread["per_target"][0] == main["attacks"][attack][metric], (attack, metric)
            assert spread["mean"] == pytest.approx(np.mean(spread["per_target"]))
            assert spread["std"] == pytest.approx(np.std(spread["per_target"], ddof=1))
    assert multi["train_acc"]["per_target"][0] == main["train_acc"]
    assert "multi_target" in result.timings
    # Each target in turn: the scores of the families with that model as the target.
    trained = train_models(MODEL, undefended, data, num_models=NUM_MODELS, seed=0,
                           workdir=os.path.join(run_dir, "train", "undefended"))
    predictions = predict_outputs(MODEL, trained.variables, undefended, data, seed=0)
    per_target = multi_target_scores(predictions.outputs, predictions.test_outputs, data.y,
                                     data.y_test, trained.keep, targets=[2, 1], seed=0,
                                     settings=SETTINGS)
    target1 = attack_inputs(MODEL, trained.variables, predictions, data, trained.keep, target=1,
                            seed=0, settings=SETTINGS)
    for family in ("metric", "lira", "rmia"):
        for attack, (scores, member) in score_family(family, target1).items():
            np.testing.assert_array_equal(per_target[attack][1][1], member)
            np.testing.assert_allclose(per_target[attack][1][0], scores, rtol=1e-6, err_msg=attack)
    with pytest.raises(ValueError, match="targets must be at most num_models"):
        evaluate_defense(MODEL, undefended, data, num_models=4, seed=0, targets=5)
    with pytest.raises(ValueError, match="targets > 1 needs an adaptive attacker"):
        evaluate_defense(MODEL, dataclasses.replace(undefended, shadow_recipe=undefended.recipe),
                         data, num_models=4, seed=0, targets=2)
