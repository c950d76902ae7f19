"""hampjax: membership-inference defenses and attacks in JAX/Flax.

Subpackages:
  hampjax.defenses  pure, jit/vmap-compatible training losses and output transforms
  hampjax.metrics   exact ROC, TPR@FPR / TNR@FNR, AUC, calibration, bootstrap intervals
  hampjax.validation  the argument checks every public function uses
"""

from hampjax import defenses, metrics, validation

__version__ = "0.1.0"

__all__ = ["defenses", "metrics", "validation", "__version__"]
