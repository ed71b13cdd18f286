"""Phase 2 of a `--fine_tune` run: the module's top layers trained with the head.

Phase 1 trains the head on cached bottlenecks of the frozen module. A linear layer can
only use what those features already separate; fine-tuning then trains the module's
last layers together with that head, with a small learning rate (Adam, cosine decay to
zero) from the phase 1 head. Batch normalisation stays in inference mode: its moving
statistics are frozen, only its scale and offset may learn, as is usual when
fine-tuning on a small data set.

"Layers" are the module's variable groups that hold trainable variables, named by
their variables' common prefix (`block_16_project/kernel` belongs to
`block_16_project`; a convolution and its batch norm are two layers), ordered by
where the module's forward pass first reads them, so counting "from the top" follows
the network for any TF2 SavedModel, not the names' spelling. In a module set the
members follow one another in their `--tfhub_module` order: the top layers are the last
member's.

Nothing below the tuned layers changes, so it runs once (module_cut): each image's
tensors at the cut are computed before the first epoch, for the image itself and for
`variants - 1` distorted copies of each training image (the mirror first), and kept in
arrays on disk, memory-mapped; every epoch passes over all of them and runs only the
top. A member of a set with no tuned layer is a frozen feature vector: the phase 1
bottlenecks for the images themselves, its engine for the copies.

The run evaluates validation mAP before the first epoch (the phase 1 model) and after
each epoch, and keeps the model at the end of the schedule unless the phase 1 model
scores at least as high (keep_best's rule, the head's too: only a higher score replaces
the kept model). Only those two compete: on the ~170 validation images of the scene
set, validation mAP moved by up to 0.007 between epochs while test mAP rose with every
epoch, so picking the best of every epoch picked noise, and the cosine schedule's last
weights are the ones meant to be used. It checkpoints after every epoch (in `fine_tune`
beside phase 1's checkpoints), and `resume` continues from the last one. The step, the
optimizer, the checkpoints and the copies of the kept model are the training loop's
(training.loop), as for the head. The result is the fine-tuned module saved as a
SavedModel folder of its own (so the exporters freeze it exactly as they freeze any module) and
the features it gives for every image, which never go into the bottleneck cache: that
cache holds the frozen module's vectors only.
"""

import collections
import dataclasses
import logging
import math
import os

import numpy as np
import tensorflow as tf

from multilabel.base.errors import UserError, no_space_left
from multilabel.base.options import ALL_LAYERS
from multilabel.base.progress import progress
from multilabel.data.distortions import Distortions
from multilabel.evaluation import metrics
from multilabel.features import module_set
from multilabel.features.backbones.saved_feature_module import (FeatureVectorModule,
                                                                 save_feature_module)
from multilabel.features.feature_modules import load_module
from multilabel.features.input_pipeline import distorted_batches, mapped_batches
from multilabel.training import head as head_lib
from multilabel.training import keep_best, loop, module_cut
from multilabel.training.trainer import TrainedHead

logger = logging.getLogger(__name__)

BATCH_SIZE = 32
_PARTS = ("train", "validation", "test")  # the data's parts, in the order features come
# The distortions a bare --fine_tune draws its copies from: mild enough to keep a scene's labels.
DEFAULT_DISTORTIONS = Distortions(flip_left_right=True, random_crop=10, random_scale=10,
                                  random_brightness=10)


def distortions(options):
    """The distortions phase 2's copies are drawn with: those of the flags, or
    DEFAULT_DISTORTIONS where none is on."""
    chosen = Distortions.of(options)
    return chosen if chosen.enabled else DEFAULT_DISTORTIONS


def checkpoint_dir(options):
    """Phase 2's checkpoints: `fine_tune` beside phase 1's (`--checkpoint_path`)."""
    return os.path.join(os.path.dirname(options.checkpoint_path or "") or ".", "fine_tune")


@dataclasses.dataclass(frozen=True)
class FineTuned:
    module_path: str  # the fine-tuned module, a SavedModel folder like any module
    head: TrainedHead  # `step` is the kept epoch (0: the phase 1 model)
    features: tuple  # the fine-tuned module's features of the train, validation, test parts
    summary: dict  # what the report says about phase 2


@dataclasses.dataclass(frozen=True)
class FineTunable:
    features: object  # images -> features, in inference mode: what a saved copy computes
    variables: tuple  # all of the module's variables (what a saved copy must hold)
    layers: list  # its `_Layer`s from input to output, member after member in a set
    parts: tuple  # a `_Part` per member of a set, one for a single module


@dataclasses.dataclass(frozen=True)
class _Layer:
    name: str
    variables: tuple


class _Part(collections.namedtuple("_Part", "call function size")):
    """A module (or a set's member): `call(images)` in inference mode, the concrete
    function it runs (whose graph module_cut cuts) and its image size."""


def load_fine_tunable(module_path):
    """The `FineTunable` module at `module_path` (a module or a saved module set), else
    UserError: a module without a traced `__call__`, or without trainable variables."""
    module = load_module(module_path)
    whole = _part(module, module_path)
    parts = tuple(_part(m, module_path) for m in module_set.saved_members(module))
    # A restored function lists the variables it captures in the order its trace first
    # read them: the forward pass's order, which names alone don't give (block_2 sorts
    # after block_16) and the SavedModel's object graph doesn't keep.
    layers = [layer for part in parts for layer in _layers(part.function.trainable_variables)]
    if not layers:
        raise UserError("this module has no trainable variables, so it cannot be "
                        "fine-tuned; drop --fine_tune", module_path)
    return FineTunable(whole.call, tuple(whole.function.variables), layers, parts)


def _part(module, module_path):
    call = getattr(module, "__call__", None)
    functions = getattr(call, "concrete_functions", None)
    if not functions:
        raise UserError("this module cannot be fine-tuned: only a TF2 SavedModel whose "
                        "__call__ is a tf.function can be (a TF1 Hub format module is not); "
                        "drop --fine_tune", module_path)
    flags = [_training_flag(f) for f in functions]
    if any(flag is not None for flag in flags):
        # TF Hub's TF2 convention: `training=False` runs batch norm on its moving statistics.
        functions = [f for f, flag in zip(functions, flags) if flag is False] or functions

        def call(images):
            return module(images, training=False)
    else:
        call = module
    size = tuple(functions[0].structured_input_signature[0][0].shape[1:3])
    return _Part(call, functions[0], size)


def _training_flag(function):
    """The `training` value a traced function was traced with (by keyword, or as the bool
    after the images), else None."""
    args, kwargs = function.structured_input_signature
    if "training" in kwargs:
        return kwargs["training"]
    return next((a for a in args[1:] if isinstance(a, bool)), None)


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


def fine_tune(options, module, data, features, phase_1, scratch_dir):
    """Phase 2 as `options` (a `TrainOptions`) say, from the phase 1 head `phase_1` (a
    `TrainedHead`); the cut tensors and the fine-tuned module are written under
    `scratch_dir`.

    `module` is the run's module set (module_set.ModuleSet), `data` has the `train`,
    `validation` and `test` parts (paths and labels), `features` their phase 1
    bottlenecks.
    """
    tunable = load_fine_tunable(module.path)
    chosen = top_layers(tunable.layers, options.fine_tune_layers)
    tuned = [v for layer in chosen for v in layer.variables]
    logger.info("Fine-tuning %d of the module's %d layers (%s ... %s: %d variables, %s "
                "weights) with the head, %d epochs of %d versions of each training image, "
                "learning rate %g", len(chosen), len(tunable.layers), chosen[0].name,
                chosen[-1].name, len(tuned), f"{sum(int(np.prod(v.shape)) for v in tuned):,}",
                options.fine_tune_epochs, options.fine_tune_variants,
                options.fine_tune_learning_rate)
    cuts = _cuts(tunable.parts, tuned)
    cached = _CutTensors(options, module, tunable.parts, cuts, scratch_dir)
    cached.fill(data, features)
    model = _Model(cuts, cached.specs, tuned, phase_1, options)
    run = _Run(options, model, cached,
               np.tile(data.train.labels, (options.fine_tune_variants, 1)),
               data.validation.labels)
    history, losses = run.train()
    model.best.restore()
    best_epoch, best_score = model.best.kept()
    logger.info("Keeping fine-tuning epoch %d, validation mAP %.4f%s", best_epoch, best_score,
                " (the phase 1 model: fine-tuning did not improve on it)" if best_epoch == 0
                else "")

    path = os.path.join(scratch_dir, "fine_tuned_module")
    save_feature_module(FeatureVectorModule(lambda images: tunable.features(images),
                                            tunable.variables, (module.height, module.width)),
                        path)
    parts = [model.predict([a[:len(part)] for a in cached.part(name)], "Fine-tuned features")[0]
             for name, part in zip(_PARTS, (data.train, data.validation, data.test))]
    weights, biases = model.head.weights.numpy(), model.head.biases.numpy()
    summary = {"layers": len(chosen), "module_layers": len(tunable.layers),
               "first_layer": chosen[0].name, "epochs": options.fine_tune_epochs,
               "learning_rate": options.fine_tune_learning_rate, "batch_size": BATCH_SIZE,
               "variants": options.fine_tune_variants,
               "cut_shapes": [[list(shape) for shape in shapes] for shapes in cached.shapes],
               "cut_bytes": cached.nbytes,
               "distortions": dataclasses.asdict(cached.distortions), "best_epoch": best_epoch,
               "validation_map_by_epoch": history, "train_loss_by_epoch": losses}
    return FineTuned(path, TrainedHead(weights, biases, best_epoch, best_score), tuple(parts),
                     summary)


def _cuts(parts, tuned):
    """Per part: its `module_cut.Cut` below the tuned layers, or None for a part with none."""
    cuts = []
    for part in parts:
        mine = [v for v in tuned if any(v is w for w in part.function.variables)]
        if not mine:
            cuts.append(None)
            continue
        cut = module_cut.cut_function(part.function, mine)
        if cut is None:
            logger.warning("This module's graph can't be cut below its tuned layers: its "
                           "images are cached instead, and every step runs all of it")
            cut = module_cut.uncut(part.call, part.size)
        cuts.append(cut)
    return cuts


class _CutTensors:
    """The tensors at the cut, for every image: memory-mapped arrays under a folder.

    Rows of the `train` part are variant-major (row `k * n + i` is version k of image
    i); `validation` and `test` hold the images themselves. A frozen member's "tensor"
    is its feature vector: the phase 1 bottleneck, or its engine's for a copy.
    """

    def __init__(self, options, module, parts, cuts, folder):
        self.module, self.parts, self.cuts, self.folder = module, parts, cuts, folder
        self.variants, self.seed = options.fine_tune_variants, options.random_seed
        self.distortions = distortions(options)
        self.shapes = [cut.shapes if cut else ((member.dim,),)
                       for cut, member in zip(cuts, module.members)]
        self.specs = [tf.TensorSpec([None, *shape], tf.float32)
                      for shapes in self.shapes for shape in shapes]
        self._arrays = {}
        self.nbytes = 0

    def part(self, name):
        """`[array per cut tensor]` of the part `name`."""
        return self._arrays[name]

    def fill(self, data, features):
        """Compute every part's cut tensors (the frozen members' from `features`, the
        phase 1 bottlenecks of data's train, validation and test parts)."""
        counts = {"train": len(data.train) * self.variants,
                  "validation": len(data.validation), "test": len(data.test)}
        row_bytes = sum(4 * int(np.prod(shape)) for shapes in self.shapes for shape in shapes)
        self.nbytes = row_bytes * sum(counts.values())
        logger.info("Caching the tensors at the cut (%s a row) for %d rows: %.0f MB under %s",
                    " + ".join("x".join(map(str, shape)) for shapes in self.shapes
                               for shape in shapes), sum(counts.values()), self.nbytes / 1e6,
                    self.folder)
        with no_space_left(self.folder):
            for name, count in counts.items():
                self._arrays[name] = [
                    np.lib.format.open_memmap(os.path.join(self.folder, f"cut_{name}_{k}.npy"),
                                              "w+", np.float32, (count, *spec.shape[1:]))
                    for k, spec in enumerate(self.specs)]
            for name, part, vectors in zip(_PARTS, (data.train, data.validation, data.test),
                                           features):
                versions = self.variants if name == "train" else 1
                for k in range(versions):
                    self._fill_version(name, part.paths, vectors, k)
            for arrays in self._arrays.values():
                for array in arrays:
                    array.flush()

    def _fill_version(self, name, paths, vectors, version):
        """Rows of version `version` of `paths`: the frozen members' from `vectors` (the
        images themselves) or their engines, the others from their bottoms."""
        arrays, first = self._arrays[name], version * len(paths)
        row = first
        with progress(len(paths), f"Cut tensors of the {name} images, version {version + 1}",
                      leave=False) as shown:
            for count, tensors in self._batches(paths, version):
                for array, values in zip(arrays, tensors):
                    if values is not None:
                        array[row:row + count] = values
                row += count
                shown.update(count)
        if version == 0:
            column = 0
            for k, (cut, member) in enumerate(zip(self.cuts, self.module.members)):
                if cut is None:
                    arrays[self._first_array(k)][first:first + len(paths)] = \
                        vectors[:, column:column + member.dim]
                column += member.dim

    def _batches(self, paths, version):
        """Per batch of `paths` in version `version`: `(its size, [a value per cut
        tensor])`, the value None for a frozen member's vector, which version 0 takes from
        the bottlenecks."""
        height, width = self.module.height, self.module.width
        mirror = self.distortions.flip_left_right
        if version == 0 or (version == 1 and mirror):
            def run(images):
                return self._tensors(images[:, :, ::-1] if version else images, version > 0)

            yield from mapped_batches(run, paths, height, width, BATCH_SIZE)
            return
        seeds = np.random.default_rng([self.seed, version]).integers(0, 2**63, len(paths))
        for images in distorted_batches(paths, seeds, height, width, self.distortions,
                                        BATCH_SIZE):
            yield self._tensors(images, True)

    def _tensors(self, images, with_frozen):
        """`(len(images), [a value per cut tensor])` for a batch of images."""
        values = []
        for part, cut, member in zip(self.parts, self.cuts, self.module.members):
            if cut is None:
                values.append(member.engine(np.ascontiguousarray(images)) if with_frozen
                              else None)
            else:
                resized = module_set.resize_for(tf.constant(images), part.size)
                values.extend(t.numpy() for t in cut.bottom(resized))
        return len(images), values

    def _first_array(self, part_index):
        return sum(len(shapes) for shapes in self.shapes[:part_index])


class _Model:
    """The tops of the cut module's parts and the head, trained by the training loop's
    step and Adam, with copies of the kept model's variables (`best`)."""

    def __init__(self, cuts, specs, tuned, phase_1, options):
        self._tops = [(cut.top if cut else tf.identity, len(cut.shapes) if cut else 1)
                      for cut in cuts]
        self.head = head_lib.LinearHead(phase_1.weights, phase_1.biases)
        self.trained = list(tuned) + [self.head.weights, self.head.biases]
        self.best = loop.BestCopies(self.trained)
        self.optimizer = loop.Optimizer("adam", self.trained)
        l2, pos_weight = options.l2_regularization, options.pos_weight

        def loss(tensors, labels):
            return self.head.loss(self._features(tensors), labels, l2, pos_weight)

        labels = tf.TensorSpec([None, phase_1.weights.shape[1]], tf.float32)
        # train_step(tensors, labels, learning_rate): the loss before the update.
        self.train_step = loop.train_step(loss, self.trained, self.optimizer, [specs, labels])

        @tf.function(input_signature=[specs])
        def predict(tensors):
            vectors = self._features(tensors)
            return vectors, tf.sigmoid(self.head.logits(vectors))

        self._predict = predict

    def _features(self, tensors):
        """The module's features from the cut tensors: each part's top, side by side."""
        vectors, start = [], 0
        for top, count in self._tops:
            vectors.append(top(*tensors[start:start + count]))
            start += count
        return tf.concat(vectors, axis=1) if len(vectors) > 1 else vectors[0]

    def predict(self, arrays, description):
        """`(vectors, probabilities)` for the rows of `arrays` (one per cut tensor)."""
        vectors, probs = [], []
        rows = len(arrays[0])
        with progress(rows, description, leave=False) as shown:
            for start in range(0, rows, BATCH_SIZE):
                v, p = self._predict([a[start:start + BATCH_SIZE] for a in arrays])
                vectors.append(v.numpy())
                probs.append(p.numpy())
                shown.update(len(p))
        if not vectors:
            dim, classes = self.head.weights.shape
            return np.zeros([0, dim], np.float32), np.zeros([0, classes], np.float32)
        return np.concatenate(vectors), np.concatenate(probs)


class _Run:
    """The epochs of phase 2, with evaluation, checkpoints and resuming."""

    def __init__(self, options, model, cached, train_labels, validation_labels):
        self.options, self.model, self.cached = options, model, cached
        self.epochs, self.learning_rate = options.fine_tune_epochs, options.fine_tune_learning_rate
        self.train_labels = train_labels.astype(np.float32)
        self.validation_labels = validation_labels
        self.steps_per_epoch = math.ceil(len(train_labels) / BATCH_SIZE)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.folder = checkpoint_dir(options)
        self.checkpoints = loop.Checkpoints(
            os.path.join(self.folder, "ckpt"), "fine-tuning checkpoint", trained=model.trained,
            best=model.best.state, optimizer=model.optimizer, epoch=self.epoch)

    def train(self):
        """Run the remaining epochs: `(validation mAP by epoch, mean training loss by
        epoch)`, for the epochs run now (None for a score without validation images)."""
        history, losses = {}, {}
        start = self._restore() if self.options.resume else 0
        if start == 0:
            history[0] = self._validate(0)
        for epoch in range(start + 1, self.epochs + 1):
            losses[epoch] = self._train_epoch(epoch)
            history[epoch] = self._validate(epoch, losses[epoch])
            self.epoch.assign(epoch)
            self.checkpoints.save(epoch)
        return history, losses

    def _restore(self):
        latest = self.checkpoints.restore()
        if latest is None:
            logger.info("No fine-tuning checkpoint under %s: starting from epoch 0",
                        self.folder)
            return 0
        epoch = int(self.epoch.numpy())
        logger.info("Resuming fine-tuning from %s after epoch %d", latest, epoch)
        return epoch

    def _train_epoch(self, epoch):
        """One pass over every cached version of the training images in a seeded order;
        the mean training loss."""
        seed = self.options.random_seed
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train_labels))
        arrays = self.cached.part("train")
        total = self.epochs * self.steps_per_epoch
        step = (epoch - 1) * self.steps_per_epoch
        losses = []
        with progress(len(order), f"Fine-tuning epoch {epoch}/{self.epochs}") as shown:
            for start in range(0, len(order), BATCH_SIZE):
                rows = np.sort(order[start:start + BATCH_SIZE])  # sorted: mapped pages in order
                # Cosine decay from the learning rate to zero over all of phase 2.
                rate = 0.5 * self.learning_rate * (1 + math.cos(math.pi * step / total))
                loss = loop.finite(
                    self.model.train_step([a[rows] for a in arrays], self.train_labels[rows],
                                          rate),
                    f"in epoch {epoch}", "fine-tuning", "--fine_tune_learning_rate")
                step += 1
                losses.append(loss)
                shown.update(len(rows), loss=f"{loss:.4f}")
        return float(np.mean(losses))

    def _validate(self, epoch, loss=None):
        """Validation mAP of the model now (None without validation images); before the
        first epoch and after the last, keep the model if keep_best's rule says so
        (without validation images, the last)."""
        result = None
        if len(self.validation_labels):
            probs = self.model.predict(self.cached.part("validation"), "Validation")[1]
            result = metrics.evaluate(self.validation_labels, probs)
        kept = epoch in (0, self.epochs) and self.model.best.offer(
            loop.validation_score(result), epoch)
        if result is None:
            return None
        logger.info(keep_best.progress_line(f"Fine-tuning epoch {epoch}", loss, result, kept))
        return loop.validation_score(result)
