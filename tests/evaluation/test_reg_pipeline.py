"""The evaluation of the regularization baselines: distillation's teachers, early-stopping
snapshots as their own results, a defense's own model (dropout). Tiny digits subset, fc model;
only the metric attacks run (the other families are tested in test_pipeline.py)."""

import json
import os

import jax
import numpy as np
import pytest

from _eval_helpers import digits_data
from hampjax.evaluation import (
    Defense,
    evaluate_defense_results,
    evaluate_defenses,
    train_recipe,
)
from hampjax.evaluation import families as families_module
from hampjax.models import get_model, model_functions
from hampjax.training import (
    DistillationParams,
    build_recipe,
    predict_many,
    preset_spec,
    teacher_spec,
    train_many,
)

MODEL = get_model("fc", 10, hidden_sizes=(16,))


def spec(name, **changes):
    changes = {"epochs": 2, "batch_size": 32, **changes}
    return preset_spec("vanilla", "purchase100_fc").replace(name=name, **changes)


@pytest.fixture
def metric_only(monkeypatch):
    monkeypatch.setattr(families_module, "FAMILY_ORDER", ("metric",))


def test_distillation_end_to_end_on_two_models(tmp_path):
    data = digits_data(num_candidates=120, num_test=10)
    keep = np.zeros((2, 120), bool)
    keep[0, :60], keep[1, 60:] = True, True
    recipe = build_recipe(spec("distillation", defense=DistillationParams()))
    workdir = str(tmp_path / "distillation")
    student, teacher = train_recipe(MODEL, recipe, data.x, data.y, keep, seed=0, workdir=workdir)
    assert sorted(os.listdir(workdir)) == ["student", "teacher"]
    with open(os.path.join(workdir, "teacher", "run.json")) as f:
        assert json.load(f)["recipe"] == teacher_spec(recipe.spec).to_dict()
    # The student is train_many with the teachers' eval-mode logits as its targets.
    logits = predict_many(model_functions(MODEL)[1], teacher.variables, data.x)[:, :, 0]
    direct = train_many(MODEL, recipe, data.x, data.y, keep, seed=0, targets=logits,
                        progress=False)
    for u, v in zip(jax.tree_util.tree_leaves(student.variables),
                    jax.tree_util.tree_leaves(direct.variables)):
        np.testing.assert_array_equal(u, v)
    assert np.all(np.isfinite(student.train_loss))
    again, teacher_again = train_recipe(MODEL, recipe, data.x, data.y, keep, seed=0,
                                        workdir=workdir)
    assert (again.models_loaded, teacher_again.models_loaded) == (2, 2)


def test_early_stopping_results_and_the_defense_model(tmp_path, metric_only):
    data = digits_data(num_candidates=120, num_test=40)
    early = Defense("es", build_recipe(spec("es", early_stopping_epochs=(1,))))
    stopped = Defense("stopped", build_recipe(spec("stopped", epochs=1)))
    dropout = Defense("dropout", build_recipe(spec("dropout", epochs=1)),
                      model=get_model("fc", 10, hidden_sizes=(16,), head_dropout_rate=0.5))
    run_dir = str(tmp_path / "run")
    evaluation, report = evaluate_defenses(MODEL, [early, stopped, dropout], data,
                                           num_models=4, seed=0, run_dir=run_dir,
                                           bootstrap_resamples=2, plots=False)
    assert list(report["defenses"]) == ["es", "es_e1", "stopped", "dropout"]
    results = evaluation.defenses
    assert results["es_e1"].config["early_stopping_epoch"] == 1
    assert "early_stopping_epoch" not in results["es"].config
    assert results["es_e1"].models_trained == 0 and results["es"].models_trained == 4
    assert os.path.isdir(os.path.join(run_dir, "attacks", "es_e1"))
    # The snapshot after 1 epoch is the run stopped after 1 epoch: same scores and accuracies.
    for attack, scores in results["stopped"].attacks.items():
        np.testing.assert_array_equal(results["es_e1"].attacks[attack].scores, scores.scores)
    assert results["es_e1"].train_acc == results["stopped"].train_acc
    assert results["es"].train_acc != results["es_e1"].train_acc
    # The dropout defense trained (and records) its own model; the others the evaluation's.
    assert results["dropout"].config["model"]["head_dropout_rate"] == 0.5
    assert "model" not in results["stopped"].config
    assert not np.array_equal(results["dropout"].attacks["loss"].scores,
                              results["stopped"].attacks["loss"].scores)
    # A finished run resumes: the snapshot results load too.
    again = evaluate_defense_results(MODEL, early, data, num_models=4, seed=0,
                                     workdir=os.path.join(run_dir, "train", "es"),
                                     attack_dir=os.path.join(run_dir, "attacks", "es"))
    assert list(again) == ["es", "es_e1"] and again["es"].models_loaded == 4
    np.testing.assert_array_equal(again["es_e1"].attacks["loss"].scores,
                                  results["es_e1"].attacks["loss"].scores)


def test_early_stopping_validation():
    data = digits_data(num_candidates=40, num_test=10)
    early = Defense("es", build_recipe(spec("es", early_stopping_epochs=(1,))))
    with pytest.raises(ValueError, match="cannot be combined with early stopping"):
        Defense("es", early.recipe, shadow_recipe=early.recipe)
    clash = Defense("es_e1", build_recipe(spec("es_e1")))
    with pytest.raises(ValueError, match="result names"):
        evaluate_defenses(MODEL, [early, clash], data, num_models=4, seed=0)


def test_a_snapshot_records_the_privacy_of_its_own_epochs():
    """DP-SGD with early stopping: the snapshot after E epochs is accounted over E epochs'
    steps, not the full run's (what a run records is what it ran)."""
    from hampjax.defenses import privacy_stats
    from hampjax.evaluation import snapshot_spec

    dp = preset_spec("dp_sgd", "digits").replace(early_stopping_epochs=(2,))
    snap = snapshot_spec(dp, 2)
    assert snap.epochs == 2 and snap.early_stopping_epochs == () and snap.privacy == dp.privacy
    full, early = privacy_stats(dp, 300), privacy_stats(snap, 300)
    assert early["dp_steps"] * dp.epochs == full["dp_steps"] * 2
    assert early["dp_epsilon"] < full["dp_epsilon"]
    with pytest.raises(ValueError, match="epochs"):
        snapshot_spec(dp, dp.epochs + 1)
