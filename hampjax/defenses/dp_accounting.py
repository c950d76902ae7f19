"""Privacy accounting of DP-SGD: epsilon at delta for the Poisson-subsampled Gaussian mechanism.

The RDP values and the PLD come from Google's ``dp_accounting`` (``dp-accounting==0.6.0``);
this module only picks the orders and the RDP-to-(eps, delta) conversion the papers used:

* ``"rdp_classic"``: ``min over alpha of RDP(alpha) + ln(1/delta) / (alpha - 1)`` (Mironov 2017,
  Prop. 3), the conversion behind the HAMP paper's "eps = 4" (baselines.md section 1).
  ``dp_accounting`` only implements the improved bound, so this one is computed here from the
  accountant's RDP curve.
* ``"rdp_improved"``: ``RDP(alpha) + ln(1 - 1/alpha) - ln(delta * alpha) / (alpha - 1)``
  (Balle et al. 2020 / Asoodeh et al. 2020), what Opacus 1.1.2's ``get_privacy_spent`` and
  ``dp_accounting``'s ``RdpAccountant.get_epsilon`` report (``conversion="opacus_improved"``).
* ``"pld"``: the privacy-loss-distribution accountant (tight numerical composition).

Orders are Opacus's defaults, ``{1.1, 1.2, ..., 10.9} U {12, ..., 63}`` (:data:`OPACUS_ORDERS`).

>>> round(dp_epsilon(1.7, 1 / 141, 141 * 200, 1e-5), 2)  # HAMP Purchase100: "eps = 4"
4.01
>>> round(dp_epsilon(1.7, 1 / 141, 141 * 200, 1e-5, conversion="opacus_improved"), 2)
3.52
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hampjax import validation

__all__ = [
    "OPACUS_ORDERS",
    "ACCOUNTANTS",
    "EPS_CONVERSIONS",
    "dp_epsilon",
    "dp_epsilons",
    "rdp_curve",
    "classic_rdp_epsilon",
    "recipe_sampling",
    "recipe_epsilon",
    "privacy_stats",
    "PLD_MAX_EPSILON",
]

OPACUS_ORDERS: tuple[float, ...] = tuple(
    [round(1 + x / 10.0, 1) for x in range(1, 100)] + [float(a) for a in range(12, 64)])
"""Opacus's default RDP orders: 1.1 .. 10.9 in steps of 0.1, then 12 .. 63."""

ACCOUNTANTS = ("rdp", "pld")
PLD_MAX_EPSILON = 100.0
""":func:`dp_epsilons` runs the PLD accountant only when the classic RDP epsilon is at most this
(for tiny noise, e.g. RelaxLoss's sigma 0.01, the PLD takes minutes and the value means
nothing)."""
EPS_CONVERSIONS = ("classic", "opacus_improved")


def _check(noise_multiplier, sample_rate, steps, delta) -> tuple[float, float, int, float]:
    validation.check_in_range("noise_multiplier", noise_multiplier, 0.0, math.inf)
    validation.check_in_range("sample_rate", sample_rate, 0.0, 1.0, low_inclusive=False,
                              high_inclusive=True)
    steps = validation.check_positive_int("steps", steps, minimum=0)
    validation.check_in_range("delta", delta, 0.0, 1.0, low_inclusive=False)
    return float(noise_multiplier), float(sample_rate), steps, float(delta)


def _event(noise_multiplier: float, sample_rate: float):
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sample_rate == 1.0:
        return gaussian
    return dp_accounting.PoissonSampledDpEvent(sample_rate, gaussian)


def rdp_curve(noise_multiplier: float, sample_rate: float, steps: int,
              orders: Sequence[float] = OPACUS_ORDERS) -> np.ndarray:
    """RDP of ``steps`` compositions of the Poisson-subsampled Gaussian, at ``orders``.

    Args:
      noise_multiplier: sigma >= 0 (noise std over the clip norm).
      sample_rate: q in (0, 1].
      steps: number of compositions >= 0.
      orders: RDP orders > 1.

    Returns:
      float64 ``[len(orders)]`` (``inf`` everywhere for sigma = 0).

    Raises:
      ValueError: naming the argument when one is out of range.
    """
    import dp_accounting

    noise_multiplier, sample_rate, steps, _ = _check(noise_multiplier, sample_rate, steps, 0.5)
    orders = np.asarray(orders, np.float64)
    if orders.ndim != 1 or orders.size == 0 or np.any(orders <= 1):
        raise ValueError(f"orders must be a non-empty sequence of numbers > 1, got {orders}")
    if noise_multiplier == 0.0:
        return np.full(orders.shape, math.inf if steps else 0.0)
    accountant = dp_accounting.rdp.RdpAccountant(list(orders))
    accountant.compose(_event(noise_multiplier, sample_rate), steps)
    return accountant.rdp


def classic_rdp_epsilon(rdp: Sequence[float], orders: Sequence[float], delta: float) -> float:
    """``min over alpha of rdp(alpha) + ln(1/delta) / (alpha - 1)`` (Mironov 2017, Prop. 3).

    Example:
      >>> round(classic_rdp_epsilon([1.0, 0.5], [2.0, 11.0], 1e-5), 3)  # min(12.51, 1.65)
      1.651
    """
    validation.check_in_range("delta", delta, 0.0, 1.0, low_inclusive=False)
    rdp, orders = np.asarray(rdp, np.float64), np.asarray(orders, np.float64)
    with np.errstate(invalid="ignore"):
        eps = rdp + math.log(1.0 / delta) / (orders - 1.0)
    return float(np.min(eps))


def dp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, *,
               accountant: str = "rdp", conversion: str = "classic") -> float:
    """Epsilon at ``delta`` of DP-SGD: ``steps`` Poisson-subsampled Gaussian mechanisms.

    Args:
      noise_multiplier: sigma >= 0 (0: no privacy, ``inf``).
      sample_rate: q in (0, 1] (Opacus ``make_private``: ``1 / ceil(N / B)``).
      steps: number of noisy steps (epochs x steps per epoch).
      delta: in (0, 1).
      accountant: ``"rdp"`` (orders :data:`OPACUS_ORDERS`) or ``"pld"``.
      conversion: RDP to (eps, delta): ``"classic"`` or ``"opacus_improved"``; must stay
        ``"classic"`` with ``accountant="pld"`` (the PLD has no conversion).

    Returns:
      epsilon >= 0 (``inf`` for sigma = 0 and steps > 0).

    Raises:
      ValueError: naming the argument when one is out of range.
    """
    validation.check_choice("accountant", accountant, ACCOUNTANTS)
    validation.check_choice("conversion", conversion, EPS_CONVERSIONS)
    noise_multiplier, sample_rate, steps, delta = _check(noise_multiplier, sample_rate, steps,
                                                         delta)
    if steps == 0:
        return 0.0
    if noise_multiplier == 0.0:
        return math.inf
    if accountant == "pld":
        if conversion != "classic":
            raise ValueError("conversion applies to accountant='rdp' only; leave it at "
                             f"'classic' with accountant='pld', got {conversion!r}")
        import dp_accounting

        pld = dp_accounting.pld.PLDAccountant()
        pld.compose(_event(noise_multiplier, sample_rate), steps)
        return float(pld.get_epsilon(delta))
    rdp = rdp_curve(noise_multiplier, sample_rate, steps)
    if conversion == "classic":
        return classic_rdp_epsilon(rdp, OPACUS_ORDERS, delta)
    from dp_accounting.rdp import rdp_privacy_accountant

    return float(rdp_privacy_accountant.compute_epsilon(OPACUS_ORDERS, rdp, delta)[0])


def dp_epsilons(noise_multiplier: float, sample_rate: float, steps: int, delta: float, *,
                pld: bool = True) -> dict[str, float | None]:
    """Every epsilon of :func:`dp_epsilon` at once.

    Args:
      pld: also run the PLD accountant (seconds for tens of thousands of steps).

    Returns:
      ``{"rdp_classic": ..., "rdp_improved": ...}`` plus, with ``pld=True``, ``"pld"``: a
      float, or None when the classic epsilon exceeds :data:`PLD_MAX_EPSILON` (not run).
    """
    out: dict[str, float | None] = {
        "rdp_classic": dp_epsilon(noise_multiplier, sample_rate, steps, delta),
        "rdp_improved": dp_epsilon(noise_multiplier, sample_rate, steps, delta,
                                   conversion="opacus_improved")}
    if pld:
        out["pld"] = (dp_epsilon(noise_multiplier, sample_rate, steps, delta, accountant="pld")
                      if out["rdp_classic"] <= PLD_MAX_EPSILON else None)
    return out


def recipe_sampling(batch_size: int, sampling: str, num_members: int) -> tuple[float, int]:
    """Sample rate and steps per epoch of a DP-SGD recipe on ``num_members`` examples.

    ``"poisson"`` (Opacus 1.1.2 ``make_private``, HAMP code): ``q = 1 / ceil(N / B)`` and
    ``ceil(N / B)`` steps per epoch. ``"shuffle"`` (Opacus 0.14 on a shuffled loader, RelaxLoss
    code): the accountant assumes ``q = B / N``; ``ceil(N / B)`` steps per epoch.

    Example:
      >>> recipe_sampling(128, "poisson", 18000)
      (0.0070921985815602835, 141)
    """
    batch_size = validation.check_positive_int("batch_size", batch_size)
    num_members = validation.check_positive_int("num_members", num_members)
    validation.check_choice("sampling", sampling, ("poisson", "shuffle"))
    steps = math.ceil(num_members / batch_size)
    if sampling == "poisson":
        return 1.0 / steps, steps
    return min(1.0, batch_size / num_members), steps


def recipe_epsilon(spec: Any, num_members: int, *, pld: bool = True) -> dict[str, Any]:
    """Epsilon at the spec's delta of a DP-SGD recipe trained on ``num_members`` examples.

    Args:
      spec: a :class:`hampjax.training.RecipeSpec` (read: ``privacy``, ``batch_size``,
        ``epochs``; duck-typed, this module sits below the training layer).
      num_members: members per model (N).
      pld: also run the PLD accountant.

    Returns:
      ``{"epsilon": headline (the spec's accountant and conversion), "delta", "sample_rate",
      "steps", "noise_multiplier", "clip_norm", "sampling", "accountant", "conversion",
      "rdp_classic", "rdp_improved"[, "pld"]}`` (see :func:`dp_epsilons`; a PLD headline
      that was not run falls back to the classic RDP value); ``{}`` for
      ``privacy.kind == "none"``.

    Example:
      >>> from hampjax.training import preset_spec
      >>> out = recipe_epsilon(preset_spec("dp_sgd", "purchase100"), 18000, pld=False)
      >>> round(out["epsilon"], 2), round(out["rdp_improved"], 2), out["steps"]
      (4.01, 3.52, 28200)
    """
    privacy = spec.privacy
    if privacy.kind == "none":
        return {}
    rate, per_epoch = recipe_sampling(spec.batch_size, privacy.sampling, num_members)
    steps = per_epoch * spec.epochs
    sigma, delta = privacy.noise_multiplier, privacy.delta
    all_eps = dp_epsilons(sigma, rate, steps, delta, pld=pld or privacy.accountant == "pld")
    if privacy.accountant == "pld":
        headline = all_eps["pld"] if all_eps["pld"] is not None else all_eps["rdp_classic"]
    else:
        headline = all_eps["rdp_classic" if privacy.eps_conversion == "classic"
                           else "rdp_improved"]
    return {"epsilon": headline, "delta": delta, "sample_rate": rate, "steps": steps,
            "noise_multiplier": sigma, "clip_norm": privacy.clip_norm,
            "sampling": privacy.sampling, "accountant": privacy.accountant,
            "conversion": privacy.eps_conversion, **all_eps}


def privacy_stats(spec: Any, num_members: int) -> dict[str, float]:
    """:func:`recipe_epsilon` as finite named numbers for a defense's ``stats``.

    ``dp_epsilon`` (headline), ``dp_epsilon_rdp_classic``, ``dp_epsilon_rdp_improved``,
    ``dp_epsilon_pld``, ``dp_delta``, ``dp_noise_multiplier``, ``dp_clip_norm``,
    ``dp_sample_rate``, ``dp_steps``; infinite or not computed values are left out (sigma 0:
    no epsilon). ``{}`` without privacy.

    Example:
      >>> from hampjax.training import preset_spec
      >>> stats = privacy_stats(preset_spec("dp_sgd", "location30"), 1400)
      >>> round(stats["dp_epsilon"], 2), round(stats["dp_epsilon_rdp_improved"], 2)
      (4.03, 3.53)
    """
    eps = recipe_epsilon(spec, num_members)
    names = {"epsilon": "dp_epsilon", "rdp_classic": "dp_epsilon_rdp_classic",
             "rdp_improved": "dp_epsilon_rdp_improved", "pld": "dp_epsilon_pld",
             "delta": "dp_delta", "noise_multiplier": "dp_noise_multiplier",
             "clip_norm": "dp_clip_norm", "sample_rate": "dp_sample_rate", "steps": "dp_steps"}
    return {new: float(eps[old]) for old, new in names.items()
            if eps.get(old) is not None and math.isfinite(eps[old])}
