"""hampjax.repro.datasets on fixture files in the raw formats: the HAMP and RelaxLoss schemes for
tabular and image data, the inputs the models get, the records, and the errors."""

import dataclasses
import io
import tarfile

import jax
import numpy as np
import pytest

from hampjax.data import cifar, hamp_split, hamp_split_sizes, load_purchase100, tabular
from hampjax.models import FCNet
from hampjax.repro.datasets import default_model, load_experiment_data


@pytest.fixture(autouse=True)
def _fixture_rows(monkeypatch):
    """The fixtures hold fewer rows than the published files (whose counts the loaders check)."""
    monkeypatch.setattr(tabular, "PURCHASE100", dataclasses.replace(tabular.PURCHASE100, num_rows=None))
    for name in ("_CIFAR10", "_CIFAR100"):
        monkeypatch.setattr(cifar, name, dataclasses.replace(
            getattr(cifar, name), archive_size=None, archive_sha256=None, records=None))


def _purchase(tmp_path, n=120):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(n, 600), dtype=np.uint8)
    labels = rng.integers(1, 101, size=n)
    text = "".join(",".join([str(label), *map(str, row.tolist())]) + "\n"
                   for label, row in zip(labels, x)).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("dataset_purchase")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    (tmp_path / "dataset_purchase.tgz").write_bytes(buf.getvalue())
    return x, labels - 1


def _cifar10(tmp_path, per_file=10):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        images = rng.integers(0, 256, size=(per_file, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(per_file, 1), dtype=np.uint8)
        chw = images.transpose(0, 3, 1, 2).reshape(per_file, -1)
        (folder / name).write_bytes(np.concatenate([labels, chw], axis=1).tobytes())


def test_tabular_hamp_scheme(tmp_path):
    x, y = _purchase(tmp_path)
    data = load_experiment_data("purchase100", seed=3, data_dir=str(tmp_path), train_size=40)
    e = data.eval_data
    # train_size 40: 36 members + 36 non-members form the pool, 4 validation, 4 test.
    assert e.x.shape == (72, 600) and e.x.dtype == np.float32
    assert e.x_val.shape == (4, 600) and e.x_test.shape == (4, 600)
    assert e.binary_features and e.image_shape is None
    ds = load_purchase100(str(tmp_path))
    np.testing.assert_array_equal(ds.y, y)
    split = hamp_split(ds.x, ds.y, hamp_split_sizes(40), seed=3)
    np.testing.assert_array_equal(e.x, x[np.concatenate([split.members, split.nonmembers])])
    np.testing.assert_array_equal(e.y_test, y[split.test])
    r = np.asarray(e.random_inputs(jax.random.key(0), 5))
    assert r.shape == (5, 600) and set(np.unique(r)) <= {0.0, 1.0}
    assert data.record["scheme"] == "hamp" and data.record["data_hash"] == split.data_hash
    assert data.num_classes == 100 and data.dataset == "purchase100"


def test_tabular_relaxloss_scheme(tmp_path):
    _purchase(tmp_path)
    data = load_experiment_data("purchase100", seed=0, data_dir=str(tmp_path), scheme="relaxloss")
    # 40% of 120 = 48 -> 24 target-train + 24 target-test in the pool; the reference slice
    # (the middle 20%, 24 examples) is the test set.
    assert data.eval_data.x.shape == (48, 600) and data.eval_data.x_test.shape == (24, 600)
    assert data.record["scheme"] == "relaxloss"


def test_image_schemes(tmp_path):
    _cifar10(tmp_path)
    data = load_experiment_data("cifar10", seed=0, data_dir=str(tmp_path), scheme="relaxloss")
    e = data.eval_data
    # 60 images: five slices of 12; the pool is target train + target test.
    assert e.x.shape == (24, 32, 32, 3) and e.x_test.shape == (12, 32, 32, 3)
    assert e.image_shape is None and not e.binary_features  # conv nets take [N, H, W, C]
    assert abs(float(e.x.mean())) < 1.0  # normalized with the dataset's statistics
    assert np.asarray(e.random_inputs(jax.random.key(0), 3)).shape == (3, 32, 32, 3)
    hamp = load_experiment_data("cifar10", seed=0, data_dir=str(tmp_path), train_size=20)
    assert hamp.eval_data.x.shape == (36, 32, 32, 3)


def test_digits_defaults():
    data = load_experiment_data("digits", seed=0)
    e = data.eval_data
    assert e.x.shape == (1400, 64) and e.x_val.shape == (100, 64) and e.x_test.shape == (297, 64)
    assert e.image_shape == (8, 8, 1)  # flat MLP inputs; the augmentation attack reshapes them
    model = default_model("digits", 10)
    assert isinstance(model, FCNet) and model.hidden_sizes == (256, 128)
    assert default_model("purchase100", 100).hidden_sizes == (1024, 512, 256, 128)
    assert type(default_model("cifar10", 10, "resnet20")).__name__ == "ResNet20"


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_experiment_data("mnist", seed=0)
    with pytest.raises(ValueError, match="data_dir is required for dataset 'purchase100'"):
        load_experiment_data("purchase100", seed=0)
    with pytest.raises(ValueError, match="scheme must be one of"):
        load_experiment_data("digits", seed=0, scheme="lira")
    with pytest.raises(ValueError, match="train_size applies only to scheme='hamp'"):
        load_experiment_data("digits", seed=0, scheme="relaxloss", train_size=100)
    with pytest.raises(FileNotFoundError, match="dataset_purchase.tgz"):
        load_experiment_data("purchase100", seed=0, data_dir=str(tmp_path))
