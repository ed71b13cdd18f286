"""Metrics against small examples worked out by hand (the working is in the comments)."""

import json
import math

import numpy as np
import pytest

from multilabel.evaluation.metrics import (
    average_precision,
    coverage,
    evaluate,
    exact_match_ratio,
    format_report,
    hamming_loss,
    label_accuracy,
    label_ranking_average_precision,
    mean_average_precision,
    one_error,
    precision_recall_curve,
    precision_recall_f1,
    ranking_loss,
)

# Example A, 3 instances x 4 classes; class 3 has no positives.
A_TRUE = np.array([
    [1, 0, 1, 0],
    [0, 1, 0, 0],
    [1, 1, 0, 0],
])
A_PROBS = np.array([
    [0.9, 0.2, 0.6, 0.4],
    [0.3, 0.8, 0.1, 0.7],
    [0.4, 0.7, 0.2, 0.5],
])
# At 0.5 (probability >= 0.5 is predicted) the predictions are
#   [1 0 1 0]  right
#   [0 1 0 1]  class 3 a false positive
#   [0 1 0 1]  class 0 a false negative (0.4), class 3 a false positive (0.5 >= 0.5)

# Example B, 4 instances x 3 classes; ties, and instance 3 has no true label.
B_TRUE = np.array([
    [1, 0, 0],
    [0, 1, 1],
    [1, 1, 0],
    [0, 0, 0],
])
B_PROBS = np.array([
    [0.2, 0.6, 0.1],
    [0.5, 0.5, 0.9],
    [0.7, 0.3, 0.3],
    [0.4, 0.8, 0.6],
])
B_THRESHOLDS = [0.5, 0.55, 0.65]
# Predictions at these thresholds, wrong entries marked:
#   [0 1 0] vs [1 0 0]  2 wrong
#   [1 0 1] vs [0 1 1]  2 wrong
#   [1 0 0] vs [1 1 0]  1 wrong
#   [0 1 0] vs [0 0 0]  1 wrong


def test_label_measures_example_a():
    # 3 wrong entries of 12.
    assert hamming_loss(A_TRUE, A_PROBS) == pytest.approx(3 / 12)
    assert label_accuracy(A_TRUE, A_PROBS) == pytest.approx(9 / 12)
    # Only instance 0 is predicted exactly.
    assert exact_match_ratio(A_TRUE, A_PROBS) == pytest.approx(1 / 3)


def test_precision_recall_f1_example_a():
    # class 0: TP 1 FP 0 FN 1 -> P 1, R 1/2, F1 2/3
    # class 1: TP 2          -> 1, 1, 1
    # class 2: TP 1          -> 1, 1, 1
    # class 3: TP 0 FP 2 FN 0 -> P 0/2 = 0, R 0/0 = 0, F1 0/2 = 0
    precision, recall, f1 = precision_recall_f1(A_TRUE, A_PROBS)
    np.testing.assert_allclose(precision, [1, 1, 1, 0])
    np.testing.assert_allclose(recall, [0.5, 1, 1, 0])
    np.testing.assert_allclose(f1, [2 / 3, 1, 1, 0])
    # macro: means over all 4 classes, the empty class included.
    assert precision_recall_f1(A_TRUE, A_PROBS, average="macro") == pytest.approx(
        (3 / 4, 2.5 / 4, (8 / 3) / 4))
    # micro: TP 4, FP 2, FN 1 -> P 4/6, R 4/5, F1 8/11.
    assert precision_recall_f1(A_TRUE, A_PROBS, average="micro") == pytest.approx(
        (4 / 6, 4 / 5, 8 / 11))


def test_ranking_measures_example_a():
    # Pessimistic ranks (labels scored >= it): row 0: c0 1, c2 2, c3 3, c1 4;
    # row 1: c1 1; row 2: c1 1, c3 2, c0 3, c2 4.
    # one-error: every top label (c0, c1, c1) is true -> 0.
    assert one_error(A_TRUE, A_PROBS) == 0
    # coverage: deepest true rank - 1 = 2-1, 1-1, 3-1 -> mean 1.
    assert coverage(A_TRUE, A_PROBS) == pytest.approx(1.0)
    # ranking loss: row 2 has 2x2 pairs, one misordered (c3 0.5 >= c0 0.4) -> 1/4;
    # rows 0 and 1 have none -> (0 + 0 + 1/4) / 3.
    assert ranking_loss(A_TRUE, A_PROBS) == pytest.approx(1 / 12)
    # LRAP: rows 0, 1 give 1; row 2: c1 1/1, c0 2 true of rank 3 -> (1 + 2/3)/2 = 5/6.
    assert label_ranking_average_precision(A_TRUE, A_PROBS) == pytest.approx((1 + 1 + 5 / 6) / 3)


def test_label_measures_example_b_with_thresholds_per_class():
    assert hamming_loss(B_TRUE, B_PROBS, B_THRESHOLDS) == pytest.approx(6 / 12)
    assert exact_match_ratio(B_TRUE, B_PROBS, B_THRESHOLDS) == 0
    # class 0: TP 1 FP 1 FN 1 -> 1/2 each; class 1: TP 0 FP 2 FN 2 -> 0; class 2: TP 1 -> 1.
    precision, recall, f1 = precision_recall_f1(B_TRUE, B_PROBS, B_THRESHOLDS)
    np.testing.assert_allclose(precision, [0.5, 0, 1])
    np.testing.assert_allclose(recall, [0.5, 0, 1])
    np.testing.assert_allclose(f1, [0.5, 0, 1])
    # micro: TP 2, FP 3, FN 3 -> 2/5, 2/5, 4/10.
    assert precision_recall_f1(B_TRUE, B_PROBS, B_THRESHOLDS, average="micro") == pytest.approx(
        (0.4, 0.4, 0.4))


def test_average_precision_example_b():
    # class 0, by descending score: 0.7 (+) 0.5 (-) 0.4 (-) 0.2 (+)
    #   P 1, 1/2, 1/3, 2/4; R 1/2, 1/2, 1/2, 1 -> 1/2 * 1 + 1/2 * 1/2 = 3/4
    # class 1: 0.8 (-) 0.6 (-) 0.5 (+) 0.3 (+)
    #   P 0, 0, 1/3, 2/4; R 0, 0, 1/2, 1 -> 1/2 * 1/3 + 1/2 * 1/2 = 5/12
    # class 2: its one positive scores highest -> 1
    np.testing.assert_allclose(average_precision(B_TRUE, B_PROBS), [3 / 4, 5 / 12, 1])
    assert mean_average_precision(B_TRUE, B_PROBS) == pytest.approx(13 / 18)


def test_ranking_measures_example_b_with_ties_and_an_unlabelled_instance():
    # row 0, true {c0}, scores .2 .6 .1: top c1 is false; c0 has rank 2;
    #   pairs 1x2, c1 above c0 -> 1/2; LRAP 1 true of rank 2 -> 1/2
    # row 1, true {c1, c2}, scores .5 .5 .9: top c2 true; c1 ties c0 so rank 3;
    #   pairs 2x1, (c1, c0) tied counts as misordered -> 1/2; LRAP (1/1 + 2/3) / 2 = 5/6
    # row 2, true {c0, c1}, scores .7 .3 .3: top c0 true; c1 ties c2 so rank 3;
    #   pairs 2x1, (c1, c2) tied -> 1/2; LRAP 5/6
    # row 3, no true label: one-error 0, coverage 0, ranking loss 0, LRAP 1
    assert one_error(B_TRUE, B_PROBS) == pytest.approx(1 / 4)
    assert coverage(B_TRUE, B_PROBS) == pytest.approx((1 + 2 + 2 + 0) / 4)
    assert ranking_loss(B_TRUE, B_PROBS) == pytest.approx((1 / 2 + 1 / 2 + 1 / 2 + 0) / 4)
    assert label_ranking_average_precision(B_TRUE, B_PROBS) == pytest.approx(
        (1 / 2 + 5 / 6 + 5 / 6 + 1) / 4)


def test_average_precision_counts_tied_scores_together():
    # labels 1 0 1 0, scores .5 .5 .5 .1: one step at 0.5 with P 2/3, R 1 -> AP 2/3.
    # Taking the tied instances one at a time in input order would give 5/6 instead.
    ap = average_precision([[1], [0], [1], [0]], [[0.5], [0.5], [0.5], [0.1]])
    assert ap[0] == pytest.approx(2 / 3)


def test_precision_recall_curve_example_b_class_1_with_a_tie():
    # class 1 by descending score: 0.8 (-) 0.6 (-) 0.5 (+) 0.3 (+)
    precision, recall, thresholds = precision_recall_curve(B_TRUE[:, 1], B_PROBS[:, 1])
    np.testing.assert_allclose(precision, [0, 0, 1 / 3, 2 / 4])
    np.testing.assert_allclose(recall, [0, 0, 1 / 2, 1])
    np.testing.assert_allclose(thresholds, [0.8, 0.6, 0.5, 0.3])
    # Three instances tied at 0.5 are one point, P 2/3 and R 1.
    precision, recall, thresholds = precision_recall_curve([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1])
    np.testing.assert_allclose(precision, [2 / 3, 2 / 4])
    np.testing.assert_allclose(thresholds, [0.5, 0.1])
    with pytest.raises(ValueError, match="positive"):
        precision_recall_curve([0, 0], [0.3, 0.6])


def test_a_one_error_tie_at_the_top_is_an_error():
    # True c0 ties false c1 at the top: an error; all-true tie at the top: not.
    assert one_error([[1, 0, 0]], [[0.7, 0.7, 0.1]]) == 1
    assert one_error([[1, 1, 0]], [[0.7, 0.7, 0.1]]) == 0


def test_all_predictions_negative_and_all_scores_equal():
    probs = np.full(A_TRUE.shape, 0.1)
    # Nothing predicted: the 5 true entries are the only mistakes, F1 is 0 everywhere.
    assert hamming_loss(A_TRUE, probs) == pytest.approx(5 / 12)
    assert exact_match_ratio(A_TRUE, probs) == 0
    for average in ("micro", "macro"):
        assert precision_recall_f1(A_TRUE, probs, average=average) == (0, 0, 0)
    # All labels tie, so every label has rank 4 and ties go against the model:
    assert one_error(A_TRUE, probs) == 1
    assert coverage(A_TRUE, probs) == 3
    assert ranking_loss(A_TRUE, probs) == 1
    # LRAP: each true label shares rank 4 with |Y| true ones -> (2/4 + 1/4 + 2/4) / 3.
    assert label_ranking_average_precision(A_TRUE, probs) == pytest.approx(5 / 12)
    # AP of a constant score is the share of positives: 2/3, 2/3, 1/3, none.
    np.testing.assert_allclose(average_precision(A_TRUE, probs), [2 / 3, 2 / 3, 1 / 3, np.nan])
    assert mean_average_precision(A_TRUE, probs) == pytest.approx(5 / 9)


def test_a_single_instance():
    y_true, probs = [[0, 1, 1]], [[0.2, 0.9, 0.4]]
    # predicted [0 1 0]: one wrong entry of 3.
    assert hamming_loss(y_true, probs) == pytest.approx(1 / 3)
    assert exact_match_ratio(y_true, probs) == 0
    np.testing.assert_allclose(average_precision(y_true, probs), [np.nan, 1, 1])
    assert mean_average_precision(y_true, probs) == 1
    # ranks: c1 1, c2 2, c0 3 -> no error, coverage 2 - 1, no misordered pair, LRAP 1.
    assert one_error(y_true, probs) == 0
    assert coverage(y_true, probs) == 1
    assert ranking_loss(y_true, probs) == 0
    assert label_ranking_average_precision(y_true, probs) == 1


def test_an_instance_with_every_label_true():
    # No false label to misorder; coverage must reach the last label.
    y_true, probs = [[1, 1, 1]], [[0.3, 0.9, 0.1]]
    assert ranking_loss(y_true, probs) == 0
    assert label_ranking_average_precision(y_true, probs) == 1
    assert coverage(y_true, probs) == 2


def test_no_class_with_positives_has_no_map():
    y_true = np.zeros((2, 3), dtype=int)
    assert math.isnan(mean_average_precision(y_true, [[0.1, 0.2, 0.3]] * 2))
    assert evaluate(y_true, [[0.1, 0.2, 0.3]] * 2)["mean_average_precision"] is None


def test_evaluate_example_b_is_plain_json():
    metrics = evaluate(B_TRUE, B_PROBS, B_THRESHOLDS)
    json.dumps(metrics, allow_nan=False)  # plain types only, no NaN
    assert metrics["num_instances"] == 4
    assert metrics["instances_without_labels"] == 1
    assert metrics["thresholds"] == B_THRESHOLDS
    assert metrics["label_accuracy"] == pytest.approx(0.5)
    assert metrics["micro_f1"] == pytest.approx(0.4)
    assert metrics["macro_f1"] == pytest.approx(0.5)
    assert metrics["mean_average_precision"] == pytest.approx(13 / 18)
    assert metrics["average_precision"] == pytest.approx([3 / 4, 5 / 12, 1])
    assert metrics["one_error"] == pytest.approx(1 / 4)
    assert metrics["coverage"] == pytest.approx(5 / 4)
    assert metrics["ranking_loss"] == pytest.approx(3 / 8)
    assert metrics["label_ranking_average_precision"] == pytest.approx(19 / 24)
    assert metrics["support"] == [2, 2, 1]


def test_evaluate_example_a_keeps_every_measure_in_its_place():
    # Example A gives a different value to every summary measure, so a measure reported
    # under another's name shows (in example B micro P, R and F1 are all 0.4).
    metrics = evaluate(A_TRUE, A_PROBS)
    assert metrics["num_instances"] == 3
    assert metrics["num_classes"] == 4
    assert metrics["instances_without_labels"] == 0
    assert metrics["label_accuracy"] == pytest.approx(9 / 12)
    assert metrics["hamming_loss"] == pytest.approx(3 / 12)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    # micro: TP 4, FP 2, FN 1; macro: the means of the per-class lists below.
    assert (metrics["micro_precision"], metrics["micro_recall"], metrics["micro_f1"]) == (
        pytest.approx(4 / 6), pytest.approx(4 / 5), pytest.approx(8 / 11))
    assert (metrics["macro_precision"], metrics["macro_recall"], metrics["macro_f1"]) == (
        pytest.approx(3 / 4), pytest.approx(2.5 / 4), pytest.approx((8 / 3) / 4))
    assert metrics["precision"] == pytest.approx([1, 1, 1, 0])
    assert metrics["recall"] == pytest.approx([0.5, 1, 1, 0])
    assert metrics["f1"] == pytest.approx([2 / 3, 1, 1, 0])
    # Each class's positives score above its negatives: AP 1, 1, 1 and none.
    assert metrics["average_precision"] == [1, 1, 1, None]
    assert metrics["mean_average_precision"] == 1
    # As in test_ranking_measures_example_a.
    assert metrics["one_error"] == 0
    assert metrics["coverage"] == pytest.approx(1.0)
    assert metrics["ranking_loss"] == pytest.approx(1 / 12)
    assert metrics["label_ranking_average_precision"] == pytest.approx(17 / 18)
    assert metrics["support"] == [2, 2, 1, 0]


@pytest.mark.filterwarnings("error")
def test_zero_division_gives_zero_without_a_numpy_warning():
    # Class 3 of example A has recall 0/0 and no positives; 0/0 is answered, never computed.
    precision, recall, f1 = precision_recall_f1(A_TRUE, A_PROBS)
    assert (precision[3], recall[3], f1[3]) == (0, 0, 0)
    assert ranking_loss([[0, 0], [1, 1]], [[0.2, 0.4], [0.3, 0.1]]) == 0


def test_evaluate_marks_a_class_without_positives():
    metrics = evaluate(A_TRUE, A_PROBS)
    assert metrics["thresholds"] == [0.5] * 4  # a scalar is spread over the classes
    assert metrics["average_precision"][3] is None
    assert metrics["support"][3] == 0


def test_format_report_lists_summary_and_classes():
    names = ["desert", "mountains", "sea", "sunset"]
    report = format_report(evaluate(A_TRUE, A_PROBS), names)
    lines = report.splitlines()
    assert "label accuracy 0.7500" in report
    assert "exact match 0.3333" in report
    assert "mAP 1.0000" in report
    assert lines[-1].split() == ["sunset", "0.5000", "-", "0.0000", "0.0000", "0.0000", "0"]
    assert lines[-4].split()[0] == "desert"
    with pytest.raises(ValueError):
        format_report(evaluate(A_TRUE, A_PROBS), names[:3])


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        hamming_loss(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError):
        precision_recall_f1(A_TRUE, A_PROBS, average="weighted")
    with pytest.raises(ValueError):
        evaluate(A_TRUE, A_PROBS[:, :3])


# Equivalent mutant: `np.where(denominator == 0, 1.0, denominator)` -> `np.where(denominator == 0, 2.0, denominator)`:
# the 1.0 only stands in for a zero denominator, whose quotient np.where then replaces by 0.
# Equivalent mutant: `np.where(y_true, rank, 0)` -> `np.where(y_true, rank, 1)`: a true
# label's rank is at least 1, so the row's maximum is unchanged, and a row without true
# labels gives max(0 - 1, 0) = max(1 - 1, 0) = 0 either way.


def test_evaluate_applies_the_top_margin_rule_to_the_label_set_measures():
    y_true = [[1, 0], [0, 1]]
    probs = [[0.4, 0.1], [0.2, 0.9]]  # the first image is under both thresholds
    plain = evaluate(y_true, probs, 0.5)
    ruled = evaluate(y_true, probs, 0.5, never_empty=True)
    assert (plain["predicted_without_labels"], ruled["predicted_without_labels"]) == (1, 0)
    assert (plain["exact_match"], ruled["exact_match"]) == (0.5, 1.0)
    assert ruled["never_empty"] and not plain["never_empty"]
    assert ruled["mean_average_precision"] == plain["mean_average_precision"]  # no threshold


def test_the_label_set_measures_leave_an_empty_set_empty_unless_asked():
    y_true = [[1, 0], [0, 1]]
    probs = [[0.4, 0.1], [0.2, 0.9]]  # the first image is under both thresholds
    # Without the rule the first image's [0, 0] gets one of its two entries wrong.
    assert label_accuracy(y_true, probs, 0.5) == 0.75
    assert label_accuracy(y_true, probs, 0.5, never_empty=True) == 1.0
    assert hamming_loss(y_true, probs, 0.5) == 0.25


def test_the_text_report_says_when_the_top_margin_rule_filled_empty_sets():
    y_true = [[1, 0], [0, 1]]
    probs = [[0.4, 0.1], [0.2, 0.9]]
    ruled = format_report(evaluate(y_true, probs, 0.5, never_empty=True), ["a", "b"])
    plain = format_report(evaluate(y_true, probs, 0.5), ["a", "b"])
    assert ruled.splitlines()[0].endswith("predicted without any 0  (top-margin rule)")
    assert plain.splitlines()[0].endswith("predicted without any 1")
