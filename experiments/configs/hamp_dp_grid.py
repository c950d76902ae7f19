r"""HAMP Fig. 5: DP-SGD on Purchase100 over the clip norm x noise multiplier grid (C in {1, 5,
10} x sigma in {0, 0.1, 0.5, 0.9}), next to the undefended model, with the HAMP code's DP-SGD
recipe (Poisson sampling, SGD momentum 0.9, cosine learning rate, 200 epochs) and adaptive
attackers. Each cell records its (eps, delta = 1e-5) from its recipe and member count; the
results print them next to the paper's, and the figure draws the grid.

    python experiments/run.py --config=experiments/configs/hamp_dp_grid.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_dp_grid
    python experiments/results.py runs/hamp_dp_grid --plots

Config argument: empty (Purchase100), another dataset with a DP-SGD preset (texas100,
location30), and/or ``quick`` (digits, sigma {0, 0.5} x C {1}, 4 models, 2 epochs). Every
setting is a flag, e.g. ``--config.cells.purchase100.defenses.dp_s0p5_c1.epochs=100``.

Expected runtime on one GPU: not measured (no GPU lent). 13 x 128 Purchase100 models x 200
epochs, DP-SGD's dense per-example norms costing about two plain steps each.

Paper numbers targeted (HAMP Fig. 5 and Sec. V; Purchase100, undefended TPR / TNR 14.37 /
14.62): eps per noise multiplier 0.5 -> 62.5, 0.9 -> 10.9, 0.1 -> 12069.1 (RDP orders near 1),
0 -> infinite; C 10, sigma 0: TPR / TNR 3.86 / 9.36 at < 1% accuracy loss; C 1: 0.67 / 0.62 at
8.2% loss; sigma 0.5: 0.50 / 0.49 at 13.6% loss.
"""

from hampjax.repro import paper
from hampjax.repro.configs import base_config, cell, make_quick, split_arg
from hampjax.training import preset_spec

QUICK_NOISE = (0.0, 0.5)
QUICK_CLIP = (1.0,)


def dp_key(sigma: float, clip: float) -> str:
    """A grid cell's defense name, e.g. ``dp_s0p5_c1`` (a name only: the values are the
    recorded spec's)."""
    return f"dp_s{sigma:g}_c{clip:g}".replace(".", "p")


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    dataset = rest[0] if rest else paper.HAMP_DP_SWEEP["dataset"]
    noise, clips = paper.HAMP_DP_SWEEP["noise_multipliers"], paper.HAMP_DP_SWEEP["clip_norms"]
    c = base_config("hamp_dp_grid", "hamp_dp_grid")
    if quick:
        c = make_quick(c)
        dataset, noise, clips = "digits", QUICK_NOISE, QUICK_CLIP
    base = preset_spec("dp_sgd", dataset)
    defenses = {"undefended": preset_spec("undefended", dataset)}
    for sigma in noise:
        for clip in clips:
            defenses[dp_key(sigma, clip)] = base.replace(**{
                "privacy.noise_multiplier": float(sigma), "privacy.clip_norm": float(clip)})
    c.cells[dataset] = cell(dataset, defenses, quick=quick)
    return c
