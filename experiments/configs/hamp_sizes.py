r"""HAMP Fig. 6: undefended vs HAMP on Purchase100 with training sizes 2,500 to 50,000.

64 models per defense and size (the paper trains 64 LiRA shadow models here). ``train_size``
includes the 10% validation split, as in the authors' code.

    python experiments/run.py --config=experiments/configs/hamp_sizes.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_sizes
    python experiments/results.py runs/hamp_sizes

Expected runtime on one GPU: not measured (no GPU lent); dominated by the 50,000 size
(2.5x the examples of ``hamp_main:purchase100``, half the models).

Paper result targeted (a figure, no table): HAMP keeps TPR@0.1%FPR and TNR@0.1%FNR near or below
1% at every size while the undefended model's rates are several times higher, at similar accuracy.
"""

from hampjax.repro.configs import base_config, make_quick, split_arg

SIZES = (2_500, 5_000, 7_500, 10_000, 30_000, 50_000)


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("hamp_sizes", "hamp_sizes")
    c.dataset = rest[0] if rest else "purchase100"
    c.train_sizes = tuple(SIZES)
    c.num_models = 64
    c.defenses = ("undefended", "hamp")
    if quick:
        c = make_quick(c)
        c.dataset = "digits"
        c.train_sizes = (778,)  # 700 members, as in the other quick runs (shared compiled programs).
        c.defenses = ("hamp",)
    return c
