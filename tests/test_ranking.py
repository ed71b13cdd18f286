"""What to label next: smallest margin to a threshold first, near-duplicates last."""

import numpy as np
import pytest

from multilabel.labelling import ranking


def test_the_margin_is_the_closest_threshold_in_log_odds():
    # logit(.5) = 0, logit(.9) = log 9: row 0 is log 9 from both, row 1 on class 0's.
    probs = np.array([[0.5, 0.9], [0.9, 0.2]])
    np.testing.assert_allclose(ranking.margins(probs, np.array([0.9, 0.5])),
                               [np.log(9), 0], atol=1e-9)
    # Probabilities of 0 and 1 are clipped, never infinite.
    assert np.isfinite(ranking.margins(np.array([[0.0, 1.0]]), np.array([0.5, 0.5]))).all()


def test_photos_are_ranked_by_margin_and_without_vectors_none_is_a_repeat():
    probs = np.array([[0.9], [0.55], [0.02], [0.4], [0.9]])
    order, repeats = ranking.rank_uncertain(probs, np.array([0.5]))
    assert order.tolist() == [1, 3, 0, 4, 2]  # 0 and 4 tie: file order
    assert not repeats.any()


def test_near_duplicates_of_a_photo_above_or_of_training_go_last():
    probs = np.array([[0.5], [0.52], [0.9], [0.6], [0.99]])
    vectors = np.array([[1, 0, 0], [1, 0, 0.01], [0, 1, 0], [0, 0, 1], [0, 1, 0.01]], float)
    known = np.array([[0, 0, 1.0]])  # photo 3 repeats a training image
    order, repeats = ranking.rank_uncertain(probs, np.array([0.5]), vectors, known)
    # By margin: 0, 1, 3, 2, 4. 1 repeats 0, 3 repeats training, 4 repeats 2.
    assert repeats.tolist() == [False, True, False, True, True]
    assert order.tolist() == [0, 2, 1, 3, 4]


@pytest.mark.parametrize("known", [None, np.zeros((0, 3))])
def test_no_training_vectors_means_repeats_only_among_the_photos(known):
    vectors = np.array([[1, 0, 0], [1, 0, 0.0]])
    order, repeats = ranking.rank_uncertain(np.array([[0.5], [0.6]]), np.array([0.5]), vectors,
                                            known)
    assert order.tolist() == [0, 1] and repeats.tolist() == [False, True]
