"""Near-duplicates by blocked cosine search, on vectors small enough to work out by hand."""

import csv
import io

import numpy as np
import pytest

from multilabel.data.dataset import Part
from multilabel.evaluation import near_duplicates

# Five vectors in 2-D. 0 and 1 point the same way (cosine 1); 2 is 0 turned by a little
# (cos = 0.8 / sqrt(0.8^2 + 0.6^2) = 0.8); 3 is orthogonal to 0; 4 is zero.
VECTORS = np.array([[1.0, 0.0], [2.0, 0.0], [0.8, 0.6], [0.0, 3.0], [0.0, 0.0]])


def test_unit_rows_keeps_a_zero_row_zero():
    unit = near_duplicates.unit_rows(VECTORS)
    np.testing.assert_allclose(np.linalg.norm(unit[:4], axis=1), 1, rtol=1e-6)
    assert not unit[4].any()


@pytest.mark.parametrize("block_rows", [1, 2, 3, 1024])
def test_nearest_neighbours_are_the_same_in_any_block_size(block_rows):
    indices, similarities = near_duplicates.nearest_neighbours(VECTORS, k=2,
                                                               block_rows=block_rows)
    # Row 0: 1 (1.0), then 2 (0.8). Row 2: 0 and 1 tie at 0.8, lower index first.
    # Row 3: 2 (0.6), then 0 and 1 and 4 (0): 0 first.
    np.testing.assert_array_equal(indices[0], [1, 2])
    np.testing.assert_array_equal(indices[2], [0, 1])
    np.testing.assert_array_equal(indices[3], [2, 0])
    np.testing.assert_allclose(similarities[0], [1.0, 0.8], atol=1e-6)
    np.testing.assert_allclose(similarities[3], [0.6, 0.0], atol=1e-6)
    assert 4 not in indices[4][:0]  # nothing to say of a zero row but that it ran


def test_a_row_is_never_its_own_neighbour():
    indices, _ = near_duplicates.nearest_neighbours(np.ones((4, 3)), k=3, block_rows=2)
    for i, row in enumerate(indices):
        assert i not in row and sorted(row) == sorted(set(range(4)) - {i})


def test_k_is_capped_by_the_other_rows():
    indices, _ = near_duplicates.nearest_neighbours(VECTORS[:2], k=10)
    assert indices.shape == (2, 1)
    assert near_duplicates.nearest_neighbours(VECTORS[:1], k=10)[0].shape == (1, 0)


def test_pairs_at_the_threshold_are_kept_once_most_similar_first():
    pairs = near_duplicates.find_pairs(VECTORS, threshold=0.8, k=3)
    assert [(p.first, p.second) for p in pairs] == [(0, 1), (0, 2), (1, 2)]
    assert pairs[0].similarity == pytest.approx(1.0)
    assert pairs[1].similarity == pytest.approx(0.8)
    assert near_duplicates.find_pairs(VECTORS, threshold=0.81, k=3) == (
        near_duplicates.Pair(0, 1, pytest.approx(1.0)),)


def _found():
    # Images: train a, train b (a's copy, other labels), test c (a's copy), test d alone,
    # validation e (d's copy).
    parts = (Part("train", ("a", "b"), np.array([[1, 0], [0, 1]]), ("", "")),
             Part("validation", ("e",), np.array([[0, 1]]), ("",)),
             Part("test", ("c", "d"), np.array([[1, 0], [1, 0]]), ("", "")))
    vectors = np.array([[1, 0, 0], [1, 0, 0.01], [0, 0, 1], [1, 0.01, 0], [0, 0.01, 1]])
    return near_duplicates.find_near_duplicates(parts, vectors, threshold=0.99)


def test_counts_name_leaks_copies_within_training_and_different_labels():
    found = _found()
    assert found.parts == ("train", "train", "validation", "test", "test")
    # Pairs: a-b (train-train), a-c and b-c (train-test), e-d (validation-test); all but
    # a-c differ in labels.
    assert {(found.paths[p.first], found.paths[p.second]) for p in found.pairs} == {
        ("a", "b"), ("a", "c"), ("b", "c"), ("e", "d")}
    assert found.leaked_test() == [3, 4]
    assert found.counts() == {"leaked_test": 2, "within_training": 1, "different_labels": 3}


def test_two_test_copies_are_no_leak():
    parts = (Part("test", ("c", "d"), np.array([[1], [1]]), ("", "")),)
    found = near_duplicates.find_near_duplicates(parts, np.ones((2, 3)))
    assert len(found.pairs) == 1 and found.leaked_test() == []
    assert found.counts() == {"leaked_test": 0, "within_training": 0, "different_labels": 0}


def test_the_csv_has_a_row_per_pair_with_parts_and_whether_labels_agree():
    rows = list(csv.reader(io.StringIO(near_duplicates.csv_text(_found()))))
    assert tuple(rows[0]) == near_duplicates.CSV_HEADER
    by_pair = {(r[0], r[1]): r for r in rows[1:]}
    assert by_pair[("a", "b")][3:] == ["train", "train", "no"]
    assert by_pair[("a", "c")][3:] == ["train", "test", "yes"]
    assert by_pair[("e", "d")][3:] == ["validation", "test", "no"]
    assert all(float(r[2]) >= 0.99 for r in rows[1:])
