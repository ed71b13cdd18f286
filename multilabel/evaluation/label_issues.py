"""Labels that look wrong: confident learning in its multi-label form, pure numpy.

Users bring their own labels, and labels are noisy. Given each image's labels and a
prediction from a model that never trained on that image (the out-of-fold predictions
that choose the thresholds, or the test part's), this finds the images whose given
labels the model confidently contradicts, and says which labels to add or remove.

The rule is confident learning (Northcutt, Jiang and Chuang, "Confident learning:
estimating uncertainty in dataset labels", JAIR 70, 2021) reduced one-vs-rest to each
class, as Thyagarajan, Snorrason, Northcutt and Mueller do for multi-label data
("Identifying incorrect annotations in multi-label classification data", 2023). For each
class separately, with p the predicted probability that it is present:

1. Thresholds from the data, not 0.5: `t_present` is the mean p over the images that
   are given the class, `t_absent` the mean 1 - p over those given it absent. A model
   that is shy of a rare class still finds its missing labels.
2. The confident joint `C[given][true]` counts each image as confidently present when
   p >= t_present, confidently absent when 1 - p >= t_absent (the larger of p and
   1 - p when both hold, absent on a tie), and not at all when neither holds. Its
   diagonal is raised to at least 1.
3. Calibrated, each row holds as many images as are given that flag: the estimated
   number of wrong labels among the n images given flag g is
   `round(n * C[g][not g] / (C[g][0] + C[g][1]))`, half to even; the raised diagonal
   keeps it below n, so one image of every given flag is kept.
4. Prune by noise rate: among the images given flag g, that many with the largest
   margin towards the other flag (the lowest p if g is present, the highest if absent)
   are the class's suspects. A suspect whose p still agrees with its given flag at 0.5
   is dropped: the model has to disagree, not just doubt.

An image is a label issue when any class makes it a suspect: suspects given the class
absent are labels to add, those given it present are labels to remove.

Issues are ranked by the label quality score of the same papers: each class's
self-confidence (p when the class is given present, 1 - p when absent), sorted from
highest to lowest and combined by an exponential moving average with alpha 0.8, so the
least credible label weighs most (0.8), the next 0.16, and so on. A score near 0 means
the given labels are surely wrong, near 1 surely right; the worst come first.

Confident learning trusts the model equally on every class, but the model's mistakes are
not spread evenly: on a class whose given labels are right nearly everywhere, the few
images the model contradicts are more likely its own mistakes than wrong labels (a photo
turned grey, or a dark one, that the frozen features cannot tell from a dull one). So
each class's doubts are weighed by how much label noise confident learning estimates in
that class on the training part's out-of-fold predictions: with r_c the estimated number
of wrong labels of class c (step 3, both flags), w_c = min(1, r_c / median(r)), and the
score uses 1 - w_c (1 - self-confidence) for class c. A class with at least the typical
class's noise counts its doubts fully; one with a third as much, a third. Which images
are flagged does not change, only their order (bench/experiments/label_issues_by_class.py,
docs/data.md#flags-a-user-can-trust: weighing by the largest class's noise instead, or by
out-of-fold AP, lost corrupted labels from the top rows).

These are, less the class weights, the defaults of cleanlab's
`find_label_issues(multi_label=True)` and `get_label_quality_scores`, which
bench/experiments/label_issues_vs_cleanlab.py compares against; cleanlab is AGPL-3.0, so
this module reimplements the published rule instead of depending on it.
"""

import csv
import dataclasses
import io

import numpy as np

from multilabel.base import atomic, label_sets
from multilabel.evaluation.label_arrays import check_labels_and_probs

SCORE_ALPHA = 0.8  # the exponential moving average's weight on each lower self-confidence
TOLERANCE = 1e-6  # slack on the thresholds and on the 0.5 check, as in the papers' code
CSV_HEADER = ("image", "given", "suggested_add", "suggested_remove", "score", "part")


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Images with their given labels and held-out predictions: one set of issues."""

    name: str  # "train" for out-of-fold predictions, "test" for the test part
    paths: tuple
    labels: np.ndarray  # [N, C] of 0/1, as given
    probs: np.ndarray  # [N, C], from a model that did not train on these images


@dataclasses.dataclass(frozen=True)
class Issue:
    """One image whose given labels look wrong."""

    image: str
    part: str
    given: np.ndarray  # [C] bool, the labels as given
    probs: np.ndarray  # [C], the held-out prediction
    add: np.ndarray  # [C] bool, labels the model says are missing
    remove: np.ndarray  # [C] bool, labels the model says are wrong
    score: float  # the label quality score, 0 (surely wrong) to 1


def class_thresholds(labels, probs):
    """`(t_present, t_absent)`, each [C]: the mean p over images given the class, and the
    mean 1 - p over images given it absent; NaN where no image is given that flag."""
    labels, probs = check_labels_and_probs(labels, probs)
    present = labels.astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_present = (probs * present).sum(axis=0) / present.sum(axis=0)
        t_absent = ((1 - probs) * ~present).sum(axis=0) / (~present).sum(axis=0)
    return t_present, t_absent


def confident_joint(labels, probs):
    """[C, 2, 2] counts `[class, given, true]` (0 absent, 1 present), diagonal >= 1."""
    labels, probs = check_labels_and_probs(labels, probs)
    t_present, t_absent = class_thresholds(labels, probs)
    # A NaN threshold (no image given that flag) compares False: never confident.
    sure_present = probs >= t_present - TOLERANCE
    sure_absent = 1 - probs >= t_absent - TOLERANCE
    true = np.where(sure_present & sure_absent, probs > 1 - probs, sure_present).astype(int)
    counted = sure_present | sure_absent
    joint = np.zeros((labels.shape[1], 2, 2), np.int64)
    for c in range(labels.shape[1]):
        np.add.at(joint[c], (labels[counted[:, c], c], true[counted[:, c], c]), 1)
    joint[:, [0, 1], [0, 1]] = np.maximum(joint[:, [0, 1], [0, 1]], 1)
    return joint


def noise_counts(labels, probs):
    """[C, 2]: how many images given each class absent (0) or present (1) to flag."""
    labels, probs = check_labels_and_probs(labels, probs)
    joint = confident_joint(labels, probs)
    given = np.stack([(labels == 0).sum(axis=0), (labels == 1).sum(axis=0)], axis=1)
    off_diagonal = joint[:, [0, 1], [1, 0]]  # [C, given]: confidently the other flag
    # Never all n: with the diagonal at least 1 the estimate stays below n - 1/2, and
    # half rounds to even, so 1/2 (n = 1) gives 0.
    return np.rint(given * off_diagonal / joint.sum(axis=2)).astype(np.int64)


def find_issues(labels, probs):
    """`(add, remove)`, each [N, C] bool: the labels confident learning would change."""
    labels, probs = check_labels_and_probs(labels, probs)
    counts = noise_counts(labels, probs)
    suspect = np.zeros(labels.shape, bool)
    for c in range(labels.shape[1]):
        for flag in (0, 1):
            given = np.flatnonzero(labels[:, c] == flag)
            # Largest margin towards the other flag first; ties in file order.
            toward_other = probs[given, c] if flag == 0 else 1 - probs[given, c]
            order = given[np.argsort(-toward_other, kind="stable")]
            suspect[order[:counts[c, flag]], c] = True
    # The model must disagree with the given flag, not just doubt it.
    disagrees = np.where(labels == 1, probs + TOLERANCE <= 1 - probs,
                         1 - probs + TOLERANCE < probs)
    suspect &= disagrees
    return suspect & (labels == 0), suspect & (labels == 1)


def class_weights(labels, probs):
    """[C]: how much each class's doubts count: its estimated number of wrong labels
    (noise_counts, both flags) over the median class's, at most 1; 1 for every class
    where the median class has none."""
    labels, probs = check_labels_and_probs(labels, probs)
    wrong = noise_counts(labels, probs).sum(axis=1).astype(float)
    typical = np.median(wrong)
    return np.minimum(1, wrong / typical) if typical > 0 else np.ones(labels.shape[1])


def quality_scores(labels, probs, alpha=SCORE_ALPHA, weights=None):
    """[N]: each image's label quality score, low for labels that look wrong; with
    `weights` [C] (class_weights), each class's doubt counts that much."""
    labels, probs = check_labels_and_probs(labels, probs)
    confidence = np.where(labels == 1, probs, 1 - probs)
    if weights is not None:
        confidence = 1 - np.asarray(weights) * (1 - confidence)
    descending = -np.sort(-confidence, axis=1)
    score = descending[:, 0]
    for column in descending.T[1:]:
        score = alpha * column + (1 - alpha) * score
    return score


def rank_issues(parts):
    """The label issues of every part, each found on its own part, worst first (ties in
    part then file order). The class weights come from the "train" part (out-of-fold
    predictions) where there is one, else from each part itself."""
    issues = []
    training = [part for part in parts if part.name == "train" and len(part.paths)]
    for part in parts:
        if not len(part.paths):
            continue
        add, remove = find_issues(part.labels, part.probs)
        judged = training[0] if training else part
        scores = quality_scores(part.labels, part.probs,
                                weights=class_weights(judged.labels, judged.probs))
        given = np.asarray(part.labels).astype(bool)
        for i in np.flatnonzero((add | remove).any(axis=1)):
            issues.append(Issue(part.paths[i], part.name, given[i], np.asarray(part.probs[i]),
                                add[i], remove[i], float(scores[i])))
    return sorted(issues, key=lambda issue: issue.score)


def csv_text(issues, class_names):
    """`label_issues.csv`'s text: a header, then one row per issue, in the given order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for issue in issues:
        writer.writerow((issue.image, _names(class_names, issue.given),
                         _names(class_names, issue.add), _names(class_names, issue.remove),
                         f"{issue.score:.4f}", issue.part))
    return out.getvalue()


def write_label_issues(path, parts, class_names):
    """Atomically write `label_issues.csv` for `parts`; return its issues, worst first."""
    issues = rank_issues(parts)
    atomic.write_text(path, csv_text(issues, class_names))
    return issues


def _names(class_names, flags):
    return label_sets.join(n for n, f in zip(class_names, flags) if f)
