r"""HAMP Fig. 6: undefended vs HAMP on Purchase100 with training sizes 2,500 to 50,000.

64 models per defense and size (the paper trains 64 LiRA shadow models here). ``train_size``
includes the 10% validation split, as in the authors' code. One cell per size, ``size_2500``
... (``--config.cells.size_2500.defenses.hamp.epochs=...``); the size is recorded as data.

    python experiments/run.py --config=experiments/configs/hamp_sizes.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_sizes
    python experiments/results.py runs/hamp_sizes

Expected runtime on one GPU: not measured (no GPU lent); dominated by the 50,000 size
(2.5x the examples of ``hamp_main:purchase100``, half the models).

Paper result targeted (a figure, no table): HAMP keeps TPR@0.1%FPR and TNR@0.1%FNR near or below
1% at every size while the undefended model's rates are several times higher, at similar accuracy.
"""

from hampjax.repro.configs import base_config, cell, make_quick, split_arg
from hampjax.training import preset_spec

SIZES = (2_500, 5_000, 7_500, 10_000, 30_000, 50_000)


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("hamp_sizes", "hamp_sizes")
    c.num_models = 64
    dataset, sizes, defenses = (rest[0] if rest else "purchase100"), SIZES, ("undefended", "hamp")
    if quick:
        c = make_quick(c)
        # 700 members, as in the other quick runs (shared compiled programs).
        dataset, sizes, defenses = "digits", (778,), ("hamp",)
    for size in sizes:
        c.cells[f"size_{size}"] = cell(dataset, {d: preset_spec(d, dataset) for d in defenses},
                                       quick=quick, train_size=int(size))
    return c
