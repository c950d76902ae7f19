"""Out-of-distribution (OOD) non-member image sets for the Trust experiments.

Hintersdorf et al. 2022, Sec. 4.2: the false-positive rate of a fixed membership attack is measured
on non-members drawn from other distributions. This module loads them as ``Dataset`` objects of
raw ``uint8`` pixels:

- TFDS sets (optional ``tfds`` extra, read with ``tfds.data_source``, no TensorFlow): ``"svhn"``
  (``svhn_cropped``), ``"stl10"`` (monkey class removed, 96x96 box-filtered to 32x32),
  ``"cifar100"`` (fine labels) and ``"cifar10"`` (for the reverse direction, a CIFAR-100 target).
  See ``OOD_SETS`` and ``load_ood_images``.
- Offline sets that need no download (used by the quick configs on digits):
  ``uniform_noise_set`` (i.i.d. uniform pixels) and ``sample_image_crops`` (random crops of the two
  colour photos bundled inside the scikit-learn wheel, ``china.jpg`` and ``flower.jpg``).

Labels of an OOD set do NOT correspond to the target model's classes (SVHN digit 3 is not CIFAR
"cat"); they are kept for reference only. Every returned ``Dataset`` carries the set's OWN
per-channel mean/std (``Dataset`` requires one), which is NOT what the target model needs: feed
the model ``normalize_like(ood, in_distribution)``, the OOD pixels normalized with the
in-distribution statistics, exactly as the model's own inputs were.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
from hampjax.data.cifar import _id_sort_key
from hampjax.data.dataset import Dataset
from hampjax.data.transforms import uniform_noise_images

__all__ = [
    "OodSource",
    "OOD_SETS",
    "STL10_MONKEY_LABEL",
    "box_downsample",
    "load_ood_images",
    "normalize_like",
    "uniform_noise_set",
    "sample_image_crops",
]


@dataclasses.dataclass(frozen=True)
class OodSource:
    """How one TFDS OOD set is read.

    Attributes:
      builder: TFDS builder name.
      native_shape: ``(H, W, C)`` of the stored images.
      num_classes: number of label values of ``label_key`` (kept, not remapped).
      label_key: feature holding the label (CIFAR-100: ``"label"`` is the fine label).
      drop_label: class name whose examples are removed, or ``None``.
    """

    builder: str
    native_shape: tuple[int, int, int]
    num_classes: int
    label_key: str = "label"
    drop_label: str | None = None


# Supported OOD set names -> how they are read.
OOD_SETS: dict[str, OodSource] = {
    "svhn": OodSource("svhn_cropped", (32, 32, 3), 10),
    "stl10": OodSource("stl10", (96, 96, 3), 10, drop_label="monkey"),
    "cifar100": OodSource("cifar100", (32, 32, 3), 100),
    "cifar10": OodSource("cifar10", (32, 32, 3), 10),
}

# STL-10 classes (TFDS order, from the dataset's class_names.txt): airplane, bird, car, cat, deer,
# dog, horse, monkey, ship, truck. "monkey" has no CIFAR-10 counterpart and is removed.
STL10_MONKEY_LABEL = 7

_STD_FLOOR = 1.0 / 255.0
_CROP_CHUNK = 128


# --------------------------------------------------------------------------------------------
# Shared helpers.
# --------------------------------------------------------------------------------------------


def _pixel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std of ``x / 255`` from pixel histograms (no float copy of ``x``).

    A constant channel gets std ``1/255`` (``Dataset`` requires std > 0).
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[-1]):
        counts = np.bincount(x[..., c].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(max(float(np.sqrt(var)), _STD_FLOOR))
    return tuple(means), tuple(stds)


def _check_seed(seed: Any) -> int:
    return validation.check_positive_int("seed", seed, minimum=0)


def box_downsample(images: Any, factor: int) -> np.ndarray:
    """Exact box-filter (area-average) downsampling of ``uint8`` images by an integer factor.

    Each output pixel is the mean of a ``factor x factor`` block of input pixels, rounded half up
    to ``uint8``. This is the exact antialiased resize when the size ratio is an integer (STL-10:
    96 = 3 x 32). For odd ``factor`` the block mean ``sum / factor**2`` is never exactly ``k + 0.5``,
    so the rounding rule does not matter there. Integer arithmetic only.

    Args:
      images: ``uint8 [N, H, W, C]`` with ``H`` and ``W`` divisible by ``factor``.
      factor: integer ``>= 1``.

    Returns:
      ``uint8 [N, H // factor, W // factor, C]``.

    Raises:
      ValueError: if ``images`` is not ``uint8`` of rank 4, ``factor`` is not a positive integer
        or does not divide ``H`` and ``W``.

    Example:
      >>> box_downsample(np.full((1, 6, 6, 3), 7, np.uint8), 3).shape
      (1, 2, 2, 3)
    """
    factor = validation.check_positive_int("factor", factor)
    images = np.asarray(images)
    validation.check_ndim("images", images, 4)
    if images.dtype != np.uint8:
        raise ValueError(f"images must have dtype uint8, got {images.dtype}")
    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise ValueError(f"factor must divide the image height and width ({h}, {w}), got {factor}")
    if factor == 1:
        return images.copy()
    area = factor * factor
    sums = images.reshape(n, h // factor, factor, w // factor, factor, c).sum(axis=(2, 4), dtype=np.int64)
    return ((2 * sums + area) // (2 * area)).astype(np.uint8)


def normalize_like(ds: Dataset, reference: Dataset, *, dtype: Any = np.float32) -> np.ndarray:
    """Model inputs for ``ds`` normalized with ``reference``'s per-channel mean/std.

    OOD non-members must reach the target model exactly as its own inputs did:
    ``(ds.x / 255 - reference.mean) / reference.std``. (``ds.normalized()`` would use the OOD
    set's own statistics and silently shift the inputs.)

    Args:
      ds: image ``Dataset`` to feed the model (e.g. an OOD set).
      reference: the in-distribution image ``Dataset`` the model was trained on; must have the
        same ``image_shape`` as ``ds``.
      dtype: float dtype of the result.

    Returns:
      ``dtype [N, H, W, C]`` array.

    Raises:
      ValueError: if either dataset is not an image dataset or their image shapes differ.

    Example:
      >>> ref = Dataset(np.zeros((1, 2, 2, 1), np.uint8), np.zeros(1, np.int32), 2, "ref",
      ...               (2, 2, 1), False, (0.5,), (0.25,))
      >>> float(normalize_like(ref, ref)[0, 0, 0, 0])
      -2.0
    """
    for name, d in (("ds", ds), ("reference", reference)):
        if not isinstance(d, Dataset) or d.image_shape is None:
            raise ValueError(f"{name} must be an image Dataset (image_shape set), got {d!r:.80}")
    if ds.image_shape != reference.image_shape:
        raise ValueError(
            f"ds and reference must have the same image_shape, got {ds.image_shape} and "
            f"{reference.image_shape}"
        )
    scaled = ds.x.astype(dtype) / np.asarray(255.0, dtype)
    return (scaled - np.asarray(reference.mean, dtype)) / np.asarray(reference.std, dtype)


# --------------------------------------------------------------------------------------------
# TFDS sets (optional extra).
# --------------------------------------------------------------------------------------------


def _drop_label_index(names: Sequence[str] | None, drop: str, default: int) -> int:
    """Index of class ``drop`` in TFDS's label names.

    A built copy records the real class names (STL-10: ``class_names.txt``); TFDS mock data and
    copies without names only have the defaults ``"0", "1", ...``, in which case the documented
    index ``default`` is used.
    """
    names = None if names is None else [str(n) for n in names]
    if names is None or names == [str(i) for i in range(len(names))]:
        return default
    if drop not in names:
        raise ValueError(f"TFDS label names {names} do not contain {drop!r}; cannot remove that class")
    return names.index(drop)


def load_ood_images(
    name: str,
    *,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    image_size: int = 32,
    max_examples: int | None = None,
    seed: int | None = None,
) -> Dataset:
    """An OOD image set from an already built TFDS copy (``tfds.data_source``, no TensorFlow).

    Order: examples are sorted by their ``id`` feature when the set has one (SVHN, CIFAR; numeric
    part compared as a number), else kept in TFDS index order (STL-10), which is fixed for a given
    built copy. STL-10's ``"monkey"`` class (label 7; checked against TFDS's label names when the
    copy records them) is removed. Images are downsampled from the native size to
    ``image_size x image_size`` with the exact box filter of ``box_downsample`` (area average
    over ``k x k`` blocks, rounded half up to ``uint8``), so ``image_size`` must divide the native
    size (STL-10 96 -> 32 by 3x3 blocks; 32 -> 32 is the identity).

    Labels are the set's own (TFDS label ids, not remapped: STL-10 keeps ``num_classes=10`` with
    label 7 absent; CIFAR-100 uses fine labels) and do NOT correspond to the target model's
    classes. ``mean``/``std`` are the loaded set's own statistics: normalize model inputs with
    ``normalize_like(ood, in_distribution)`` instead.

    Args:
      name: one of ``OOD_SETS``: ``"svhn"``, ``"stl10"``, ``"cifar100"``, ``"cifar10"``.
      split: a TFDS split string, e.g. ``"test"``, ``"train"``.
      data_dir: TFDS data folder, or ``None`` for TFDS's default (``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``).
      image_size: output height and width; must divide the native size.
      max_examples: keep a random subset of this many examples (without replacement, in the
        stable order), or ``None`` for all. Requires ``seed``.
      seed: integer ``>= 0`` for the subset (``np.random.default_rng(seed)``); only with
        ``max_examples``.

    Returns:
      ``Dataset``: ``x uint8 [N, image_size, image_size, 3]``, ``y int32 [N]``.

    Raises:
      ImportError: ``tensorflow_datasets`` is not installed (install the ``tfds`` extra).
      ValueError: unknown ``name``, bad ``split``/``image_size``/``max_examples``/``seed``,
        ``max_examples`` larger than the set, an empty split, or labels outside the set's classes
        (e.g. STL-10's unlabelled split).

    Example:
      >>> ood = load_ood_images("svhn", max_examples=1000, seed=0)  # doctest: +SKIP
      >>> inputs = normalize_like(ood, cifar10_train)  # doctest: +SKIP
    """
    validation.check_choice("name", name, tuple(OOD_SETS))
    source_spec = OOD_SETS[name]
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty TFDS split string, got {split!r}")
    native = source_spec.native_shape[0]
    divisors = [d for d in range(1, native + 1) if native % d == 0]
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size not in divisors:
        raise ValueError(
            f"image_size must be an integer dividing {name}'s native size {native} (one of "
            f"{divisors}), got {image_size!r}"
        )
    if max_examples is not None:
        max_examples = validation.check_positive_int("max_examples", max_examples)
        if seed is None:
            raise ValueError("seed is required with max_examples (an integer >= 0 choosing the subset)")
        seed = _check_seed(seed)
    elif seed is not None:
        raise ValueError(f"seed is only used with max_examples; got seed={seed!r} and max_examples=None")
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ImportError(
            'load_ood_images needs tensorflow_datasets: pip install -e ".[tfds]" (or use the '
            "offline sets uniform_noise_set / sample_image_crops)"
        ) from err

    kwargs = {} if data_dir is None else {"data_dir": os.fspath(Path(data_dir).expanduser())}
    source = tfds.data_source(source_spec.builder, split=split, **kwargs)
    factor = native // int(image_size)
    images, labels, ids = [], [], []
    for i in range(len(source)):
        example = source[i]
        image = np.asarray(example["image"], dtype=np.uint8)
        images.append(box_downsample(image[None], factor)[0] if factor > 1 else image)
        labels.append(int(example[source_spec.label_key]))
        ids.append(_id_sort_key(example["id"]) if "id" in example else None)
    if not images:
        raise ValueError(f"TFDS {source_spec.builder} split {split!r} is empty")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= source_spec.num_classes:
        raise ValueError(
            f"{name} split {split!r} has labels outside [0, {source_spec.num_classes}) "
            f"(e.g. {int(labels[(labels < 0) | (labels >= source_spec.num_classes)][0])}); use a "
            f"labelled split"
        )
    order = np.arange(len(images))
    if ids[0] is not None:
        order = np.asarray(sorted(order, key=lambda j: ids[j]), dtype=np.int64)
    if source_spec.drop_label is not None:
        info = getattr(source, "dataset_info", None)
        names = None if info is None else info.features[source_spec.label_key].names
        drop = _drop_label_index(names, source_spec.drop_label, STL10_MONKEY_LABEL)
        order = order[labels[order] != drop]
    if max_examples is not None:
        if max_examples > order.size:
            raise ValueError(
                f"max_examples must be <= the {order.size} examples of {name} split {split!r}, "
                f"got {max_examples}"
            )
        chosen = np.random.default_rng(seed).choice(order.size, size=max_examples, replace=False)
        order = order[np.sort(chosen)]
    x = np.stack([images[j] for j in order])
    mean, std = _pixel_stats(x)
    shape = (int(image_size), int(image_size), source_spec.native_shape[2])
    return Dataset(x, labels[order].astype(np.int32), source_spec.num_classes, name, shape, False, mean, std)


# --------------------------------------------------------------------------------------------
# Offline sets.
# --------------------------------------------------------------------------------------------


def _image_shape_hwc(image_shape: Any) -> tuple[int, int, int]:
    shape = validation.as_shape("image_shape", image_shape, allow_empty=False)
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (H, W, C), got {shape}")
    return shape


def uniform_noise_set(key: jax.Array, n: int, image_shape: Sequence[int]) -> Dataset:
    """Images with i.i.d. pixels uniform on ``{0, ..., 255}``, as a ``uint8`` ``Dataset``.

    Pixels are ``floor(256 * u)`` with ``u`` from ``uniform_noise_images`` (``mean=0, std=1``,
    i.e. ``jax.random.uniform``); ``u`` is a multiple of ``2**-23``, so the pixels are exactly
    uniform. Labels are placeholders (all ``0``, ``num_classes=2``); ``mean``/``std`` are the
    set's own: feed models ``normalize_like(noise, in_distribution)``.

    Args:
      key: PRNG key.
      n: number of images, ``>= 1``.
      image_shape: ``(H, W, C)``.

    Returns:
      ``Dataset``: ``x uint8 [n, H, W, C]``, ``y int32 [n]`` of zeros.

    Raises:
      ValueError: bad ``key``, ``n`` or ``image_shape``.

    Example:
      >>> uniform_noise_set(jax.random.key(0), 4, (8, 8, 1)).x.shape
      (4, 8, 8, 1)
    """
    validation.check_key(key)
    n = validation.check_positive_int("n", n)
    shape = _image_shape_hwc(image_shape)
    u = np.asarray(uniform_noise_images(key, n, shape, mean=0.0, std=1.0, dtype=jnp.float32))
    x = np.floor(u * np.float32(256.0)).astype(np.uint8)
    mean, std = _pixel_stats(x)
    return Dataset(x, np.zeros(n, np.int32), 2, "uniform_noise", shape, False, mean, std)


def _crop_resize_one(image: jax.Array, top: jax.Array, left: jax.Array, height: jax.Array,
                     width: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """Resize the continuous region ``[top, top + height) x [left, left + width)`` of
    ``image [H, W, C]`` to ``out_hw`` (antialiased linear filter). Returns float32."""
    scale = jnp.stack([out_hw[0] / height, out_hw[1] / width])
    translation = -jnp.stack([top, left]) * scale
    return jax.image.scale_and_translate(
        image, (*out_hw, image.shape[-1]), (0, 1), scale, translation, method="linear", antialias=True
    )


@functools.partial(jax.jit, static_argnums=(2,))
def _crop_resize_batch(image: jax.Array, boxes: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """``boxes [B, 4]`` of (top, left, height, width) -> ``float32 [B, *out_hw, C]``."""
    return jax.vmap(lambda b: _crop_resize_one(image, b[0], b[1], b[2], b[3], out_hw))(boxes)


@functools.lru_cache(maxsize=1)
def _bundled_photos() -> np.ndarray:
    """``uint8 [2, 427, 640, 3]`` (china, flower), decoded once and cached read-only."""
    try:
        from sklearn.datasets import load_sample_images

        photos = load_sample_images().images
    except ImportError as err:
        raise ImportError(
            "sample_image_crops reads scikit-learn's bundled JPEG photos, which needs Pillow: "
            "pip install pillow"
        ) from err
    stacked = np.stack([np.asarray(p, dtype=np.uint8) for p in photos])
    stacked.setflags(write=False)
    return stacked


def sample_image_crops(key: jax.Array, n: int, image_shape: Sequence[int]) -> Dataset:
    """Natural-image OOD set: random crops of scikit-learn's two bundled colour photos.

    ``sklearn.datasets.load_sample_images`` ships ``china.jpg`` and ``flower.jpg`` (427x640 RGB)
    inside the scikit-learn wheel, so this needs no download (Pillow decodes them). Each crop picks
    a photo uniformly, a crop height uniform in ``[0.1, 0.5]`` of the photo height with the aspect
    ratio of ``image_shape`` (shrunk to fit the photo width if needed) and a uniform position;
    the crop (sub-pixel box) is resized to ``(H, W)`` with ``jax.image.scale_and_translate``
    (linear filter, antialiased) and rounded to ``uint8``. ``C == 1`` gives grayscale (mean of the
    RGB channels); ``C == 3`` colour.

    Labels: the source photo (``0`` = china, ``1`` = flower; ``num_classes=2``), not related to any
    model's classes. ``mean``/``std`` are the set's own: feed models
    ``normalize_like(crops, in_distribution)``.

    Args:
      key: PRNG key; the same key gives the same crops.
      n: number of crops, ``>= 1``.
      image_shape: ``(H, W, C)`` with ``C`` in ``{1, 3}``.

    Returns:
      ``Dataset``: ``x uint8 [n, H, W, C]``, ``y int32 [n]``.

    Raises:
      ValueError: bad ``key``, ``n`` or ``image_shape``.
      ImportError: Pillow is not installed.

    Example:
      >>> sample_image_crops(jax.random.key(0), 4, (8, 8, 1)).x.shape
      (4, 8, 8, 1)
    """
    validation.check_key(key)
    n = validation.check_positive_int("n", n)
    out_h, out_w, channels = _image_shape_hwc(image_shape)
    validation.check_choice("image_shape[2]", channels, (1, 3))
    photos = _bundled_photos()
    num_photos, photo_h, photo_w, _ = photos.shape
    k_photo, k_size, k_top, k_left = jax.random.split(key, 4)
    which = np.asarray(jax.random.randint(k_photo, (n,), 0, num_photos), dtype=np.int32)
    frac = np.asarray(jax.random.uniform(k_size, (n,), minval=0.1, maxval=0.5), dtype=np.float64)
    height = frac * photo_h
    width = height * out_w / out_h
    shrink = np.minimum(1.0, photo_w / width)
    height, width = height * shrink, width * shrink
    top = np.asarray(jax.random.uniform(k_top, (n,)), np.float64) * (photo_h - height)
    left = np.asarray(jax.random.uniform(k_left, (n,)), np.float64) * (photo_w - width)
    boxes = np.stack([top, left, height, width], axis=1).astype(np.float32)

    out = np.empty((n, out_h, out_w, 3), np.float32)
    for p in range(num_photos):
        idx = np.flatnonzero(which == p)
        image = jnp.asarray(photos[p], jnp.float32)
        for start in range(0, idx.size, _CROP_CHUNK):
            part = idx[start:start + _CROP_CHUNK]
            chunk = np.zeros((_CROP_CHUNK, 4), np.float32)
            chunk[:] = boxes[part[0]]  # Pad with a valid box: one compiled shape per output size.
            chunk[: part.size] = boxes[part]
            out[part] = np.asarray(_crop_resize_batch(image, jnp.asarray(chunk), (out_h, out_w)))[: part.size]
    if channels == 1:
        out = out.mean(axis=-1, keepdims=True)
    x = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    mean, std = _pixel_stats(x)
    return Dataset(x, which, 2, "sample_image_crops", (out_h, out_w, channels), False, mean, std)
