"""Smoke test of the quickstart demo with tiny settings (the real run takes a few minutes).

Two of the five defenses keep it fast; every defense's recipe is trained by
tests/training/test_engine.py and tests/attacks/test_evaluate.py.
"""

import importlib.util
import json
import os

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "demo.py")


def test_demo_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("hampjax_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    workdir = str(tmp_path / "demo")
    report = demo.main(["--workdir", workdir, "--models", "4", "--epochs", "1",
                        "--nn-epochs", "1", "--defenses", "undefended,hamp", "--quiet"])
    out = capsys.readouterr().out
    assert "Summary (max over all attacks" in out and "hamp" in out
    with open(os.path.join(workdir, "report.json")) as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(report))
    assert sorted(on_disk["defenses"]) == ["hamp", "undefended"]
    for name in ("undefended", "hamp"):
        d = on_disk["defenses"][name]
        assert {"train_acc", "test_acc", "max_tpr@0.1%fpr", "max_tnr@0.1%fnr"} <= set(d)
        for attack in d["attacks"].values():
            assert {"auc", "tpr@0.1%fpr", "tnr@0.1%fnr"} <= set(attack)
