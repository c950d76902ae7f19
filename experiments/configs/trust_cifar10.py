r""""To Trust or Not To Trust" (IJCAI 2022), CIFAR-10 table and Fig. 3: score attacks fitted on a
shadow model flag shifted non-members (OOD sets, permuted and scaled inputs) as members; the
calibration variants change how much.

Per variant a target and a shadow model (ResNet-18, Adam 0.01, batch 64, 100 epochs; SalemCNN
with lr 0.001; every setting in ``config.recipes.<recipe>``, e.g.
``--config.recipes.standard.optimizer.learning_rate=0.005``) on disjoint stratified halves of
25,000 CIFAR-10 training images; attack sets of 2,500 members + 2,500 test non-members.
Variants: standard, label smoothing (0.0083), L2 (3e-4), temperature T = 10 and the NLL-fitted temperature (post hoc), last-layer Laplace (KFAC, prior
variance on logspace(0, 3, 100)), and HAMP for comparison. Config argument: the model,
``resnet18`` (default), ``efficientnet_b0`` (Adam 0.01 as ResNet-18) or ``salem_cnn``.

    python experiments/run.py --config=experiments/configs/trust_cifar10.py:resnet18 \
        --config.data_dir=$HOME/hampjax_data --config.tfds_data_dir=$HOME/tensorflow_datasets \
        --workdir=runs/trust_resnet18
    python experiments/run.py --config=experiments/configs/trust_cifar10.py:efficientnet_b0 ...
    python experiments/results.py runs/trust_resnet18

The OOD sets STL-10 (monkey removed, resized to 32), SVHN and CIFAR-100 are read from prepared
TFDS copies (``pip install -e ".[tfds]"``); drop names from ``--config.ood`` to skip them.

Expected runtime on one GPU: not measured (no GPU lent); 4 trainings of 2 ResNet-18 models for
100 epochs on 12,500 images each (tens of minutes), plus the Laplace fits (seconds).

Paper numbers targeted (ResNet-18, max-score attack FPR %): test 44.8; STL-10 32.7; SVHN 6.3;
Permuted 58.4; Scaled (x255) 99.8. LLLA: Scaled 0.0, Permuted 14.7. Label smoothing: test 24.0,
Scaled 92.8. T = 10: Scaled 100. L2: Scaled 99.2. (EfficientNet-B0: Scaled 91.)

Quick variant (``:quick``): digits with a ReLU MLP, OOD set = crops of scikit-learn's bundled
sample photos, scaled by 255 and 1000; runs in seconds on a CPU.
"""

import ml_collections
from ml_collections import config_dict

from hampjax.repro.configs import spec_config, split_arg
from hampjax.training import preset_spec

VARIANTS = ("standard", "label_smoothing", "l2", "temperature", "temperature_nll", "llla", "hamp")
TRAINED = ("standard", "label_smoothing", "l2", "hamp")  # The variants' trained recipes.


def recipes(dataset: str, variants, *, learning_rate: float, epochs: int, batch_size: int,
            pool_size: int) -> ml_collections.ConfigDict:
    """The recipe specs the variants train (``config.recipes.<name>``): the Trust presets with
    the model's learning rate, and HAMP's recipe for ``dataset`` with the last-epoch model."""
    needed = {"hamp" if v == "hamp" else v if v in TRAINED else "standard" for v in variants}
    out = ml_collections.ConfigDict(sort_keys=False)
    for name in TRAINED:
        if name not in needed:
            continue
        if name == "hamp":
            spec = preset_spec("hamp", dataset, selection="last", epochs=epochs,
                               **{"output.pool_size": pool_size})
        else:
            spec = preset_spec("trust", name, epochs=epochs, batch_size=batch_size,
                               **{"optimizer.learning_rate": learning_rate})
        out[name] = spec_config(spec)
    return out


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = ml_collections.ConfigDict()
    c.experiment = "trust"
    c.name = "trust_cifar10"
    c.seed = 0
    c.dataset = "cifar10"
    c.data_dir = config_dict.placeholder(str)
    c.tfds_data_dir = config_dict.placeholder(str)
    c.download = False
    c.model = rest[0] if rest else "resnet18"
    c.model_kwargs = ml_collections.ConfigDict()
    c.activation = config_dict.placeholder(str)
    c.variants = VARIANTS
    c.temperature = 10.0
    c.num_train = 25_000
    c.num_test = 0  # digits only: test images cut from the 1,797.
    c.attack_size = 2_500
    c.deltas = (255.0,)
    c.ood = ("stl10", "svhn", "cifar100")
    c.attacks_fitted = ("max_score", "entropy", "top3", "loss")
    c.top3_max_epochs = 200
    c.laplace = ml_collections.ConfigDict(dict(
        method="kfac", num_samples=100, selection_samples=10, grid_min=0.0, grid_max=3.0,
        grid_points=100, num_noise=500))
    settings = dict(learning_rate=0.001 if c.model == "salem_cnn" else 0.01, epochs=100,
                    batch_size=64, pool_size=1000)
    if quick:
        c.name += "_quick"
        c.dataset = "digits"
        c.model = "fc"
        c.model_kwargs = ml_collections.ConfigDict(dict(hidden_sizes=(256, 128)))
        c.activation = "relu"
        settings = dict(learning_rate=1e-3, epochs=20, batch_size=32, pool_size=200)
        c.num_test = 500
        c.num_train = 1_200
        c.attack_size = 120  # Leaves about 100 held-out test images per model (T fit, LLLA prior).
        c.deltas = (255.0, 1000.0)
        c.ood = ("sample_crops",)
        c.variants = ("standard", "temperature_nll", "llla", "hamp")
        c.top3_max_epochs = 10
        c.laplace.num_samples = 30
        c.laplace.selection_samples = 5
        c.laplace.grid_points = 10
        c.laplace.num_noise = 200
    c.recipes = recipes(c.dataset, c.variants, **settings)
    return c
