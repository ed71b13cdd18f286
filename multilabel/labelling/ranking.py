"""Which unlabelled photos to label next: the ones the model is least sure of, without
near-duplicates at the top. Pure numpy.

A multi-label model decides each class by its threshold; a photo whose probability sits
near a class's threshold is one where a label would move that decision, while a photo
far from every threshold teaches the model little it does not already do. The rule
(measured against random picks in docs/data.md#what-to-label-next): each photo's
*margin* is its smallest distance to a class threshold, in log-odds (so 0.5 vs 0.6 is as
far as 0.9 vs 0.93), and photos are ranked by margin, smallest first.

A photo that nearly repeats one above it in the ranking, or one the model already trained
on, would teach the same thing twice: those go after every other photo, in their own
margin order (near-duplicates are found as in evaluation.near_duplicates, on the
module's feature vectors).
"""

import numpy as np

from multilabel.evaluation import near_duplicates

EPSILON = 1e-6  # probabilities are clipped this far from 0 and 1 before the log-odds


def logit(p):
    p = np.clip(np.asarray(p, np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def margins(probs, thresholds):
    """[N]: each row's smallest |logit(p_c) - logit(t_c)| over the classes."""
    return np.abs(logit(probs) - logit(thresholds)[None, :]).min(axis=1)


def rank_uncertain(probs, thresholds, vectors=None, known_vectors=None,
                   threshold=near_duplicates.THRESHOLD):
    """`(order, repeats)`: indices of `probs` [N, C] to label first, smallest margin first,
    and a [N] bool of the ones that near-duplicate a photo ranked above them or a
    `known_vectors` row (the training images); those come last. Without `vectors` no
    photo is a repeat."""
    by_margin = np.argsort(margins(probs, thresholds), kind="stable")
    repeats = np.zeros(len(by_margin), bool)
    if vectors is None or not len(by_margin):
        return by_margin, repeats
    if known_vectors is not None and len(known_vectors):
        unit = near_duplicates.unit_rows(vectors)
        known = near_duplicates.unit_rows(known_vectors)
        for start in range(0, len(unit), near_duplicates.BLOCK_ROWS):
            block = unit[start:start + near_duplicates.BLOCK_ROWS] @ known.T
            repeats[start:start + len(block)] = block.max(axis=1) >= threshold
    # Each photo's near-duplicates among the others (blocked search: never N x N).
    indices, similarities = near_duplicates.nearest_neighbours(vectors)
    kept = np.zeros(len(by_margin), bool)
    for i in by_margin:
        if repeats[i]:
            continue
        near = indices[i][similarities[i] >= threshold]
        repeats[i] = kept[near].any()
        kept[i] = not repeats[i]
    order = np.concatenate([by_margin[~repeats[by_margin]], by_margin[repeats[by_margin]]])
    return order, repeats
