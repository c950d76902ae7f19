"""DP-SGD accounting: the HAMP table's epsilons, agreement with dp_accounting, recipe_epsilon."""

import math

import dp_accounting
import numpy as np
import pytest

from hampjax.defenses import dp_accounting as acc
from hampjax.training import PrivacySpec, preset_spec

# baselines.md section 1: (sigma, q, steps) -> (classic RDP eps, Opacus 1.1.2 eps) at 1e-5.
TABLE = {
    "purchase100": (1.7, 1 / 141, 141 * 200, 4.01, 3.52),
    "texas100": (1.44, 1 / 211, 211 * 200, 4.01, 3.53),
    "location30": (2.91, 1 / 11, 11 * 50, 4.03, 3.53),
}


@pytest.mark.parametrize("dataset", sorted(TABLE))
def test_hamp_table_epsilons(dataset):
    sigma, q, steps, classic, improved = TABLE[dataset]
    got = acc.dp_epsilons(sigma, q, steps, 1e-5, pld=False)
    assert got["rdp_classic"] == pytest.approx(classic, rel=0.01)
    assert got["rdp_improved"] == pytest.approx(improved, rel=0.01)
    # The improved conversion is dp_accounting's own (same orders); the classic one is
    # min over orders of rdp + ln(1/delta) / (alpha - 1) on dp_accounting's RDP curve.
    ref = dp_accounting.rdp.RdpAccountant(list(acc.OPACUS_ORDERS))
    ref.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
                steps)
    assert got["rdp_improved"] == pytest.approx(ref.get_epsilon(1e-5), rel=1e-12)
    orders = np.asarray(acc.OPACUS_ORDERS)
    assert got["rdp_classic"] == pytest.approx(
        np.min(ref.rdp + math.log(1e5) / (orders - 1)), rel=1e-12)


def test_pld_matches_dp_accounting_and_is_tighter():
    sigma, q, steps = TABLE["location30"][:3]
    ref = dp_accounting.pld.PLDAccountant()
    ref.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
                steps)
    got = acc.dp_epsilon(sigma, q, steps, 1e-5, accountant="pld")
    assert got == pytest.approx(ref.get_epsilon(1e-5), rel=1e-9)
    assert got < acc.dp_epsilon(sigma, q, steps, 1e-5, conversion="opacus_improved")


def test_fig5_grid_points_and_edge_cases():
    q, steps = 1 / 141, 141 * 200  # Purchase, same recipe; paper 0.9 -> 10.9, 0.5 -> 62.5
    assert acc.dp_epsilon(0.9, q, steps, 1e-5) == pytest.approx(10.94, rel=0.01)
    # baselines.md says classic gives 62.6 at sigma 0.5; dp_accounting's RDP at the Opacus
    # orders gives 66.44 (optimum at alpha 1.5; 66.42 on a 0.01 grid). Unexplained (another RDP
    # implementation for fractional orders?): recorded here, not matched.
    assert acc.dp_epsilon(0.5, q, steps, 1e-5) == pytest.approx(66.44, rel=0.01)
    assert acc.dp_epsilon(0.0, q, steps, 1e-5) == math.inf
    assert acc.dp_epsilon(1.0, q, 0, 1e-5) == 0.0
    with pytest.raises(ValueError, match="sample_rate"):
        acc.dp_epsilon(1.0, 0.0, 10, 1e-5)
    with pytest.raises(ValueError, match="delta"):
        acc.dp_epsilon(1.0, 0.1, 10, 1.0)
    with pytest.raises(ValueError, match="accountant"):
        acc.dp_epsilon(1.0, 0.1, 10, 1e-5, accountant="moments")
    with pytest.raises(ValueError, match="conversion applies to accountant='rdp'"):
        acc.dp_epsilon(1.0, 0.1, 10, 1e-5, accountant="pld", conversion="opacus_improved")


def test_recipe_epsilon_reads_the_spec():
    spec = preset_spec("dp_sgd", "texas100")
    out = acc.recipe_epsilon(spec, 13500, pld=False)  # ceil(13500 / 64) = 211 steps per epoch
    assert (out["steps"], out["sample_rate"]) == (211 * 200, 1 / 211)
    assert out["epsilon"] == out["rdp_classic"] == pytest.approx(4.01, rel=0.01)
    improved = spec.replace(**{"privacy.eps_conversion": "opacus_improved"})
    assert acc.recipe_epsilon(improved, 13500, pld=False)["epsilon"] == pytest.approx(3.53,
                                                                                     rel=0.01)
    shuffle = preset_spec("dp_sgd", "purchase100_fc")  # RelaxLoss: q = B / N, sigma 0.01
    out = acc.recipe_epsilon(shuffle, 1000, pld=False)
    assert out["sample_rate"] == 0.128 and out["steps"] == 8 * 120 and out["epsilon"] > 1e5
    assert acc.recipe_epsilon(preset_spec("undefended", "digits"), 100) == {}


def test_privacy_spec_validates_and_round_trips():
    spec = preset_spec("dp_sgd", "purchase100")
    assert type(spec).from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["privacy"]["clip_norm"] == 1.0
    assert spec.replace(**{"privacy.noise_multiplier": 0.0, "privacy.clip_norm": math.inf}
                        ).privacy.clip_norm == math.inf
    with pytest.raises(ValueError, match="privacy.noise_multiplier must be in"):
        PrivacySpec(kind="dp_sgd", noise_multiplier=-1.0)
    with pytest.raises(ValueError, match="privacy.clip_norm must be finite"):
        PrivacySpec(kind="dp_sgd", clip_norm=math.inf)
    with pytest.raises(ValueError, match="privacy.clip_norm is not used with privacy.kind='none'"):
        PrivacySpec(clip_norm=2.0)
    with pytest.raises(ValueError, match="privacy.poisson_cap is not used"):
        PrivacySpec(kind="dp_sgd", sampling="shuffle", poisson_cap=3.0)
    with pytest.raises(ValueError, match="shuffle must stay 'every_epoch'"):
        spec.replace(shuffle="once")
    with pytest.raises(ValueError, match="privacy.sampling must be one of"):
        spec.replace(**{"privacy.sampling": "uniform"})


def test_privacy_stats_are_finite_and_pld_is_skipped_for_tiny_noise():
    tiny = acc.dp_epsilons(0.01, 0.128, 960, 1e-5)  # RelaxLoss: eps ~ 5e6, the PLD would take minutes
    assert tiny["pld"] is None and tiny["rdp_classic"] > acc.PLD_MAX_EPSILON
    stats = acc.privacy_stats(preset_spec("dp_sgd", "purchase100_fc"), 1000)
    assert "dp_epsilon_pld" not in stats and stats["dp_epsilon"] == stats["dp_epsilon_rdp_classic"]
    none = preset_spec("dp_sgd", "digits", **{"privacy.noise_multiplier": 0.0})
    stats = acc.privacy_stats(none, 800)  # sigma 0: infinite epsilon, left out
    assert "dp_epsilon" not in stats and stats["dp_noise_multiplier"] == 0.0
    assert all(math.isfinite(v) for v in stats.values())
    assert acc.privacy_stats(preset_spec("hamp", "digits"), 800) == {}
