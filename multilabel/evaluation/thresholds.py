"""Per-class decision thresholds: choose them on validation data, apply, save, load.

A sigmoid head gives one probability per class; turning it into a label set needs a
threshold per class. 0.5 is right only for a calibrated model and balanced costs, so
`best_f1_thresholds` picks, for each class separately, the threshold that maximises
that class's F1 on held-out (validation) data — never on the test list.

Convention used everywhere in the project: a class is predicted when
`probability >= threshold` (the same direction as a precision-recall curve).

Where every training image has at least one label, an empty predicted set is always
wrong; the *top-margin rule* (`never_empty`) then gives an image whose probabilities
all fall under their thresholds the one label that falls least far under its own.
retrain.py records whether the rule holds in a small JSON file beside the thresholds
(`rule_path`), so that the thresholds file keeps its one-number-a-line format, which
older readers (and this module's `read_thresholds`) parse.
"""

import json
import logging
import math
import os

import numpy as np

from multilabel.base import storage
from multilabel.base.atomic import write_text
from multilabel.base.errors import UserError, file_error
from multilabel.evaluation.label_arrays import check_labels_and_probs

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
# A class with at least one but fewer positive images than this, among those its threshold
# is chosen on, keeps DEFAULT_THRESHOLD (`rare_guarded`): with so few, the best-F1
# threshold falls near 0 and the class floods the predictions. Measured by
# bench/experiments/rare_class.py (docs/data.md#a-class-with-few-images).
MIN_POSITIVES = 8


def best_f1_threshold(labels, scores):
    """The threshold maximising F1 of `scores >= threshold` against 0/1 `labels` (1-D).

    Candidates are the midpoints between consecutive distinct scores, plus half the
    smallest score (predict every instance; 0 when that score is 0). Midpoints rather
    than the scores themselves keep a margin on both sides, so the frozen graph's
    probabilities, which differ from the training process's in the last float digits,
    fall on the same side.

    "Predict nothing" is not a candidate: its F1 is 0, and predicting every instance has
    F1 > 0 whenever there is a positive.

    Ties (equal F1, exactly: F1 is a ratio of integers and float division is correctly
    rounded, so equal ratios give equal floats) go to the candidate closest to 0.5, then
    to the larger one. The data cannot tell tied candidates apart, so we stay nearest the
    untuned default of a sigmoid, and between two equally near we prefer predicting fewer
    labels (higher precision).

    A class with no positives has F1 = 0 at every threshold (zero_division=0), so there is
    nothing to choose: it keeps 0.5 rather than an extreme value fitted to noise.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    if positives == 0:
        return DEFAULT_THRESHOLD
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tp = np.cumsum(labels[order])
    # Last index of each group of equal scores: a threshold never splits a tie.
    group_ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    group_ends = np.append(group_ends, len(scores) - 1)
    upper = sorted_scores[group_ends]  # lowest score still predicted positive
    lower = np.append(sorted_scores[group_ends[:-1] + 1], 0.0)  # highest score predicted negative
    candidates = (upper + lower) / 2
    # Two adjacent float64 values have no float strictly between them; the midpoint then
    # rounds onto one of them. `upper` itself still separates the groups under `>=`.
    candidates = np.where(candidates > lower, candidates, upper)
    tp_at = tp[group_ends]
    predicted = group_ends + 1
    f1 = 2 * tp_at / (predicted + positives)
    best = f1 == f1.max()
    # Lexicographic choice among the best: nearest 0.5, then larger.
    keys = sorted(zip(np.abs(candidates[best] - DEFAULT_THRESHOLD), -candidates[best]))
    return float(-keys[0][1])


def best_f1_thresholds(y_true, probs):
    """Per-class thresholds [C] maximising each class's F1 on (`y_true`, `probs`) [N, C].

    See `best_f1_threshold` for the candidates, the tie-break and classes without positives.
    """
    y_true, probs = check_labels_and_probs(y_true, probs)
    thresholds = np.array(
        [best_f1_threshold(y_true[:, c], probs[:, c]) for c in range(probs.shape[1])],
        dtype=np.float64,
    )
    logger.debug("chosen thresholds: %s", thresholds.tolist())
    return thresholds


def guarded(thresholds, y_true, probs):
    """`thresholds`, with 0.5 in place of each one that does worse than 0.5 on held-out
    predictions `probs` (F1 against `y_true`); and the classes replaced, as
    `{class index: (F1 at its threshold, F1 at 0.5)}`.

    After fine-tuning, thresholds chosen on the fine-tuned module's features of its own
    training images can come out worse than an untuned 0.5; the validation part, which
    no training saw, is what tells. Ties keep the chosen threshold.
    """
    y_true, probs = check_labels_and_probs(y_true, probs)
    kept = np.array(thresholds, dtype=np.float64)
    replaced = {}
    for c in range(probs.shape[1]):
        chosen, plain = (_f1(y_true[:, c], probs[:, c] >= t)
                         for t in (kept[c], DEFAULT_THRESHOLD))
        if chosen < plain:
            replaced[c] = (chosen, plain)
            kept[c] = DEFAULT_THRESHOLD
    return kept, replaced


def rare_guarded(thresholds, y_true, minimum=MIN_POSITIVES):
    """`thresholds`, with DEFAULT_THRESHOLD for each class of the 0/1 labels `y_true`
    [N, C] (the images the thresholds were chosen on) that has at least one positive but
    fewer than `minimum`; and those classes, as `{class index: (positives, the threshold
    replaced)}`.

    Out-of-fold predictions of a handful of positives are low (each fold's head saw even
    fewer), so the best F1 on them is reached by a threshold near 0, which then predicts
    the class on many new images. 0.5, the untuned default, errs the other way: the
    class is predicted rarely, and only when the head is sure.
    """
    kept = np.array(thresholds, dtype=np.float64)
    positives = np.asarray(y_true).reshape(len(y_true), -1).sum(axis=0)
    rare = {}
    for c, count in enumerate(positives):
        if 0 < count < minimum:
            rare[c] = (int(count), float(kept[c]))
            kept[c] = DEFAULT_THRESHOLD
    return kept, rare


def _f1(labels, predicted):
    """F1 of 0/1 `predicted` against `labels`; 0 where both are empty (zero_division=0)."""
    denominator = int(predicted.sum()) + int(labels.sum())
    return 2 * int((predicted & labels.astype(bool)).sum()) / denominator if denominator else 0.0


def apply_thresholds(probs, thresholds, never_empty=False):
    """Boolean predictions [N, C]: `probs >= thresholds` (thresholds scalar or [C]).

    With `never_empty`, a row with no class predicted gets the class with the largest
    `probs - thresholds` (the top margin; ties go to the first class).
    """
    probs = np.asarray(probs, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, C], got shape {probs.shape}")
    if thresholds.ndim > 1 or (thresholds.ndim == 1 and thresholds.shape[0] != probs.shape[1]):
        raise ValueError(f"thresholds {thresholds.shape} must be a scalar or [{probs.shape[1]}]")
    predicted = probs >= thresholds
    if never_empty and probs.shape[1]:
        empty = np.flatnonzero(~predicted.any(axis=1))
        margins = (probs - thresholds)[empty]
        predicted[empty, np.argmax(margins, axis=1)] = True
    return predicted


def data_never_empty(*label_arrays):
    """Whether every image of the 0/1 label arrays [N, C] has at least one label: the
    condition for the top-margin rule. False when there are no images at all."""
    rows = [np.asarray(a).reshape(len(a), -1) for a in label_arrays if len(a)]
    return bool(rows) and all(bool(r.any(axis=1).all()) for r in rows)


def rule_path(thresholds_path):
    """Where the rule for the thresholds at `thresholds_path` is kept: the same name with
    `.json` (`output_thresholds.txt` -> `output_thresholds.json`)."""
    return os.path.splitext(os.fspath(thresholds_path))[0] + ".json"


def write_rule(thresholds_path, never_empty):
    """Atomically record beside the thresholds whether the top-margin rule applies."""
    write_text(rule_path(thresholds_path), json.dumps({
        "never_empty": bool(never_empty),
        "why": ("every training image has at least one label: an image with no class at "
                "or over its threshold gets the class closest to its threshold")
        if never_empty else "some training images have no label: an empty set can be right",
    }, indent=2) + "\n")


def read_rule(thresholds_path):
    """Whether the top-margin rule applies to the thresholds at `thresholds_path`: False
    when no rule file stands beside them (thresholds written before the rule existed, or
    by hand). Raises UserError naming a rule file that is not what `write_rule` writes."""
    path = rule_path(thresholds_path)
    try:
        text = storage.read_regular(path).decode("utf-8")
    except FileNotFoundError:
        return False
    except OSError as e:
        raise file_error(e, path, "label rule file") from e
    except UnicodeDecodeError as e:
        raise UserError(f"cannot read the label rule: {e}", path) from e
    try:
        value = json.loads(text).get("never_empty")
    except (ValueError, AttributeError, RecursionError):
        value = None
    if not isinstance(value, bool):
        raise UserError('not a label rule file: expected a JSON object with "never_empty": '
                        "true or false", path)
    return value


def write_thresholds(path, thresholds):
    """Atomically write one threshold per line, in `repr` precision (reads back exactly)."""
    values = [float(t) for t in np.asarray(thresholds, dtype=np.float64).ravel()]
    for value in values:
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(f"threshold {value!r} is outside [0, 1]")
    write_text(path, "".join(f"{value!r}\n" for value in values))


def read_thresholds(path, num_classes):
    """Read a thresholds file: exactly `num_classes` floats in [0, 1], one per line.

    Raises UserError naming the path and, where one line is at fault, the line: a value
    that is not a float, a value outside [0, 1] (or NaN), a line beyond `num_classes`.
    Too few lines names only the path: no line is wrong, some are missing.
    """
    lines = storage.read_text(path, "thresholds file").splitlines()
    values = []
    for number, text in enumerate(lines, start=1):
        if number > num_classes:
            raise UserError(
                f"more thresholds than the {num_classes} classes", path, number)
        shown = _shown(text.strip())
        try:
            value = float(text)
        except ValueError as e:
            raise UserError(f"threshold {shown} is not a number", path, number) from e
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            # The text as written: 5,000 digits read as inf, which the file never said.
            raise UserError(f"threshold {shown} is outside [0, 1]", path, number)
        values.append(value)
    if len(values) != num_classes:
        raise UserError(
            f"expected {num_classes} thresholds (one per class), found {len(values)}", path)
    return np.array(values, dtype=np.float64)


def _shown(text, width=40):
    """`text` quoted for an error line, cut to `width` characters."""
    return repr(text) if len(text) <= width else f"{text[:width]!r}... ({len(text):,} characters)"
