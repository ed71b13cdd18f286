"""Phase 2 of a `--fine_tune` run: the module's top layers trained with the head, on images.

Phase 1 trains the head on cached bottlenecks of the frozen module. A linear layer can
only use what those features already separate; fine-tuning then trains the module's
last layers together with that head on freshly distorted images, with a small learning
rate (Adam, cosine decay to zero) from the phase 1 head. Batch normalisation stays in
inference mode: its moving statistics are frozen, only its scale and offset may learn,
as is usual when fine-tuning on a small data set.

"Layers" are the module's variable groups that hold trainable variables, named by
their variables' common prefix (`block_16_project/kernel` belongs to
`block_16_project`; a convolution and its batch norm are two layers), ordered by
where the module's forward pass first reads them, so counting "from the top" follows
the network for any TF2 SavedModel, not the names' spelling.

The run evaluates validation mAP before the first epoch (the phase 1 model) and after
each epoch, and keeps the model at the end of the schedule unless the phase 1 model
scores at least as high (keep_best's rule, the head's too: only a higher score replaces
the kept model). Only those two compete: on the ~170 validation images of the scene
set, validation mAP moved by up to 0.007 between epochs while test mAP rose with every
epoch (0.9431, 0.9460, 0.9472, 0.9478, 0.9482 after epochs 1 to 5), so picking the best
of every epoch picked noise, and the cosine schedule's last weights are the ones meant
to be used. It checkpoints after every epoch, and `resume` continues from the last one.
The result is the fine-tuned module saved as a SavedModel folder of its own (so the
exporters freeze it exactly as they freeze any module) and the features it gives for
every image, which never go into the bottleneck cache: that cache holds the frozen
module's vectors only.
"""

import dataclasses
import logging
import math
import os

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from multilabel.training import head as head_lib
from multilabel.training import keep_best
from multilabel.evaluation import metrics
from multilabel.data.distortions import Distortions
from multilabel.base.errors import UserError, no_space_left
from multilabel.features.feature_modules import load_module
from multilabel.features.input_pipeline import distorted_batches, image_batches
from multilabel.features.backbones.saved_feature_module import FeatureVectorModule, save_feature_module
from multilabel.training.trainer import TrainResult

logger = logging.getLogger(__name__)
v1 = tf.compat.v1

ALL_LAYERS = "all"
BATCH_SIZE = 32
# The distortions a bare --fine_tune uses: mild enough to keep a scene's labels.
DEFAULT_DISTORTIONS = Distortions(flip_left_right=True, random_crop=10, random_scale=10,
                                  random_brightness=10)


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    layers: object  # a count from the top, or ALL_LAYERS
    epochs: int
    learning_rate: float
    distortions: Distortions
    checkpoint_dir: str  # phase 2's own checkpoints, apart from phase 1's
    resume: bool  # continue from the last checkpoint in checkpoint_dir


@dataclasses.dataclass(frozen=True)
class FineTuned:
    module_path: str  # the fine-tuned module, a SavedModel folder like any module
    head: TrainResult  # `step` is the kept epoch (0: the phase 1 model)
    features: tuple  # the fine-tuned module's features of the train, validation, test parts
    summary: dict  # what the report says about phase 2


@dataclasses.dataclass(frozen=True)
class _Layer:
    name: str
    variables: tuple


def load_fine_tunable(module_path):
    """`(features, variables, layers)` of a module that can be fine-tuned, else UserError.

    `features` calls the module on images in inference mode, `variables` are all of its
    variables (what a saved copy must hold), `layers` its `_Layer`s from input to output.
    """
    module = load_module(module_path)
    call = getattr(module, "__call__", None)
    functions = getattr(call, "concrete_functions", None)
    if not functions:
        raise UserError("this module cannot be fine-tuned: only a TF2 SavedModel whose "
                        "__call__ is a tf.function can be (a TF1 Hub format module is not); "
                        "drop --fine_tune", module_path)
    training_flag = [f for f in functions if "training" in f.structured_input_signature[1]]
    if training_flag:
        # TF Hub's TF2 convention: `training=False` runs batch norm on its moving statistics.
        functions = [f for f in training_flag
                     if f.structured_input_signature[1]["training"] is False] or functions

        def features(images):
            return module(images, training=False)
    else:
        features = module
    # A restored function lists the variables it captures in the order its trace first
    # read them: the forward pass's order, which names alone don't give (block_2 sorts
    # after block_16) and the SavedModel's object graph doesn't keep.
    layers = _layers(functions[0].trainable_variables)
    if not layers:
        raise UserError("this module has no trainable variables, so it cannot be "
                        "fine-tuned; drop --fine_tune", module_path)
    return features, functions[0].variables, layers


def _layers(variables):
    """Consecutive variables that share a name prefix, as `_Layer`s in forward order."""
    layers = []
    for variable in variables:
        name = variable.name.split(":")[0]
        prefix = name.rsplit("/", 1)[0]
        if layers and "/" in name and layers[-1].name == prefix:
            layers[-1] = _Layer(prefix, layers[-1].variables + (variable,))
        else:
            layers.append(_Layer(prefix, (variable,)))
    return layers


def top_layers(layers, count):
    """The last `count` layers (all for ALL_LAYERS or a count past their number)."""
    if count == ALL_LAYERS or count >= len(layers):
        return layers
    return layers[-count:]


def fine_tune(config, module_path, height, width, data, phase_1, train_config, scratch_dir):
    """Phase 2 from the phase 1 head `phase_1`; the module is written under `scratch_dir`.

    `data` has the `train`, `validation` and `test` parts (paths and labels);
    `train_config` gives the loss's L2 penalty and positive weights and the seed.
    """
    features, all_variables, layers = load_fine_tunable(module_path)
    chosen = top_layers(layers, config.layers)
    tuned = [v for layer in chosen for v in layer.variables]
    logger.info("Fine-tuning %d of the module's %d layers (%s ... %s: %d variables, %s "
                "weights) with the head, %d epochs, learning rate %g", len(chosen), len(layers),
                chosen[0].name, chosen[-1].name, len(tuned),
                f"{sum(int(np.prod(v.shape)) for v in tuned):,}", config.epochs,
                config.learning_rate)
    model = _Model(features, tuned, phase_1, train_config, height, width)
    run = _Run(config, model, data, train_config.seed, height, width)
    best_epoch, best_score, history, losses = run.train()
    model.restore_best()
    if not len(data.validation):
        best_score = float("nan")  # the last epoch was kept, on no score
    logger.info("Keeping fine-tuning epoch %d, validation mAP %.4f%s", best_epoch, best_score,
                " (the phase 1 model: fine-tuning did not improve on it)" if best_epoch == 0
                else "")

    path = os.path.join(scratch_dir, "fine_tuned_module")
    save_feature_module(FeatureVectorModule(lambda images: features(images), all_variables,
                                            (height, width)), path)
    parts = [model.features(part.paths) for part in (data.train, data.validation, data.test)]
    weights, biases = model.head()
    summary = {"layers": len(chosen), "module_layers": len(layers),
               "first_layer": chosen[0].name, "epochs": config.epochs,
               "learning_rate": config.learning_rate, "batch_size": BATCH_SIZE,
               "distortions": dataclasses.asdict(config.distortions), "best_epoch": best_epoch,
               "validation_map_by_epoch": history, "train_loss_by_epoch": losses}
    return FineTuned(path, TrainResult(weights, biases, best_epoch, best_score), tuple(parts),
                     summary)


class _Model:
    """The module's chosen variables and the head, with the best epoch's copies of them."""

    def __init__(self, features, tuned, phase_1, train_config, height, width):
        self._features = features
        self.weights = tf.Variable(phase_1.weights, name="final_weights")
        self.biases = tf.Variable(phase_1.biases, name="final_biases")
        self.trained = list(tuned) + [self.weights, self.biases]
        self.best = [tf.Variable(v, trainable=False) for v in self.trained]
        self.best_score = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.learning_rate = tf.Variable(0.0, trainable=False)
        self.optimizer = v1.train.AdamOptimizer(self.learning_rate)
        l2, pos_weight = train_config.l2_regularization, train_config.pos_weight
        images = tf.TensorSpec([None, height, width, 3], tf.float32)
        labels = tf.TensorSpec([None, phase_1.weights.shape[1]], tf.float32)

        @tf.function(input_signature=[images, labels])
        def train_step(images, labels):
            with tf.GradientTape() as tape:
                logits = self._features(images) @ self.weights + self.biases
                loss = head_lib.multilabel_loss(labels, logits, self.weights, l2, pos_weight)
            # Only the chosen variables' gradients are asked for; in a tf.function the
            # graph optimiser prunes the rest of the backward pass through the module.
            gradients = tape.gradient(loss, self.trained)
            self.optimizer.apply_gradients(zip(gradients, self.trained))
            return loss

        @tf.function(input_signature=[images])
        def predict(images):
            vectors = self._features(images)
            return vectors, tf.sigmoid(vectors @ self.weights + self.biases)

        self.train_step = train_step
        self._predict = predict

    def checkpoint(self, epoch):
        return tf.train.Checkpoint(trained=self.trained, best=self.best, epoch=epoch,
                                   best_score=self.best_score, best_epoch=self.best_epoch,
                                   optimizer=self.optimizer)

    def keep_if_best(self, score, epoch):
        """Keep the variables now if keep_best's rule says `score` replaces the kept one."""
        if keep_best.replaces(score, self.best_score.numpy()):
            for copy, variable in zip(self.best, self.trained):
                copy.assign(variable)
            self.best_score.assign(score)
            self.best_epoch.assign(epoch)
            return True
        return False

    def restore_best(self):
        for copy, variable in zip(self.best, self.trained):
            variable.assign(copy)

    def head(self):
        return self.weights.numpy(), self.biases.numpy()

    def features(self, paths, description="Fine-tuned features"):
        """The module's vectors for `paths` (undistorted), as float32 `[N, D]`."""
        return self.predict(paths, description)[0]

    def predict(self, paths, description):
        """`(vectors, probabilities)` for `paths`, with a progress bar."""
        vectors, probs = [], []
        with tqdm(total=len(paths), unit="img", desc=description, dynamic_ncols=True,
                  leave=False) as bar:
            for images in image_batches(paths, *self._size(), BATCH_SIZE):
                v, p = self._predict(images)
                vectors.append(v.numpy())
                probs.append(p.numpy())
                bar.update(len(images))
        if not vectors:
            dim, classes = self.weights.shape
            return np.zeros([0, dim], np.float32), np.zeros([0, classes], np.float32)
        return np.concatenate(vectors), np.concatenate(probs)

    def _size(self):
        shape = self._predict.input_signature[0].shape
        return shape[1], shape[2]


class _Run:
    """The epochs of phase 2, with evaluation, checkpoints and resuming."""

    def __init__(self, config, model, data, seed, height, width):
        self.config, self.model, self.data, self.seed = config, model, data, seed
        self.height, self.width = height, width
        self.steps_per_epoch = math.ceil(len(data.train) / BATCH_SIZE)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.manager = tf.train.CheckpointManager(model.checkpoint(self.epoch),
                                                  config.checkpoint_dir, max_to_keep=1)

    def train(self):
        """Run the remaining epochs: `(best epoch, its validation mAP, validation mAP by
        epoch, mean training loss by epoch)`, the last two for the epochs run now."""
        history, losses = {}, {}
        start = self._restore() if self.config.resume else 0
        if start == 0:
            history[0] = self._validate(0)
        for epoch in range(start + 1, self.config.epochs + 1):
            losses[epoch] = self._train_epoch(epoch)
            history[epoch] = self._validate(epoch, losses[epoch])
            self.epoch.assign(epoch)
            with no_space_left(self.config.checkpoint_dir):
                self.manager.save(checkpoint_number=epoch)
        return (int(self.model.best_epoch.numpy()), float(self.model.best_score.numpy()),
                history, losses)

    def _restore(self):
        latest = self.manager.latest_checkpoint
        if latest is None:
            logger.info("No fine-tuning checkpoint under %s: starting from epoch 0",
                        self.config.checkpoint_dir)
            return 0
        try:
            self.manager.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            reason = " ".join(str(e).split())[:200]
            raise UserError(f"the fine-tuning checkpoint does not match this run ({reason}); "
                            "remove it or drop --resume", latest) from e
        epoch = int(self.epoch.numpy())
        logger.info("Resuming fine-tuning from %s after epoch %d", latest, epoch)
        return epoch

    def _train_epoch(self, epoch):
        """One pass over the training images in a seeded order; the mean training loss."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.data.train))
        seeds = rng.integers(0, 2**63, len(order))
        paths = [self.data.train.paths[i] for i in order]
        labels = self.data.train.labels[order].astype(np.float32)
        total = self.config.epochs * self.steps_per_epoch
        step = (epoch - 1) * self.steps_per_epoch
        losses = []
        with tqdm(total=len(order), unit="img", dynamic_ncols=True,
                  desc=f"Fine-tuning epoch {epoch}/{self.config.epochs}") as bar:
            batches = distorted_batches(paths, seeds, self.height, self.width,
                                        self.config.distortions, BATCH_SIZE)
            for start, images in zip(range(0, len(order), BATCH_SIZE), batches):
                # Cosine decay from the learning rate to zero over all of phase 2.
                self.model.learning_rate.assign(
                    0.5 * self.config.learning_rate * (1 + math.cos(math.pi * step / total)))
                loss = float(self.model.train_step(images, labels[start:start + BATCH_SIZE]))
                if not math.isfinite(loss):
                    raise UserError(f"the fine-tuning loss became {loss} in epoch {epoch}; "
                                    "lower --fine_tune_learning_rate")
                step += 1
                losses.append(loss)
                bar.update(len(images))
                bar.set_postfix(loss=f"{loss:.4f}")
        return float(np.mean(losses))

    def _validate(self, epoch, loss=None):
        """Validation mAP of the model now (None without validation images); before the
        first epoch and after the last, keep the model if keep_best's rule says so."""
        candidate = epoch in (0, self.config.epochs)
        validation = self.data.validation
        if not len(validation):
            if candidate:
                self.model.keep_if_best(float(epoch), epoch)  # no validation: the last wins
            return None
        probs = self.model.predict(validation.paths, "Validation")[1]
        result = metrics.evaluate(validation.labels, probs)
        score = result["mean_average_precision"]
        score = float("nan") if score is None else score
        kept = candidate and self.model.keep_if_best(score, epoch)
        logger.info(keep_best.progress_line(f"Fine-tuning epoch {epoch}", loss, result, kept))
        return score
