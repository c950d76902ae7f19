"""Attack roles, settings and defense validation, boundary attacks on engine-trained models.

The pipeline itself is tested step by step in test_pipeline.py.
"""

import jax
import numpy as np
import pytest

from _eval_helpers import with_hamp_output
from hampjax.evaluation import AttackSettings, Defense, attack_roles
from hampjax.models import get_model
from hampjax.training import hamp_recipe, undefended_recipe


def test_attack_roles_split_each_side():
    is_member = np.arange(200) % 2 == 0
    roles = attack_roles(is_member, seed=0)
    for side in (True, False):
        counts = np.bincount(roles[is_member == side], minlength=3)
        np.testing.assert_array_equal(counts, [45, 5, 50])


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
    with pytest.raises(ValueError, match="shadow_recipe .* cannot be combined with an output transform"):
        Defense("x", with_hamp_output(hamp_recipe("digits")), shadow_recipe=recipe)
    assert Defense("x", with_hamp_output(hamp_recipe("digits"))).output["kind"] == "hamp"
    assert Defense("x", undefended_recipe("digits")).output["kind"] == "none"
    no_output = hamp_recipe("digits").replace(**{"output.kind": "none"})
    assert Defense("x", no_output, shadow_recipe=recipe).shadow_recipe is recipe
    for bad in ((0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.3, 0.3)):
        with pytest.raises(ValueError, match="role_fractions must be three positive fractions"):
            AttackSettings(role_fractions=bad)
    roles = attack_roles(np.arange(200) < 100, seed=0, fractions=(0.3, 0.2, 0.5))
    assert [int(np.sum(roles[:100] == r)) for r in (0, 1, 2)] == [30, 20, 50]
