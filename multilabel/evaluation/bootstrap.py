"""95 % intervals of the test measures, by a bootstrap over the test images, pure numpy.

Every measure of a run comes from one test part of a few hundred images; another draw of
the part would give another number (on the scene photos, label accuracy moves by about
0.015 between split seeds). The bootstrap says how far: draw the test images with
replacement `RESAMPLES` times, measure each resample, and take the middle 95 % of the
resampled values (the percentile interval, Efron & Tibshirani 1993).

A resample is a row of counts, how many times each image is drawn; every measure is then a
weighted sum over images, so all resamples are measured at once by matrix products (a
thousand resamples of 400 images in a few milliseconds). A resample's label sets are the
images' own: thresholds are fixed, as they are once a run has chosen them. Two runs
measured on the same test images are compared on the same resamples (`paired_differences`):
the interval of the difference, which is narrower than either run's own because both see
the same hard images.

The measures and their names are `metrics.evaluate`'s (and the calibration error of
`calibration`), computed the same way: a resample's measure equals `metrics.evaluate`'s on
the resampled images (tests/test_bootstrap.py checks it).
"""

import warnings

import numpy as np

from multilabel.evaluation import calibration, metrics
from multilabel.evaluation.label_arrays import check_labels_and_probs
from multilabel.evaluation.thresholds import apply_thresholds

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0

# The measures with one value per class; the others are one number.
PER_CLASS = ("average_precision", "precision", "recall", "f1", "calibration_error")


def resample_counts(n, resamples=RESAMPLES, seed=SEED):
    """[resamples, n] int: how many times each of `n` images is drawn in each resample."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n, (resamples, n))
    flat = (np.arange(resamples)[:, None] * n + drawn).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n)


def resampled_measures(y_true, probs, thresholds=0.5, never_empty=False, counts=None):
    """{measure: [B] or [B, C] per class} of each resample (rows of `counts`, [B, N]; one
    row of ones, the data as it is, by default)."""
    y_true, probs = check_labels_and_probs(y_true, probs)
    y = y_true.astype(bool)
    n, num_classes = probs.shape
    if counts is None:
        counts = np.ones((1, n), np.int64)
    counts = np.asarray(counts, np.int64)
    weights = counts.astype(np.float64)
    total = weights.sum(axis=1)  # n for every resample
    predicted = apply_thresholds(probs, thresholds, never_empty)
    tp = weights @ (predicted & y)
    fp = weights @ (predicted & ~y)
    fn = weights @ (~predicted & y)
    wrong = weights @ (predicted != y).sum(axis=1) / (total * num_classes)
    out = {"label_accuracy": 1.0 - wrong, "hamming_loss": wrong,
           "exact_match": weights @ (predicted == y).all(axis=1) / total}
    micro = [_divide(tp.sum(1), tp.sum(1) + fp.sum(1)), _divide(tp.sum(1), tp.sum(1) + fn.sum(1)),
             _divide(2 * tp.sum(1), 2 * tp.sum(1) + fp.sum(1) + fn.sum(1))]
    per_class = [_divide(tp, tp + fp), _divide(tp, tp + fn), _divide(2 * tp, 2 * tp + fp + fn)]
    for name, value, each in zip(("precision", "recall", "f1"), micro, per_class):
        out[f"micro_{name}"] = value
        out[f"macro_{name}"] = each.mean(axis=1)
        out[name] = each
    ap = np.stack([_average_precision(y[:, c], probs[:, c], counts)
                   for c in range(num_classes)], axis=1)
    out["average_precision"] = ap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no positive at all
        out["mean_average_precision"] = np.nanmean(ap, axis=1)
    for name, each in metrics.ranking_per_instance(y, probs).items():
        out[name] = weights @ each / total
    out["expected_calibration_error"], out["calibration_error"] = _calibration_errors(
        y, probs, weights)
    return out


def intervals(y_true, probs, thresholds=0.5, never_empty=False, resamples=RESAMPLES,
              seed=SEED, level=LEVEL):
    """{measure: [low, high]} (per class: a list of them) of every measure, from
    `resamples` resamples of the images; None where no resample defines it (AP of a class
    without positives)."""
    counts = resample_counts(len(probs), resamples, seed)
    return {name: _percentiles(values, level)
            for name, values in resampled_measures(y_true, probs, thresholds, never_empty,
                                                   counts).items()}


def paired_differences(y_true, first, second, resamples=RESAMPLES, seed=SEED, level=LEVEL):
    """{measure: {"difference": second's - first's, "interval": [low, high]}} of two
    models' predictions of the same images, each `(probs, thresholds, never_empty)`,
    measured on the same resamples."""
    counts = resample_counts(len(y_true), resamples, seed)
    before, after = (resampled_measures(y_true, *model, counts=counts) for model in (first, second))
    point_before, point_after = (resampled_measures(y_true, *model) for model in (first, second))
    return {name: {"difference": _plain_values(point_after[name][0] - point_before[name][0]),
                   "interval": _percentiles(after[name] - before[name], level)}
            for name in before}


def describe(resamples=RESAMPLES, seed=SEED, level=LEVEL):
    """What metrics.json says of how its intervals were made."""
    return {"method": "percentile bootstrap over the test images", "resamples": resamples,
            "level": level, "seed": seed}


def _divide(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (metrics' zero_division=0)."""
    return np.divide(numerator, denominator, out=np.zeros(np.shape(denominator)),
                     where=denominator != 0)


def _average_precision(labels, scores, counts):
    """[B]: the AP of one class in each resample (counts [B, N]), as metrics': tied
    scores, duplicates of one image among them, enter together. NaN without a positive.

    AP sums, over the groups of tied scores holding positives, the share of the positives
    the group adds times the precision down to it."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1)
    drawn_in_order = counts[:, order]
    tp = np.cumsum(drawn_in_order * labels[order], axis=1)[:, ends]
    gained = np.diff(tp, axis=1, prepend=0)
    useful = gained.any(axis=0)  # groups without a positive add nothing
    tp, gained = tp[:, useful], gained[:, useful]
    drawn = np.cumsum(drawn_in_order, axis=1)[:, ends[useful]]
    precision = np.divide(tp, drawn, out=np.zeros(tp.shape), where=drawn > 0)
    positives = tp[:, -1] if tp.shape[1] else np.zeros(len(counts))
    total = np.sum(gained * precision, axis=1)
    return np.divide(total, positives, out=np.full(len(counts), np.nan), where=positives > 0)


def _calibration_errors(y, probs, weights, bins=calibration.BINS):
    """`([B] pooled, [B, C] per class)` expected calibration errors: per bin, a count times
    |mean probability - frequency| is |sum of probabilities - sum of labels|."""
    index = calibration.bin_indices(probs, bins)  # [N, C]
    one_hot = index[..., None] == np.arange(bins)  # [N, C, bins]
    gap = np.einsum("bn,nck->bck", weights, one_hot * (probs - y)[..., None])
    total = weights.sum(axis=1)
    per_class = np.abs(gap).sum(axis=2) / total[:, None]
    pooled = np.abs(gap.sum(axis=1)).sum(axis=1) / (total * probs.shape[1])
    return pooled, per_class


def _percentiles(values, level):
    values = np.asarray(values, np.float64)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: None below
        bounds = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    if values.ndim == 1:
        return _pair(bounds)
    return [_pair(pair) for pair in bounds.T]


def _pair(bounds):
    """`[low, high]` as floats for JSON; None where no resample defined the measure."""
    return None if np.isnan(bounds).any() else [float(b) for b in bounds]


def _plain_values(values):
    """A float (per class: a list of them) for JSON, NaN as None."""
    values = np.asarray(values, np.float64)
    if values.ndim == 0:
        return None if np.isnan(values) else float(values)
    return [None if np.isnan(v) else float(v) for v in values]
