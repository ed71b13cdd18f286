"""TensorBoard summaries: the original's scalars and histograms, plus PR curves.

Each run writes into a new sub-folder of `--summaries_dir` (the original wiped the
folder at start, losing earlier runs).

Summaries are a by-product: a failure to write them (a full disk, a folder that went
away) is one warning of ours, and training goes on without them. So event files are
written here, synchronously, as the TFRecord files of `Event` protos they are, rather
than by TensorFlow's `FileWriter`, whose background thread meets such a failure with a
C++ error line, a thread traceback and an exception at some later flush.
"""

import collections
import datetime
import logging
import os
import socket
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.framework.summary_pb2 import HistogramProto, Summary, SummaryMetadata
from tensorflow.core.util.event_pb2 import Event

from multilabel.base.errors import device_of, is_no_space

logger = logging.getLogger(__name__)

Writers = collections.namedtuple("Writers", "train validation folder")

# TensorBoard's pr_curves plugin reads a [6, T] tensor (TP, FP, TN, FN, precision,
# recall at T evenly spaced thresholds) tagged with this metadata. Its content is the
# serialized PrCurvePluginData proto {version: 0, num_thresholds: T}: field 2, varint.
PR_CURVE_THRESHOLDS = 51
_PR_CURVE_METADATA = SummaryMetadata(
    plugin_data=SummaryMetadata.PluginData(
        plugin_name="pr_curves", content=bytes([0x10, PR_CURVE_THRESHOLDS])))

SCALARS = ("mean_average_precision", "label_accuracy", "exact_match", "micro_f1", "macro_f1",
           "label_ranking_average_precision")


def run_folder(summaries_dir):
    """A new, unused sub-folder of `summaries_dir` named by the start time."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = os.path.join(summaries_dir, f"run-{stamp}")
    suffix = 1
    while os.path.exists(folder):
        suffix += 1
        folder = os.path.join(summaries_dir, f"run-{stamp}-{suffix}")
    return folder


class _Writers(Writers):
    def close(self):
        self.train.close()
        self.validation.close()


class _Health:
    """Shared by a run's writers: the first failure warns once and stops them all."""

    def __init__(self, folder):
        self.folder = folder
        self.failed = False

    def run(self, write):
        if self.failed:
            return
        try:
            write()
        except (OSError, tf.errors.OpError) as e:
            self.failed = True
            reason = (f"no space left on {device_of(self.folder)}" if is_no_space(e)
                      else " ".join(str(e).split()))
            logger.warning("Cannot write TensorBoard summaries to %s (%s); training goes on "
                           "without them", self.folder, reason)


class EventWriter:
    """One TensorBoard event file: `add_summary(summary, step)`, `flush()`, `close()`,
    the calls of `FileWriter` that training makes, each written at once."""

    def __init__(self, folder, health):
        self._health, self._file = health, None
        path = os.path.join(folder, f"events.out.tfevents.{int(time.time())}."
                                    f"{socket.gethostname()}")

        def open_file():
            os.makedirs(folder, exist_ok=True)
            self._file = tf.io.TFRecordWriter(path)
        health.run(open_file)
        self._write(Event(file_version="brain.Event:2"))

    def _write(self, event):
        if self._file is not None:
            event.wall_time = time.time()
            self._health.run(lambda: self._file.write(event.SerializeToString()))

    def add_summary(self, summary, step):
        """`summary`: a `Summary` or its serialized bytes (what a summary op gives)."""
        if isinstance(summary, bytes):
            summary = Summary.FromString(summary)
        self._write(Event(step=int(step), summary=summary))

    def flush(self):
        if self._file is not None:
            self._health.run(self._file.flush)

    def close(self):
        if self._file is not None:
            self._health.run(self._file.close)
            self._file = None


def writers(summaries_dir):
    """Train and validation writers in a new run folder, or None without a folder."""
    if not summaries_dir:
        return None
    folder = run_folder(summaries_dir)
    health = _Health(folder)
    return _Writers(EventWriter(os.path.join(folder, "train"), health),
                    EventWriter(os.path.join(folder, "validation"), health), folder)


def write_training(writer, step, loss, weights, biases, probs):
    """The original's training summaries of a step: its batch's loss (`cross_entropy`),
    histograms of the layer's weights and biases and of the batch's probabilities."""
    writer.add_summary(Summary(value=[
        Summary.Value(tag="cross_entropy", simple_value=float(loss)),
        Summary.Value(tag="final_weights", histo=histogram(weights)),
        Summary.Value(tag="final_biases", histo=histogram(biases)),
        Summary.Value(tag="activations", histo=histogram(probs)),
    ]), step)


def _default_bucket_limits():
    """TensorFlow's histogram buckets (tensorflow/core/lib/histogram): +-1e-12 growing by
    10% below 1e20, zero, and the largest double at each end."""
    limits, v = [], 1.0e-12
    while v < 1.0e20:
        limits.append(v)
        v *= 1.1
    limits.append(np.finfo(np.float64).max)
    return np.array([-limit for limit in reversed(limits)] + [0.0] + limits)


_BUCKET_LIMITS = _default_bucket_limits()


def histogram(values):
    """`values` as the `HistogramProto` TensorFlow's histogram summary writes: its
    buckets, each run of empty ones merged into one."""
    values = np.asarray(values, np.float64).ravel()
    counts = np.bincount(np.searchsorted(_BUCKET_LIMITS, values, side="right"),
                         minlength=len(_BUCKET_LIMITS))[:len(_BUCKET_LIMITS)]
    # A bucket is kept if it holds values, or ends a run of empty ones.
    kept = (counts > 0) | np.append(counts[1:] > 0, True)
    largest = np.finfo(np.float64).max  # an empty histogram's min; minus it, its max
    return HistogramProto(
        min=float(values.min(initial=largest)), max=float(values.max(initial=-largest)),
        num=float(len(values)), sum=float(values.sum()), sum_squares=float(values @ values),
        bucket_limit=_BUCKET_LIMITS[kept].tolist(), bucket=counts[kept].astype(float).tolist())


def pr_curve_data(labels, probs, num_thresholds=PR_CURVE_THRESHOLDS):
    """The pr_curves plugin's `[6, T]` table for one class."""
    labels = np.asarray(labels, bool)
    thresholds = np.linspace(0.0, 1.0, num_thresholds)
    predicted = np.asarray(probs)[None, :] >= thresholds[:, None]
    tp = (predicted & labels).sum(1).astype(np.float64)
    fp = (predicted & ~labels).sum(1).astype(np.float64)
    fn = labels.sum() - tp
    tn = (~labels).sum() - fp
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=tp + fn > 0)
    return np.stack([tp, fp, tn, fn, precision, recall]).astype(np.float32)


def write_validation(writer, result, labels, probs, step, class_names=None):
    """Validation scalars and one PR curve per class."""
    values = [Summary.Value(tag=f"validation/{name}", simple_value=float(result[name]))
              for name in SCALARS if name in result]
    for c in range(labels.shape[1]):
        name = class_names[c] if class_names else f"class_{c}"
        values.append(Summary.Value(
            tag=f"pr_curves/{name}", metadata=_PR_CURVE_METADATA,
            tensor=tf.make_tensor_proto(pr_curve_data(labels[:, c], probs[:, c]))))
    writer.add_summary(Summary(value=values), step)
    writer.flush()
