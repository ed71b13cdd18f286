"""Load a frozen GraphDef and find the tensors to feed and fetch.

Only a serialized `GraphDef` protocol buffer is read: no pickles, no checkpoints and
nothing specific to this project, so any frozen image classifier that takes float
images works (retrain.py exports one with input `Placeholder` float32
[None, height, width, 3] in [0, 1] and output `final_result` [None, num_classes]).
Everything that can be wrong with the file or the layer names becomes a `UserError`
naming the graph file, before any image is read; so does an operation outside what an
image classifier needs (`multilabel.labelling.graph_ops`), before the graph can run.
"""

import contextlib
import logging
from typing import NamedTuple

import tensorflow as tf
from google.protobuf.message import DecodeError

from multilabel.base import storage
from multilabel.base.deadline import abandoned, call_with_deadline, too_long
from multilabel.base.errors import UserError, file_error
from multilabel.labelling.graph_ops import check_classifier_ops

logger = logging.getLogger(__name__)

DEFAULT_INPUT_LAYER = "Placeholder"
DEFAULT_OUTPUT_LAYER = "final_result"
# The largest input side a graph may declare unless the caller allows more. The input
# size decides the resize target and the memory of every batch: a graph declaring
# 100000 x 100000 drove a machine into the OOM killer. Image networks take 224 to 600.
MAX_INPUT_SIZE = 4096
_HINTS = 5  # how many candidate layer names an error message lists


def watchdog_seconds(timeout):
    """When the watchdog abandons a run that TensorFlow's own `timeout` did not end:
    half as long again, and 5 s more, for a cancelled run to come back on a busy machine."""
    return None if timeout is None else timeout * 1.5 + 5


class FrozenGraph(NamedTuple):
    """An imported graph with the input it is fed and the output it is asked for."""

    path: str
    graph: tf.Graph
    input: tf.Tensor  # float [batch, height, width, 3]
    output: tf.Tensor  # [batch, num_classes]
    height: int
    width: int
    batch_size: int | None  # None when the input takes any number of images
    num_classes: int | None  # None when the graph leaves the output width open

    @property
    def output_name(self):
        return self.output.op.name

    def runner(self, session, timeout=None):
        """A function from a float batch to probabilities, run in `session` (on `graph`);
        a run longer than `timeout` seconds is stopped (see labeller's docstring)."""
        options = None if timeout is None else tf.compat.v1.RunOptions(
            timeout_in_ms=max(1, round(timeout * 1000)))

        def stuck():
            return too_long("the graph", timeout, self.path)

        def run(batch):
            try:
                # TensorFlow's deadline covers the run, not the set-up before it (thousands
                # of nested function calls instantiated): the watchdog covers both. It
                # comes later, so that a run TensorFlow can cancel is cancelled cleanly.
                return call_with_deadline(
                    lambda: session.run(self.output, {self.input: batch}, options=options),
                    watchdog_seconds(timeout), stuck)
            except tf.errors.DeadlineExceededError as e:
                raise stuck() from e
            except tf.errors.OpError as e:
                # e.g. a graph whose output needs a second input fed: the graph's fault.
                raise UserError(f"running the graph failed: {e.message}", self.path) from e
        return run

    @contextlib.contextmanager
    def running(self, timeout=None):
        """A session on the graph, as a function from a float batch to probabilities."""
        session = tf.compat.v1.Session(graph=self.graph)
        try:
            yield self.runner(session, timeout)
        finally:
            if not abandoned():  # closing waits for a run that may never end
                session.close()


def read_graph_def(path):
    """Parse `path` as a binary `GraphDef`, or raise `UserError` naming it. A local file
    is read through `storage.read_regular` (no FIFO or device, at most 2 GiB)."""
    if not storage.is_remote(path):
        try:
            return _parsed(storage.read_regular(path, storage.MODEL_LIMIT), path)
        except OSError as e:
            raise file_error(e, path, "graph file") from e
    if not tf.io.gfile.exists(path):
        raise UserError("graph file not found", path)
    if tf.io.gfile.isdir(path):
        raise UserError("is a folder, not a frozen graph file", path)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except tf.errors.OpError as e:
        raise UserError(f"cannot read the graph: {e.message}", path) from e
    return _parsed(data, path)


def _parsed(data, path):
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as e:
        raise UserError(f"not a frozen TensorFlow graph (binary GraphDef): {e}", path) from e
    # An empty file parses as an empty GraphDef; so can a few stray bytes.
    if not graph_def.node:
        raise UserError("not a frozen TensorFlow graph: it holds no operations", path)
    return graph_def


def load_frozen_graph(path, input_layer=DEFAULT_INPUT_LAYER, output_layer=DEFAULT_OUTPUT_LAYER,
                      height=None, width=None, allow_ops=(), max_input_size=MAX_INPUT_SIZE):
    """Import the graph at `path` into a fresh `tf.Graph` and find its two layers.

    `input_layer` and `output_layer` are operation names ("final_result") or tensor
    names ("final_result:0"). `height` and `width` are needed only when the graph's
    input leaves them open; when the graph fixes them, a different value is an error,
    since feeding it would fail. A graph holding ops an image classifier does not need
    is refused unless `allow_ops` names each of them, and so is an input side (the
    graph's or the given one) over `max_input_size`.
    """
    path = str(path)
    graph_def = read_graph_def(path)
    check_classifier_ops(graph_def, path, allow_ops)
    model = import_frozen_graph(graph_def, path, input_layer, output_layer, height, width,
                                max_input_size)
    logger.info("Loaded graph %s: input %s %s, output %s %s", path, model.input.name,
                model.input.shape, model.output.name, model.output.shape)
    return model


def import_frozen_graph(graph_def, path, input_layer=DEFAULT_INPUT_LAYER,
                        output_layer=DEFAULT_OUTPUT_LAYER, height=None, width=None,
                        max_input_size=MAX_INPUT_SIZE):
    """`graph_def` imported as `load_frozen_graph` imports a file's, its ops unchecked;
    `path` names it in errors. The export stage runs the graph it is about to write
    through this, as users' runner will run the file."""
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(graph_def, name="")
        except (ValueError, TypeError, tf.errors.OpError) as e:
            # An unknown op, a bad attribute or a dangling input: not a usable graph.
            raise UserError(f"cannot import the graph: {e}", path) from e
    inputs = _find_tensor(graph, input_layer, path, "input", _placeholders(graph))
    output = _find_tensor(graph, output_layer, path, "output", _sinks(graph))
    height, width, batch_size = _input_shape(inputs, height, width, path, max_input_size)
    num_classes = _output_width(output, path)
    return FrozenGraph(path, graph, inputs, output, height, width, batch_size, num_classes)


def _find_tensor(graph, name, path, role, candidates):
    op_name, _, index = name.partition(":")
    try:
        op = graph.get_operation_by_name(op_name)
        return op.outputs[int(index or 0)]
    except (KeyError, ValueError, IndexError):
        hint = ", ".join(candidates[:_HINTS]) or "none"
        raise UserError(f"the graph has no {role} layer {name!r} (candidates: {hint})",
                        path) from None


def _placeholders(graph):
    return [op.name for op in graph.get_operations() if op.type == "Placeholder"]


def _sinks(graph):
    """Names of operations whose outputs nothing consumes: the graph's likely outputs."""
    consumed = {t.op.name for op in graph.get_operations() for t in op.inputs}
    return [op.name for op in graph.get_operations()
            if op.outputs and op.name not in consumed and op.type != "Const"]


def _input_shape(inputs, height, width, path, max_input_size):
    """(height, width, batch size) the input takes, checked against the given size."""
    name = inputs.op.name
    if not inputs.dtype.is_floating:
        raise UserError(f"input layer {name!r} takes {inputs.dtype.name}, not float images",
                        path)
    shape = inputs.shape
    if shape.rank is not None and shape.rank != 4:
        raise UserError(f"input layer {name!r} has shape {shape}, not "
                        "[batch, height, width, 3]", path)
    dims = [None] * 4 if shape.rank is None else shape.as_list()
    if dims[3] not in (None, 3):
        raise UserError(f"input layer {name!r} takes {dims[3]} channels, not 3 (RGB)", path)
    sizes = []
    for what, graph_size, given in (("height", dims[1], height), ("width", dims[2], width)):
        if graph_size is not None and given is not None and graph_size != given:
            raise UserError(f"input layer {name!r} takes images of {what} {graph_size}, "
                            f"not {given}", path)
        size = graph_size if graph_size is not None else given
        if size is None:
            raise UserError(f"input layer {name!r} leaves the image {what} open; "
                            f"give it (label_image.py --input_{what})", path)
        if size > max_input_size:
            raise UserError(f"input layer {name!r} takes images of {what} {size}, more than "
                            f"the {max_input_size} allowed; if the graph really needs it, "
                            "pass --max_input_size", path)
        sizes.append(size)
    return sizes[0], sizes[1], dims[0]


def _output_width(output, path):
    shape = output.shape
    if shape.rank is None:
        return None
    if shape.rank != 2:
        raise UserError(f"output layer {output.op.name!r} has shape {shape}, not "
                        "[batch, num_classes]", path)
    return shape[1]
