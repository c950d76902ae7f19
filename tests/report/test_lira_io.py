"""Tests for hampjax.report.lira_io: LiRA reference layout export/import."""

import os

import numpy as np
import pytest

from hampjax.report.lira_io import (
    LiraLogits,
    LiraScores,
    export_lira_layout,
    import_lira_layout,
    import_lira_logits,
)


def _data(m=3, n=7, q=2, c=4, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    keep = rng.random((m, n)) < 0.5
    keep[:, 0] = True  # every model keeps at least one example
    scores = rng.normal(size=(m, n, q)).astype(dtype)
    logits = rng.normal(size=(m, n, q, c)).astype(dtype)
    return keep, scores, logits


def test_roundtrip_scores_and_logits(tmp_path):
    keep, scores, logits = _data()
    export_lira_layout(tmp_path / "run", keep, scores, logits=logits, name="0000000100")
    got = import_lira_layout(tmp_path / "run")
    assert isinstance(got, LiraScores)
    k, s = got
    np.testing.assert_array_equal(k, keep)
    np.testing.assert_array_equal(s, scores)
    assert k.dtype == np.bool_ and s.dtype == np.float32 and s.shape == (3, 7, 2)
    got_logits = import_lira_logits(tmp_path / "run", name="0000000100")
    assert isinstance(got_logits, LiraLogits)
    np.testing.assert_array_equal(got_logits.keep, keep)
    np.testing.assert_array_equal(got_logits.logits, logits)


def test_export_layout_on_disk(tmp_path):
    keep, scores, _ = _data(m=2, n=5, q=3, dtype=np.float64)
    export_lira_layout(tmp_path, keep, scores)
    assert sorted(os.listdir(tmp_path)) == ["experiment-0_2", "experiment-1_2"]
    model = tmp_path / "experiment-1_2"
    assert sorted(os.listdir(model)) == ["keep.npy", "scores"]
    assert os.listdir(model / "scores") == ["final.npy"]
    row = np.load(model / "keep.npy", allow_pickle=False)
    assert row.dtype == np.bool_ and row.shape == (5,)
    np.testing.assert_array_equal(row, keep[1])
    np.testing.assert_array_equal(np.load(model / "scores" / "final.npy", allow_pickle=False), scores[1])
    leftovers = [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith(".tmp")]
    assert leftovers == []


def _save(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr)


def test_import_hand_made_directory(tmp_path):
    n = 4
    rows = {0: [1, 0, 1, 0], 2: [0, 1, 0, 1], 10: [1, 1, 0, 0]}
    for i, row in rows.items():
        d = tmp_path / f"experiment-{i}_12"
        # model 2 stores keep as 0/1 integers, the others as bool
        _save(str(d / "keep.npy"), np.array(row, np.int64 if i == 2 else bool))
        # 1-D scores are read as Q = 1
        _save(str(d / "scores" / "0000000010.npy"), np.full(n, float(i)))
        # old-style logits with an extra size-1 axis: [N, 1, Q, C]
        _save(str(d / "logits" / "0000000010.npy"), np.full((n, 1, 2, 3), float(i), np.float32))
    os.makedirs(tmp_path / "not_a_model")  # no keep.npy: ignored
    (tmp_path / "notes.txt").write_text("ignored")
    keep, scores = import_lira_layout(tmp_path)
    # numeric order 0, 2, 10 (not the string order 0, 10, 2)
    np.testing.assert_array_equal(keep, np.array([rows[0], rows[2], rows[10]], bool))
    assert scores.shape == (3, n, 1)
    np.testing.assert_array_equal(scores[:, 0, 0], [0.0, 2.0, 10.0])
    keep2, logits = import_lira_logits(tmp_path)
    np.testing.assert_array_equal(keep2, keep)
    assert logits.shape == (3, n, 2, 3) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits[:, 0, 0, 0], [0.0, 2.0, 10.0])


def test_model_order_without_integers(tmp_path):
    for name, value in [("b", 1.0), ("a", 0.0), ("model7", 7.0)]:
        _save(str(tmp_path / name / "keep.npy"), np.array([True, False]))
        _save(str(tmp_path / name / "scores" / "s.npy"), np.full((2, 1), value))
    _, scores = import_lira_layout(tmp_path)
    np.testing.assert_array_equal(scores[:, 0, 0], [7.0, 0.0, 1.0])  # numbered first, then by name


def test_name_selects_among_several_files(tmp_path):
    keep, scores, _ = _data(m=2)
    export_lira_layout(tmp_path, keep, scores, name="0000000001")
    for m in range(2):
        np.save(tmp_path / f"experiment-{m}_2" / "scores" / "0000000002.npy", scores[m] + 1)
    with pytest.raises(ValueError, match="name must be given when a model's scores/ does not hold exactly one"):
        import_lira_layout(tmp_path)
    np.testing.assert_array_equal(import_lira_layout(tmp_path, name="0000000002").scores, scores + 1)
    np.testing.assert_array_equal(import_lira_layout(tmp_path, name="0000000001").scores, scores)
    with pytest.raises(ValueError, match="has no scores/0000000003.npy"):
        import_lira_layout(tmp_path, name="0000000003")


def test_never_unpickles(tmp_path):
    d = tmp_path / "experiment-0_1"
    _save(str(d / "keep.npy"), np.array([True, False]))
    os.makedirs(d / "scores")
    np.save(d / "scores" / "x.npy", np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        import_lira_layout(tmp_path)


@pytest.mark.parametrize(
    "keep, scores, kwargs, match",
    [
        (np.ones((2, 3), np.int32), np.zeros((2, 3, 1)), {}, "keep must be a boolean"),
        (np.ones(3, bool), np.zeros((1, 3, 1)), {}, "keep must be 2-D"),
        (np.array([[True, False], [False, False]]), np.zeros((2, 2, 1)), {}, "keep must give every model"),
        (np.ones((2, 3), bool), np.zeros((2, 3)), {}, "scores must be 3-D"),
        (np.ones((2, 3), bool), np.zeros((2, 4, 1)), {}, r"scores must have shape \[M, N, Q\]"),
        (np.ones((2, 3), bool), np.zeros((2, 3, 1), np.int32), {}, "scores must have a floating dtype"),
        (np.ones((2, 3), bool), np.full((2, 3, 1), np.nan), {}, "scores must be finite"),
        (np.ones((2, 3), bool), np.zeros((2, 3, 1)), {"logits": np.zeros((2, 3, 1))}, "logits must be 4-D"),
        (np.ones((2, 3), bool), np.zeros((2, 3, 1)), {"logits": np.zeros((2, 3, 2, 4))}, r"logits must have shape"),
        (np.ones((2, 3), bool), np.zeros((2, 3, 1)), {"logits": np.full((2, 3, 1, 4), np.inf)}, "logits must be finite"),
        (np.ones((2, 3), bool), np.zeros((2, 3, 1)), {"name": "a/b"}, "name must be"),
        (np.ones((2, 3), bool), np.zeros((2, 3, 1)), {"name": ""}, "name must be"),
    ],
)
def test_export_validation(tmp_path, keep, scores, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_lira_layout(tmp_path / "out", keep, scores, **kwargs)
    assert not os.path.exists(tmp_path / "out")  # nothing written before validation passed


def test_export_refuses_non_empty_or_bad_path(tmp_path):
    keep, scores, _ = _data()
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="path must be a new or empty directory"):
        export_lira_layout(tmp_path, keep, scores)
    with pytest.raises(ValueError, match="path must be a new or empty directory"):
        export_lira_layout(tmp_path / "x.txt", keep, scores)
    with pytest.raises(ValueError, match="path must be a directory path"):
        export_lira_layout(3, keep, scores)


def _model(root, i, keep, scores=None, logits=None):
    d = root / f"experiment-{i}_9"
    _save(str(d / "keep.npy"), keep)
    if scores is not None:
        _save(str(d / "scores" / "s.npy"), scores)
    if logits is not None:
        _save(str(d / "logits" / "s.npy"), logits)


def test_import_validation(tmp_path):
    with pytest.raises(ValueError, match="path must be an existing directory"):
        import_lira_layout(tmp_path / "missing")
    with pytest.raises(ValueError, match="path must be a directory path"):
        import_lira_layout(None)
    with pytest.raises(ValueError, match="has none"):
        import_lira_layout(tmp_path)
    with pytest.raises(ValueError, match="name must be"):
        import_lira_layout(tmp_path, name="../x")

    cases = {
        "keep2d": ([np.ones((2, 2), bool)], None, "keep.npy must be 1-D"),
        "keepfloat": ([np.array([0.0, 1.0])], None, "keep.npy must be bool or 0/1 integers"),
        "keepint": ([np.array([0, 2])], None, "keep.npy must be bool or 0/1 integers"),
        "noscores": ([np.array([True, False])], "skip", "holds \\[\\]"),
        "intscores": ([np.array([True, False])], [np.array([[1], [2]])], "scores files must have a floating dtype"),
        "wrongn": ([np.array([True, False])], [np.zeros((3, 1))], r"shape \[N, Q\] \(or \[N\]\) with N = len\(keep.npy\) = 2"),
        "scores3d": ([np.array([True, False])], [np.zeros((2, 1, 1))], r"shape \[N, Q\]"),
        "differentn": (
            [np.array([True, False]), np.array([True, False, True])],
            [np.zeros((2, 1)), np.zeros((3, 1))],
            "keep.npy must have one shape across models",
        ),
        "differentq": (
            [np.array([True, False]), np.array([True, False])],
            [np.zeros((2, 1)), np.zeros((2, 2))],
            "scores files must have one shape across models",
        ),
        "keepsnothing": ([np.array([False, False])], [np.zeros((2, 1))], "keep must give every model"),
    }
    for case, (keeps, scores, match) in cases.items():
        root = tmp_path / case
        for i, k in enumerate(keeps):
            _model(root, i, k, None if scores in (None, "skip") else scores[i])
        if scores is None:
            _save(str(root / "experiment-0_9" / "scores" / "s.npy"), np.zeros((2, 1)))
        with pytest.raises(ValueError, match=match):
            import_lira_layout(root)


def test_import_logits_validation(tmp_path):
    _model(tmp_path / "a", 0, np.array([True, False]), np.zeros((2, 1)), np.zeros((2, 2, 1, 3)))
    with pytest.raises(ValueError, match=r"logits files must have shape \[N, Q, C\] \(or \[N, 1, Q, C\]\)"):
        import_lira_logits(tmp_path / "a")
    _model(tmp_path / "b", 0, np.array([True, False]), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="logits/ does not hold exactly one"):
        import_lira_logits(tmp_path / "b")
