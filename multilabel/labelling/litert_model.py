"""The exported classifier as a TFLite model, run by LiteRT: labelling without TensorFlow.

retrain.py exports the TFLite model beside the frozen graph, checked to give the graph's
probabilities within `export.stage.TFLITE_TOLERANCE`. Importing TensorFlow alone takes
seconds; LiteRT's import takes a fraction of one, so a user who labels one photo waits
for the model, not for the framework. The model runs through the project's one TFLite
engine (`features.tflite_engine`), one single-thread interpreter per core, a batch spread
over all of them.

A TFLite model holds only TFLite's built-in kernels (LiteRT's default resolver adds no
custom ops), none of which reads or writes files, so it needs no op allow-list.
"""

import contextlib
import logging
from typing import NamedTuple

from multilabel.base import storage
from multilabel.base.errors import UserError, file_error
from multilabel.features.tflite_engine import TFLiteEngine

logger = logging.getLogger(__name__)


class LiteRTModel(NamedTuple):
    """A loaded TFLite classifier: float [N, height, width, 3] in [0, 1] -> [N, classes]."""

    path: str
    engine: TFLiteEngine
    height: int
    width: int
    num_classes: int
    batch_size: None = None  # the engine resizes its input to any batch
    output_name: str = "TFLite output"

    @contextlib.contextmanager
    def running(self, timeout=None):
        """The engine. `timeout` is a frozen graph's (TFLite has no way to stop a run); the
        model is the run's own export, built of a module's layers, with no loop."""
        yield self.engine


def load_litert_model(path, interpreters=1, max_input_size=4096):
    """Load the TFLite classifier at `path` on `interpreters` interpreters (one per core
    for many images; one for a single photo, since each costs its own start-up).

    Raises UserError naming the file when it cannot be read, is not a TFLite model, does
    not map RGB images to one row of probabilities, or takes an input side over
    `max_input_size` (as frozen_graph.MAX_INPUT_SIZE bounds a graph's).
    """
    path = str(path)
    try:
        content = storage.read_regular(path, storage.MODEL_LIMIT)
    except OSError as e:
        raise file_error(e, path, "TFLite model") from e
    try:
        engine = TFLiteEngine(content, interpreters=interpreters, split_batches=True)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"not a usable TFLite model: {' '.join(str(e).split())[:200]}",
                        path) from e
    shape, output = engine.input_shape, engine.output_shape
    if len(shape) != 4 or shape[3] != 3 or len(output) != 2:
        raise UserError(f"takes {list(shape)} and gives {list(output)}, not RGB images "
                        "[N, height, width, 3] to probabilities [N, classes]", path)
    if max(shape[1], shape[2]) > max_input_size:
        raise UserError(f"takes images of {shape[1]} x {shape[2]}, more than the "
                        f"{max_input_size} a side allowed; if it really needs it, pass "
                        "--max_input_size", path)
    logger.info("Loaded TFLite model %s: %d x %d images -> %d classes, %d interpreters",
                path, shape[1], shape[2], output[1], engine.parallelism)
    return LiteRTModel(path, engine, int(shape[1]), int(shape[2]), int(output[1]))
