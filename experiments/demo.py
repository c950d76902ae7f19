"""The quickstart demo: every defense against every attack on scikit-learn's digits, on a CPU.

For the undefended model and each defense (HAMP with output modification, RelaxLoss, Weighted
Smoothing, label smoothing; on request the baselines DP-SGD, AdvReg, HAMP's label smoothing,
early stopping, SELENA, DMP and MemGuard, ``--defenses``) it trains a target and the
attacker's shadow models with the same recipe (an adaptive attacker; one batched ``train_many`` program per defense), runs every attack
(metric attacks, five LiRA variants, RMIA, the NN and top-3 attacks, label-only attacks) and
writes a report directory (``report.json``, ``scores.npz``, ``report.md``, log-log ROC plots).
Training and the attacks resume from ``--workdir`` if the demo is interrupted, and a finished
run extends: ``--models 8`` after ``--models 4`` trains only the 4 new models per defense (the
keep matrix is made of complementary pairs and is prefix-stable). With several processes
(``HAMPJAX_DISTRIBUTED=1`` or ``JAX_COORDINATOR_ADDRESS``) each trains its share of the models
and process 0 writes and prints the report.

    python experiments/demo.py [--workdir runs/demo] [--models 18] [--epochs 40] [--seed 0]
                               [--targets 4] [--defenses undefended,hamp,dp_sgd]

Digits has 1,797 examples: each target trains on about 700 and the attacks are scored on about
350 members and 350 non-members, so rates below 1/350 (0.29%) are flagged with ``*``. The
per-attack tables are those of one target model (model 0). With so few examples a single
target's numbers depend on how hard its own members happen to be, so with ``--targets T``
(default 4) each of the first T models is in turn the target, the other models its shadows,
for the attacks that are cheap to repeat (metric attacks, LiRA, RMIA), and the demo also
prints their mean and standard deviation over the T targets.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from hampjax.cli import MAX_SEED, ArgumentParser, check_workdir, int_at_least, int_in_range, user_errors
from hampjax.data import load_digits_dataset
from hampjax.evaluation import AttackSettings, Defense, EvalData, evaluate_defenses
from hampjax.defenses import random_image_inputs
from hampjax.models import get_model
from hampjax.training import (
    build_recipe,
    maybe_initialize,
    hamp_recipe,
    label_smoothing_recipe,
    preset_spec,
    relaxloss_recipe,
    undefended_recipe,
    weighted_smoothing_recipe,
)

METRICS = (("auc", "AUC", "{:.3f}"), ("tpr@0.1%fpr", "TPR@0.1%FPR", "{:.2%}"),
           ("tnr@0.1%fnr", "TNR@0.1%FNR", "{:.2%}"))


def load_digits_data(seed: int, num_test: int = 397) -> EvalData:
    digits = load_digits_dataset()  # checked against its known digest
    pixels = digits.x  # uint8 [N, 8, 8, 1]
    mean, std = float(pixels.mean() / 255.0), float(pixels.std() / 255.0)
    x = ((pixels / 255.0 - mean) / std).astype(np.float32).reshape(len(pixels), -1)
    y = digits.y
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]

    def random_inputs(key, n):  # HAMP's random inputs: uniform integer pixels, normalized
        return np.asarray(random_image_inputs(key, n, (8, 8, 1), mean=(mean,), std=(std,))).reshape(n, -1)

    return EvalData(x=x[num_test:], y=y[num_test:], x_test=x[:num_test], y_test=y[:num_test],
                    random_inputs=random_inputs, image_shape=(8, 8, 1))


def defenses(epochs: int) -> list[Defense]:
    return [
        Defense("undefended", undefended_recipe("digits", epochs=epochs)),
        Defense("hamp", hamp_recipe("digits", epochs=epochs)),  # output: HAMP, pool of 1000
        Defense("relaxloss", relaxloss_recipe("purchase100_fc", alpha=0.3, epochs=epochs,
                                              batch_size=32)),
        # The CIFAR-10 preset with digits-sized settings: Adam 1e-3, x0.99 per epoch, batch 32.
        Defense("weighted_smoothing", weighted_smoothing_recipe(
            sigma=0.2, epochs=epochs, batch_size=32,
            **{"optimizer.learning_rate": 1e-3, "schedule.decay": 0.99})),
        Defense("label_smoothing", label_smoothing_recipe("digits", epochs=epochs)),
    ]


EXTRA_DEFENSES = ("dp_sgd", "advreg", "hamp_ls", "early_stopping", "selena", "dmp", "memguard")
"""Baselines ``--defenses`` accepts besides the default five (digits presets, ``--epochs``
epochs; early stopping evaluates the run after the preset's epoch counts up to ``--epochs``;
SELENA's 25 sub-models per model and DMP's teachers train ``--epochs`` epochs too)."""


def extra_defenses(epochs: int, names) -> list[Defense]:
    """The requested baselines of :data:`EXTRA_DEFENSES` (a bad combination with ``--epochs``,
    such as AdvReg's warm-up epoch with ``--epochs 1``, raises a ValueError naming it)."""
    out = []
    for name in (n for n in EXTRA_DEFENSES if n in names):
        spec = preset_spec(name, "digits", epochs=epochs)
        if spec.teacher is not None:  # SELENA's sub-models, DMP's teachers
            spec = spec.replace(**{"teacher.epochs": epochs})
        if spec.early_stopping_epochs:
            spec = spec.replace(early_stopping_epochs=tuple(
                e for e in spec.early_stopping_epochs if e < epochs))
        out.append(Defense(name, build_recipe(spec)))
    return out


def _cell(entry: dict, key: str, fmt: str) -> str:
    flag = "*" if entry.get(f"{key}/below_resolution", False) else ""
    return fmt.format(entry[key]) + flag


def print_tables(report: dict) -> None:
    defs = report["defenses"]
    print("\nPer attack (members and non-members scored on the evaluated half):")
    attacks = list(next(iter(defs.values()))["attacks"])
    header = f"{'attack':<28}" + "".join(f"{name:>22}" for name in defs)
    for key, label, fmt in METRICS:
        print(f"\n{label}\n{header}\n" + "-" * len(header))
        for attack in attacks:
            row = "".join(f"{_cell(d['attacks'][attack], key, fmt):>22}" for d in defs.values())
            print(f"{attack:<28}{row}")
    multi = {n: d["multi_target"] for n, d in defs.items() if d.get("multi_target")}
    if multi:
        first = next(iter(multi.values()))
        print(f"\nMean ± std over {len(first['targets'])} targets (each of models "
              f"{first['targets'][0]}..{first['targets'][-1]} in turn the target, the others "
              "its shadows):")
        header = f"{'attack':<28}" + "".join(f"{name:>22}" for name in multi)
        for key, label, fmt in METRICS:
            print(f"\n{label}\n{header}\n" + "-" * len(header))
            rows = ("train_acc", "test_acc") if key == "auc" else ()
            for attack in (*rows, *first["attacks"]):
                cells = []
                for d in multi.values():
                    spread = d[attack] if attack in rows else d["attacks"][attack][key]
                    cell_fmt = "{:.2%}" if attack in rows else fmt
                    cells.append(f"{cell_fmt.format(spread['mean'])} ± {cell_fmt.format(spread['std'])}")
                print(f"{attack:<28}" + "".join(f"{c:>22}" for c in cells))
    print("\nSummary (max over all attacks; lower is better for the defense):")
    header = (f"{'defense':<20}{'train acc':>10}{'test acc':>10}{'max AUC':>10}"
              f"{'max TPR@0.1%FPR':>17}{'max TNR@0.1%FNR':>17}")
    print(header + "\n" + "-" * len(header))
    for name, d in defs.items():
        print(f"{name:<20}{d['train_acc']:>10.2%}{d['test_acc']:>10.2%}{d['max_auc']:>10.3f}"
              f"{d['max_tpr@0.1%fpr']:>17.2%}{d['max_tnr@0.1%fnr']:>17.2%}")
    print("\n* below the resolution 1/N of the evaluated members/non-members: the reading is the "
          "one at rate 0+.")


def parse_args(argv=None):
    """The demo's flags, every one checked (a mistake: one line on stderr, exit status 2)."""
    p = ArgumentParser(description=__doc__.splitlines()[0], prog="demo.py")
    p.add_argument("--workdir", default="runs/demo", help="run directory (resumable)")
    p.add_argument("--models", type=int_at_least(4), default=18,
                   help="target + shadow models per defense (even, >= 4)")
    p.add_argument("--epochs", type=int_at_least(1), default=40)
    p.add_argument("--nn-epochs", type=int_at_least(1), default=200)
    p.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0)
    p.add_argument("--targets", type=int_at_least(1), default=4,
                   help="each of the first T models in turn the target of the metric, LiRA and "
                        "RMIA attacks (mean ± std printed); 1: model 0 only")
    p.add_argument("--defenses", default="all",
                   help="comma-separated defenses: undefended, hamp, relaxloss, "
                        "weighted_smoothing, label_smoothing (all: these five, the default), "
                        "and the baselines dp_sgd, advreg, hamp_ls, early_stopping, selena, "
                        "dmp, memguard")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.models % 2:
        p.error(f"--models must be an even number >= 4, got {args.models}")
    if not 1 <= args.targets <= args.models:
        p.error(f"--targets must be in [1, --models={args.models}], got {args.targets}")
    try:
        check_workdir("--workdir", args.workdir)
    except ValueError as e:
        p.error(str(e))
    return p, args


def main(argv=None) -> dict | None:
    p, args = parse_args(argv)
    maybe_initialize()  # jax.distributed, when the environment asks; before any computation.
    chosen = defenses(args.epochs)
    if args.defenses != "all":
        names = args.defenses.split(",")
        known = [d.name for d in chosen] + list(EXTRA_DEFENSES)
        unknown = sorted(set(names) - set(known))
        if unknown:
            p.error(f"--defenses: unknown {unknown}; choose from {known}")
        if len(set(names)) != len(names):
            p.error(f"--defenses: {args.defenses!r} names a defense twice")
        try:
            available = chosen + extra_defenses(args.epochs, names)
        except ValueError as e:
            p.error(f"--defenses with --epochs {args.epochs}: {e}")
        chosen = [d for d in available if d.name in names]
    with user_errors(p.prog):  # A corrupt or foreign run directory: one line naming the file.
        return _run(args, chosen)


def _run(args, chosen) -> dict | None:
    main_process = jax.process_index() == 0
    start = time.perf_counter()
    data = load_digits_data(args.seed)
    if main_process:
        print(f"digits: {len(data.x)} candidates, {len(data.x_test)} held out; {args.models} "
              f"models per defense ({args.models - 1} shadows), {args.epochs} epochs; workdir "
              f"{args.workdir}")
    model = get_model("fc", 10, hidden_sizes=(256, 128))
    settings = AttackSettings(nn_epochs=args.nn_epochs, top3_max_epochs=200, noise_variants=0)
    evaluation, report = evaluate_defenses(model, chosen, data, num_models=args.models,
                                           seed=args.seed, run_dir=args.workdir,
                                           settings=settings, progress=not args.quiet,
                                           targets=args.targets)
    if not main_process:  # Every process trains its share; process 0 writes and prints.
        return None
    print_tables(report)
    counts = ", ".join(f"{name} {r.models_trained} trained / {r.models_loaded} loaded"
                       for name, r in evaluation.defenses.items() if r.models_trained is not None)
    if counts:
        print(f"\nModels: {counts}.")
    for name, r in evaluation.defenses.items():  # DP-SGD: (eps, delta) of the target's recipe
        if "dp_epsilon" in r.stats:
            improved = r.stats.get("dp_epsilon_rdp_improved")
            print(f"{name}: eps = {r.stats['dp_epsilon']:.2f} at delta = {r.stats['dp_delta']:g}"
                  f" (classic RDP; improved conversion "
                  f"{'n/a' if improved is None else f'{improved:.2f}'})")
    print(f"\nReport: {os.path.join(args.workdir, 'report.json')} (and report.md, scores.npz, "
          f"manifest.json, roc_*.png, hist_*.png). Total time {time.perf_counter() - start:.0f} s.")
    return report


if __name__ == "__main__":
    main()
