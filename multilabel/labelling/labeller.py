"""Label many images with one frozen graph: one load, one session, batches.

Each image is prepared by `multilabel.data.images.load_image`, the code retrain.py trains
with, so decoding, resizing and scaling cannot differ from training. A small thread
pool prepares images ahead of the session (Pillow releases the GIL while decoding),
so decoding the next batch overlaps with running the current one. An image that
cannot be decoded becomes a failed `Result` and the others go on.

A graph from elsewhere may loop forever with allowed ops only (a `While` whose
condition never turns false), so one run of the graph may be given a `timeout`. A
bound on loop iterations would mean rewriting each loop's condition, graph by graph;
a deadline covers every way a graph can stall (a loop, a vast `Range` or `Fill`). It
is TensorFlow's own (`RunOptions.timeout_in_ms`), which cancels the run cleanly, the
executor's loops included. (A `While` node kept out of the executor's loop by
`_lower_using_switch_merge: false` does not hang but crashes TensorFlow, as recursion
does: not caught here; see docs/faults.md.)
"""

import collections
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import tensorflow as tf

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
                 timeout=None):
    """Yield one `Result` per path of `paths`, in order, running `model` in batches.

    `model` is a `multilabel.labelling.frozen_graph.FrozenGraph`. Pixels are scaled to [0, 1] as
    in training, then shifted and divided as `(x - input_mean) / input_std` (the
    defaults leave them unchanged). Only `UserError`s from reading an image become
    failed results; anything else is a bug and propagates. `timeout`: the seconds one
    run of the graph (a batch) may take, None for no limit (see the module docstring).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if model.batch_size is not None:
        batch_size = model.batch_size  # the graph fixes it; a short last batch is padded

    def prepare(path):
        pixels = load_image(path, model.height, model.width)
        if input_mean != 0.0 or input_std != 1.0:
            pixels = (pixels - np.float32(input_mean)) / np.float32(input_std)
        return pixels

    workers = workers or min(8, os.cpu_count() or 1)
    with tf.compat.v1.Session(graph=model.graph) as session:
        pending = []  # (path, pixels or error) in input order, up to batch_size images
        ready = 0  # how many of them are pixels
        for path, prepared in _prepare_ahead(paths, prepare, workers, ahead=2 * batch_size):
            pending.append((path, prepared))
            ready += isinstance(prepared, np.ndarray)
            if ready == batch_size:
                yield from run_batch(session, model, pending, batch_size, timeout)
                pending, ready = [], 0
        if pending:
            yield from run_batch(session, model, pending, batch_size, timeout)


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


def run_batch(session, model, pending, batch_size, timeout=None):
    """One `Result` per `(name, pixels or UserError)` of `pending`, the pixels run at once.

    A graph with a fixed batch size gets the images padded up to `batch_size`. Also
    the inference step of the Beam pipeline (beam_transforms).
    """
    images = [p for _, p in pending if isinstance(p, np.ndarray)]
    rows = iter(())
    if images:
        batch = np.stack(images)
        if model.batch_size is not None and len(images) < batch_size:
            padding = np.zeros((batch_size - len(images),) + batch.shape[1:], batch.dtype)
            batch = np.concatenate([batch, padding])
        try:
            probabilities = session.run(model.output, {model.input: batch},
                                        options=_run_options(timeout))
        except tf.errors.DeadlineExceededError as e:
            raise UserError(_too_long(timeout), model.path) from e
        except tf.errors.OpError as e:
            # e.g. a graph whose output needs a second input fed: the graph's fault.
            raise UserError(f"running the graph failed: {e.message}", model.path) from e
        if probabilities.ndim != 2 or probabilities.shape[0] != len(batch):
            raise UserError(f"output layer {model.output.op.name!r} gave shape "
                            f"{probabilities.shape} for {len(batch)} images, not one row "
                            "per image", model.path)
        rows = iter(probabilities)
    for path, prepared in pending:
        if isinstance(prepared, np.ndarray):
            yield Result(path, np.asarray(next(rows), np.float32), None)
        else:
            yield Result(path, None, prepared)


def _run_options(timeout):
    if timeout is None:
        return None
    return tf.compat.v1.RunOptions(timeout_in_ms=max(1, round(timeout * 1000)))


def _too_long(timeout):
    return (f"running the graph on one batch took longer than the {timeout:g} s allowed "
            "(--timeout); does it loop forever? Stopped")
