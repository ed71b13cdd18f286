"""What every training loop of the package shares: the head's (trainer.train), the
out-of-fold heads' (trainer.out_of_fold_probs) and fine-tuning's.

- `Optimizer`: Adam or plain gradient descent, on the kernels TF1's `AdamOptimizer` and
  `GradientDescentOptimizer` ran (`ResourceApplyAdam`, `ResourceApplyGradientDescent`),
  so the updates are those of the original retrain.py; its state is in checkpoints.
- `train_step`: one `tf.function` step: the loss, its gradients, one update; `traced`,
  how it and the loops' other small functions are called.
- `finite`: the check that stops training when the loss stops being a number.
- `validation_score`: a validation evaluation's mAP, nan where there is nothing to score.
- `BestCopies`: copies of the variables of the best model so far, by keep_best's rule.
- `Checkpoints`: saving (`tf.train.Checkpoint`, one kept) and resuming, with every way a
  restore can fail turned into one UserError line.
"""

import logging
import math
import os
import time

import tensorflow as tf

from multilabel.base.errors import UserError, no_space_left
from multilabel.training import keep_best

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
# TF1's AdamOptimizer defaults, which the original retrain.py trained with.
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-8


class Optimizer(tf.Module):
    """Adam (`"adam"`) or gradient descent (`"sgd"`) for `variables`.

    Adam keeps, as TF1's AdamOptimizer did, two slots per variable (`m`, `v`) and the
    powers of beta1 and beta2 reached so far, as variables; all of them are created here,
    so a checkpoint restores into them directly. The learning rate is given at each
    update, so it may follow a schedule (fine-tuning's cosine); it is not saved.
    """

    def __init__(self, kind, variables):
        super().__init__(name=f"{kind}_optimizer")
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        if kind == "adam":
            self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
            self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
            self.beta_1_power = tf.Variable(ADAM_BETA_1, trainable=False, dtype=tf.float32)
            self.beta_2_power = tf.Variable(ADAM_BETA_2, trainable=False, dtype=tf.float32)

    def apply(self, gradients, variables, learning_rate):
        """One update of `variables` (those the optimizer was made for, in that order)
        from their `gradients`; a None gradient leaves its variable alone."""
        learning_rate = tf.cast(learning_rate, tf.float32)
        if self.kind == "sgd":
            for gradient, variable in zip(gradients, variables):
                if gradient is not None:
                    tf.raw_ops.ResourceApplyGradientDescent(
                        var=variable.handle, alpha=learning_rate,
                        delta=tf.convert_to_tensor(gradient))
            return
        # As TF1's AdamOptimizer: every variable is updated with the powers before this
        # step, which then advance (automatic control dependencies keep that order).
        beta_1_power, beta_2_power = self.beta_1_power.read_value(), self.beta_2_power.read_value()
        for gradient, variable, m, v in zip(gradients, variables, self.m, self.v):
            if gradient is not None:
                tf.raw_ops.ResourceApplyAdam(
                    var=variable.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power,
                    beta2_power=beta_2_power, lr=learning_rate, beta1=ADAM_BETA_1,
                    beta2=ADAM_BETA_2, epsilon=ADAM_EPSILON,
                    grad=tf.convert_to_tensor(gradient))
        self.beta_1_power.assign(beta_1_power * ADAM_BETA_1)
        self.beta_2_power.assign(beta_2_power * ADAM_BETA_2)


def train_step(loss, variables, optimizer, input_signature):
    """The training step: `step(inputs, labels, learning_rate)` computes
    `loss(inputs, labels)`, updates `variables` by `optimizer` from its gradients and
    returns the loss (before the update), as a `tf.function` traced once for
    `input_signature` (the specs of `inputs` and `labels`)."""
    variables = list(variables)
    signature = [*input_signature, tf.TensorSpec([], tf.float32)]

    def step(inputs, labels, learning_rate):
        with tf.GradientTape() as tape:
            value = loss(inputs, labels)
        optimizer.apply(tape.gradient(value, variables), variables, learning_rate)
        return value

    return traced(step, signature)


def traced(function, input_signature):
    """`function` as a `tf.function` traced once for `input_signature`, whose graph is
    called with the arguments (numpy arrays, numbers) made tensors of the signature's
    types. Calling the graph directly skips the `tf.function`'s own binding of arguments,
    about 1 ms a call: half of a head's step; and run eagerly, op by op, a head's loss
    on a batch takes ten times as long as its graph."""
    # No AutoGraph: these functions branch and loop in Python only (on settings, over
    # variables), and converting them cost a third of a second at the first trace.
    graph = tf.function(function, input_signature=input_signature,
                        autograph=False).get_concrete_function()
    input_signature = list(input_signature)

    def call(*args):
        return graph(*tf.nest.map_structure(
            lambda value, spec: tf.convert_to_tensor(value, spec.dtype), list(args),
            input_signature))

    return call


def finite(loss, where, what="training", flag="--learning_rate"):
    """`loss` as a float, or UserError where it is not a number (nan, inf): "the training
    loss became nan at step 12; lower --learning_rate"."""
    loss = float(loss)
    if not math.isfinite(loss):
        raise UserError(f"the {what} loss became {loss} {where}; lower {flag}")
    return loss


def validation_score(result):
    """The mAP of `result` (metrics.evaluate's measures; None where there is no validation
    data) as a float: nan where there is none, which keep_best's rule reads as "the
    latest wins"."""
    score = None if result is None else result["mean_average_precision"]
    return float("nan") if score is None else float(score)


class BestCopies:
    """Copies of `variables` from the model kept so far (keep_best's rule), with its
    score and step (or epoch). `state` goes into the checkpoint with the rest, so a
    resumed run keeps the same model."""

    def __init__(self, variables):
        self._variables = list(variables)
        self._copies = [tf.Variable(v, trainable=False) for v in self._variables]
        self._score = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.state = {"copies": self._copies, "score": self._score, "step": self._step}

    def offer(self, score, step):
        """Keep the variables as they are now if keep_best's rule says a model scoring
        `score` replaces the kept one; whether it did."""
        if not keep_best.replaces(score, float(self._score.numpy())):
            return False
        for copy, variable in zip(self._copies, self._variables):
            copy.assign(variable)
        self._score.assign(score)
        self._step.assign(step)
        return True

    def restore(self):
        """Put the kept values back into the variables."""
        for copy, variable in zip(self._copies, self._variables):
            variable.assign(copy)

    def kept(self):
        """`(step, score)` of the kept model (step 0 and score -1 before any)."""
        return int(self._step.numpy()), float(self._score.numpy())


# Where the object graph of a `tf.train.Checkpoint` is stored; the name-based
# checkpoints of the TF1 graph that trained the head before have none.
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


class Checkpoints:
    """A training loop's checkpoints: `objects` (trackable values by name) saved as
    `prefix-N` (the last one kept), and resumed from.

    `what` names them in messages ("checkpoint", "fine-tuning checkpoint"). A save less
    than `seconds_apart` after the previous one is skipped, unless it is the loop's last.
    """

    def __init__(self, prefix, what="checkpoint", seconds_apart=0.0, **objects):
        self.prefix, self.what, self.seconds_apart = prefix, what, seconds_apart
        self.folder = os.path.dirname(prefix) or "."
        self._checkpoint = tf.train.Checkpoint(**objects)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, self.folder, max_to_keep=1,
            checkpoint_name=os.path.basename(prefix) or "ckpt")
        self._saved_at = -math.inf

    def save(self, number, last=False):
        """Write checkpoint `prefix-number` (unless the previous one is younger than
        `seconds_apart` and this is not the `last`); whether it did. NoSpaceError on a
        full disk."""
        if not last and time.monotonic() - self._saved_at < self.seconds_apart:
            return False
        with no_space_left(self.prefix):
            os.makedirs(self.folder, exist_ok=True)
            self._manager.save(checkpoint_number=number)
        self._saved_at = time.monotonic()
        return True

    def restore(self):
        """Restore the latest checkpoint into the objects; its path, or None where there
        is none. Every failure is a UserError naming the checkpoint, on one line."""
        latest = self._manager.latest_checkpoint
        if latest is None:
            return None
        try:
            if _OBJECT_GRAPH not in tf.train.load_checkpoint(latest).get_variable_to_shape_map():
                raise UserError(
                    f"the {self.what} was written by an earlier version of retrain.py, whose "
                    "checkpoints can't be resumed; remove it or run without --resume", latest)
            self._checkpoint.restore(latest).assert_consumed()
        except (ValueError, AssertionError, tf.errors.InvalidArgumentError,
                tf.errors.NotFoundError) as e:
            # Variables of other shapes, or other variables: another run's checkpoint.
            raise UserError(f"the {self.what} does not match this run (another module, "
                            "number of classes, --optimizer or --fine_tune_layers?); remove "
                            "it or drop --resume", latest) from e
        except (tf.errors.OpError, IndexError) as e:  # a truncated or garbled file
            raise UserError(f"the {self.what} is damaged ({_reason(e)}); remove it or drop "
                            "--resume", latest) from e
        return latest


def _reason(error):
    """An error's message in one short line: its last line that is not an op's trace."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("[[")]
    return (lines[-1] if lines else type(error).__name__)[:200]
