"""scikit-learn's bundled handwritten digits: the dataset that works offline.

1,797 grayscale 8x8 images, 10 classes, shipped inside the scikit-learn wheel. Pixel values
``0..16`` are rescaled to the usual ``0..255`` scale (``round(v * 255 / 16)``) so that the image
pipeline (normalization, HAMP random inputs, transforms) is the same as for CIFAR.
"""

from __future__ import annotations

import numpy as np

from hampjax.data.dataset import Dataset

__all__ = ["load_digits_dataset", "DIGITS_IMAGE_SHAPE"]

DIGITS_IMAGE_SHAPE = (8, 8, 1)


def load_digits_dataset() -> Dataset:
    """Load scikit-learn's digits as uint8 images ``[1797, 8, 8, 1]``.

    The mean and standard deviation stored on the dataset are those of ``x / 255`` over all
    1,797 images; ``normalized()`` uses them, and ``flat()`` gives 64-feature MLP inputs.

    Returns:
      ``Dataset`` named ``"digits"`` with 10 classes, in scikit-learn's order.

    Example:
      >>> ds = load_digits_dataset()
      >>> ds.x.shape, ds.flat().shape
      ((1797, 8, 8, 1), (1797, 64))
    """
    from sklearn.datasets import load_digits  # Local import: keeps `import hampjax.data` light.

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    pixels = np.rint(images * 255.0 / 16.0).astype(np.uint8)[..., None]
    scaled = pixels.astype(np.float64) / 255.0
    return Dataset(
        x=pixels,
        y=np.asarray(bunch.target, dtype=np.int32),
        num_classes=10,
        name="digits",
        image_shape=DIGITS_IMAGE_SHAPE,
        binary_features=False,
        mean=(float(scaled.mean()),),
        std=(float(scaled.std()),),
    )
