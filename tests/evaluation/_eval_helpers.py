"""Shared tiny data and defenses for the evaluation tests (digits subset, fc model)."""

import numpy as np

from hampjax.defenses import random_image_inputs
from hampjax.evaluation import Defense, EvalData
from hampjax.training import hamp_recipe, undefended_recipe

NUM_MODELS = 4
EPOCHS = 2


def digits_data(num_candidates=300, num_test=100) -> EvalData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0 - 0.3).astype(np.float32).reshape(len(digits.images), -1)
    y = digits.target.astype(np.int32)
    x, y = x[: num_candidates + num_test], y[: num_candidates + num_test]

    def random_inputs(key, n):
        return np.asarray(random_image_inputs(key, n, (8, 8, 1), mean=0.3, std=1.0)).reshape(n, -1)

    return EvalData(x=x[num_test:], y=y[num_test:], x_test=x[:num_test], y_test=y[:num_test],
                    random_inputs=random_inputs, image_shape=(8, 8, 1))


def with_hamp_output(recipe, pool_size=64):
    return recipe.replace(**{"output.kind": "hamp", "output.pool_size": pool_size})


def defenses():
    return [
        Defense("undefended", undefended_recipe("digits", epochs=EPOCHS, batch_size=32)),
        Defense("hamp", with_hamp_output(hamp_recipe("digits", epochs=EPOCHS, batch_size=32))),
    ]
