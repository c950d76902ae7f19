"""Membership-inference defenses as pure, jit- and vmap-compatible JAX functions.

Training-time losses are per-example (``logits [..., C], labels [...] -> [...]``); the caller
reduces. Randomness only through explicit ``key`` arguments.
"""

from hampjax.defenses.baselines import (
    confidence_penalty_loss,
    cross_entropy_loss,
    fit_temperature,
    label_smoothing_loss,
    temperature_scale,
)
from hampjax.defenses.dp_accounting import (
    OPACUS_ORDERS,
    classic_rdp_epsilon,
    dp_epsilon,
    dp_epsilons,
    privacy_stats,
    rdp_curve,
    recipe_epsilon,
    recipe_sampling,
)
from hampjax.defenses.dp_sgd import (
    PoissonBatches,
    add_gaussian_noise,
    clip_factors,
    dense_sq_norms,
    dense_support,
    generic_sq_norms,
    poisson_batches,
    poisson_cap_size,
    poisson_sample_rate,
)
from hampjax.defenses.hamp import (
    hamp_loss,
    hamp_soft_labels,
    soft_label_entropy,
    soft_label_probability,
)
from hampjax.defenses.output_modification import (
    OutputModifier,
    fresh_random_outputs,
    make_random_output_pool,
    modify_output,
    random_binary_inputs,
    random_image_inputs,
    sample_from_pool,
)
from hampjax.defenses.relaxloss import (
    relaxloss_branch,
    relaxloss_loss,
)
from hampjax.defenses.weighted_smoothing import (
    WS_NOISE_START_EPOCH,
    WS_SIGMA_GRID,
    weighted_smoothing_loss,
    ws_noise_scale,
    ws_optimizer,
    ws_sample_scores,
)

from hampjax.defenses.laplace import (
    DEFAULT_PRIOR_GRID,
    GGN_MAX_PARAMS,
    LAPLACE_FISHERS,
    LAPLACE_METHODS,
    LaplacePosterior,
    LastLayerLaplace,
    fit_laplace,
    fit_last_layer_laplace,
    laplace_log_predictive,
    laplace_predictive_moments,
    last_layer_features,
    last_layer_params,
    select_prior_variance,
)

__all__ = [
    "OPACUS_ORDERS",
    "classic_rdp_epsilon",
    "dp_epsilon",
    "dp_epsilons",
    "privacy_stats",
    "rdp_curve",
    "recipe_epsilon",
    "recipe_sampling",
    "PoissonBatches",
    "add_gaussian_noise",
    "clip_factors",
    "dense_sq_norms",
    "dense_support",
    "generic_sq_norms",
    "poisson_batches",
    "poisson_cap_size",
    "poisson_sample_rate",
    "OutputModifier",
    "fresh_random_outputs",
    "make_random_output_pool",
    "modify_output",
    "random_binary_inputs",
    "random_image_inputs",
    "sample_from_pool",
    "WS_NOISE_START_EPOCH",
    "WS_SIGMA_GRID",
    "confidence_penalty_loss",
    "cross_entropy_loss",
    "fit_temperature",
    "hamp_loss",
    "hamp_soft_labels",
    "label_smoothing_loss",
    "relaxloss_branch",
    "relaxloss_loss",
    "soft_label_entropy",
    "soft_label_probability",
    "temperature_scale",
    "weighted_smoothing_loss",
    "ws_noise_scale",
    "ws_optimizer",
    "ws_sample_scores",
    "LAPLACE_METHODS",
    "LAPLACE_FISHERS",
    "GGN_MAX_PARAMS",
    "DEFAULT_PRIOR_GRID",
    "LaplacePosterior",
    "LastLayerLaplace",
    "last_layer_features",
    "last_layer_params",
    "fit_laplace",
    "laplace_predictive_moments",
    "laplace_log_predictive",
    "select_prior_variance",
    "fit_last_layer_laplace",
]
