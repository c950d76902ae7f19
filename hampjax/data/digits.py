"""scikit-learn's bundled handwritten digits: the dataset that works offline.

1,797 grayscale 8x8 images, 10 classes, shipped inside the scikit-learn wheel. Pixel values
``0..16`` are rescaled to the usual ``0..255`` scale (``round(v * 255 / 16)``) so that the image
pipeline (normalization, HAMP random inputs, transforms) is the same as for CIFAR.

Integrity: the loaded arrays must have the known shape and the known digest
``DIGITS_SHA256 = data_hash(x, y)`` (computed from scikit-learn 1.9.1's ``digits.csv.gz``;
hashing the decoded arrays, not the file, keeps the check valid if a release recompresses it).
"""

from __future__ import annotations

import numpy as np

from hampjax.data.dataset import Dataset
from hampjax.data.splits import data_hash

__all__ = ["load_digits_dataset", "DIGITS_IMAGE_SHAPE", "DIGITS_SHA256", "DIGITS_NUM_EXAMPLES"]

DIGITS_IMAGE_SHAPE = (8, 8, 1)
DIGITS_NUM_EXAMPLES = 1797
DIGITS_SHA256 = "7800b8ce84affa3a514ed653fa57e434523446cf33029ad0157efdf75435b252"
"""``data_hash(x, y)`` of the loaded ``uint8 [1797, 8, 8, 1]`` pixels and ``int32 [1797]`` labels."""


def load_digits_dataset() -> Dataset:
    """Load scikit-learn's digits as uint8 images ``[1797, 8, 8, 1]``.

    The mean and standard deviation stored on the dataset are those of ``x / 255`` over all
    1,797 images; ``normalized()`` uses them, and ``flat()`` gives 64-feature MLP inputs.

    Returns:
      ``Dataset`` named ``"digits"`` with 10 classes, in scikit-learn's order.

    Raises:
      ValueError: scikit-learn's bundled file does not decode to the known arrays (shape or
        ``DIGITS_SHA256``): the installation is corrupt or the data changed.

    Example:
      >>> ds = load_digits_dataset()
      >>> ds.x.shape, ds.flat().shape
      ((1797, 8, 8, 1), (1797, 64))
    """
    from sklearn.datasets import load_digits  # Local import: keeps `import hampjax.data` light.

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    pixels = np.rint(images * 255.0 / 16.0).astype(np.uint8)[..., None]
    labels = np.asarray(bunch.target, dtype=np.int32)
    where = "scikit-learn's bundled digits (sklearn/datasets/data/digits.csv.gz)"
    if pixels.shape != (DIGITS_NUM_EXAMPLES, *DIGITS_IMAGE_SHAPE) or labels.shape != (DIGITS_NUM_EXAMPLES,):
        raise ValueError(f"{where} decode to shapes {pixels.shape} and {labels.shape}, expected "
                         f"({DIGITS_NUM_EXAMPLES}, 8, 8, 1) and ({DIGITS_NUM_EXAMPLES},)")
    actual = data_hash(pixels, labels)
    if actual != DIGITS_SHA256:
        raise ValueError(f"checksum mismatch for {where}: sha256 of the decoded arrays is {actual}, "
                         f"expected {DIGITS_SHA256}; reinstall scikit-learn")
    scaled = pixels.astype(np.float64) / 255.0
    return Dataset(
        x=pixels,
        y=labels,
        num_classes=10,
        name="digits",
        image_shape=DIGITS_IMAGE_SHAPE,
        binary_features=False,
        mean=(float(scaled.mean()),),
        std=(float(scaled.std()),),
    )
