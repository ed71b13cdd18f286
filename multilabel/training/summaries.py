"""TensorBoard summaries: the original's scalars and histograms, plus PR curves.

Each run writes into a new sub-folder of `--summaries_dir` (the original wiped the
folder at start, losing earlier runs).
"""

import collections
import datetime
import os

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

Writers = collections.namedtuple("Writers", "train validation folder")

# TensorBoard's pr_curves plugin reads a [6, T] tensor (TP, FP, TN, FN, precision,
# recall at T evenly spaced thresholds) tagged with this metadata. Its content is the
# serialized PrCurvePluginData proto {version: 0, num_thresholds: T}: field 2, varint.
PR_CURVE_THRESHOLDS = 51
_PR_CURVE_METADATA = v1.SummaryMetadata(
    plugin_data=v1.SummaryMetadata.PluginData(
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


def writers(summaries_dir, graph):
    """Train and validation writers in a new run folder, or None without a folder."""
    if not summaries_dir:
        return None
    folder = run_folder(summaries_dir)
    return _Writers(v1.summary.FileWriter(os.path.join(folder, "train"), graph),
                    v1.summary.FileWriter(os.path.join(folder, "validation")), folder)


def training_summaries(head):
    """One op giving the original's training summaries for a step's feed."""
    return v1.summary.merge([
        v1.summary.scalar("cross_entropy", head.loss),
        v1.summary.histogram("final_weights", head.weights),
        v1.summary.histogram("final_biases", head.biases),
        v1.summary.histogram("activations", head.probs),
    ])


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
    values = [v1.Summary.Value(tag=f"validation/{name}", simple_value=float(result[name]))
              for name in SCALARS if name in result]
    for c in range(labels.shape[1]):
        name = class_names[c] if class_names else f"class_{c}"
        values.append(v1.Summary.Value(
            tag=f"pr_curves/{name}", metadata=_PR_CURVE_METADATA,
            tensor=tf.make_tensor_proto(pr_curve_data(labels[:, c], probs[:, c]))))
    writer.add_summary(v1.Summary(value=values), step)
    writer.flush()
