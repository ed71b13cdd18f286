"""Confident learning's label issues on cases small enough to work out by hand."""

import csv
import io

import numpy as np
import pytest

from multilabel.evaluation import label_issues

# One class, six images. Given present: 0, 1, 2; given absent: 3, 4, 5.
#   t_present = (.9 + .8 + .1) / 3 = .6     t_absent = (.8 + .9 + .3) / 3 = .667
#   image  p   confidently      image  p   confidently
#   0     .9   present          3     .2   absent (1 - p = .8)
#   1     .8   present          4     .1   absent
#   2     .1   absent (.9)      5     .7   present
# Confident joint [given][true]: [[2, 1], [1, 2]]; calibrated, 3 * 1/3 = 1 wrong label
# among each given flag: the given present with the lowest p (2), the given absent with
# the highest (5); both disagree with their flag at 0.5.
ONE_LABELS = np.array([[1], [1], [1], [0], [0], [0]])
ONE_PROBS = np.array([[0.9], [0.8], [0.1], [0.2], [0.1], [0.7]])

# A class the model is shy of: given present 0, 1 (t_present = .35), absent 2, 3, 4
# (t_absent = (.55 + .95 + .9) / 3 = .8). Image 0 (.4) is confidently present, 1 (.3)
# is neither, 2 (.45) confidently present though given absent, 3 and 4 absent. Joint
# [[2, 1], [0, 1]]: one suspect among the given absent, image 2, but at .45 the
# model does not say the class is there, so nothing is flagged.
SHY_LABELS = np.array([[1], [1], [0], [0], [0]])
SHY_PROBS = np.array([[0.4], [0.3], [0.45], [0.05], [0.1]])


def test_thresholds_are_the_mean_probability_of_each_given_flag():
    t_present, t_absent = label_issues.class_thresholds(ONE_LABELS, ONE_PROBS)
    np.testing.assert_allclose(t_present, [0.6])
    np.testing.assert_allclose(t_absent, [2 / 3])
    # A class nobody is given has no present threshold: never confidently present.
    t_present, t_absent = label_issues.class_thresholds([[0], [0]], [[0.9], [0.2]])
    assert np.isnan(t_present[0]) and t_absent[0] == pytest.approx(0.45)


def test_the_confident_joint_counts_given_against_confident_flags():
    np.testing.assert_array_equal(label_issues.confident_joint(ONE_LABELS, ONE_PROBS),
                                  [[[2, 1], [1, 2]]])
    np.testing.assert_array_equal(label_issues.confident_joint(SHY_LABELS, SHY_PROBS),
                                  [[[2, 1], [0, 1]]])


def test_both_thresholds_met_goes_to_the_larger_probability_and_a_tie_to_absent():
    # t_present = t_absent = .5: both images are confident both ways; p = .5 is a tie.
    np.testing.assert_array_equal(label_issues.confident_joint([[1], [0]], [[0.5], [0.5]]),
                                  [[[1, 0], [1, 1]]])  # [given 1][true 0] = 1, diag raised


def test_noise_counts_calibrate_each_row_to_its_images():
    np.testing.assert_array_equal(label_issues.noise_counts(ONE_LABELS, ONE_PROBS), [[1, 1]])
    np.testing.assert_array_equal(label_issues.noise_counts(SHY_LABELS, SHY_PROBS), [[1, 0]])
    # One image given present, confidently absent: 1 * 1 / 2 rounds to 0, it is kept.
    np.testing.assert_array_equal(
        label_issues.noise_counts([[1], [0], [0]], [[0.1], [0.1], [0.1]]), [[0, 0]])


def test_prune_by_noise_rate_flags_the_largest_margins():
    add, remove = label_issues.find_issues(ONE_LABELS, ONE_PROBS)
    assert np.flatnonzero(add[:, 0]).tolist() == [5]
    assert np.flatnonzero(remove[:, 0]).tolist() == [2]


def test_a_suspect_the_model_does_not_contradict_at_one_half_is_dropped():
    add, remove = label_issues.find_issues(SHY_LABELS, SHY_PROBS)
    assert not add.any() and not remove.any()


def test_classes_are_judged_one_against_the_rest_each_on_its_own():
    # Class 0 is ONE's case; class 1 is all absent and all low: nothing to change there.
    labels = np.concatenate([ONE_LABELS, np.zeros_like(ONE_LABELS)], axis=1)
    probs = np.concatenate([ONE_PROBS, np.full_like(ONE_PROBS, 0.05)], axis=1)
    add, remove = label_issues.find_issues(labels, probs)
    assert np.argwhere(add).tolist() == [[5, 0]] and np.argwhere(remove).tolist() == [[2, 0]]


def test_quality_is_an_exponential_moving_average_of_sorted_self_confidences():
    # Self-confidences .9, .7 (1 - .3), .4 (1 - .6): .8 * .7 + .2 * .9 = .74, then
    # .8 * .4 + .2 * .74 = .468. One class: its self-confidence.
    np.testing.assert_allclose(label_issues.quality_scores([[1, 0, 0]], [[0.9, 0.3, 0.6]]),
                               [0.468])
    np.testing.assert_allclose(label_issues.quality_scores(ONE_LABELS, ONE_PROBS).ravel(),
                               [0.9, 0.8, 0.1, 0.8, 0.9, 0.3])


def _part(name, labels, probs):
    return label_issues.HeldOut(name, tuple(f"{name}/{i}.jpg" for i in range(len(labels))),
                                np.asarray(labels), np.asarray(probs))


def test_issues_of_every_part_ranked_worst_first():
    # ONE flags 2 (score .1) and 5 (.3); as a test part with p shifted, 5 scores .25.
    test_probs = ONE_PROBS.copy()
    test_probs[5] = 0.75
    issues = label_issues.rank_issues([_part("train", ONE_LABELS, ONE_PROBS),
                                       _part("test", ONE_LABELS, test_probs),
                                       _part("empty", np.zeros((0, 1), int), np.zeros((0, 1)))])
    assert [(i.part, i.image, round(i.score, 6)) for i in issues] == [
        ("train", "train/2.jpg", 0.1), ("test", "test/2.jpg", 0.1),
        ("test", "test/5.jpg", 0.25), ("train", "train/5.jpg", 0.3)]
    assert issues[0].remove.tolist() == [True] and issues[0].add.tolist() == [False]
    assert issues[0].given.tolist() == [True] and issues[0].probs.tolist() == [0.1]


def test_the_csv_lists_given_and_suggested_names_escaped(tmp_path):
    names = ("sea, calm", 'say "sun"')
    labels = np.concatenate([ONE_LABELS, 1 - ONE_LABELS], axis=1)
    probs = np.concatenate([ONE_PROBS, 1 - ONE_PROBS], axis=1)
    part = label_issues.HeldOut("train", tuple(f"dir, {i}/a.jpg" for i in range(6)), labels, probs)
    path = tmp_path / "out" / "label_issues.csv"
    issues = label_issues.write_label_issues(path, [part], names)
    text = path.read_text(encoding="utf-8")
    # Images 2 and 5, each with both classes wrong: scores .1 and .3 (both confidences).
    assert [i.image for i in issues] == ["dir, 2/a.jpg", "dir, 5/a.jpg"]
    assert text.splitlines()[1] == '"dir, 2/a.jpg","sea, calm","say ""sun""",' \
                                   '"sea, calm",0.1000,train'
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [list(label_issues.CSV_HEADER),
                    ["dir, 2/a.jpg", "sea, calm", 'say "sun"', "sea, calm", "0.1000", "train"],
                    ["dir, 5/a.jpg", 'say "sun"', "sea, calm", 'say "sun"', "0.3000", "train"]]


def test_nothing_to_flag_writes_the_header_only(tmp_path):
    path = tmp_path / "label_issues.csv"
    assert label_issues.write_label_issues(path, [_part("train", SHY_LABELS, SHY_PROBS)],
                                           ("a",)) == []
    assert path.read_text() == "image,given,suggested_add,suggested_remove,score,part\n"


# Twelve images. Class 0 is ONE twice: 2 wrong labels estimated among each flag (4 in
# all). Class 1 is clean but for image 5, given present at p .15: t_present =
# (5 * .9 + .15) / 6 = .775, t_absent = (4 * .9 + .6 + .7) / 6 = .817; image 5 is
# confidently absent (.85), so 6 * 1/6 = 1 wrong label among the given present, none among
# the absent. The median class has (4 + 1) / 2 = 2.5: weights 1 (capped) and 1/2.5 = .4.
NOISY_LABELS = np.stack([np.tile(ONE_LABELS[:, 0], 2), [1] * 6 + [0] * 6], axis=1)
NOISY_PROBS = np.stack([np.tile(ONE_PROBS[:, 0], 2),
                        [.9] * 5 + [.15] + [.1] * 4 + [.4, .3]], axis=1)


def test_a_class_counts_its_doubts_by_the_label_noise_estimated_in_it():
    assert label_issues.noise_counts(NOISY_LABELS, NOISY_PROBS).tolist() == [[2, 2], [0, 1]]
    np.testing.assert_allclose(label_issues.class_weights(NOISY_LABELS, NOISY_PROBS), [1, 0.4])
    # A third class, class 0's complement, with 2 + 2 wrong labels: the median class has
    # 4, so class 1 counts 1/4 and the other two fully.
    three = np.concatenate([NOISY_LABELS, 1 - NOISY_LABELS[:, :1]], axis=1)
    three_probs = np.concatenate([NOISY_PROBS, 1 - NOISY_PROBS[:, :1]], axis=1)
    assert label_issues.noise_counts(three, three_probs)[2].tolist() == [2, 2]
    np.testing.assert_allclose(label_issues.class_weights(three, three_probs), [1, 0.25, 1])
    # No class with any estimated noise: nothing to weigh by.
    clean = np.array([[1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(label_issues.class_weights(clean, clean * 0.8 + 0.1), [1, 1])


def test_doubts_on_a_clean_class_go_down_the_ranking():
    # Image 5 is flagged on class 0 (given absent, p .7: confidence .3) and on class 1
    # (given present, p .15: .15). Unweighed it comes first, .8 * .15 + .2 * .3 = .18;
    # with class 1 at .4 its confidence there is 1 - .4 * .85 = .66, the score
    # .8 * .3 + .2 * .66 = .372, after images 2 and 8 (.8 * .1 + .2 * (1 - .4 * .1) = .272).
    # Image 11: class 0 .3, class 1 given absent at p .3: 1 - .4 * .3 = .88, so .416.
    plain = label_issues.quality_scores(NOISY_LABELS, NOISY_PROBS)
    assert np.argsort(plain[[2, 5, 8, 11]], kind="stable").tolist() == [1, 0, 2, 3]
    part = label_issues.HeldOut("train", tuple(str(i) for i in range(12)), NOISY_LABELS,
                                NOISY_PROBS)
    issues = label_issues.rank_issues([part])
    assert [i.image for i in issues] == ["2", "8", "5", "11"]
    np.testing.assert_allclose([i.score for i in issues], [.272, .272, .372, .416])
    # A test part is weighed by the training part's weights, not its own.
    test = label_issues.HeldOut("test", part.paths, NOISY_LABELS, NOISY_PROBS[:, ::-1])
    alone = {i.image: i.score for i in label_issues.rank_issues([test])}
    beside = {i.image: i.score for i in label_issues.rank_issues([part, test])
              if i.part == "test"}
    assert alone.keys() == beside.keys() and alone != beside
