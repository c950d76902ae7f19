"""Datasets: loaders (NumPy only, no TensorFlow/PyTorch), downloads, split schemes, transforms.

Loaders return a ``Dataset`` holding compact ``uint8`` data; ``normalized()`` / ``flat()`` give
float model inputs. Tabular archives and CIFAR binary tarballs are parsed directly (never
unpickled); ``fetch`` resumes, verifies checksums and falls back to mirrors or a file placed by
hand. Splits are consecutive slices of a seeded permutation and record the seed and a data hash.
"""

from hampjax.data.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    load_cifar10,
    load_cifar100,
    load_tfds_cifar,
    parse_cifar_records,
)
from hampjax.data.dataset import Dataset
from hampjax.data.registry import DATASET_INFO, DATASETS, PAPER_DATASETS, DatasetInfo
from hampjax.data.digits import DIGITS_SHA256, load_digits_dataset
from hampjax.data.download import DownloadError, fetch, file_digest, verify_file
from hampjax.data.ood import (
    OOD_SETS,
    STL10_MONKEY_LABEL,
    OodSource,
    box_downsample,
    load_ood_images,
    normalize_like,
    sample_image_crops,
    uniform_noise_set,
)
from hampjax.data.splits import (
    HAMP_SPLIT_SIZES,
    HampSplit,
    LiraPool,
    RelaxLossSplit,
    SplitSizes,
    data_hash,
    hamp_split,
    hamp_split_sizes,
    lira_candidate_pool,
    relaxloss_image_split,
    relaxloss_tabular_split,
)
from hampjax.data.tabular import (
    LOCATION30,
    PURCHASE100,
    TEXAS100,
    TEXAS_NOTICE,
    TabularSource,
    load_location30,
    load_purchase100,
    load_tabular,
    load_texas100,
)
from hampjax.data.transforms import permute_pixels, scale_inputs, uniform_noise_images

__all__ = [
    "Dataset",
    "DatasetInfo", "DATASET_INFO", "DATASETS", "PAPER_DATASETS",
    "OodSource",
    "OOD_SETS",
    "STL10_MONKEY_LABEL",
    "box_downsample",
    "load_ood_images",
    "normalize_like",
    "sample_image_crops",
    "uniform_noise_set",
    "load_digits_dataset",
    "DIGITS_SHA256",
    "DownloadError",
    "fetch",
    "file_digest",
    "verify_file",
    "TabularSource",
    "PURCHASE100",
    "TEXAS100",
    "LOCATION30",
    "TEXAS_NOTICE",
    "load_tabular",
    "load_purchase100",
    "load_texas100",
    "load_location30",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "parse_cifar_records",
    "load_cifar10",
    "load_cifar100",
    "load_tfds_cifar",
    "permute_pixels",
    "scale_inputs",
    "uniform_noise_images",
    "SplitSizes",
    "HAMP_SPLIT_SIZES",
    "hamp_split_sizes",
    "HampSplit",
    "hamp_split",
    "RelaxLossSplit",
    "relaxloss_image_split",
    "relaxloss_tabular_split",
    "LiraPool",
    "lira_candidate_pool",
    "data_hash",
]
