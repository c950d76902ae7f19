"""Neural-network membership inference attacks: Nasr et al. black-box and Salem et al. top-3.

Both attacks learn a binary classifier on a target (or shadow) model's outputs. MEMBERS ARE THE
POSITIVE CLASS (label 1) and the returned scores are sigmoid outputs, higher = more likely a
member, like every attack in hampjax.

Where the attack-model training data comes from is the caller's choice; the API is the same:

* HAMP threat model: the attacker knows some members of the target's training set and an equal
  number of non-members; pass the TARGET's logits on those (``train_*``) and on a disjoint known
  validation split (``val_*``), then score the evaluation set.
* Shadow models (Shokri et al.): pass a SHADOW model's logits on its own members / non-members,
  then score the target's evaluation set.

Nasr et al. black-box attack (:func:`train_nn_attack`, :func:`nn_attack_scores`), as the HAMP
paper evaluates it (Sec. IV-A and the authors' code):

* inputs: raw logits ``[k]``, one-hot label ``[k]``, per-example cross-entropy loss ``[1]``;
* branches (ReLU after each layer): logits ``k -> 1024 -> 512 -> 64``, label
  ``k -> 128 -> 64``, loss ``1 -> k -> 64``; concatenation ``192 -> 256 -> 128 -> 64 -> 1``,
  sigmoid; weights ``N(0, 0.01^2)`` (std 0.01), biases 0;
* MSE between the sigmoid output and the membership label; Adam, learning rate 5e-4 multiplied
  by 0.1 from epoch 100; 200 epochs; every step sees 128 members and 128 non-members;
* the returned parameters are those of the epoch with the best accuracy (sigmoid >= 0.5 means
  member) on the known validation split (the earliest such epoch on ties).

One epoch is ``ceil(max(M, N) / batch_size)`` steps, ``M`` / ``N`` the numbers of training
members / non-members; each class is reshuffled every epoch and its permutation is repeated
(wrapped) to fill the epoch, so the smaller class is revisited within the epoch.

NOTE on the HAMP authors' code: it labels members 0 and non-members 1 for the NN attack and then
reads the ROC with 1 as the positive class. The NN-attack "TPR at 0.1% FPR" in the HAMP paper
(Table VIII) is therefore really the TNR at 0.1% FNR, and vice versa: swap the two columns when
comparing with this implementation, which labels members 1.

Salem et al. top-3 attack (:func:`train_top3_attack`, :func:`top3_attack_scores`), as in "To
Trust or Not To Trust Prediction Scores" (Sec. 4.1): the input is the three largest
softmax probabilities sorted in descending order; MLP ``3 -> 64 -> 1`` with ReLU; binary
cross-entropy; Adam, learning rate 0.01; batch 16 drawn from the shuffled training set (members
and non-members mixed; each epoch is ``max(1, N // batch_size)`` steps, the remainder of a
shuffle is dropped); early stopping on the epoch-mean training loss in the Keras sense: stop
after ``patience = 15`` epochs without a decrease of more than ``min_delta = 5e-4`` below the
best loss so far; the last weights are kept. Its input is label-free. Models that release
probabilities instead of logits can be attacked by passing ``log(probabilities)``.

Training runs as one jitted XLA program per static configuration (data sizes, number of
epochs, batch size; the learning rate and the other hyperparameters are traced, so changing
them does not recompile): ``lax.scan`` over the steps of an epoch inside ``lax.scan`` (Nasr) or
``lax.while_loop`` (top-3, early stopping) over epochs. The optimizer updates one flattened
parameter vector, which compiles several times faster on CPU than one update per array.
Randomness (initialization and shuffling) comes only from the explicit ``key``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from hampjax import scores as _scores
from hampjax import validation

__all__ = [
    "NasrAttackModel",
    "Top3AttackModel",
    "NNAttack",
    "Top3Attack",
    "nasr_features",
    "top3_features",
    "train_nn_attack",
    "nn_attack_scores",
    "train_top3_attack",
    "top3_attack_scores",
]

_SCORE_CHUNK = 8192  # examples per jitted forward pass when scoring (bounds memory)


# --------------------------------------------------------------------------------------------
# Models and features.
# --------------------------------------------------------------------------------------------


class NasrAttackModel(nn.Module):
    """Nasr et al. black-box attack model (three branches, concatenated, sigmoid output).

    Attributes:
      num_classes: ``k``, the number of classes of the attacked model.
      init_std: standard deviation of the normal weight initializer (biases are 0).

    Call with ``logits [B, k]``, ``onehot [B, k]``, ``loss [B, 1]``; returns the pre-sigmoid
    output ``[B]`` (apply ``jax.nn.sigmoid`` for the membership probability).
    """

    num_classes: int
    init_std: float = 0.01

    def _dense(self, features: int, name: str) -> nn.Dense:
        return nn.Dense(
            features,
            kernel_init=nn.initializers.normal(stddev=self.init_std),
            bias_init=nn.initializers.zeros,
            name=name,
        )

    @nn.compact
    def __call__(self, logits: jax.Array, onehot: jax.Array, loss: jax.Array) -> jax.Array:
        h_logits = logits
        for i, width in enumerate((1024, 512, 64)):
            h_logits = nn.relu(self._dense(width, f"logits_{i}")(h_logits))
        h_label = onehot
        for i, width in enumerate((128, 64)):
            h_label = nn.relu(self._dense(width, f"label_{i}")(h_label))
        h_loss = loss
        for i, width in enumerate((self.num_classes, 64)):
            h_loss = nn.relu(self._dense(width, f"loss_{i}")(h_loss))
        h = jnp.concatenate([h_logits, h_label, h_loss], axis=-1)  # [B, 192]
        for i, width in enumerate((256, 128, 64)):
            h = nn.relu(self._dense(width, f"combine_{i}")(h))
        return self._dense(1, "output")(h)[..., 0]


class Top3AttackModel(nn.Module):
    """Salem et al. top-3 attack model: ``3 -> 64 -> 1`` with ReLU.

    Call with the sorted top-3 probabilities ``[B, 3]``; returns the pre-sigmoid output ``[B]``.
    Default (LeCun normal) initialization.
    """

    hidden: int = 64

    @nn.compact
    def __call__(self, top3: jax.Array) -> jax.Array:
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(top3))
        return nn.Dense(1, name="output")(h)[..., 0]


def nasr_features(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Inputs of the Nasr attack: raw logits, one-hot label and per-example CE loss.

    Args:
      logits: ``[N, k]`` float logits.
      labels: ``[N]`` integer labels in ``[0, k)``.

    Returns:
      ``(logits [N, k], onehot [N, k], loss [N, 1])`` in the dtype of ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> z, oh, loss = nasr_features(jnp.zeros((2, 3)), jnp.array([0, 2]))
      >>> oh.tolist(), round(float(loss[0, 0]), 4)  # ln 3
      ([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], 1.0986)
    """
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    loss = -_scores.true_class_log_prob(logits, labels)[..., None]
    return logits, onehot, loss


def top3_features(logits: jax.Array) -> jax.Array:
    """Input of the top-3 attack: the three largest softmax probabilities, descending.

    Args:
      logits: ``[N, k]`` float logits, ``k >= 3``.

    Returns:
      ``[N, 3]`` probabilities in the dtype of ``logits``, sorted in descending order.

    Example:
      >>> import jax.numpy as jnp
      >>> top = top3_features(jnp.log(jnp.array([[0.1, 0.6, 0.1, 0.2]])))
      >>> [round(float(v), 3) for v in top[0]]
      [0.6, 0.2, 0.1]
    """
    return jax.lax.top_k(jax.nn.softmax(logits, axis=-1), 3)[0]


# --------------------------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------------------------


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params", "best_epoch",
                   "best_val_accuracy", "val_accuracy", "train_loss"], meta_fields=["model"])
@dataclasses.dataclass(frozen=True)
class NNAttack:
    """A trained Nasr attack.

    Attributes:
      params: the attack model's parameters from the best-validation epoch.
      best_epoch: int32 scalar, 0-based epoch whose parameters were kept.
      best_val_accuracy: float32 scalar, validation accuracy of that epoch.
      val_accuracy: ``[epochs]`` float32 validation accuracy after every epoch.
      train_loss: ``[epochs]`` float32 mean training MSE of every epoch.
      model: the :class:`NasrAttackModel` (static).
    """

    params: Any
    best_epoch: jax.Array
    best_val_accuracy: jax.Array
    val_accuracy: jax.Array
    train_loss: jax.Array
    model: NasrAttackModel


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params", "num_epochs",
                   "train_loss"], meta_fields=["model"])
@dataclasses.dataclass(frozen=True)
class Top3Attack:
    """A trained top-3 attack.

    Attributes:
      params: the attack model's parameters after the last epoch run.
      num_epochs: int32 scalar, number of epochs run before early stopping (or the maximum).
      train_loss: ``[max_epochs]`` float32 epoch-mean training BCE; NaN for epochs not run.
      model: the :class:`Top3AttackModel` (static).
    """

    params: Any
    num_epochs: jax.Array
    train_loss: jax.Array
    model: Top3AttackModel


# --------------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------------


def _check_split(prefix: str, logits: Any, labels: Any, is_member: Any) -> None:
    name = f"{prefix}_logits"
    validation.check_ndim(name, logits, 2)
    validation.check_nonempty(name, logits)
    validation.check_floating(name, logits)
    validation.check_finite(name, logits)
    validation.check_num_classes(validation.shape_of(logits)[-1], name=f"{name}.shape[-1]")
    if labels is not None:
        n, k = validation.shape_of(logits)
        validation.check_shape(f"{prefix}_labels", labels, (n,), what=f"{name}.shape[:1]")
        validation.check_labels(labels, k, name=f"{prefix}_labels")
    member = np.asarray(is_member)
    validation.check_binary_labels(member, name=f"{prefix}_is_member")
    validation.check_shape(
        f"{prefix}_is_member", member, validation.shape_of(logits)[:1], what=f"{name}.shape[:1]"
    )


def _check_rate(name: str, value: Any, high: float, *, high_inclusive: bool) -> float:
    if np.ndim(value) != 0 or isinstance(value, bool):
        raise ValueError(f"{name} must be a real scalar, got {value!r}")
    validation.check_in_range(
        name, value, 0.0, high, low_inclusive=False, high_inclusive=high_inclusive
    )
    return float(value)


def _check_eval(attack_name: str, logits: Any, labels: Any, num_classes: int | None) -> None:
    validation.check_ndim("logits", logits, 2)
    validation.check_nonempty("logits", logits)
    validation.check_floating("logits", logits)
    validation.check_finite("logits", logits)
    k = validation.shape_of(logits)[-1]
    if num_classes is not None and k != num_classes:
        raise ValueError(
            f"logits must have a last axis of size num_classes={num_classes} (the {attack_name} "
            f"was trained on {num_classes} classes), got shape {validation.shape_of(logits)}"
        )
    if labels is not None:
        validation.check_logits_labels(logits, labels)


def _member_targets(is_member: Any) -> np.ndarray:
    return (np.asarray(is_member).astype(np.int64) == 1)


# --------------------------------------------------------------------------------------------
# Nasr attack.
# --------------------------------------------------------------------------------------------


def _epoch_indices(key: jax.Array, n: int, total: int) -> jax.Array:
    """A fresh permutation of ``range(n)``, repeated to length ``total``."""
    perm = jax.random.permutation(key, n)
    return jnp.tile(perm, -(-total // n))[:total]


def _adam_step_decay(learning_rate, decay_step, decay_factor):
    """Adam whose learning rate is multiplied by ``decay_factor`` from update ``decay_step``.

    The hyperparameters may be traced values, so changing them does not recompile.
    """

    def schedule(count):
        return -learning_rate * jnp.where(count >= decay_step, decay_factor, 1.0)

    return optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(schedule))


@functools.lru_cache(maxsize=16)
def _nasr_program(model, num_members, num_nonmembers, epochs, batch_size):
    """The jitted Nasr training program for one static configuration (shapes, epochs)."""
    steps = -(-max(num_members, num_nonmembers) // batch_size)
    total = steps * batch_size

    # The optimizer works on one flat parameter vector: one fused Adam update instead of one
    # per parameter array compiles several times faster on CPU.
    def run(key, mem_feats, non_feats, val_feats, val_member, hparams):
        learning_rate, lr_decay_epoch, lr_decay_factor = hparams
        tx = _adam_step_decay(learning_rate, lr_decay_epoch * steps, lr_decay_factor)
        init_key, key = jax.random.split(key)
        dummy = tuple(f[:1] for f in mem_feats)
        params, unravel = ravel_pytree(model.init(init_key, *dummy)["params"])
        opt_state = tx.init(params)

        def loss_fn(params, feats, target):
            out = jax.nn.sigmoid(model.apply({"params": unravel(params)}, *feats))
            return jnp.mean((out - target) ** 2)

        def accuracy(params, feats, member):
            pred = model.apply({"params": unravel(params)}, *feats) >= 0.0  # sigmoid >= 0.5
            return jnp.mean(pred == member)
        target = jnp.concatenate([jnp.ones(batch_size), jnp.zeros(batch_size)])

        def step(carry, idx):
            params, opt_state = carry
            mi, ni = idx
            feats = tuple(
                jnp.concatenate([m[mi], n[ni]], axis=0) for m, n in zip(mem_feats, non_feats)
            )
            loss, grads = jax.value_and_grad(loss_fn)(params, feats, target)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def epoch(carry, epoch_key):
            params, opt_state, best_params, best_acc, best_epoch, ep = carry
            km, kn = jax.random.split(epoch_key)
            mi = _epoch_indices(km, num_members, total).reshape(steps, batch_size)
            ni = _epoch_indices(kn, num_nonmembers, total).reshape(steps, batch_size)
            (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (mi, ni))
            acc = accuracy(params, val_feats, val_member)
            better = acc > best_acc
            best_params = jnp.where(better, params, best_params)
            best_acc = jnp.where(better, acc, best_acc)
            best_epoch = jnp.where(better, ep, best_epoch)
            carry = (params, opt_state, best_params, best_acc, best_epoch, ep + 1)
            return carry, (acc, jnp.mean(losses))

        carry = (params, opt_state, params, jnp.float32(-1.0), jnp.int32(0), jnp.int32(0))
        carry, (accs, losses) = jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
        _, _, best_params, best_acc, best_epoch, _ = carry
        return unravel(best_params), best_epoch, best_acc, accs, losses

    return jax.jit(run)


def train_nn_attack(
    train_logits: Any,
    train_labels: Any,
    train_is_member: Any,
    val_logits: Any,
    val_labels: Any,
    val_is_member: Any,
    *,
    key: jax.Array,
    epochs: int = 200,
    batch_size: int = 128,
    learning_rate: float = 5e-4,
    lr_decay_epoch: int = 100,
    lr_decay_factor: float = 0.1,
) -> NNAttack:
    """Train the Nasr et al. black-box attack model (members = positive class, label 1).

    Training data are the outputs of the target model on known members / non-members (HAMP
    threat model) or of a shadow model on its own members / non-members (Shokri et al.); the
    validation split picks the epoch whose parameters are kept. See the module docstring for
    the architecture and the exact training schedule.

    Args:
      train_logits: ``[N, k]`` finite float raw logits, ``k >= 2``.
      train_labels: ``[N]`` integer class labels in ``[0, k)``.
      train_is_member: ``[N]`` 0/1 (or bool) membership; both classes present.
      val_logits: ``[V, k]`` finite float raw logits of the known validation split.
      val_labels: ``[V]`` integer class labels in ``[0, k)``.
      val_is_member: ``[V]`` 0/1 (or bool) membership; both classes present.
      key: a ``jax.random`` key (initialization and shuffling).
      epochs: number of epochs (paper: 200).
      batch_size: members per step, and also non-members per step (paper: 128 + 128).
      learning_rate: Adam learning rate (paper: 5e-4).
      lr_decay_epoch: epoch from which the learning rate is multiplied by
        ``lr_decay_factor`` (paper: 100; no decay if ``>= epochs``).
      lr_decay_factor: learning-rate multiplier in ``(0, 1]`` (paper: 0.1).

    Returns:
      An :class:`NNAttack` with the best-validation-epoch parameters.

    Raises:
      ValueError: if logits are not 2-D, non-empty, floating and finite with ``k >= 2``, the
        two splits have different ``k``, labels or memberships have the wrong shape, dtype or
        range, a split lacks members or non-members, ``key`` is not a key, or a hyperparameter
        is out of range.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> z = jnp.array([[5.0, 0.0], [4.0, 0.0], [0.0, 0.0], [0.1, 0.0]])
      >>> y, m = jnp.array([0, 0, 0, 0]), jnp.array([1, 1, 0, 0])
      >>> attack = train_nn_attack(z, y, m, z, y, m, key=jax.random.key(0), epochs=2,
      ...                          batch_size=2)
      >>> nn_attack_scores(attack, z, y).shape
      (4,)
    """
    _check_split("train", train_logits, train_labels, train_is_member)
    k = validation.shape_of(train_logits)[-1]
    validation.check_ndim("val_logits", val_logits, 2)
    if validation.shape_of(val_logits)[-1] != k:
        raise ValueError(
            f"val_logits must have a last axis of size num_classes={k} (as train_logits), "
            f"got shape {validation.shape_of(val_logits)}"
        )
    _check_split("val", val_logits, val_labels, val_is_member)
    validation.check_key(key)
    epochs = validation.check_positive_int("epochs", epochs)
    batch_size = validation.check_positive_int("batch_size", batch_size)
    learning_rate = _check_rate("learning_rate", learning_rate, np.inf, high_inclusive=False)
    lr_decay_epoch = validation.check_positive_int("lr_decay_epoch", lr_decay_epoch)
    lr_decay_factor = _check_rate("lr_decay_factor", lr_decay_factor, 1.0, high_inclusive=True)

    member = _member_targets(train_is_member)
    train_logits = jnp.asarray(train_logits, dtype=jnp.float32)
    feats = nasr_features(train_logits, jnp.asarray(train_labels))
    mem_feats = tuple(f[np.flatnonzero(member)] for f in feats)
    non_feats = tuple(f[np.flatnonzero(~member)] for f in feats)
    val_feats = nasr_features(jnp.asarray(val_logits, dtype=jnp.float32), jnp.asarray(val_labels))
    val_member = jnp.asarray(_member_targets(val_is_member))

    model = NasrAttackModel(num_classes=k)
    program = _nasr_program(model, int(member.sum()), int((~member).sum()), epochs, batch_size)
    hparams = (jnp.float32(learning_rate), jnp.int32(lr_decay_epoch), jnp.float32(lr_decay_factor))
    params, best_epoch, best_acc, accs, losses = program(
        key, mem_feats, non_feats, val_feats, val_member, hparams
    )
    return NNAttack(params, best_epoch, best_acc, accs, losses, model)


@functools.partial(jax.jit, static_argnames=("model",))
def _nasr_scores(model, params, logits, labels):
    return jax.nn.sigmoid(model.apply({"params": params}, *nasr_features(logits, labels)))


def _chunked(fn, n: int, *arrays):
    outs = [fn(*(a[i:i + _SCORE_CHUNK] for a in arrays)) for i in range(0, n, _SCORE_CHUNK)]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs)


def nn_attack_scores(attack: NNAttack, logits: Any, labels: Any) -> jax.Array:
    """Membership scores of a trained Nasr attack: sigmoid outputs, higher = member.

    Args:
      attack: from :func:`train_nn_attack`.
      logits: ``[N, k]`` finite float raw logits of the model under attack.
      labels: ``[N]`` integer class labels in ``[0, k)``.

    Returns:
      ``[N]`` float32 in ``[0, 1]``.

    Raises:
      ValueError: if ``attack`` is not an :class:`NNAttack`, ``logits`` is not 2-D, non-empty,
        floating and finite with the attack's ``k`` classes, or ``labels`` is invalid.

    Example: see :func:`train_nn_attack`.
    """
    if not isinstance(attack, NNAttack):
        raise ValueError(f"attack must be an NNAttack from train_nn_attack, got {type(attack)}")
    _check_eval("NN attack", logits, labels, attack.model.num_classes)
    logits = jnp.asarray(logits, dtype=jnp.float32)
    labels = jnp.asarray(labels)
    fn = functools.partial(_nasr_scores, attack.model, attack.params)
    return _chunked(fn, logits.shape[0], logits, labels)


# --------------------------------------------------------------------------------------------
# Top-3 attack.
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _top3_program(model, num_examples, max_epochs, batch_size):
    """The jitted top-3 training program for one static configuration (shapes, epochs)."""
    steps = max(1, num_examples // batch_size)
    total = steps * batch_size

    def run(key, x, y, hparams):
        learning_rate, patience, min_delta = hparams
        tx = optax.adam(learning_rate)
        init_key, key = jax.random.split(key)
        params, unravel = ravel_pytree(model.init(init_key, x[:1])["params"])

        def loss_fn(params, xb, yb):
            out = model.apply({"params": unravel(params)}, xb)
            return jnp.mean(optax.sigmoid_binary_cross_entropy(out, yb))

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        epoch_keys = jax.random.split(key, max_epochs)
        history = jnp.full((max_epochs,), jnp.nan, dtype=jnp.float32)

        def cond(state):
            _, _, ep, _, wait, _ = state
            return (ep < max_epochs) & (wait < patience)

        def body(state):
            params, opt_state, ep, best, wait, history = state
            idx = _epoch_indices(epoch_keys[ep], num_examples, total).reshape(steps, batch_size)
            (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), idx)
            loss = jnp.mean(losses).astype(jnp.float32)
            improved = loss < best - min_delta
            best = jnp.where(improved, loss, best)
            wait = jnp.where(improved, 0, wait + 1)
            return params, opt_state, ep + 1, best, wait, history.at[ep].set(loss)

        state = (params, tx.init(params), jnp.int32(0), jnp.float32(jnp.inf), jnp.int32(0), history)
        params, _, ep, _, _, history = jax.lax.while_loop(cond, body, state)
        return unravel(params), ep, history

    return jax.jit(run)


def train_top3_attack(
    train_logits: Any,
    train_is_member: Any,
    *,
    key: jax.Array,
    max_epochs: int = 200,
    batch_size: int = 16,
    learning_rate: float = 0.01,
    patience: int = 15,
    min_delta: float = 5e-4,
) -> Top3Attack:
    """Train the Salem et al. top-3 attack (members = positive class, label 1).

    The attack sees only the three largest softmax probabilities (no labels). Training data are
    the outputs of a shadow model on its own members / non-members (as in "To Trust or Not To
    Trust"), or of the target on known members / non-members. See the module docstring for the
    model and the early-stopping rule.

    Args:
      train_logits: ``[N, k]`` finite float logits, ``k >= 3`` (or log-probabilities).
      train_is_member: ``[N]`` 0/1 (or bool) membership; both classes present.
      key: a ``jax.random`` key (initialization and shuffling).
      max_epochs: upper bound on the number of epochs (the spec fixes none; default 200).
      batch_size: examples per step (paper: 16).
      learning_rate: Adam learning rate (paper: 0.01).
      patience: epochs without improvement before stopping (paper: 15).
      min_delta: minimal decrease of the training loss that counts as improvement, ``>= 0``
        (paper: 5e-4).

    Returns:
      A :class:`Top3Attack` with the parameters after the last epoch run.

    Raises:
      ValueError: if ``train_logits`` is not 2-D, non-empty, floating and finite with
        ``k >= 3``, ``train_is_member`` is not binary with both classes and shape ``[N]``,
        ``key`` is not a key, or a hyperparameter is out of range.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> z = jnp.array([[5.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]])
      >>> attack = train_top3_attack(z, jnp.array([1, 1, 0, 0]), key=jax.random.key(0),
      ...                            max_epochs=3, batch_size=2)
      >>> top3_attack_scores(attack, z).shape, int(attack.num_epochs)
      ((4,), 3)
    """
    _check_split("train", train_logits, None, train_is_member)
    k = validation.shape_of(train_logits)[-1]
    if k < 3:
        raise ValueError(f"train_logits must have at least 3 classes for the top-3 attack, got {k}")
    validation.check_key(key)
    max_epochs = validation.check_positive_int("max_epochs", max_epochs)
    batch_size = validation.check_positive_int("batch_size", batch_size)
    learning_rate = _check_rate("learning_rate", learning_rate, np.inf, high_inclusive=False)
    patience = validation.check_positive_int("patience", patience)
    if np.ndim(min_delta) != 0 or isinstance(min_delta, bool):
        raise ValueError(f"min_delta must be a real scalar >= 0, got {min_delta!r}")
    validation.check_nonnegative("min_delta", min_delta)

    x = top3_features(jnp.asarray(train_logits, dtype=jnp.float32))
    y = jnp.asarray(_member_targets(train_is_member), dtype=jnp.float32)
    model = Top3AttackModel()
    program = _top3_program(model, int(x.shape[0]), max_epochs, batch_size)
    hparams = (jnp.float32(learning_rate), jnp.int32(patience), jnp.float32(min_delta))
    params, num_epochs, history = program(key, x, y, hparams)
    return Top3Attack(params, num_epochs, history, model)


@functools.partial(jax.jit, static_argnames=("model",))
def _top3_scores(model, params, logits):
    return jax.nn.sigmoid(model.apply({"params": params}, top3_features(logits)))


def top3_attack_scores(attack: Top3Attack, logits: Any) -> jax.Array:
    """Membership scores of a trained top-3 attack: sigmoid outputs, higher = member.

    Args:
      attack: from :func:`train_top3_attack`.
      logits: ``[N, k]`` finite float logits (or log-probabilities), ``k >= 3``.

    Returns:
      ``[N]`` float32 in ``[0, 1]``.

    Raises:
      ValueError: if ``attack`` is not a :class:`Top3Attack` or ``logits`` is not 2-D,
        non-empty, floating and finite with ``k >= 3``.

    Example: see :func:`train_top3_attack`.
    """
    if not isinstance(attack, Top3Attack):
        raise ValueError(f"attack must be a Top3Attack from train_top3_attack, got {type(attack)}")
    _check_eval("top-3 attack", logits, None, None)
    k = validation.shape_of(logits)[-1]
    if k < 3:
        raise ValueError(f"logits must have at least 3 classes for the top-3 attack, got {k}")
    logits = jnp.asarray(logits, dtype=jnp.float32)
    fn = functools.partial(_top3_scores, attack.model, attack.params)
    return _chunked(fn, logits.shape[0], logits)
