"""Membership-inference defenses as pure, jit- and vmap-compatible JAX functions.

Training-time losses are per-example (``logits [..., C], labels [...] -> [...]``); the caller
reduces. Randomness only through explicit ``key`` arguments.
"""

from hampjax.defenses.advreg import (
    ATTACK_ARCHS,
    ATTACK_HIDDEN,
    ATTACK_INPUTS,
    InferenceModel,
    advreg_penalty,
    attack_features,
    inference_scores,
    init_inference_model,
    label_encoding,
    membership_mse,
)
from hampjax.defenses.baselines import (
    LS_STYLES,
    confidence_penalty_loss,
    cross_entropy_loss,
    fit_temperature,
    label_smoothing_loss,
    smoothed_labels,
    temperature_scale,
)
from hampjax.defenses.distillation import distillation_kl, distillation_loss
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
    "ATTACK_ARCHS",
    "ATTACK_HIDDEN",
    "ATTACK_INPUTS",
    "InferenceModel",
    "advreg_penalty",
    "attack_features",
    "inference_scores",
    "init_inference_model",
    "label_encoding",
    "membership_mse",
    "OutputModifier",
    "fresh_random_outputs",
    "make_random_output_pool",
    "modify_output",
    "random_binary_inputs",
    "random_image_inputs",
    "sample_from_pool",
    "WS_NOISE_START_EPOCH",
    "WS_SIGMA_GRID",
    "LS_STYLES",
    "confidence_penalty_loss",
    "cross_entropy_loss",
    "distillation_kl",
    "distillation_loss",
    "smoothed_labels",
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
