"""Permuted / scaled / uniform-noise non-member sets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.data.transforms import permute_pixels, scale_inputs, uniform_noise_images


def _images(n=3, h=4, w=5, c=3):
    return jnp.asarray(np.arange(n * h * w * c, dtype=np.float32).reshape(n, h, w, c))


def test_permute_pixels_is_a_shared_permutation_per_image():
    x = _images()
    out = np.asarray(permute_pixels(jax.random.key(0), x))
    assert out.shape == x.shape
    src = np.asarray(x).reshape(3, -1, 3)
    dst = out.reshape(3, -1, 3)
    perms = []
    for i in range(3):
        # Pixel values are unique, so each output pixel (all channels together) is one input pixel.
        lookup = {tuple(p): j for j, p in enumerate(src[i])}
        perm = [lookup[tuple(p)] for p in dst[i]]
        assert sorted(perm) == list(range(20))
        perms.append(perm)
    assert perms[0] != perms[1] and perms[0] != list(range(20))


def test_permute_pixels_deterministic_jit_vmap():
    x = _images()
    key = jax.random.key(1)
    a = permute_pixels(key, x)
    np.testing.assert_array_equal(a, permute_pixels(key, x))
    assert not np.array_equal(a, permute_pixels(jax.random.key(2), x))
    np.testing.assert_array_equal(jax.jit(permute_pixels)(key, x), a)
    keys = jax.random.split(key, 2)
    batched = jax.vmap(permute_pixels)(keys, jnp.stack([x, x]))
    np.testing.assert_array_equal(batched[1], permute_pixels(keys[1], x))


def test_scale_inputs_jit_vmap():
    x = _images(1, 2, 2, 1)
    np.testing.assert_allclose(scale_inputs(x, 255.0), np.asarray(x) * 255)
    np.testing.assert_allclose(jax.jit(scale_inputs)(x, 2.0), np.asarray(x) * 2)
    out = jax.vmap(scale_inputs, in_axes=(None, 0))(x, jnp.array([1.0, 3.0]))
    np.testing.assert_allclose(out[1], np.asarray(x) * 3)
    assert scale_inputs(x.astype(jnp.bfloat16), 2.0).dtype == jnp.bfloat16


def test_uniform_noise_images_statistics():
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
    out = np.asarray(uniform_noise_images(jax.random.key(0), 400, (8, 8, 3), mean=mean, std=std))
    raw = out * np.array(std) + np.array(mean)
    assert out.shape == (400, 8, 8, 3) and out.dtype == np.float32
    assert raw.min() >= 0 and raw.max() < 1
    np.testing.assert_allclose(raw.mean(axis=(0, 1, 2)), 0.5, atol=0.01)
    np.testing.assert_allclose(raw.var(axis=(0, 1, 2)), 1 / 12, atol=0.005)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: permute_pixels(0, _images()), "key must be a jax.random key"),
        (lambda: permute_pixels(jax.random.key(0), jnp.zeros((3, 4))), "at least 3 dimension"),
        (lambda: permute_pixels(jax.random.key(0), jnp.zeros((0, 2, 2, 1))), "at least 1 example"),
        (lambda: scale_inputs(jnp.ones(2), 0.0), r"delta must be in \(0, inf\)"),
        (lambda: scale_inputs(jnp.ones(2), jnp.ones(2)), "delta must be a scalar"),
        (lambda: scale_inputs(jnp.ones(2), float("nan")), "delta must be in"),
        (lambda: uniform_noise_images(jax.random.key(0), 0, (2, 2, 1), mean=0, std=1), "num_samples"),
        (lambda: uniform_noise_images(jax.random.key(0), 1, (), mean=0, std=1), "image_shape"),
        (lambda: uniform_noise_images(jax.random.key(0), 1, (2, 2, 3), mean=(0, 0), std=1), "mean must be"),
        (lambda: uniform_noise_images(jax.random.key(0), 1, (2, 2, 1), mean=0, std=0), "std must be"),
        (lambda: uniform_noise_images(jax.random.key(0), 1, (2, 2, 1), mean=np.inf, std=1), "mean must be"),
        (lambda: uniform_noise_images(None, 1, (2, 2, 1), mean=0, std=1), "key must be"),
    ],
)
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
