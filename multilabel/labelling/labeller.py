"""Label many images with one model: one load, batches.

The model is a frozen graph run by TensorFlow (`frozen_graph.FrozenGraph`) or the
exported TFLite model run by LiteRT (`litert_model.LiteRTModel`); both give the same
small interface (`height`, `width`, `batch_size`, `path`, and `running()`, a context
in which a function maps a float batch to its probabilities). This module imports
neither runtime, so the LiteRT path never loads TensorFlow.

Each image is prepared by `multilabel.data.images.load_image`, the code retrain.py trains
with, so decoding, resizing and scaling cannot differ from training. A small thread
pool prepares images ahead of the model (Pillow releases the GIL while decoding),
so decoding the next batch overlaps with running the current one. An image that
cannot be decoded becomes a failed `Result` and the others go on.

A graph from elsewhere may loop forever with allowed ops only (a `While` whose
condition never turns false), so one run of the graph may be given a `timeout`. A
bound on loop iterations would mean rewriting each loop's condition, graph by graph;
a deadline covers every way a graph can stall (a loop, a vast `Range` or `Fill`). It
is TensorFlow's own (`RunOptions.timeout_in_ms`, in `FrozenGraph.runner`), which
cancels the run cleanly, the executor's loops included. (A `While` node kept out of the executor's loop by
`_lower_using_switch_merge: false` does not hang but crashes TensorFlow, as recursion
does: not caught here; see docs/faults.md.)
"""

import collections
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from multilabel.base.errors import UserError
from multilabel.data.images import load_image

logger = logging.getLogger(__name__)


class Result(NamedTuple):
    """What became of one image: its probabilities, or the error that stopped it."""

    image: str  # the path as given
    probabilities: np.ndarray | None  # float32 [num_classes] in output order
    error: UserError | None

    @property
    def ok(self):
        return self.error is None


def label_images(model, paths, batch_size=32, input_mean=0.0, input_std=1.0, workers=None,
                 prepare=None, timeout=None):
    """Yield one `Result` per path of `paths`, in order, running `model` in batches.

    `model` is a `FrozenGraph` or a `LiteRTModel` (see the module's docstring). Pixels
    are scaled to [0, 1] as in training, then shifted and divided as
    `(x - input_mean) / input_std` (the defaults leave them unchanged). `prepare(item,
    index)`, when given, makes the [0, 1] pixels of an item that is not a path (an image
    in memory). Only `UserError`s from reading an image become failed results; anything
    else is a bug and propagates. `timeout`: the seconds one run of a graph (a batch) may
    take, None for no limit (see the module docstring).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if model.batch_size is not None:
        batch_size = model.batch_size  # the graph fixes it; a short last batch is padded

    def prepared(numbered):
        index, item = numbered
        pixels = (prepare(item, index) if prepare is not None
                  else load_image(item, model.height, model.width))
        if input_mean != 0.0 or input_std != 1.0:
            pixels = (pixels - np.float32(input_mean)) / np.float32(input_std)
        return pixels

    workers = workers or min(8, os.cpu_count() or 1)
    with model.running(timeout) as run:
        pending = []  # (path, pixels or error) in input order, up to batch_size images
        ready = 0  # how many of them are pixels
        for (_, path), pixels in _prepare_ahead(enumerate(paths), prepared, workers,
                                                ahead=2 * batch_size):
            pending.append((path, pixels))
            ready += isinstance(pixels, np.ndarray)
            if ready == batch_size:
                yield from run_batch(run, model, pending, batch_size)
                pending, ready = [], 0
        if pending:
            yield from run_batch(run, model, pending, batch_size)


def _prepare_ahead(paths, prepare, workers, ahead):
    """Yield `(path, prepare(path) or its UserError)` in order, `ahead` images early.

    The window bounds memory: a folder of thousands of photos never holds more than
    `ahead` decoded images at once.
    """
    paths = iter(paths)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load_image") as pool:
        window = collections.deque()
        for path in paths:
            window.append((path, pool.submit(prepare, path)))
            if len(window) >= ahead:
                yield _outcome(*window.popleft())
        while window:
            yield _outcome(*window.popleft())


def _outcome(path, future):
    try:
        return path, future.result()
    except UserError as e:
        return path, e


def run_batch(run, model, pending, batch_size):
    """One `Result` per `(name, pixels or UserError)` of `pending`, the pixels run at once
    by `run` (a function from a float batch to probabilities, from `model.running()`).

    A graph with a fixed batch size gets the images padded up to `batch_size`. Also
    the inference step of the Beam pipeline (`beam.transforms`).
    """
    images = [p for _, p in pending if isinstance(p, np.ndarray)]
    rows = iter(())
    if images:
        batch = np.stack(images)
        if model.batch_size is not None and len(images) < batch_size:
            padding = np.zeros((batch_size - len(images),) + batch.shape[1:], batch.dtype)
            batch = np.concatenate([batch, padding])
        probabilities = np.asarray(run(batch))
        if probabilities.ndim != 2 or probabilities.shape[0] != len(batch):
            raise UserError(f"output layer {model.output_name!r} gave shape "
                            f"{probabilities.shape} for {len(batch)} images, not one row "
                            "per image", model.path)
        rows = iter(probabilities)
    for path, prepared in pending:
        if isinstance(prepared, np.ndarray):
            yield Result(path, np.asarray(next(rows), np.float32), None)
        else:
            yield Result(path, None, prepared)

