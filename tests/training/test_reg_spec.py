"""Specs and presets of the regularization baselines: label-smoothing style, distillation,
early-stopping epochs; their round trips, validation and the authors' values."""

import json

import pytest

from hampjax.repro.configs import quick_spec
from hampjax.training import (
    DEFENSES,
    PRESETS,
    DistillationParams,
    RecipeSpec,
    SmoothLabelsParams,
    preset_spec,
    teacher_spec,
)
from hampjax.training.presets import DROPOUT_MODEL_KWARGS, EARLY_STOPPING_EPOCHS


def test_new_fields_round_trip_through_json():
    for defense, table in PRESETS.items():
        for key, spec in table.items():
            back = RecipeSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
            assert back == spec and hash(back) == hash(spec), (defense, key)
    spec = preset_spec("early_stopping", "cifar10_resnet20")
    assert spec.to_dict()["early_stopping_epochs"] == [5, 10, 15, 20, 30, 40, 50, 75, 100, 150,
                                                       200, 250]
    changed = spec.replace(early_stopping_epochs=[3, 7], **{"defense": DistillationParams()})
    assert changed.early_stopping_epochs == (3, 7)
    assert RecipeSpec.from_dict(changed.to_dict()) == changed
    assert changed.to_dict()["defense"] == {"kind": "distillation", "temperature": 10.0,
                                            "kl_weight": 0.5, "kl_reduction": "mean_over_classes"}


def test_validation_names_the_field():
    spec = preset_spec("vanilla", "purchase100_fc")
    with pytest.raises(ValueError, match=r"early_stopping_epochs must be in \[1, epochs=120\]"):
        spec.replace(early_stopping_epochs=(5, 121))
    with pytest.raises(ValueError, match="strictly increasing"):
        spec.replace(early_stopping_epochs=(10, 5))
    with pytest.raises(ValueError, match=r"early_stopping_epochs\[0\]"):
        spec.replace(early_stopping_epochs=(0,))
    with pytest.raises(ValueError, match="defense.style must be one of"):
        SmoothLabelsParams(smoothing=0.1, style="other")
    with pytest.raises(ValueError, match="defense.temperature must be in"):
        DistillationParams(temperature=0.0)
    with pytest.raises(ValueError, match="defense.kl_weight must be in"):
        spec.replace(defense={"kind": "distillation", "temperature": 10.0, "kl_weight": 2.0,
                              "kl_reduction": "sum"})
    # Quick variants keep one snapshot inside their 2 epochs.
    assert quick_spec(preset_spec("early_stopping", "purchase100_fc")).early_stopping_epochs == (1,)


def test_hamp_label_smoothing_presets():
    for dataset, eps in {"purchase100": 0.03, "texas100": 0.09, "cifar100": 0.01}.items():
        spec, hamp = preset_spec("hamp_ls", dataset), preset_spec("hamp", dataset)
        assert spec.defense == SmoothLabelsParams(smoothing=eps, style="hamp")
        assert spec.output.kind == "none" and spec.name == "hamp_ls"
        # Everything else is the HAMP recipe (CIFAR's +1 point rule included).
        assert spec.replace(defense=hamp.defense, output=hamp.output, name="hamp") == hamp
    assert preset_spec("hamp_ls", "cifar100").min_improvement == 0.01
    assert "location30" not in PRESETS["hamp_ls"] and "cifar10" not in PRESETS["hamp_ls"]
    # The entropy-threshold LS baseline is unchanged.
    assert preset_spec("label_smoothing", "purchase100").defense.kind == "label_smoothing"


def test_relaxloss_baselines_on_the_relaxloss_base_recipe():
    for preset, base in PRESETS["relaxloss"].items():
        specs = {b: preset_spec(b, preset) for b in ("vanilla", "label_smoothing_rl",
                                                     "confidence_penalty", "dropout",
                                                     "early_stopping")}
        for name, spec in specs.items():
            assert spec.name == name
            assert (spec.optimizer, spec.schedule, spec.epochs, spec.batch_size,
                    spec.selection) == (base.optimizer, base.schedule, base.epochs,
                                        base.batch_size, "last")
        assert specs["label_smoothing_rl"].defense == SmoothLabelsParams(smoothing=0.1)
        assert specs["confidence_penalty"].defense.beta == 0.1
        assert specs["dropout"].defense.kind == specs["vanilla"].defense.kind == "cross_entropy"
        kind = "cifar" if preset.startswith("cifar") else "tabular"
        assert specs["early_stopping"].early_stopping_epochs == EARLY_STOPPING_EPOCHS[kind]
    assert sorted(PRESETS["distillation"]) == sorted(p for p in PRESETS["relaxloss"]
                                                     if p.startswith("cifar"))
    assert preset_spec("distillation", "cifar100_vgg11_bn").defense == DistillationParams(
        temperature=10.0, kl_weight=0.5)
    assert dict(DROPOUT_MODEL_KWARGS) == {"head_dropout_rate": 0.5}
    # HAMP Fig. 7: the undefended recipes with early-stopping epochs.
    fig7 = preset_spec("early_stopping", "purchase100")
    assert fig7.replace(name="undefended", early_stopping_epochs=()) == preset_spec(
        "undefended", "purchase100")
    assert 15 in fig7.early_stopping_epochs


def test_teacher_spec_and_kinds():
    assert DEFENSES["distillation"].targets == "teacher_logits"
    assert {k for k, d in DEFENSES.items() if d.targets != "none"} == {"distillation"}
    student = preset_spec("distillation", "cifar10_resnet20", early_stopping_epochs=(5,))
    teacher = teacher_spec(student)
    assert teacher.name == "distillation_teacher" and teacher.defense.kind == "cross_entropy"
    assert teacher.early_stopping_epochs == ()
    assert teacher.replace(name="vanilla") == preset_spec("vanilla", "cifar10_resnet20")
