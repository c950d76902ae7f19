"""hampjax: membership-inference defenses and attacks in JAX/Flax.

Subpackages:
  hampjax.defenses  pure, jit/vmap-compatible training losses and output transforms
  hampjax.metrics   exact ROC, TPR@FPR / TNR@FNR, AUC, calibration, bootstrap intervals
  hampjax.models    Flax linen model zoo with pure init/apply functions
  hampjax.training  batched shadow-model training (train_many), recipes, predict_many
  hampjax.attacks   LiRA, RMIA, metric, NN and label-only attacks; adaptive evaluation
  hampjax.report    report.json / scores.npz / plots, rebuild, LiRA layout I/O
  hampjax.data      datasets (digits offline; Purchase, Texas, Location, CIFAR loaders), splits
  hampjax.validation  the argument checks every public function uses; ``hampjax.checked(fn)``
                      runs ``fn`` in checked mode (README, "Errors and checked mode")

Only defenses, metrics and validation are imported with ``import hampjax``; import the others
explicitly (``from hampjax.training import train_many``).
"""

from hampjax import defenses, metrics, validation
from hampjax.validation import checked  # checked mode: jax.experimental.checkify (issue 15)

__version__ = "0.1.0"

__all__ = ["defenses", "metrics", "validation", "checked", "__version__"]
