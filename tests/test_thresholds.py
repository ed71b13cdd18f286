"""Per-class F1 thresholds on hand-worked columns, and the thresholds file format."""

import json

import numpy as np
import pytest

from multilabel.base.errors import UserError
from multilabel.evaluation.thresholds import (
    MIN_POSITIVES,
    apply_thresholds,
    best_f1_threshold,
    best_f1_thresholds,
    data_never_empty,
    guarded,
    rare_guarded,
    read_rule,
    read_thresholds,
    rule_path,
    write_rule,
    write_thresholds,
)


def f1_at(labels, scores, threshold):
    """Reference F1 of `scores >= threshold`, zero_division=0."""
    predicted = np.asarray(scores) >= threshold
    labels = np.asarray(labels).astype(bool)
    tp = (predicted & labels).sum()
    denominator = predicted.sum() + labels.sum()
    return 0.0 if denominator == 0 else 2 * tp / denominator


def test_picks_the_midpoint_with_the_best_f1():
    # scores 0.9 0.8 0.3 0.1, labels 1 0 1 0, P = 2; F1 = 2 TP / (predicted + P):
    #   0.85 -> TP 1 of 1: 2/3    0.55 -> TP 1 of 2: 2/4
    #   0.2  -> TP 2 of 3: 4/5    0.05 -> TP 2 of 4: 4/6
    assert best_f1_threshold([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(0.2)


def test_perfect_separation_gives_the_middle_of_the_gap():
    assert best_f1_threshold([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.5)


def test_tie_goes_to_the_candidate_nearest_one_half():
    # labels 1 0 0 1, scores 0.99 0.97 0.95 0.9:
    #   0.98 -> 2/3   0.96 -> 2/4   0.925 -> 2/5   0.45 (all) -> 4/6 = 2/3
    # 0.98 and 0.45 tie; 0.45 is nearer 0.5, so it wins although it is smaller.
    assert best_f1_threshold([1, 0, 0, 1], [0.99, 0.97, 0.95, 0.9]) == pytest.approx(0.45)


def test_tie_at_equal_distance_goes_to_the_larger():
    # labels 1 0 0 1 0, scores 0.875 0.625 0.625 0.375 0.125 (exact in binary):
    #   0.75 -> 2/3   0.5 -> TP 1 of 3: 2/5   0.25 -> TP 2 of 4: 4/6   0.0625 -> 4/7
    # 0.75 and 0.25 tie, both 0.25 from 0.5: the larger predicts fewer labels.
    labels = [1, 0, 0, 1, 0]
    assert best_f1_threshold(labels, [0.875, 0.625, 0.625, 0.375, 0.125]) == 0.75


# Equivalent mutant: `2 * tp_at` -> `3 * tp_at`: F1 is only compared with itself, and
# scaling every candidate's value by 3/2 keeps which are largest and which tie (equal
# ratios of integers stay equal floats, unequal ones stay apart).


def test_a_class_without_positives_keeps_one_half():
    assert best_f1_threshold([0, 0, 0], [0.9, 0.2, 0.6]) == 0.5


def test_all_equal_scores_predict_everything():
    # One group: the only candidate is half the score; F1 = 2*2/(3+2) = 4/5.
    assert best_f1_threshold([1, 0, 1], [0.3, 0.3, 0.3]) == pytest.approx(0.15)


def test_a_tie_group_is_never_split():
    # The positive and a negative share 0.6: both are predicted or neither.
    threshold = best_f1_threshold([0, 1, 0], [0.6, 0.6, 0.2])
    assert threshold == pytest.approx(0.4)
    predicted = apply_thresholds([[0.6], [0.6], [0.2]], [threshold]).ravel()
    assert predicted.tolist() == [True, True, False]


def test_a_single_instance():
    assert best_f1_threshold([1], [0.7]) == pytest.approx(0.35)


def test_a_zero_score_still_allows_predicting_everything():
    threshold = best_f1_threshold([1, 1], [0.0, 0.0])
    assert threshold == 0.0
    assert apply_thresholds([[0.0], [0.0]], threshold).all()


@pytest.mark.parametrize("high", [0.3, 0.7])
def test_adjacent_floats_are_still_separated(high):
    low = np.nextafter(high, 0.0)  # no float lies strictly between them
    # Their midpoint rounds down onto `low` for 0.3 (the guard then takes `high` itself)
    # and up onto `high` for 0.7: both ways the threshold is `high`.
    assert ((high + low) / 2 == low) == (high == 0.3)
    threshold = best_f1_threshold([1, 0], [high, low])
    assert threshold == high
    assert apply_thresholds([[high], [low]], threshold).ravel().tolist() == [True, False]


def test_chosen_threshold_is_optimal_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(50):
        labels = rng.integers(0, 2, size=12)
        scores = np.round(rng.random(12), 1)  # rounding makes ties common
        threshold = best_f1_threshold(labels, scores)
        best_on_grid = max(f1_at(labels, scores, t) for t in np.linspace(0, 1, 201))
        assert f1_at(labels, scores, threshold) == pytest.approx(best_on_grid)


def test_thresholds_per_class():
    y_true = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]])
    probs = np.array([[0.9, 0.1, 0.3], [0.8, 0.2, 0.3], [0.3, 0.3, 0.3], [0.1, 0.4, 0.3]])
    # class 0: the first example's column (0.2); class 1: no positives (0.5);
    # class 2: all equal 0.3, labels 0 1 1 0 -> predict all, F1 4/6 (0.15).
    np.testing.assert_allclose(best_f1_thresholds(y_true, probs), [0.2, 0.5, 0.15])


def test_thresholds_reject_mismatched_or_bad_input():
    with pytest.raises(ValueError, match=r"y_true \(1, 2\) and probs \(1, 3\) must be equal"):
        best_f1_thresholds([[1, 0]], [[0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="y_true must hold only 0 and 1"):
        best_f1_thresholds([[2, 0]], [[0.5, 0.5]])
    for bad in (np.nan, 1.5, -0.25, np.nextafter(1.0, 2.0)):
        with pytest.raises(ValueError, match=r"probs must be probabilities in \[0, 1\]"):
            best_f1_thresholds([[1, 0]], [[0.5, bad]])


def test_probabilities_of_exactly_zero_and_one_are_accepted():
    # labels 1 0, scores 1.0 0.0: perfect separation in the middle of the gap.
    np.testing.assert_array_equal(best_f1_thresholds([[1], [0]], [[1.0], [0.0]]), [0.5])


def test_apply_thresholds_per_class_and_scalar():
    probs = np.array([[0.2, 0.6], [0.5, 0.4]])
    assert apply_thresholds(probs, [0.3, 0.5]).tolist() == [[False, True], [True, False]]
    # `>=`: a probability equal to the threshold is predicted.
    assert apply_thresholds(probs, 0.5).tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize("thresholds", [
    [0.5, 0.5, 0.5],  # one too many: numpy could not broadcast it either
    [0.5],  # one for two classes: numpy would broadcast it silently
    [[0.3, 0.5]],  # [1, C]: numpy would broadcast it silently too
])
def test_apply_thresholds_refuses_a_shape_other_than_one_per_class(thresholds):
    with pytest.raises(ValueError, match=r"must be a scalar or \[2\]"):
        apply_thresholds(np.array([[0.2, 0.6], [0.5, 0.4]]), thresholds)


def test_apply_thresholds_refuses_probabilities_that_are_not_a_matrix():
    with pytest.raises(ValueError, match=r"probs must be \[N, C\], got shape \(2,\)"):
        apply_thresholds([0.2, 0.6], 0.5)


def test_thresholds_round_trip_exactly(tmp_path):
    path = tmp_path / "MODEL_DETAILS" / "output_thresholds.txt"
    values = np.array([0.1 + 0.2, 0.5, 1 / 3, 0.0, 1.0])
    write_thresholds(path, values)
    assert path.read_text().splitlines()[0] == "0.30000000000000004"
    np.testing.assert_array_equal(read_thresholds(path, 5), values)


def test_write_rejects_a_value_outside_the_unit_interval(tmp_path):
    with pytest.raises(ValueError):
        write_thresholds(tmp_path / "t.txt", [0.5, 1.5])
    assert not (tmp_path / "t.txt").exists()


def test_read_accepts_a_missing_final_newline(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("0.25\n0.75")
    np.testing.assert_array_equal(read_thresholds(path, 2), [0.25, 0.75])


@pytest.mark.parametrize(
    "text, line",
    [
        ("0.5\nhigh\n0.5\n", 2),  # not a number
        ("0.5\n0.5\n1.5\n", 3),  # above 1
        ("-0.1\n0.5\n0.5\n", 1),  # below 0
        ("0.5\nnan\n0.5\n", 2),  # NaN parses as a float but is no threshold
        ("0.5\n\n0.5\n", 2),  # an empty line in the middle
        ("0.5\n0.5\n0.5\n0.5\n", 4),  # more lines than classes
        ("0.5\n0.5\n", None),  # too few: no single line is wrong
    ],
)
def test_read_names_the_bad_line(tmp_path, text, line):
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        read_thresholds(path, 3)
    assert caught.value.path == str(path)
    assert caught.value.line == line


def test_read_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as caught:
        read_thresholds(tmp_path / "absent.txt", 3)
    assert "absent.txt" in str(caught.value)


def test_never_empty_gives_an_empty_row_the_class_closest_to_its_threshold():
    probs = [[0.2, 0.45, 0.1],   # all under: green misses by 0.05, the least
             [0.9, 0.1, 0.1],    # red is over: the rule leaves the row alone
             [0.1, 0.1, 0.25]]   # blue misses by 0.05 against red's 0.2
    thresholds = [0.3, 0.5, 0.3]
    assert apply_thresholds(probs, thresholds).sum(axis=1).tolist() == [0, 1, 0]
    assert apply_thresholds(probs, thresholds, never_empty=True).tolist() == [
        [False, True, False], [True, False, False], [False, False, True]]


def test_data_never_empty_needs_a_label_on_every_image_of_every_part():
    assert data_never_empty(np.array([[1, 0], [0, 1]]), np.array([[1, 1]]))
    assert not data_never_empty(np.array([[1, 0], [0, 0]]), np.array([[1, 1]]))
    assert data_never_empty(np.array([[1, 0]]), np.zeros((0, 2)))  # an empty part is no image
    assert not data_never_empty(np.zeros((0, 2)))


@pytest.mark.parametrize("never_empty", [True, False])
def test_the_rule_is_kept_beside_the_thresholds_and_read_back(tmp_path, never_empty):
    path = tmp_path / "output_thresholds.txt"
    write_thresholds(path, [0.25, 0.75])
    write_rule(path, never_empty)
    assert rule_path(path) == str(tmp_path / "output_thresholds.json")
    assert read_rule(path) is never_empty
    assert read_thresholds(path, 2).tolist() == [0.25, 0.75]  # the old format, unchanged
    why = json.loads((tmp_path / "output_thresholds.json").read_text())["why"]
    assert why.startswith("every training image has at least one label" if never_empty
                          else "some training images have no label")


def test_thresholds_without_a_rule_file_allow_an_empty_set(tmp_path):
    assert read_rule(tmp_path / "output_thresholds.txt") is False


@pytest.mark.parametrize("content", ['{"never_empty": "yes"}', "[1]", "not json"])
def test_a_bad_rule_file_is_named(tmp_path, content):
    (tmp_path / "output_thresholds.json").write_text(content)
    with pytest.raises(UserError, match="output_thresholds.json: not a label rule file"):
        read_rule(tmp_path / "output_thresholds.txt")


def test_a_threshold_worse_than_half_on_held_out_predictions_is_replaced_by_half():
    labels = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    probs = np.array([[0.9, 0.9], [0.6, 0.2], [0.3, 0.8], [0.1, 0.35]])
    # Class 0: 0.2 predicts the 0.3 negative too (F1 0.8), 0.5 is perfect (1.0); class 1:
    # 0.3 predicts the 0.35 negative too (F1 0.8). Both replaced; a tie keeps its own.
    kept, replaced = guarded([0.2, 0.3], labels, probs)
    assert kept.tolist() == [0.5, 0.5]
    assert replaced == {0: (0.8, 1.0), 1: (0.8, 1.0)}
    kept, replaced = guarded([0.55, 0.7], labels, probs)
    assert kept.tolist() == [0.55, 0.7] and replaced == {}  # as good as 0.5: kept
    kept, replaced = guarded([0.7, 0.85], labels, probs)
    assert kept.tolist() == [0.5, 0.5]  # too high: each misses a positive
    assert replaced[0] == (pytest.approx(2 / 3), 1.0)


def test_a_class_with_too_few_positives_keeps_one_half():
    """Issue 32: with 3 positives the best F1 sits near 0 and floods new images."""
    y = np.zeros((20, 3), np.int64)
    y[:3, 0] = 1  # 3 positives: too few
    y[:MIN_POSITIVES, 1] = 1  # just enough
    kept, rare = rare_guarded([0.0088, 0.02, 0.3], y)
    assert kept.tolist() == [0.5, 0.02, 0.3]  # the third has none: not this guard's
    assert rare == {0: (3, 0.0088)}
    kept, rare = rare_guarded([0.1, 0.2], np.array([[1, 0], [0, 0]]), minimum=1)
    assert kept.tolist() == [0.1, 0.2] and rare == {}
