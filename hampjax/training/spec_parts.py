"""The parts of a :class:`~hampjax.training.spec.RecipeSpec`: optimizer, schedule,
per-example state, output transform (HAMP, MemGuard), AdvReg's adversary, DP-SGD, SELENA's
Split-AI and DMP's reference set. Each is a frozen spec checked field by field when made.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping, Sequence
from typing import ClassVar

from hampjax import validation
from hampjax.defenses.advreg import ATTACK_ARCHS, ATTACK_HIDDEN, ATTACK_INPUTS
from hampjax.defenses.memguard import MEMGUARD_CLASSIFIERS, MEMGUARD_HIDDEN, MEMGUARD_RELEASES
from hampjax.defenses.selena import SPLIT_AI_AVERAGES
from hampjax.defenses.weighted_smoothing import (
    WS_NOISE_START_EPOCH,
    WS_NORMALIZATIONS,
    WS_SCORES,
    WS_WEIGHTS,
)
from hampjax.training.spec_base import (
    ADVERSARIES,
    ADVREG_GAMES,
    ADVREG_REFERENCES,
    DP_ACCOUNTANTS,
    DP_CONVERSIONS,
    DP_PER_EXAMPLE,
    DP_SAMPLINGS,
    EXAMPLE_STATES,
    OPTIMIZERS,
    OUTPUTS,
    PRIVACY_KINDS,
    RANDOM_INPUTS,
    SCHEDULES,
    SPLIT_AI_KINDS,
    _Spec,
    _bool,
    _choice,
    _float,
    _int,
    _set,
    _unused,
    diff_paths,
)


# ----------------------------------------------------------------------------------------------
# Optimizer, schedule, per-example state, output transform.


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerSpec(_Spec):
    """The optax optimizer (built by :func:`hampjax.training.build_recipe`).

    The chain is ``[clip_by_global_norm(clip_norm)] + [add_decayed_weights(weight_decay)] +
    [sgd | adam]`` with coupled (PyTorch L2-style) decay, parts left out when unset; Adam with
    ``coupled_weight_decay=False`` is AdamW (decay applied by optax.adamw, after the moments).

    Attributes:
      kind: ``"sgd"`` or ``"adam"``.
      learning_rate: base learning rate > 0 (the schedule scales it per epoch).
      momentum: SGD momentum in [0, 1) (0: plain SGD). SGD only.
      nesterov: Nesterov momentum (needs ``momentum > 0``). SGD only.
      b1, b2: Adam's moment decay rates in [0, 1). Adam only.
      eps: Adam's denominator epsilon >= 0. Adam only.
      weight_decay: >= 0.
      coupled_weight_decay: True: decay added to the gradient before the optimizer (PyTorch's
        ``weight_decay=``); False: decoupled (AdamW; Adam only).
      clip_norm: global gradient-norm clip > 0, or None for none.
    """

    _prefix: ClassVar[str] = "optimizer."

    kind: str
    learning_rate: float
    momentum: float = 0.0
    nesterov: bool = False
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    coupled_weight_decay: bool = True
    clip_norm: float | None = None

    def __post_init__(self):
        _choice(self, "kind", OPTIMIZERS)
        _float(self, "learning_rate", 0.0, low_inclusive=False)
        _float(self, "momentum", 0.0, 1.0)
        _bool(self, "nesterov")
        _float(self, "b1", 0.0, 1.0)
        _float(self, "b2", 0.0, 1.0)
        _float(self, "eps", 0.0)
        _float(self, "weight_decay", 0.0)
        _bool(self, "coupled_weight_decay")
        if self.clip_norm is not None:
            _float(self, "clip_norm", 0.0, low_inclusive=False)
        if self.kind == "sgd":
            _unused(self, ("b1", "b2", "eps"))
            if self.nesterov and self.momentum == 0.0:
                raise ValueError("optimizer.nesterov needs optimizer.momentum > 0")
            if not self.coupled_weight_decay:
                raise ValueError("optimizer.coupled_weight_decay=False (decoupled decay) is only "
                                 "available with optimizer.kind='adam' (AdamW)")
        else:
            _unused(self, ("momentum", "nesterov"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleSpec(_Spec):
    """Learning rate per epoch, as a multiple of ``optimizer.learning_rate``.

    Attributes:
      kind: ``"constant"``; ``"step"``: times ``factor`` at the start of each milestone epoch
        (PyTorch MultiStepLR); ``"exponential"``: times ``decay ** epoch``; ``"cosine"``:
        times ``0.5 * (1 + cos(pi * epoch / (epochs + 1)))`` with ``epochs`` the recipe's
        (the HAMP authors' DP-SGD schedule; no parameters).
      milestones: strictly increasing 0-based epochs (``"step"`` only).
      factor: step factor > 0 (``"step"`` only).
      decay: per-epoch factor > 0 (``"exponential"`` only).
    """

    _prefix: ClassVar[str] = "schedule."

    kind: str = "constant"
    milestones: tuple[int, ...] = ()
    factor: float = 0.1
    decay: float = 1.0

    def __post_init__(self):
        _choice(self, "kind", SCHEDULES)
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Sequence):
            raise ValueError(f"schedule.milestones must be a sequence of epochs, got "
                             f"{self.milestones!r}")
        milestones = tuple(validation.check_positive_int(f"schedule.milestones[{i}]", m, minimum=0)
                           for i, m in enumerate(self.milestones))
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"schedule.milestones must be strictly increasing, got {milestones}")
        _set(self, "milestones", milestones)
        _float(self, "factor", 0.0, low_inclusive=False)
        _float(self, "decay", 0.0, low_inclusive=False)
        _unused(self, {"constant": ("milestones", "factor", "decay"),
                       "step": ("decay",), "exponential": ("milestones", "factor"),
                       "cosine": ("milestones", "factor", "decay")}[self.kind])


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExampleStateSpec(_Spec):
    """Per-example state computed from an eval-mode pass at the start of each epoch.

    Attributes:
      kind: ``"none"`` or ``"ws_noise_scale"`` (Weighted Smoothing's noise factors,
        :func:`hampjax.defenses.ws_noise_scale` of :func:`hampjax.defenses.ws_sample_scores`).
      score: ``"mentr"`` or ``"cross_entropy"``.
      normalization: ``"zscore"`` or ``"minmax"``.
      weight: ``"one_minus_z"`` or ``"relu_one_minus_z"``.
      start_epoch: first 0-based epoch with nonzero state (zeros before it).
    """

    _prefix: ClassVar[str] = "example_state."

    kind: str = "none"
    score: str = "mentr"
    normalization: str = "zscore"
    weight: str = "one_minus_z"
    start_epoch: int = WS_NOISE_START_EPOCH

    def __post_init__(self):
        _choice(self, "kind", EXAMPLE_STATES)
        _choice(self, "score", WS_SCORES)
        _choice(self, "normalization", WS_NORMALIZATIONS)
        _choice(self, "weight", WS_WEIGHTS)
        _int(self, "start_epoch", 0)
        if self.kind == "none":
            _unused(self, ("score", "normalization", "weight", "start_epoch"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemGuardSpec(_Spec):
    """MemGuard's settings (Jia et al. 2019; :mod:`hampjax.defenses.memguard`), used with
    ``output.kind="memguard"``. Defaults: the HAMP authors' code.

    Attributes:
      classifier: the defender's classifier ``g`` that post-processes a shadow's outputs:
        ``"target"`` (the target's ``g`` on every model, HAMP code) or ``"per_shadow"``
        (each model its own ``g``, trained on its own members vs non-members).
      hidden_sizes: ``g``'s hidden layers (256, 128, 64; ReLU, Glorot uniform, sigmoid out).
      epochs, learning_rate, batch_size: ``g``'s training, BCE with plain SGD (400, 0.001,
        256; the last partial batch kept).
      c1, c2: weights >= 0 of ``|g_logit|`` and of the label-margin hinge (1, 10).
      c3_initial, c3_factor, c3_rounds: the distortion weights ``c3_initial * c3_factor**r``,
        ``r < c3_rounds`` (0.1, 10, 7: 0.1 .. 1e5).
      step_size: the normalized gradient step (0.1).
      max_steps: gradient steps per round at most (299).
      tolerance: a query with ``|g(z0) - 0.5| <= tolerance`` is released unchanged (1e-5).
      phase2: the paper's Phase II, each query's noise applied with probability
        ``min(1, distortion_budget / L1 distortion)`` (default False, as the HAMP code).
      distortion_budget: Phase II's expected L1 distortion budget in ``[0, 2]`` (phase2 only).
      release: the released logits, ``"log_softmax"`` (default: those of the defended
        confidence vector, what MemGuard releases) or ``"logits"`` (the searched logits, whose
        mean is the undefended logits' mean; :data:`hampjax.defenses.MEMGUARD_RELEASES`).

    With several targets (``evaluate_defense(targets=T > 1)``), ``classifier="target"``
    post-processes every model with model ``target``'s classifier; ``"per_shadow"`` makes each
    model a MemGuard deployment of its own.
    """

    _prefix: ClassVar[str] = "output.memguard."

    classifier: str = "target"
    hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN
    epochs: int = 400
    learning_rate: float = 1e-3
    batch_size: int = 256
    c1: float = 1.0
    c2: float = 10.0
    c3_initial: float = 0.1
    c3_factor: float = 10.0
    c3_rounds: int = 7
    step_size: float = 0.1
    max_steps: int = 299
    tolerance: float = 1e-5
    phase2: bool = False
    distortion_budget: float = 1.0
    release: str = "log_softmax"

    def __post_init__(self):
        _choice(self, "classifier", MEMGUARD_CLASSIFIERS)
        _choice(self, "release", MEMGUARD_RELEASES)
        sizes = self.hidden_sizes
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
            raise ValueError(f"output.memguard.hidden_sizes must be a non-empty sequence of "
                             f"widths, got {sizes!r}")
        _set(self, "hidden_sizes", tuple(validation.check_positive_int(
            f"output.memguard.hidden_sizes[{i}]", h) for i, h in enumerate(sizes)))
        _int(self, "epochs", 1)
        _float(self, "learning_rate", 0.0, low_inclusive=False)
        _int(self, "batch_size", 1)
        _float(self, "c1", 0.0)
        _float(self, "c2", 0.0)
        _float(self, "c3_initial", 0.0, low_inclusive=False)
        _float(self, "c3_factor", 0.0, low_inclusive=False)
        _int(self, "c3_rounds", 1)
        _float(self, "step_size", 0.0, low_inclusive=False)
        _int(self, "max_steps", 1)
        _float(self, "tolerance", 0.0, 0.5)
        _bool(self, "phase2")
        _float(self, "distortion_budget", 0.0, 2.0, high_inclusive=True)
        default = MemGuardSpec.__dataclass_fields__["distortion_budget"].default
        if not self.phase2 and self.distortion_budget != default:
            raise ValueError(f"output.memguard.distortion_budget is not used with "
                             f"output.memguard.phase2=False; leave it at its default "
                             f"{default!r}, got {self.distortion_budget!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputSpec(_Spec):
    """The test-time output transform, applied by the evaluation to every model's outputs.

    Attributes:
      kind: ``"none"``, ``"hamp"`` (HAMP's output modification,
        :func:`hampjax.defenses.modify_output`) or ``"memguard"`` (MemGuard's adversarial
        noise on the logits, :mod:`hampjax.defenses.memguard`; settings in ``memguard``).
      pool_size: random outputs precomputed per model (``"hamp"``).
      random_inputs: where random inputs come from; ``"dataset"``: the evaluation data's own
        generator (uniform pixels for images, random bits for binary features) (``"hamp"``).
      break_ties: separate tied random values (see :func:`hampjax.defenses.modify_output`)
        (``"hamp"``).
      memguard: :class:`MemGuardSpec` (``"memguard"``; defaults otherwise).
    """

    _prefix: ClassVar[str] = "output."
    _nested: ClassVar[Mapping[str, type]] = types.MappingProxyType({"memguard": MemGuardSpec})

    kind: str = "none"
    pool_size: int = 1000
    random_inputs: str = "dataset"
    break_ties: bool = True
    memguard: MemGuardSpec = MemGuardSpec()

    def __post_init__(self):
        _choice(self, "kind", OUTPUTS)
        _int(self, "pool_size", 1)
        _choice(self, "random_inputs", RANDOM_INPUTS)
        _bool(self, "break_ties")
        if not isinstance(self.memguard, MemGuardSpec):
            raise ValueError(f"output.memguard must be a dict or a MemGuardSpec, got "
                             f"{self.memguard!r}")
        if self.kind != "hamp":
            _unused(self, ("pool_size", "random_inputs", "break_ties"))
        if self.kind != "memguard" and self.memguard != MemGuardSpec():
            changed = diff_paths(self.memguard.to_dict(), MemGuardSpec().to_dict())
            raise ValueError(
                f"output.memguard is not used with output.kind={self.kind!r}; leave it at its "
                f"defaults, got changed: "
                + ", ".join(f"output.memguard.{p}" for p in changed))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdversarySpec(_Spec):
    """An adversary trained against the classifier during training (AdvReg, Nasr et al. 2018).

    ``kind="advreg"``: the min-max game of :mod:`hampjax.training.advreg` with the inference
    model of :mod:`hampjax.defenses.advreg`. Defaults are the HAMP authors' code; the RelaxLoss
    code's settings are presets (:data:`hampjax.training.presets.ADVREG`).

    Attributes:
      kind: ``"none"`` or ``"advreg"``.
      weight: lambda >= 0, the weight of the classifier's privacy term
        ``lambda * (mean h - 0.5)`` (default 1.0; HAMP's table: 3 / 10 / 10 / 6).
      attack_input: what the inference model sees, ``"logits"`` (HAMP code, default),
        ``"softmax"`` (Nasr et al.) or ``"sorted_logits"`` (RelaxLoss code).
      attack_arch: ``"hamp"`` (default), ``"relaxloss_tabular"`` or ``"relaxloss_cifar"``
        (:class:`hampjax.defenses.advreg.InferenceModel`).
      attack_hidden: ``"trainable"`` (default) or ``"frozen"``: the RelaxLoss CIFAR model's
        hidden layer, which the authors' code never trains (``attack_arch="relaxloss_cifar"``
        only).
      attack_learning_rate: the inference model's Adam learning rate (constant; default 1e-4,
        HAMP code; RelaxLoss 1e-3).
      game: the alternation after the warm-up. ``"rounds"`` (default; HAMP and RelaxLoss
        tabular code): ``floor(n / batch_size) // 2`` rounds per epoch, each
        ``attack_steps`` inference-model steps then ``classifier_steps`` classifier steps;
        ``"epochs"`` (RelaxLoss CIFAR code): one inference-model epoch, then one classifier
        epoch.
      attack_steps: inference-model steps per round (default 52; RelaxLoss 50); ``"rounds"``
        only.
      classifier_steps: classifier steps per round (default 2); ``"rounds"`` only.
      attack_batch_size: members per inference-model step of the game, with as many
        reference examples (default 32: half of HAMP's batch of 64).
      warmup_epochs: leading epochs of plain training, each followed by
        ``warmup_attack_epochs`` inference-model epochs, never selected (default 1; RelaxLoss
        CIFAR 3). Must be < ``epochs``.
      warmup_attack_epochs: inference-model epochs after each warm-up epoch (default 5).
      warmup_batch_size: batch size of the warm-up epochs; None (default) for ``batch_size``
        (HAMP code: 32).
      warmup_attack_batch_size: members (and as many reference examples) per warm-up
        inference-model step (default 8; HAMP CIFAR 128).
      reference: the reference set of model m. ``"authors"`` (default): all its non-members
        ``pool[~keep[m]]`` (HAMP's LiRA shadows; as the authors' Location and CIFAR
        targets, whose reference overlaps the evaluation's non-members);
        ``"disjoint"``: only its non-members in a fixed half of the pool
        (:func:`hampjax.training.advreg.reference_mask`), so the other half's non-members
        stay unseen by the defense.
      double_decay: the HAMP code steps its classifier learning-rate scheduler twice per
        milestone (x0.01 instead of ``schedule.factor`` 0.1): True (default) reproduces it,
        False is the paper's intent. Acts only with ``schedule.kind="step"``.
    """

    _prefix: ClassVar[str] = "adversary."

    kind: str = "none"
    weight: float = 1.0
    attack_input: str = "logits"
    attack_arch: str = "hamp"
    attack_hidden: str = "trainable"
    attack_learning_rate: float = 1e-4
    game: str = "rounds"
    attack_steps: int = 52
    classifier_steps: int = 2
    attack_batch_size: int = 32
    warmup_epochs: int = 1
    warmup_attack_epochs: int = 5
    warmup_batch_size: int | None = None
    warmup_attack_batch_size: int = 8
    reference: str = "authors"
    double_decay: bool = True

    def __post_init__(self):
        _choice(self, "kind", ADVERSARIES)
        _float(self, "weight", 0.0)
        _choice(self, "attack_input", ATTACK_INPUTS)
        _choice(self, "attack_arch", ATTACK_ARCHS)
        _choice(self, "attack_hidden", ATTACK_HIDDEN)
        _float(self, "attack_learning_rate", 0.0, low_inclusive=False)
        _choice(self, "game", ADVREG_GAMES)
        _int(self, "attack_steps", 1)
        _int(self, "classifier_steps", 1)
        _int(self, "attack_batch_size", 1)
        _int(self, "warmup_epochs", 0)
        _int(self, "warmup_attack_epochs", 0)
        if self.warmup_batch_size is not None:
            _int(self, "warmup_batch_size", 1)
        _int(self, "warmup_attack_batch_size", 1)
        _choice(self, "reference", ADVREG_REFERENCES)
        _bool(self, "double_decay")
        if self.kind == "none":
            _unused(self, [f.name for f in dataclasses.fields(self) if f.name != "kind"])
            return
        if self.attack_hidden != "trainable" and self.attack_arch != "relaxloss_cifar":
            raise ValueError(f"adversary.attack_hidden={self.attack_hidden!r} is only available "
                             f"with adversary.attack_arch='relaxloss_cifar', got "
                             f"{self.attack_arch!r}")
        if self.game == "epochs":
            _unused(self, ("attack_steps", "classifier_steps"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrivacySpec(_Spec):
    """Differentially private training (DP-SGD): how per-example gradients are aggregated.

    Any defense's loss composes with it: DP-SGD only changes how the step turns per-example
    losses into an update (clip every example's gradient to ``clip_norm``, sum, add Gaussian
    noise of std ``noise_multiplier * clip_norm``, divide by the expected batch size), before
    the optimizer (so coupled weight decay is added after the noise). See
    :mod:`hampjax.defenses.dp_sgd` and :func:`hampjax.defenses.recipe_epsilon`.

    Attributes:
      kind: ``"none"`` (ordinary mean-of-batch gradients) or ``"dp_sgd"``.
      noise_multiplier: sigma >= 0 (noise std over the clip norm; 0: clipping only).
      clip_norm: per-example L2 clip norm C > 0 (flat, over all parameters); ``inf``: no
        clipping.
      sampling: ``"poisson"``: every member enters each step's batch with probability
        ``q = 1 / ceil(N / B)``, ``ceil(N / B)`` steps per epoch, sum divided by
        ``int(N q)`` (Opacus 1.1.2 ``make_private``, HAMP code); ``"shuffle"``: the ordinary
        shuffled batches of ``batch_size`` (last partial batch kept), sum divided by the
        batch's size (Opacus 0.14 on a DataLoader, RelaxLoss code; accounted as q = B / N).
      delta: target delta in (0, 1) of the reported epsilon.
      eps_conversion: the headline RDP-to-(eps, delta) conversion, ``"classic"`` (the HAMP
        paper's numbers) or ``"opacus_improved"``; both are always reported.
      accountant: ``"rdp"`` or ``"pld"`` (headline; all are reported).
      poisson_cap: ``"poisson"`` only: a step's batch is padded to the static size
        ``B + ceil(poisson_cap * sqrt(B))``; members sampled beyond it are dropped and
        counted (``TrainResult.dp_overflow``).
      per_example: how per-example gradient norms are computed: ``"dense"`` (from each dense
        layer's inputs and output gradients, no per-example gradients; every parameter must
        belong to a ``flax.linen.Dense`` layer), ``"generic"`` (``vmap`` of ``grad``, any
        model), ``"auto"`` (dense where it applies). Models with BatchNorm are refused.
    """

    _prefix: ClassVar[str] = "privacy."

    kind: str = "none"
    noise_multiplier: float = 1.0
    clip_norm: float = 1.0
    sampling: str = "poisson"
    delta: float = 1e-5
    eps_conversion: str = "classic"
    accountant: str = "rdp"
    poisson_cap: float = 6.0
    per_example: str = "auto"

    def __post_init__(self):
        _choice(self, "kind", PRIVACY_KINDS)
        _float(self, "noise_multiplier", 0.0)
        _float(self, "clip_norm", 0.0, math.inf, low_inclusive=False, high_inclusive=True)
        _choice(self, "sampling", DP_SAMPLINGS)
        _float(self, "delta", 0.0, 1.0, low_inclusive=False)
        _choice(self, "eps_conversion", DP_CONVERSIONS)
        _choice(self, "accountant", DP_ACCOUNTANTS)
        _float(self, "poisson_cap", 0.0, low_inclusive=False)
        _choice(self, "per_example", DP_PER_EXAMPLE)
        if self.kind == "none":
            _unused(self, ("noise_multiplier", "clip_norm", "sampling", "delta",
                           "eps_conversion", "accountant", "poisson_cap", "per_example"))
        elif self.sampling == "shuffle":
            _unused(self, ("poisson_cap",))
        if self.noise_multiplier > 0 and math.isinf(self.clip_norm) and self.kind != "none":
            raise ValueError("privacy.clip_norm must be finite when privacy.noise_multiplier > 0 "
                             "(the noise std is noise_multiplier * clip_norm)")
        if self.accountant == "pld" and self.eps_conversion != "classic":
            raise ValueError("privacy.eps_conversion applies to privacy.accountant='rdp' only; "
                             f"leave it at 'classic', got {self.eps_conversion!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SplitAISpec(_Spec):
    """SELENA's Split-AI (Tang et al. 2022): the distilled targets come from sub-models.

    ``kind="selena"``: the evaluation (:func:`hampjax.evaluation.train_recipe`) trains, for
    each model ``m`` of the keep matrix, ``num_submodels`` sub-models with
    :func:`teacher_spec` of the recipe, each member of ``m`` left out of ``num_excluded`` of
    them (:func:`hampjax.defenses.split_ai_keep`), and distills into ``m`` (the released
    model) each member's average over the sub-models that did not train on it
    (:func:`hampjax.defenses.split_ai_soft_labels`). Needs a defense whose loss reads
    ``"teacher_logits"`` (``defense.kind="distillation"``; SELENA: temperature 1, kl_weight 1).

    Attributes:
      kind: ``"none"`` (default) or ``"selena"``.
      num_submodels: K >= 2 (SELENA: 25).
      num_excluded: L in [1, K), the sub-models each member is left out of (SELENA: 10).
      average: ``"logits"`` (default; the HAMP code averages the logits) or ``"probs"`` (the
        SELENA paper: the log of the mean probabilities is distilled).
      assignment_seed: integer >= 0; model ``m``'s assignment is drawn from
        ``SeedSequence((assignment_seed, m))`` (SELENA code: seed 0).
    """

    _prefix: ClassVar[str] = "split_ai."

    kind: str = "none"
    num_submodels: int = 25
    num_excluded: int = 10
    average: str = "logits"
    assignment_seed: int = 0

    def __post_init__(self):
        _choice(self, "kind", SPLIT_AI_KINDS)
        _int(self, "num_submodels", 2)
        _int(self, "num_excluded", 1)
        _choice(self, "average", SPLIT_AI_AVERAGES)
        _int(self, "assignment_seed", 0)
        if self.kind == "none":
            _unused(self, ("num_submodels", "num_excluded", "average", "assignment_seed"))
        if self.num_excluded >= self.num_submodels:
            raise ValueError(f"split_ai.num_excluded must be in [1, split_ai.num_submodels="
                             f"{self.num_submodels}), got {self.num_excluded}")


# ----------------------------------------------------------------------------------------------
# DMP's reference set (Shejwalkar & Houmansadr 2021): the student's training data.

REFERENCE_KINDS = ("none", "gan", "given")
GENERATORS = ("dcgan", "tabular")
SAMPLE_MODES = ("train_bn", "eval_bn")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReferenceSpec(_Spec):
    """The reference set a distillation student trains on instead of the candidates (DMP).

    With ``kind != "none"`` the student (a defense reading ``"teacher_logits"``) never sees the
    private members: each model ``m`` trains only on its own reference set, labelled by the
    eval-mode logits of its teacher (:func:`teacher_spec`, trained on model ``m``'s members).
    The engine regenerates and labels every batch inside the jitted step
    (:mod:`hampjax.training.reference`), so ``M x R`` inputs or teacher outputs are never
    stored.

    Attributes:
      kind: ``"none"`` (default: the ordinary candidates), ``"gan"`` (a GAN per model trained
        on its members, :mod:`hampjax.training.gan`; ``size`` samples regenerated from the
        model's key) or ``"given"`` (a public / held-out set of unlabeled inputs shared by
        every model, the evaluation's ``EvalData.x_reference``, checked against
        ``given_sha256``).
      size: ``"gan"``: synthetic rows per model ``R >= 1`` (DMP: Texas 100k, Location 10k,
        CIFAR 150k). Other kinds: 0.
      passes_per_epoch: passes over the reference set per student epoch (DMP code: 2 on
        Location30, 1 elsewhere). ``"gan"`` and ``"given"``.
      generator: ``"dcgan"`` (images: transposed-conv generator with BatchNorm and a Tanh
        output, :class:`hampjax.models.gan.DCGenerator`) or ``"tabular"`` (MLP generator with
        BatchNorm, sigmoid outputs in [0, 1], :class:`hampjax.models.gan.TabularGenerator`).
      gan_epochs, gan_batch_size: GAN training epochs over the model's members and batch size.
      gan_learning_rate, beta1, beta2: Adam settings of generator and discriminator (DC-GAN:
        2e-4, 0.5, 0.999; CTGAN: 2e-4, 0.5, 0.9).
      noise_dim: generator input size (DC-GAN nz 100).
      filters: ``"dcgan"`` only: filters of the generator's last hidden layer and the
        discriminator's first (ngf = ndf = 64).
      image_size: ``"dcgan"`` only: side of the generated images, a power of 2 >= 8 (64:
        members are resized to 64 for training, samples back to the data's size).
      hidden: ``"tabular"`` only: hidden widths of generator and discriminator.
      sample_mode: BatchNorm of the generator when sampling: ``"train_bn"`` (batch statistics
        over each batch of generated rows; DMP code, default) or ``"eval_bn"`` (running
        statistics: every sample independent of its batch).
      threshold: ``"tabular"`` only: samples ``> threshold`` become 1 and the rest 0 (binary
        features; CTGAN's samples thresholded at 0.5), or None (default) for continuous
        features mapped back to the data's scale.
      given_sha256: ``"given"`` only: :func:`hampjax.training.reference.reference_sha256` of the
        given set (shape, dtype and bytes), required, so a recorded spec names exactly the set
        it trained on; checked before training.
    """

    _prefix: ClassVar[str] = "reference."

    kind: str = "none"
    size: int = 0
    passes_per_epoch: int = 1
    generator: str = "dcgan"
    gan_epochs: int = 100
    gan_batch_size: int = 256
    gan_learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    noise_dim: int = 100
    filters: int = 64
    image_size: int = 64
    hidden: tuple[int, ...] = (256, 256)
    sample_mode: str = "train_bn"
    threshold: float | None = None
    given_sha256: str = ""

    def __post_init__(self):
        _choice(self, "kind", REFERENCE_KINDS)
        _int(self, "size", 0)
        _int(self, "passes_per_epoch", 1)
        _choice(self, "generator", GENERATORS)
        _int(self, "gan_epochs", 1)
        _int(self, "gan_batch_size", 1)
        _float(self, "gan_learning_rate", 0.0, low_inclusive=False)
        _float(self, "beta1", 0.0, 1.0)
        _float(self, "beta2", 0.0, 1.0)
        _int(self, "noise_dim", 1)
        _int(self, "filters", 1)
        _int(self, "image_size", 8)
        if self.image_size & (self.image_size - 1):
            raise ValueError(f"reference.image_size must be a power of 2 >= 8, got "
                             f"{self.image_size}")
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
            raise ValueError(f"reference.hidden must be a non-empty sequence of widths, got "
                             f"{hidden!r}")
        _set(self, "hidden", tuple(validation.check_positive_int(f"reference.hidden[{i}]", h)
                                   for i, h in enumerate(hidden)))
        _choice(self, "sample_mode", SAMPLE_MODES)
        if self.threshold is not None:
            _float(self, "threshold", 0.0, 1.0, low_inclusive=False)
        if not isinstance(self.given_sha256, str):
            raise ValueError(f"reference.given_sha256 must be a string, got "
                             f"{self.given_sha256!r}")
        gan = ("size", "generator", "gan_epochs", "gan_batch_size", "gan_learning_rate",
               "beta1", "beta2", "noise_dim", "filters", "image_size", "hidden",
               "sample_mode", "threshold")
        if self.kind == "none":
            _unused(self, gan + ("passes_per_epoch", "given_sha256"))
        elif self.kind == "given":
            _unused(self, gan)
            if len(self.given_sha256) != 64 or any(c not in "0123456789abcdef"
                                                   for c in self.given_sha256):
                raise ValueError(
                    "reference.given_sha256 must be the 64 lowercase hex digits of "
                    "hampjax.training.reference.reference_sha256(x_reference) with "
                    f"reference.kind='given', got {self.given_sha256!r}")
        else:
            _unused(self, ("given_sha256",))
            if self.size < 1:
                raise ValueError(f"reference.size (synthetic rows per model) must be >= 1 with "
                                 f"reference.kind='gan', got {self.size}")
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for field in (("hidden", "threshold") if self.generator == "dcgan"
                          else ("filters", "image_size")):
                if getattr(self, field) != defaults[field]:
                    raise ValueError(
                        f"reference.{field} is not used with reference.generator="
                        f"{self.generator!r}; leave it at its default {defaults[field]!r}, got "
                        f"{getattr(self, field)!r}")
