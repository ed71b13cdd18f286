"""The exported classifier as a TFLite model, run by LiteRT: labelling without TensorFlow.

retrain.py exports the TFLite model beside the frozen graph, checked to give the graph's
probabilities within `export.stage.TFLITE_TOLERANCE`. Importing TensorFlow alone takes
seconds; LiteRT's import takes a fraction of one, so a user who labels one photo waits
for the model, not for the framework. The model runs through the project's one TFLite
engine (`features.tflite_engine`), one single-thread interpreter per core, a batch spread
over all of them.

A TFLite model holds only TFLite's built-in kernels (LiteRT's default resolver adds no
custom ops), none of which reads or writes files. But a model from elsewhere (one that
no manifest vouches for as the run's own export) can loop: `WHILE` with a condition that
never turns false hung label_image.py for ever. So such a model's operator codes are read
from its FlatBuffer before it is loaded, and control flow (`WHILE`, `IF`, `CALL_ONCE`)
and custom ops are refused unless allowed (`allow_ops`): without them every operator
runs once per call. And every call runs under `base.deadline`, which a `timeout` and
Ctrl-C end whatever the model does (a vast `FILL` included).
"""

import contextlib
import logging
from typing import NamedTuple

from ai_edge_litert import schema_py_generated as tflite_schema

from multilabel.base import storage
from multilabel.base.deadline import call_with_deadline, too_long
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
        """A function from a float batch to probabilities; a call past `timeout` seconds
        (None: no limit) or interrupted by Ctrl-C is abandoned (`base.deadline`)."""
        def run(batch):
            return call_with_deadline(lambda: self._invoke(batch), timeout,
                                      lambda: too_long("the TFLite model", timeout, self.path))
        yield run

    def _invoke(self, batch):
        try:
            return self.engine(batch)
        except (RuntimeError, ValueError, MemoryError) as e:  # a kernel failed (a vast FILL)
            raise UserError(f"running the TFLite model failed: "
                            f"{' '.join(str(e).split())[:300]}", self.path) from e


# Operators that make a TFLite model run for as long as its data says: refused in a
# model from elsewhere unless allowed by name. CUSTOM: no kernel LiteRT ships.
CONTROL_FLOW_OPS = ("WHILE", "IF", "CALL_ONCE", "CUSTOM")


def operators(content):
    """The names of the operators a TFLite model's FlatBuffer declares (every subgraph's)."""
    names = {code: name for name, code in vars(tflite_schema.BuiltinOperator).items()
             if not name.startswith("_")}
    model = tflite_schema.Model.GetRootAs(content, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        found.add(names.get(number, f"builtin operator {number}"))
    return found


def check_operators(content, path, allow_ops=()):
    """Raise UserError naming the control-flow or custom operators of a model from
    elsewhere (CONTROL_FLOW_OPS) that `allow_ops` does not name, before it is loaded."""
    try:
        found = operators(content)
    except Exception as e:  # noqa: BLE001 - FlatBuffers raises anything on bad bytes
        raise UserError(f"not a usable TFLite model: cannot read its operators ({e})",
                        path) from e
    refused = sorted(found & set(CONTROL_FLOW_OPS) - set(allow_ops))
    if refused:
        raise UserError(
            f"the TFLite model holds {', '.join(refused)}, which can run without end; a "
            "classifier retrain.py exports has none, and this one is not the run's own (no "
            "manifest lists it). If you trust it, pass --allow_ops "
            f"{','.join(refused)} (--timeout still bounds each batch)", path)


def load_litert_model(path, interpreters=1, max_input_size=4096, own=False, allow_ops=()):
    """Load the TFLite classifier at `path` on `interpreters` interpreters (one per core
    for many images; one for a single photo, since each costs its own start-up). Unless
    it is the run's `own` export, its operators are checked first (`check_operators`).

    Raises UserError naming the file when it cannot be read, is not a TFLite model, does
    not map RGB images to one row of probabilities, or takes an input side over
    `max_input_size` (as frozen_graph.MAX_INPUT_SIZE bounds a graph's).
    """
    path = str(path)
    try:
        content = storage.read_regular(path, storage.MODEL_LIMIT)
    except OSError as e:
        raise file_error(e, path, "TFLite model") from e
    if not own:
        check_operators(content, path, allow_ops)
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
