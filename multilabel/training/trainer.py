"""Training the new layer on bottlenecks, keeping the step with the best validation mAP.

Batches are drawn at random with a generator seeded by `(seed, step)`: step s sees the
same images whether the run went straight through or resumed from a checkpoint. The
steps, the optimizer, the checkpoints and the keeping of the best step are the training
loop's (training.loop), which the out-of-fold heads and fine-tuning share.
"""

import dataclasses
import logging
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from multilabel.training import head as head_lib
from multilabel.training import feature_scaling, keep_best, loop, summaries
from multilabel.evaluation import metrics, thresholds as thresholds_lib
from multilabel.base.errors import UserError

logger = logging.getLogger(__name__)

THRESHOLD_FOLDS = 5
# A checkpoint takes about 20 ms, ten of the head's steps: written at every evaluation
# (every 10 steps by default), they made phase 1 half as long again. So they are written
# at most once a second, and at the last step; a stopped run loses at most that second,
# and resumed it ends where a straight one does (step s draws the same batch either way).
CHECKPOINT_SECONDS = 1.0


class Evaluation(NamedTuple):
    """One point of the training curve."""

    step: int
    train_loss: float  # mean over the steps since the previous evaluation
    validation_map: float  # nan without validation data


@dataclasses.dataclass(frozen=True)
class TrainedHead:
    """The trained layer, folded to apply to the bottlenecks as they are."""

    weights: np.ndarray
    biases: np.ndarray
    step: int  # the step these weights come from
    validation_map: float  # nan when there was no validation data
    history: tuple = ()  # an Evaluation for each evaluation of this process, in step order


def _batch(rng, count, size):
    if size < 0 or size >= count:
        return np.arange(count)
    return rng.choice(count, size, replace=False)


@dataclasses.dataclass(frozen=True)
class TrainData:
    """What the head trains and is validated on."""

    inputs: Callable  # training indices -> their bottlenecks: cached rows, or distorted images'
    labels: np.ndarray  # [num_train, num_classes]
    validation_x: np.ndarray
    validation_labels: np.ndarray
    class_names: tuple = ()  # name the PR curves in the summaries
    feature_scales: object = None  # feature_scaling's factors for a module set, else None


@dataclasses.dataclass(frozen=True)
class TrainRecords:
    """Where training leaves its traces, and how it picks up after a stop."""

    summaries_dir: str = ""  # TensorBoard summaries; "" for none
    checkpoint_path: str = ""  # "" for no checkpoints
    resume: bool = False  # continue from the checkpoint at checkpoint_path
    on_eval: Callable = None  # on_eval(step, weights, biases) after each evaluation


def train(data, options, records=TrainRecords()):
    """Train the head as `options` (a `TrainOptions`) say; return the `TrainedHead` of
    the step with the best validation mAP.

    Without validation data the last step wins (keep_best's rule). `records.on_eval`
    gets the weights after each evaluation (for intermediate graphs). With feature
    scales the layer trains on scaled bottlenecks (feature_scaling); the weights it
    returns, and those `on_eval` gets, are folded to apply to the bottlenecks as they are.
    """
    train_labels = np.asarray(data.labels, np.float32)
    feature_scales = data.feature_scales
    num_train, num_classes = train_labels.shape
    if num_train == 0:
        raise UserError("the training part is empty")
    dim = data.inputs(np.arange(1)).shape[1]
    has_validation = len(data.validation_labels) > 0
    steps = options.how_many_training_steps

    head = head_lib.LinearHead(*head_lib.initial_layer(dim, num_classes, options.random_seed),
                               feature_scales)
    train_step, optimizer, loss, specs = _trainer(head, options, [None])
    probabilities = loop.traced(lambda x: tf.sigmoid(head.logits(x)), specs[:1])
    best = loop.BestCopies([head.weights, head.biases])
    step_of = tf.Variable(0, dtype=tf.int64, trainable=False)  # the last step, checkpointed
    checkpoints = None
    if records.checkpoint_path:
        checkpoints = loop.Checkpoints(records.checkpoint_path, seconds_apart=CHECKPOINT_SECONDS,
                                       head=head, optimizer=optimizer, best=best.state,
                                       step=step_of)
    start = _resume(checkpoints, step_of, records.checkpoint_path) if records.resume else 0
    writers = summaries.writers(records.summaries_dir)
    batch_loss = loop.traced(loss, specs) if writers else None  # for the summaries
    try:
        history, losses = [], []
        for step in range(start, steps):
            rng = np.random.default_rng([options.random_seed, step])
            indices = _batch(rng, num_train, options.train_batch_size)
            inputs, labels = np.asarray(data.inputs(indices), np.float32), train_labels[indices]
            loss = loop.finite(train_step(inputs, labels, options.learning_rate),
                               f"at step {step + 1}")
            losses.append(loss)
            done = step + 1
            if done % options.eval_step_interval != 0 and done != steps:
                continue
            step_of.assign(done)
            if writers:  # the original's: the batch's loss and outputs after the step
                summaries.write_training(
                    writers.train, done, float(batch_loss(inputs, labels)),
                    head.weights.numpy(), head.biases.numpy(), probabilities(inputs).numpy())
            score = float("nan")
            if has_validation:
                score = _evaluate(probabilities, best, data, options, rng, done,
                                  float(np.mean(losses)), writers)
            else:
                logger.debug("Step %d: train loss %.4f", done, loss)
            history.append(Evaluation(done, float(np.mean(losses)), score))
            losses = []
            if checkpoints:
                checkpoints.save(done, last=done == steps)
            if records.on_eval:
                records.on_eval(done, _folded(head.weights.numpy(), feature_scales),
                                head.biases.numpy())
    finally:
        if writers:
            writers.close()
    if not has_validation or best.kept()[0] == 0:
        best.offer(float("nan"), int(step_of.numpy()))
    best.restore()
    step, score = best.kept()
    if has_validation:
        logger.info("Keeping step %d, best validation mAP %.4f", step, score)
    return TrainedHead(_folded(head.weights.numpy(), feature_scales), head.biases.numpy(), step,
                       score, tuple(history))


def _trainer(head, options, lead):
    """`(training step, optimizer, loss, the specs of the inputs and labels)` of `head` as
    `options` say; `lead`: the inputs' dimensions before `[dim]` (`[None]`, or
    `[heads, None]`)."""
    dim, num_classes = head.weights.shape[-2:]
    variables = [head.weights, head.biases]
    optimizer = loop.Optimizer(options.optimizer, variables)

    # Not a functools.partial: its traced graph (loop.traced) would fail to bind a
    # partial's arguments and take a fallback that prints them, 10 ms a call.
    def loss(inputs, labels):
        return head.loss(inputs, labels, options.l2_regularization, options.pos_weight)

    specs = [tf.TensorSpec([*lead, dim], tf.float32),
             tf.TensorSpec([*lead, num_classes], tf.float32)]
    return loop.train_step(loss, variables, optimizer, specs), optimizer, loss, specs


def _folded(weights, feature_scales):
    if feature_scales is None:
        return weights
    return feature_scaling.fold_into_weights(weights, feature_scales)


def _resume(checkpoints, step_of, checkpoint_path):
    """The first step to run when resuming: the one after the checkpoint's, or 0."""
    latest = checkpoints.restore() if checkpoints else None
    if latest is None:
        logger.info("No checkpoint under %s: starting from step 0", checkpoint_path)
        return 0
    step = int(step_of.numpy())
    logger.info("Resuming from %s at step %d", latest, step)
    return step


def _evaluate(probabilities, best, data, options, rng, step, loss, writers):
    """Score the head (its `probabilities`) on (a batch of) the validation part, keep it if
    it is the best so far, and log the result; its validation mAP."""
    indices = _batch(rng, len(data.validation_labels), options.validation_batch_size)
    y = data.validation_labels[indices]
    probs = probabilities(data.validation_x[indices]).numpy()
    result = metrics.evaluate(y, probs)
    score = loop.validation_score(result)
    kept = best.offer(score, step)
    # Every tenth evaluation and the last reach the log; all of them reach TensorBoard.
    loud = (step % (10 * options.eval_step_interval) == 0
            or step == options.how_many_training_steps)
    logger.log(logging.INFO if loud else logging.DEBUG,
               keep_best.progress_line(f"Step {step}", loss, result, kept))
    if writers:
        summaries.write_validation(writers.validation, result, y, probs, step, data.class_names)
    return score


def out_of_fold_probs(x, y, options, steps, folds=5, feature_scales=None):
    """Probabilities for every row of `x` from heads that never saw that row.

    Rows are dealt into `folds` folds in turn; each fold is predicted by a head trained
    `steps` steps (as `options` say) on the others. Thresholds chosen on these
    predictions rest on every training image instead of the few in the validation part:
    on the scene set, per-class thresholds fitted to ~170 validation images lowered test
    label accuracy from 0.928 to 0.904, while out-of-fold ones kept it at 0.92 and raised
    micro F1.

    The fold heads train side by side, one `[folds, N, D]` step for all, on the same
    step and optimizer as the head. Their batches must have one size, so a fold whose
    training rows are fewer than `options.train_batch_size` (or with a batch size of
    -1) draws as many as the smallest has. `feature_scales` scale the heads' inputs as
    in `train`.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    fold_of = np.arange(len(y)) % folds
    fits = [np.flatnonzero(fold_of != k) for k in range(folds)]
    smallest = min(len(fit) for fit in fits)
    size = (smallest if options.train_batch_size < 0
            else min(options.train_batch_size, smallest))
    head = head_lib.LinearHead(
        *head_lib.initial_layer(x.shape[1], y.shape[1], options.random_seed, heads=folds),
        feature_scales)
    train_step = _trainer(head, options, [folds, None])[0]
    for step in range(steps):
        rng = np.random.default_rng([options.random_seed, step])
        batches = [fit[_batch(rng, len(fit), size)] for fit in fits]
        loop.finite(train_step(np.stack([x[b] for b in batches]),
                               np.stack([y[b] for b in batches]), options.learning_rate),
                    f"at step {step + 1} of the out-of-fold heads")
    weights, biases = head.weights.numpy(), head.biases.numpy()
    probs = np.zeros(y.shape, np.float64)
    for k in range(folds):
        held = fold_of == k
        probs[held] = sigmoid(x[held] @ _folded(weights[k], feature_scales) + biases[k])
    return probs


def out_of_fold_thresholds(x, labels, options, steps, feature_scales=None):
    """`(thresholds, probs)`: per-class thresholds maximising F1 on out-of-fold predictions
    of every row of `x`, and those predictions.

    The run's thresholding step (retraining calls it, and so does the bench that compares
    feature scalings): heads trained `steps` steps as `options` say on THRESHOLD_FOLDS
    folds, then `best_f1_thresholds`. The run also looks for wrong labels in the
    predictions (evaluation.label_issues). With fewer rows than folds there is nothing to
    fit: 0.5 for every class, a warning, and no predictions (None).
    """
    if len(labels) < THRESHOLD_FOLDS:
        logger.warning("Too few images to choose thresholds on: using 0.5 for every class")
        return np.full(labels.shape[1], thresholds_lib.DEFAULT_THRESHOLD), None
    logger.info("Choosing per-class thresholds on %d-fold out-of-fold predictions", THRESHOLD_FOLDS)
    probs = out_of_fold_probs(x, labels, options, steps, THRESHOLD_FOLDS, feature_scales)
    return thresholds_lib.best_f1_thresholds(labels, probs), probs


def sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-logits))
