"""The two arrays every measure and every threshold rule takes, checked in one place.

`metrics` and `thresholds` both take 0/1 labels and probabilities `[N, C]`; each checks
them on entry with this one function, so the two can never disagree on what is valid.
"""

import numpy as np


def check_labels_and_probs(y_true, probs):
    """Return `(y_true, probs)` as int64 and float64 [N, C] arrays, or raise ValueError.

    Bad shapes or values here are the caller's bug, not the user's input: ValueError.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != probs.shape:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must be equal [N, C]")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if not ((probs >= 0) & (probs <= 1)).all():  # also rejects NaN
        raise ValueError("probs must be probabilities in [0, 1]")
    return y_true.astype(np.int64), probs
