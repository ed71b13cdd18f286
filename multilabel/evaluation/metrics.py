"""Multi-label evaluation measures, pure numpy.

The original `retrain.py` reported the share of correct 0/1 entries, which looks good for
a model that predicts nothing. Here every measure of the multi-label literature is
reported side by side. All functions take `y_true` (0/1, [N, C]) and `probs` (float in
[0, 1], [N, C]); the measures of a label *set* also take `thresholds` (scalar or [C]),
applied as `probs >= thresholds`, and with `never_empty` the top-margin rule (see
multilabel.evaluation.thresholds).

Definitions, chosen to match scikit-learn wherever it defines the measure, so numbers
can be compared with other work:

- 0/0 in precision, recall and F1 counts as 0 (sklearn's `zero_division=0`). Macro
  averages run over all C classes, so a class never present and never predicted pulls
  the macro average down rather than being skipped.
- Average precision of a class is sklearn's: sum over distinct scores, descending, of
  (R_n - R_{n-1}) * P_n, where all instances with an equal score enter together. A class
  without positives has no AP (NaN, `None` in `evaluate`); mAP is the mean over the
  classes with at least one positive.
- Ranking measures follow Zhang & Zhou (2014), "A review on multi-label learning
  algorithms", as the MIML papers on the scene set report them (Zhou & Zhang, NIPS
  2006): one-error, coverage, ranking loss and *average precision*, which is
  example-based (per image, over its true labels, the share of true labels ranked at
  or above each) and is sklearn's label-ranking average precision, the key
  `label_ranking_average_precision`. It is not `mean_average_precision`, the
  label-based macro mAP (per class, over images, then averaged over classes). Ties are resolved against the model, as sklearn does: a label's rank is
  the number of labels scored at least as high, so constant scores cannot look good.
  An instance with no true label has no ranking to get wrong and counts as perfect in
  all four (one-error 0, coverage 0, ranking loss 0, LRAP 1, as sklearn gives for the
  last three); `evaluate` reports how many there were.
"""

import logging
import math

import numpy as np

from multilabel.evaluation.calibration import expected_calibration_error
from multilabel.evaluation.label_arrays import check_labels_and_probs
from multilabel.evaluation.thresholds import apply_thresholds

logger = logging.getLogger(__name__)


def _check(y_true, probs):
    """Validated arrays with at least one instance and one class (means need them)."""
    y_true, probs = check_labels_and_probs(y_true, probs)
    if y_true.size == 0:
        raise ValueError(f"cannot evaluate an empty set of shape {y_true.shape}")
    return y_true.astype(bool), probs


def _divide(numerator, denominator):
    """Elementwise numerator / denominator with 0/0 (and x/0) as 0: zero_division=0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def hamming_loss(y_true, probs, thresholds=0.5, never_empty=False):
    """Share of the N*C label entries predicted wrongly."""
    y_true, probs = _check(y_true, probs)
    return float(np.mean(apply_thresholds(probs, thresholds, never_empty) != y_true))


def label_accuracy(y_true, probs, thresholds=0.5, never_empty=False):
    """Share of the N*C label entries predicted rightly: 1 - Hamming loss."""
    return 1.0 - hamming_loss(y_true, probs, thresholds, never_empty)


def exact_match_ratio(y_true, probs, thresholds=0.5, never_empty=False):
    """Share of instances whose predicted label set equals the true set (subset accuracy)."""
    y_true, probs = _check(y_true, probs)
    return float(np.mean((apply_thresholds(probs, thresholds, never_empty) == y_true)
                         .all(axis=1)))


def precision_recall_f1(y_true, probs, thresholds=0.5, average=None, never_empty=False):
    """Precision, recall and F1 with 0/0 = 0.

    `average=None` gives three arrays [C]; "macro" the means of those over all classes;
    "micro" the measures of the true/false positive counts summed over classes.
    """
    y_true, probs = _check(y_true, probs)
    predicted = apply_thresholds(probs, thresholds, never_empty)
    tp = (predicted & y_true).sum(axis=0)
    fp = (predicted & ~y_true).sum(axis=0)
    fn = (~predicted & y_true).sum(axis=0)
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    elif average not in (None, "macro"):
        raise ValueError(f"average must be None, 'micro' or 'macro', not {average!r}")
    precision = _divide(tp, tp + fp)
    recall = _divide(tp, tp + fn)
    f1 = _divide(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return precision, recall, f1
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(f1))


def precision_recall_curve(labels, scores):
    """`(precision, recall, thresholds)` of one class, one point per distinct score.

    Point n predicts the instances scored `>= thresholds[n]`; thresholds descend, so
    recall rises. Tied instances enter together. `labels` (0/1) and `scores` are 1-D and
    `labels` has at least one positive (recall needs one).
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    positives = labels.sum()
    if positives == 0:
        raise ValueError("a precision-recall curve needs at least one positive")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    group_ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1)
    tp = np.cumsum(labels[order])[group_ends]
    return tp / (group_ends + 1), tp / positives, sorted_scores[group_ends]


def _average_precision_one(labels, scores):
    """sklearn's AP of one class: sum of (R_n - R_{n-1}) P_n over distinct scores."""
    if labels.sum() == 0:
        return math.nan
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def average_precision(y_true, probs):
    """AP per class [C]; NaN for a class without positives (it has no recall)."""
    y_true, probs = _check(y_true, probs)
    return np.array([_average_precision_one(y_true[:, c], probs[:, c])
                     for c in range(probs.shape[1])])


def mean_average_precision(y_true, probs):
    """Mean AP over the classes with at least one positive; NaN if there are none."""
    ap = average_precision(y_true, probs)
    defined = ap[~np.isnan(ap)]
    return float(np.mean(defined)) if defined.size else math.nan


def _ranks(y_true, probs):
    """Pessimistic ranks [N, C]: how many labels score >= this one (itself included),
    and how many of those are true labels."""
    rank = np.empty(probs.shape, dtype=np.int64)
    rank_true = np.empty(probs.shape, dtype=np.int64)
    # Loop over labels, vectorised over instances: memory stays N*C for any C.
    for j in range(probs.shape[1]):
        at_least = probs >= probs[:, j:j + 1]
        rank[:, j] = at_least.sum(axis=1)
        rank_true[:, j] = (at_least & y_true).sum(axis=1)
    return rank, rank_true


def one_error(y_true, probs):
    """Share of instances whose top-scored label is not a true label.

    With a tie at the top it is an error unless every label in the tie is true.
    """
    return float(np.mean(ranking_per_instance(y_true, probs)["one_error"]))


def coverage(y_true, probs):
    """Zhang & Zhou's coverage: mean over instances of (rank of the lowest-ranked true
    label) - 1, in labels, not normalised by C; 0 is best, C - 1 worst.

    sklearn's `coverage_error` is this plus 1 (for instances with a true label).
    """
    return float(np.mean(ranking_per_instance(y_true, probs)["coverage"]))


def ranking_loss(y_true, probs):
    """Mean over instances of the share of (true, false) label pairs where the false
    label scores at least as high as the true one. 0 when either set is empty."""
    return float(np.mean(ranking_per_instance(y_true, probs)["ranking_loss"]))


def label_ranking_average_precision(y_true, probs):
    """Example-based average precision (the MIML papers' "average precision"; sklearn's
    LRAP): mean over instances, and over each true label j, of the share of true labels
    among the labels scored >= j. An instance without true labels gives 1."""
    return float(np.mean(ranking_per_instance(y_true, probs)["label_ranking_average_precision"]))


def ranking_per_instance(y_true, probs):
    """The four ranking measures of each instance, {name: [N]}: the measures are their
    means (and a bootstrap's resamples, evaluation.bootstrap, weighted means of them)."""
    y_true, probs = _check(y_true, probs)
    rank, rank_true = _ranks(y_true, probs)
    top = probs == probs.max(axis=1, keepdims=True)
    has_true = y_true.any(axis=1)
    # No true label: one-error counts it as perfect.
    wrong_top = (top & ~y_true).any(axis=1) & has_true
    deepest = np.where(y_true, rank, 0).max(axis=1)
    # For a true label, rank - rank_true counts the false labels scored >= it.
    misordered = np.where(y_true, rank - rank_true, 0).sum(axis=1)
    n_true = y_true.sum(axis=1)
    pairs = n_true * (probs.shape[1] - n_true)
    per_label = np.where(y_true, rank_true / rank, 0.0).sum(axis=1)
    return {
        "one_error": wrong_top.astype(np.float64),
        "coverage": np.maximum(deepest - 1, 0).astype(np.float64),
        "ranking_loss": _divide(misordered, pairs),
        "label_ranking_average_precision": np.where(n_true > 0,
                                                    per_label / np.maximum(n_true, 1), 1.0),
    }


def _plain(value):
    """A JSON-friendly float: NaN becomes None."""
    value = float(value)
    return None if math.isnan(value) else value


def evaluate(y_true, probs, thresholds=0.5, never_empty=False):
    """All measures in one dict of plain floats, ints, lists and None (JSON-serialisable).

    Per-class lists are in class order; `average_precision` holds None for a class without
    positives, `mean_average_precision` is None if no class has one. The label-set
    measures apply the top-margin rule when `never_empty` (recorded as `never_empty`);
    `predicted_without_labels` counts the images predicted with an empty set.
    """
    y_true, probs = _check(y_true, probs)
    num_classes = probs.shape[1]
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (num_classes,))
    rule = {"never_empty": bool(never_empty)}
    precision, recall, f1 = precision_recall_f1(y_true, probs, thresholds, **rule)
    micro = precision_recall_f1(y_true, probs, thresholds, average="micro", **rule)
    macro = precision_recall_f1(y_true, probs, thresholds, average="macro", **rule)
    hamming = hamming_loss(y_true, probs, thresholds, **rule)
    predicted = apply_thresholds(probs, thresholds, never_empty)
    pooled_ece, class_ece = expected_calibration_error(y_true, probs)
    return {
        "num_instances": int(probs.shape[0]),
        "num_classes": int(num_classes),
        "instances_without_labels": int((~y_true.any(axis=1)).sum()),
        "thresholds": [float(t) for t in thresholds],
        "never_empty": bool(never_empty),
        "predicted_without_labels": int((~predicted.any(axis=1)).sum()),
        "label_accuracy": 1.0 - hamming,
        "hamming_loss": hamming,
        "exact_match": exact_match_ratio(y_true, probs, thresholds, never_empty),
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
        "macro_precision": macro[0],
        "macro_recall": macro[1],
        "macro_f1": macro[2],
        "mean_average_precision": _plain(mean_average_precision(y_true, probs)),
        "one_error": one_error(y_true, probs),
        "coverage": coverage(y_true, probs),
        "ranking_loss": ranking_loss(y_true, probs),
        "label_ranking_average_precision": label_ranking_average_precision(y_true, probs),
        "average_precision": [_plain(ap) for ap in average_precision(y_true, probs)],
        "precision": [float(p) for p in precision],
        "recall": [float(r) for r in recall],
        "f1": [float(f) for f in f1],
        "support": [int(s) for s in y_true.sum(axis=0)],
        "expected_calibration_error": pooled_ece,
        "calibration_error": [float(e) for e in class_ece],
    }


def _cell(value):
    return "-" if value is None else f"{value:.4f}"


def _with_interval(metrics, key, c=None):
    """A measure's cell, with its 95 % interval `[low, high]` where `metrics` holds one
    (evaluation.bootstrap); per class: class `c`'s."""
    value = metrics[key] if c is None else metrics[key][c]
    interval = metrics.get("intervals", {}).get(key)
    if interval is not None and c is not None:
        interval = interval[c]
    if "intervals" not in metrics:
        return _cell(value)
    if interval is None:
        return f"{_cell(value)} {'':15}" if c is not None else _cell(value)
    return f"{_cell(value)} [{interval[0]:.3f}, {interval[1]:.3f}]"


def format_report(metrics, class_names):
    """A compact table for logs: summary measures, then one row per class; each measure
    with its 95 % interval where `metrics` holds them (`intervals`)."""
    if len(class_names) != metrics["num_classes"]:
        raise ValueError(f"{len(class_names)} class names for {metrics['num_classes']} classes")
    m = metrics

    def cell(key, c=None):
        return _with_interval(m, key, c)

    lines = [
        f"instances {m['num_instances']}  classes {m['num_classes']}"
        f"  without any true label {m['instances_without_labels']}"
        f"  predicted without any {m.get('predicted_without_labels', '-')}"
        + ("  (top-margin rule)" if m.get("never_empty") else ""),
        f"label accuracy {cell('label_accuracy')}  hamming loss {cell('hamming_loss')}"
        f"  exact match {cell('exact_match')}",
        f"micro P/R/F1 {cell('micro_precision')} {cell('micro_recall')}"
        f" {cell('micro_f1')}",
        f"macro P/R/F1 {cell('macro_precision')} {cell('macro_recall')} {cell('macro_f1')}",
        f"mAP {cell('mean_average_precision')}  one-error {cell('one_error')}"
        f"  coverage {cell('coverage')}",
        f"ranking loss {cell('ranking_loss')}"
        f"  example-based AP {cell('label_ranking_average_precision')}"
        + (f"  calibration error (ECE) {cell('expected_calibration_error')}"
           if "expected_calibration_error" in m else ""),
    ]
    width = max([len("class")] + [len(name) for name in class_names])
    wide = "intervals" in m
    columns = [f"{name:>{24 if wide else 6}}" for name in ("AP", "P", "R", "F1")]
    lines.append(f"{'class':<{width}}  threshold  {'  '.join(columns)}  support")
    for c, name in enumerate(class_names):
        cells = "  ".join(f"{cell(key, c):>{24 if wide else 6}}"
                          for key in ("average_precision", "precision", "recall", "f1"))
        lines.append(f"{name:<{width}}  {m['thresholds'][c]:9.4f}  {cells}  {m['support'][c]:7d}")
    return "\n".join(lines)
