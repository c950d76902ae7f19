"""MemGuard through the evaluation pipeline (digits subset, fc net, 4 models, 2 epochs): every
released output (candidates, held-out set, shadows, the NN attack's known members and
non-members) is post-processed, the labels and accuracies are the undefended ones."""

import numpy as np
import pytest
from scipy.special import softmax as _softmax

from _eval_helpers import NUM_MODELS, digits_data
from hampjax.evaluation import (
    AttackSettings,
    Defense,
    attack_inputs,
    attack_roles,
    evaluate_defense,
    memguard_outputs,
    predict_outputs,
    statistics,
    train_models,
)
from hampjax.evaluation import families as families_module
from hampjax.models import get_model
from hampjax.training import OutputSpec, build_recipe, preset_spec

MODEL = get_model("fc", 10, hidden_sizes=(16,))


def softmax(z):
    return _softmax(z, axis=-1)
SETTINGS = AttackSettings(nn_epochs=1, top3_max_epochs=1, noise_variants=2, shokri_steps=20)
TINY = {"output.memguard.hidden_sizes": (16,), "output.memguard.epochs": 20,
        "output.memguard.batch_size": 32, "output.memguard.learning_rate": 0.05,
        "output.memguard.step_size": 0.5, "output.memguard.max_steps": 30,
        "output.memguard.c3_rounds": 3}
SPEC = preset_spec("memguard", "digits", epochs=2, batch_size=32, **TINY)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = digits_data()
    workdir = str(tmp_path_factory.mktemp("memguard"))
    defense = Defense("memguard", build_recipe(SPEC))
    trained = train_models(MODEL, defense, data, num_models=NUM_MODELS, seed=0, workdir=workdir)
    plain = predict_outputs(MODEL, trained.variables,
                            Defense("plain", build_recipe(SPEC.replace(output=OutputSpec()))),
                            data, seed=0)
    released = predict_outputs(MODEL, trained.variables, defense, data, seed=0,
                               keep=trained.keep, target=0)
    return dict(data=data, defense=defense, workdir=workdir, trained=trained, plain=plain,
                released=released)


def test_released_outputs_differ_but_keep_every_label_and_the_accuracy(run):
    plain, released, data, keep = run["plain"], run["released"], run["data"], run["trained"].keep
    for a, b in ((released.outputs, plain.outputs), (released.test_outputs, plain.test_outputs)):
        assert a.shape == b.shape and a.dtype == np.float32
        np.testing.assert_array_equal(a.argmax(-1), b.argmax(-1))
        np.testing.assert_allclose(np.exp(a).sum(-1), 1.0, atol=1e-5)  # log-probabilities
        moved = np.abs(np.exp(a) - softmax(b)).sum(-1) > 1e-3  # the confidence vector changed
        for m in range(NUM_MODELS):  # every model's (the shadows') outputs are post-processed
            assert moved[m].mean() > 0.2
    assert statistics(released, data, keep, target=0)[:2] == statistics(plain, data, keep,
                                                                         target=0)[:2]
    assert 0 < released.stats["memguard_success_members"] <= 1
    assert released.stats["memguard_steps"] > 0 and plain.stats == {}


def _spy_nn(monkeypatch):
    """Stub the NN and top-3 attacks' training, recording what they are given."""
    seen = {}

    def nn(*args, **kwargs):
        seen["train"], seen["val"] = args[0], args[3]
        return "nn"

    def top3(*args, **kwargs):
        seen["top3"] = args[0]
        return "top3"

    monkeypatch.setattr(families_module, "train_nn_attack", nn)
    monkeypatch.setattr(families_module, "train_top3_attack", top3)
    monkeypatch.setattr(families_module, "nn_attack_scores", lambda a, out, y: out[:, 0])
    monkeypatch.setattr(families_module, "top3_attack_scores", lambda a, out: out[:, 0])
    return seen


def test_the_nn_attacks_known_members_and_non_members_are_post_processed(run, monkeypatch):
    released, plain, trained = run["released"], run["plain"], run["trained"]
    seen = _spy_nn(monkeypatch)
    inputs = attack_inputs(MODEL, trained.variables, released, run["data"], trained.keep,
                           target=0, seed=0, settings=SETTINGS)
    families_module.score_family("nn", inputs)
    roles = attack_roles(trained.keep[0], seed=0, fractions=SETTINGS.role_fractions)
    np.testing.assert_array_equal(seen["train"], released.outputs[0, roles == 0, 0])
    np.testing.assert_array_equal(seen["val"], released.outputs[0, roles == 1, 0])
    np.testing.assert_array_equal(seen["top3"], released.outputs[0, roles == 0, 0])
    assert np.any(np.abs(np.exp(seen["train"]) - softmax(plain.outputs[0, roles == 0, 0]))
                  > 1e-3)


@pytest.mark.slow
def test_evaluate_defense_end_to_end(run):
    seen = {}
    real = families_module.train_nn_attack

    def spy(*args, **kwargs):  # the real NN attack, recording its known members / non-members
        seen["train"] = args[0]
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(families_module, "train_nn_attack", spy)
        result = evaluate_defense(MODEL, run["defense"], run["data"], num_models=NUM_MODELS,
                                  seed=0, workdir=run["workdir"], settings=SETTINGS)
    plain, released, keep = run["plain"], run["released"], run["trained"].keep
    assert result.models_loaded == NUM_MODELS
    assert (result.train_acc, result.test_acc) == statistics(plain, run["data"], keep,
                                                             target=0)[:2]
    assert result.stats["memguard_steps"] == released.stats["memguard_steps"]
    assert result.config["recipe"]["output"]["memguard"]["max_steps"] == 30
    roles = attack_roles(keep[0], seed=0, fractions=SETTINGS.role_fractions)
    np.testing.assert_array_equal(seen["train"], released.outputs[0, roles == 0, 0])
    assert {"nn", "lira_online", "label_only_gap"} <= set(result.attacks)


def test_per_shadow_classifiers_change_only_the_shadows(run):
    plain, keep = run["plain"], run["trained"].keep
    settings = SPEC.output.memguard.to_dict()
    target = memguard_outputs(plain.outputs, plain.test_outputs, keep, settings, target=0,
                              seed=0)
    np.testing.assert_array_equal(target[0], run["released"].outputs)
    own = memguard_outputs(plain.outputs, plain.test_outputs, keep,
                           {**settings, "classifier": "per_shadow"}, target=0, seed=0)
    # The target's g is the same up to float rounding (trained in a batch of 4, or alone).
    for a, b in ((own[0][0], target[0][0]), (own[1][0], target[1][0])):
        assert np.mean(np.any(a != b, axis=-1)) < 0.02
    assert all(np.any(own[0][m] != target[0][m]) for m in range(1, NUM_MODELS))
    np.testing.assert_array_equal(own[0].argmax(-1), plain.outputs.argmax(-1))


def test_memguard_needs_the_keep_matrix(run):
    with pytest.raises(ValueError, match="keep .* is required"):
        predict_outputs(MODEL, run["trained"].variables, Defense("m", build_recipe(SPEC)),
                        run["data"], seed=0)
