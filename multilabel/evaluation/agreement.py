"""Thresholds for a smaller copy of a model (a quantized export): the ones that make its
decisions agree with the original's.

The per-class thresholds were chosen on the float model's probabilities; quantization
moves probabilities, by up to a few tenths near the middle for int8, so the float model's
thresholds no longer cut the copy's scores where they cut the original's. The copy's
own thresholds are chosen, per class, to reproduce the float model's decisions (at its
own thresholds) on images that are not test images: the float model's decisions are
what was tuned and measured, and agreeing with them needs no labels, only the two
models' probabilities on the same images.
"""

import numpy as np

from multilabel.evaluation.label_arrays import check_labels_and_probs


def agreeing_threshold(scores, decisions, reference_threshold):
    """The threshold `t` whose `scores >= t` agrees with the 0/1 `decisions` (1-D) on the
    most images.

    Candidates are `reference_threshold` and the midpoints between consecutive distinct
    scores (and just past both ends): a midpoint keeps a margin on both sides, as
    `thresholds.best_f1_threshold` does. Ties go to the candidate closest to
    `reference_threshold`: where the images cannot tell candidates apart, the float
    model's threshold stands.
    """
    scores = np.asarray(scores, np.float64)
    decisions = np.asarray(decisions, bool)
    if scores.shape != decisions.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and decisions {decisions.shape} must be "
                         "two 1-D arrays of one length")
    distinct = np.unique(scores)
    candidates = np.concatenate([
        [reference_threshold], (distinct[:-1] + distinct[1:]) / 2,
        [max(distinct[0] / 2, 0.0)] if len(distinct) else [],
        [(distinct[-1] + 1) / 2] if len(distinct) else []])
    candidates = np.clip(candidates, 0.0, 1.0)
    agree = np.array([np.sum((scores >= t) == decisions) for t in candidates])
    best = np.flatnonzero(agree == agree.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - reference_threshold))]])


def agreeing_thresholds(probs, reference_probs, reference_thresholds):
    """Per class, `agreeing_threshold` of `probs` (the copy's, `[N, C]`) against the
    decisions of `reference_probs` at `reference_thresholds` on the same N images."""
    probs = np.asarray(probs, np.float64)
    reference_probs = np.asarray(reference_probs, np.float64)
    check_labels_and_probs(reference_probs >= 0, probs)
    reference_thresholds = np.asarray(reference_thresholds, np.float64)
    decisions = reference_probs >= reference_thresholds
    return np.array([agreeing_threshold(probs[:, c], decisions[:, c], reference_thresholds[c])
                     for c in range(probs.shape[1])])
