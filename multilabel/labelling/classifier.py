"""A trained classifier loaded for labelling: `Classifier.load(model_dir).predict(images)`.

This is what label_image.py runs and what `multilabel.Classifier` is. It reads a run
folder (or a graph and the files beside it), refuses a set of files mixed from two
runs (`run_folder`), and runs the exported TFLite model through LiteRT where the run
left one, without importing TensorFlow; otherwise, or when asked, the frozen graph
through TensorFlow (with the op allow-list of `graph_ops`). Images are prepared by
the training code (`multilabel.data.images`), and label sets follow the thresholds and
the top-margin rule recorded with them.
"""

import dataclasses
import logging
import os
from typing import NamedTuple

import numpy as np
from PIL import Image

from multilabel.base import storage
from multilabel.base.errors import UserError
from multilabel.base.host import cores
from multilabel.data.images import image_in_memory, load_image
from multilabel.data.listfile import read_class_names
from multilabel.evaluation.thresholds import (DEFAULT_THRESHOLD, apply_thresholds, read_rule,
                                              read_thresholds)
from multilabel.labelling import labeller, run_folder

logger = logging.getLogger(__name__)

ENGINES = ("auto", "tflite", "tf")


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How to load and run a classifier; the defaults suit what retrain.py exports."""

    engine: str = "auto"  # auto: the run's TFLite model where there is one, else the graph
    variant: str | None = None  # a quantized TFLite copy (float16, dynamic, int8); None: float32
    labels: str | None = None  # class names file, instead of the run's
    thresholds: str | None = None  # thresholds file, instead of the run's
    threshold: float | None = None  # one threshold for every class, instead of a file
    allow_empty: bool = False  # do not apply the top-margin rule the run recorded
    interpreters: int | None = None  # LiteRT interpreters; None: one per core
    # The frozen graph's layers and input size (the TFLite model fixes its own).
    input_layer: str = "Placeholder"
    output_layer: str = "final_result"
    input_height: int | None = None
    input_width: int | None = None
    allow_ops: tuple = ()
    timeout: float | None = None  # seconds one run of a graph may take (it may loop)
    max_input_size: int = 4096  # the largest input side a model may declare
    input_mean: float = 0.0  # pixels in [0, 1] become (x - mean) / std
    input_std: float = 1.0

    def graph_only(self):
        """Whether an option here applies only to a frozen graph (--allow_ops, which also
        admits a TFLite model's control flow under --engine tflite, counts as one)."""
        return (self.input_layer, self.output_layer, self.input_height, self.input_width,
                self.allow_ops) != ("Placeholder", "final_result", None, None, ())


class Prediction(NamedTuple):
    """One image's outcome: its probabilities by class name, and the predicted names."""

    image: object  # as given: a path, a PIL image or an array
    probabilities: dict  # class name -> probability, in class order
    labels: list  # the predicted class names, in class order


class Explanation(NamedTuple):
    """Where the model looked in one image (`Classifier.explain`)."""

    image: object  # as given
    probabilities: dict  # class name -> probability
    labels: list  # the predicted class names
    maps: dict  # class name -> one [h, w] map per member module: the class's evidence
    # at each position (its mean over positions, summed over members, plus the class's
    # bias, is the logit); draw one with multilabel.report.heatmaps.overlay_map


class Classifier:
    """A loaded classifier: `class_names`, `thresholds`, `never_empty`, `predict` and
    `explain`."""

    def __init__(self, model, class_names, thresholds, never_empty, options=LoadOptions(),
                 graph_path=None):
        self.model = model  # FrozenGraph or LiteRTModel
        self.class_names = tuple(class_names)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.never_empty = never_empty
        self._options = options
        self._graph_path = graph_path  # the frozen graph, which explain reads
        self._explainer = None

    @property
    def engine(self):
        """"tflite" or "tf": what runs the model."""
        return "tf" if hasattr(self.model, "graph") else "tflite"

    @classmethod
    def load(cls, model_dir, **options):
        """The classifier of a run folder (what retrain.py --output_dir wrote); `options`
        are `LoadOptions` fields. Raises UserError naming the file at fault."""
        options = LoadOptions(**options)
        return cls.open(run_folder.model_files(model_dir=str(model_dir),
                                               variant=options.variant), options)

    @classmethod
    def open(cls, files, options=LoadOptions()):
        """The classifier of `files` (`run_folder.ModelFiles`), loaded as `options` say."""
        if options.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {options.engine!r}")
        use_tflite = options.engine == "tflite" or (
            options.engine == "auto" and files.tflite is not None and not options.graph_only())
        if files.variant is not None and not use_tflite:
            raise UserError(f"the {files.variant} copy is a TFLite model: it runs on the "
                            "tflite engine, without the frozen graph's options", files.tflite)
        if use_tflite and files.tflite is None:
            raise UserError("no TFLite model for this graph (retrain.py writes one by default); "
                            "use the frozen graph (--engine tf)", files.graph)
        if not (use_tflite or storage.is_remote(files.graph) or os.path.lexists(files.graph)):
            raise UserError("graph file not found", files.graph)  # before TensorFlow starts
        used = ["tflite" if use_tflite else "graph", "labels", "thresholds", "rule"]
        files.check_set(used)
        model = _load_tflite(files, options) if use_tflite else _load_graph(files, options)
        labels_path = options.labels or files.labels
        class_names = tuple(read_class_names(labels_path))
        if model.num_classes is not None and model.num_classes != len(class_names):
            raise UserError(f"{len(class_names)} class names, but the "
                            f"{'TFLite model' if use_tflite else 'graph'} {model.path} gives "
                            f"{model.num_classes} probabilities per image", labels_path)
        thresholds_path = options.thresholds or files.thresholds
        never_empty = not options.allow_empty and read_rule(thresholds_path)
        return cls(model, class_names,
                   _thresholds(options, thresholds_path, len(class_names)), never_empty, options,
                   files.graph)

    def predicted(self, probabilities):
        """The predicted class names of one row of probabilities."""
        chosen = apply_thresholds(np.asarray(probabilities)[np.newaxis], self.thresholds,
                                  self.never_empty)[0]
        return [name for name, on in zip(self.class_names, chosen) if on]

    def results(self, images, batch_size=32):
        """Yield one `labeller.Result` per image, in order; an image that cannot be read
        is a failed Result and the others go on (label_image.py reports it and goes on)."""
        height, width = self.model.height, self.model.width

        def prepare(item, index):
            if isinstance(item, (str, os.PathLike)):
                return load_image(os.fspath(item), height, width)
            return image_in_memory(item, height, width, f"<image {index}>")

        yield from labeller.label_images(self.model, list(images), batch_size,
                                         self._options.input_mean, self._options.input_std,
                                         prepare=prepare, timeout=self._options.timeout)

    def predict(self, images, batch_size=32):
        """One `Prediction` per image of `images` (paths, PIL images, arrays or the bytes
        of image files; one of them alone is taken as a list of one), in order.

        An image that cannot be read raises its UserError (ImageError) naming it, at the
        first such image: a returned list always holds every image's prediction, in the
        order given, so it can be zipped with the input without checking each entry.
        (`results` keeps going past bad images, as label_image.py does.)
        """
        if isinstance(images, (str, os.PathLike, Image.Image, bytes, bytearray)) or (
                isinstance(images, np.ndarray) and images.ndim in (2, 3)):
            images = [images]
        images = list(images)
        predictions = []
        for item, result in zip(images, self.results(images, batch_size)):
            if not result.ok:
                raise result.error
            probabilities = [float(p) for p in result.probabilities]
            predictions.append(Prediction(item, dict(zip(self.class_names, probabilities)),
                                          self.predicted(result.probabilities)))
        return predictions


    def explain(self, image):
        """The `Explanation` of one image (a path, a PIL image or an array): its
        prediction and each class's activation map (labelling.class_activation).

        Read from the run's frozen graph, with TensorFlow, whichever engine `predict`
        uses: the TFLite model keeps no intermediate tensor. Raises UserError where there
        is no graph, or where its module exposes only pooled features (the reason)."""
        if self._explainer is None:
            if self._graph_path is None:
                raise UserError("no frozen graph to explain with: class activation maps are "
                                "read from the run's output_graph.pb")
            from multilabel.base.quiet_start import start_tensorflow

            start_tensorflow()
            from multilabel.labelling import class_activation
            from multilabel.labelling.frozen_graph import read_graph_def

            self._explainer = class_activation.Explainer(
                read_graph_def(self._graph_path), self._options.output_layer,
                self._options.input_layer)
        height, width = self.model.height, self.model.width
        if isinstance(image, (str, os.PathLike)):
            pixels = load_image(os.fspath(image), height, width)
        else:
            pixels = image_in_memory(image, height, width, "<image>")
        pixels = (pixels - self._options.input_mean) / self._options.input_std
        probs, maps = self._explainer.explain(pixels[np.newaxis].astype(np.float32))
        return Explanation(image, dict(zip(self.class_names, (float(p) for p in probs[0]))),
                           self.predicted(probs[0]),
                           {name: [m[0, :, :, c] for m in maps]
                            for c, name in enumerate(self.class_names)})


def _load_tflite(files, options):
    from multilabel.labelling.litert_model import load_litert_model

    return load_litert_model(files.tflite, options.interpreters or cores(),
                             options.max_input_size, own=files.own_tflite(),
                             allow_ops=options.allow_ops)


def _load_graph(files, options):
    from multilabel.base.quiet_start import start_tensorflow

    start_tensorflow()  # without its C++ start-up lines
    from multilabel.labelling.frozen_graph import load_frozen_graph

    return load_frozen_graph(files.graph, options.input_layer, options.output_layer,
                             options.input_height, options.input_width, options.allow_ops,
                             options.max_input_size)


def _thresholds(options, path, num_classes):
    """Per-class thresholds: `threshold`, else the file, else 0.5 where the run's own
    file is missing (a graph from elsewhere); a file named in `options` must exist."""
    if options.threshold is not None:
        return np.full(num_classes, options.threshold)
    if options.thresholds is None and not os.path.exists(path):
        logger.warning("%s not found: using threshold %s for every class", path,
                       DEFAULT_THRESHOLD)
        return np.full(num_classes, DEFAULT_THRESHOLD)
    return read_thresholds(path, num_classes)
