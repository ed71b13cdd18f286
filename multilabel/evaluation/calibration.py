"""Whether a probability of 0.8 means right 8 times in 10, and a per-class mend, pure numpy.

The sigmoid outputs are read as probabilities everywhere (the report, label_image.py, the
thresholds, the TFLite model phones run), but a head trained with L2 on cached features
is over- or under-confident, and differently for each class. Measured here:

- the *reliability* of probabilities: the entries (image, class) put in `BINS` equal-width
  bins of predicted probability, each bin's mean probability against the share of its
  entries that are true labels;
- the *expected calibration error* (ECE, Naeini et al. 2015, Guo et al. 2017): the mean,
  weighted by the bins' sizes, of |mean probability - observed frequency|. Pooled over
  every entry, and per class.

Mended: a `Calibration` maps each class's logit z to `scale * z + shift` (Platt scaling,
Platt 1999; with shift 0 it is temperature scaling, scale = 1 / T, Guo et al. 2017). Both
are fitted to out-of-fold predictions of the training images, never the test part. The
map is folded into the final layer (`fold`), so every exported format keeps its shape and
ops; a positive scale makes it increasing, so the thresholds move through the same map
(`thresholds`) and every class's label set stays what it was.
"""

import dataclasses

import numpy as np

from multilabel.evaluation.label_arrays import check_labels_and_probs

BINS = 10
METHODS = ("platt", "temperature", "none")
# Newton's method on two parameters converges in a handful of steps; this bounds a
# pathological class (all one label) that the smoothed targets already keep finite.
_NEWTON_STEPS = 100
_CLIP = 1e-7  # probabilities to logits: float32's sigmoid saturates at 1 - 6e-8


def bin_indices(probs, bins=BINS):
    """The bin of each probability: [0, 1/bins), ..., [(bins-1)/bins, 1] (1 in the last)."""
    return np.minimum((np.asarray(probs, np.float64) * bins).astype(np.int64), bins - 1)


def reliability(y_true, probs, bins=BINS):
    """`(count, mean probability, observed frequency)` of each bin, three arrays [bins],
    over the entries of `probs` (any shape; `y_true` the same); NaN where a bin is empty."""
    y = np.asarray(y_true, np.float64).ravel()
    p = np.asarray(probs, np.float64).ravel()
    index = bin_indices(p, bins)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(index, p, bins) / count
        frequency = np.bincount(index, y, bins) / count
    return count, mean, frequency


def expected_calibration_error(y_true, probs, bins=BINS):
    """`(pooled, per_class)`: the ECE over every entry of [N, C] `probs`, and one per class
    [C]. 0 is perfect; an empty set has no ECE (ValueError)."""
    y_true, probs = check_labels_and_probs(y_true, probs)
    if y_true.size == 0:
        raise ValueError("no entries to measure calibration on")
    per_class = np.array([_ece(y_true[:, c], probs[:, c], bins) for c in range(probs.shape[1])])
    return _ece(y_true, probs, bins), per_class


def _ece(y_true, probs, bins):
    count, mean, frequency = reliability(y_true, probs, bins)
    filled = count > 0
    return float(np.sum(count[filled] * np.abs(mean[filled] - frequency[filled])) / count.sum())


def logits(probs):
    """The logits of probabilities, clipped away from 0 and 1 (float64)."""
    p = np.clip(np.asarray(probs, np.float64), _CLIP, 1 - _CLIP)
    return np.log(p) - np.log1p(-p)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Per class, the calibrated logit is `scale * logit + shift`; scale > 0."""

    method: str
    scale: np.ndarray  # [C]
    shift: np.ndarray  # [C]

    @classmethod
    def identity(cls, num_classes):
        return cls("none", np.ones(num_classes), np.zeros(num_classes))

    def probs(self, probs):
        """Calibrated probabilities of raw ones [N, C]."""
        return sigmoid(logits(probs) * self.scale + self.shift)

    def thresholds(self, thresholds):
        """Where raw `thresholds` [C] land: the same map, exact at 0 and 1 (predict every
        image / none), so that `probs >= t` and `calibrated >= calibrated(t)` agree."""
        t = np.asarray(thresholds, np.float64)
        moved = sigmoid(logits(t) * self.scale + self.shift)
        return np.where(t <= 0, 0.0, np.where(t >= 1, 1.0, moved))

    def fold(self, weights, biases):
        """The final layer `(weights [D, C], biases [C])` whose sigmoid is the calibrated
        probability: the layer's logits scaled and shifted per class."""
        scale = self.scale.astype(weights.dtype)
        return weights * scale, (biases * scale + self.shift).astype(biases.dtype)

    def report(self):
        """The JSON-friendly record of metrics.json."""
        return {"method": self.method, "scale": [float(s) for s in self.scale],
                "shift": [float(s) for s in self.shift]}


def fit(y_true, probs, method):
    """The `Calibration` of `method` (METHODS) fitted to held-out `probs` [N, C] with labels
    `y_true`, each class on its own: the scale and shift (temperature: the scale alone) that
    minimise the cross-entropy against Platt's smoothed targets, (n+ + 1) / (n+ + 2) for a
    positive and 1 / (n- + 2) for a negative, which keep a class the predictions separate
    perfectly from an infinite scale. A class whose fit is not increasing (scale <= 0,
    predictions that rank it backwards) keeps its probabilities as they are."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
    y_true, probs = check_labels_and_probs(y_true, probs)
    num_classes = probs.shape[1]
    if method == "none" or len(probs) == 0:
        return Calibration.identity(num_classes)
    z = logits(probs)
    scale, shift = np.ones(num_classes), np.zeros(num_classes)
    for c in range(num_classes):
        a, b = _fit_one(z[:, c], _platt_targets(y_true[:, c]), with_shift=method == "platt")
        if a > 0 and np.isfinite(a) and np.isfinite(b):
            scale[c], shift[c] = a, b
    return Calibration(method, scale, shift)


def _platt_targets(labels):
    labels = labels.astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    return np.where(labels, (positives + 1) / (positives + 2), 1 / (negatives + 2))


def _loss(z, targets, a, b):
    s = a * z + b
    # log(1 + e^s) - t s, stably
    return float(np.sum(np.logaddexp(0.0, s) - targets * s))


def _fit_one(z, targets, with_shift):
    """Newton's method with step halving on the cross-entropy of sigmoid(a z + b)."""
    a, b = 1.0, 0.0
    current = _loss(z, targets, a, b)
    for _ in range(_NEWTON_STEPS):
        p = sigmoid(a * z + b)
        residual, weight = p - targets, p * (1 - p) + 1e-12
        if with_shift:
            gradient = np.array([np.dot(residual, z), residual.sum()])
            hessian = np.array([[np.dot(weight, z * z), np.dot(weight, z)],
                                [np.dot(weight, z), weight.sum()]])
            step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
        else:
            step = np.array([np.dot(residual, z) / (np.dot(weight, z * z) + 1e-12), 0.0])
        length = 1.0
        while length > 1e-6:
            trial = _loss(z, targets, a - length * step[0], b - length * step[1])
            if trial <= current:
                break
            length /= 2
        else:
            break
        a, b = a - length * step[0], b - length * step[1]
        if current - trial < 1e-10 * max(1.0, abs(current)):
            current = trial
            break
        current = trial
    return a, b
