"""SELENA end to end with adaptive shadows: every model (target and shadows) a whole SELENA.
Tiny digits subset, fc model, 4 models x K = 3 sub-models, 2 epochs; only the metric attacks
run (the other families are tested in test_pipeline.py)."""

import json
import os
import shutil

import numpy as np
import pytest

from _eval_helpers import digits_data
from hampjax.defenses import split_ai_assignment
from hampjax.evaluation import Defense, evaluate_defense, evaluation_keep, train_recipe
from hampjax.evaluation import families as families_module
from hampjax.models import get_model, model_functions
from hampjax.training import build_recipe, predict_many, preset_spec, split_ai_targets
from hampjax.training import checkpoint

MODEL = get_model("fc", 10, hidden_sizes=(16,))
K, L, M = 3, 1, 4


def selena(average="logits"):
    spec = preset_spec("selena", "digits", epochs=2, **{
        "teacher.epochs": 2, "split_ai.num_submodels": K, "split_ai.num_excluded": L,
        "split_ai.average": average})
    return Defense("selena", build_recipe(spec))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = digits_data(num_candidates=120, num_test=40)
    workdir = str(tmp_path_factory.mktemp("selena") / "train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(families_module, "FAMILY_ORDER", ("metric",))
        result = evaluate_defense(MODEL, selena(), data, num_models=M, seed=0, workdir=workdir)
        again = evaluate_defense(MODEL, selena(), data, num_models=M, seed=0, workdir=workdir)
    return data, workdir, result, again


def test_selena_trains_submodels_then_students_and_resumes(run):
    data, workdir, result, again = run
    assert sorted(os.listdir(workdir)) == ["student", "teachers"]
    assert result.models_trained == M * K + M and result.models_loaded == 0
    assert again.models_trained == 0 and again.models_loaded == M * K + M
    for attack, scores in result.attacks.items():
        np.testing.assert_array_equal(again.attacks[attack].scores, scores.scores)
    assert result.config["recipe"]["split_ai"]["kind"] == "selena"
    assert 0.0 <= result.train_acc <= 1.0


def test_students_distill_the_split_ai_labels_of_their_own_submodels(run):
    data, workdir, _, _ = run
    recipe = selena().recipe
    keep = evaluation_keep(M, len(data.x), seed=0)
    # The sub-models' keep rows: each model's members minus its own Split-AI exclusions.
    sub_keep = np.load(os.path.join(workdir, "teachers", "keep.npy"))
    excluded = np.stack([split_ai_assignment(keep[m], K, L, seed=(0, m)) for m in range(M)])
    for m in range(M):
        for k in range(K):
            np.testing.assert_array_equal(sub_keep[m * K + k], keep[m] & ~excluded[m, :, k])
    # Reloads every model (nothing trains) and returns the sub-models.
    students, submodels = train_recipe(MODEL, recipe, data.x, data.y, keep, seed=0,
                                       workdir=workdir)
    assert students.models_loaded == M and submodels.models_loaded == M * K
    apply_fn = model_functions(MODEL)[1]
    logits = np.asarray(predict_many(apply_fn, submodels.variables, data.x)[:, :, 0], np.float64)
    by_hand = np.zeros((M, len(data.x), logits.shape[-1]))
    for m in range(M):
        for n in range(len(data.x)):
            rows = [logits[m * K + k, n] for k in range(K) if excluded[m, n, k]]
            by_hand[m, n] = sum(rows) / len(rows)
            if keep[m, n]:
                assert len(rows) == L
    targets = split_ai_targets(apply_fn, submodels.variables, data.x, excluded)
    np.testing.assert_allclose(targets, by_hand, rtol=1e-5, atol=1e-5)
    # The targets the students trained on are exactly these (their hashed rows).
    with open(os.path.join(workdir, "student", "targets_sha256.json")) as f:
        assert json.load(f) == [checkpoint._sha256(row) for row in targets]
    with pytest.raises(ValueError, match=r"M \* K = 6 models"):
        split_ai_targets(apply_fn, submodels.variables, data.x, excluded[:2])


def test_a_finished_selena_run_extends_to_more_models(run, tmp_path):
    data, workdir, _, _ = run
    copy = str(tmp_path / "train")
    shutil.copytree(workdir, copy)
    keep = evaluation_keep(M + 2, len(data.x), seed=0)
    students, submodels = train_recipe(MODEL, selena().recipe, data.x, data.y, keep, seed=0,
                                       workdir=copy)
    assert (submodels.models_trained, submodels.models_loaded) == (2 * K, M * K)
    assert (students.models_trained, students.models_loaded) == (2, M)


def test_split_ai_settings_are_part_of_the_student_run(run, tmp_path):
    data, workdir, _, _ = run
    keep = evaluation_keep(M, len(data.x), seed=0)
    # Averaging probabilities gives other targets: a finished workdir refuses them.
    with pytest.raises(ValueError, match="differs in"):
        train_recipe(MODEL, selena("probs").recipe, data.x, data.y, keep, seed=0,
                     workdir=workdir)
    with pytest.raises(ValueError, match=r"split_ai.kind must be 'selena'"):
        from hampjax.training import train_selena

        train_selena(MODEL, build_recipe(preset_spec("distillation", "cifar10_resnet20",
                                                     epochs=1)),
                     data.x, data.y, keep, seed=0)
