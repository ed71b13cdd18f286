import hashlib
import itertools
import re

import pytest

from multilabel.data import splitting
from multilabel.base.errors import UserError
from multilabel.data.listfile import Entry


def make_entries(flag_rows):
    return [Entry(i, tuple(f), f"images/{i}.jpg", i) for i, f in enumerate(flag_rows, start=1)]


def grouped_entries(n=100):
    """Like the real set: the file order is grouped by main class."""
    return make_entries([[int(i * 4 // n == c) for c in range(4)] for i in range(n)])


def test_shuffled_is_a_seeded_permutation():
    entries = grouped_entries()
    once = splitting.shuffled(entries, seed=1)
    assert sorted(once, key=lambda e: e.index) == entries
    assert once == splitting.shuffled(list(reversed(entries)), seed=1)
    assert once != entries
    assert once != splitting.shuffled(entries, seed=2)


def test_train_test_split_is_exact_disjoint_covering_and_reproducible():
    entries = grouped_entries()
    train, test = splitting.train_test_split(entries, 0.8, seed=1)
    assert (len(train), len(test)) == (80, 20)
    assert {e.index for e in train}.isdisjoint(e.index for e in test)
    assert {e.index for e in train + test} == {e.index for e in entries}
    assert (train, test) == splitting.train_test_split(entries, 0.8, seed=1)
    assert (train, test) != splitting.train_test_split(entries, 0.8, seed=2)
    # Drawn at random, not the first 80 of a file grouped by class.
    assert any(e.index > 80 for e in train)


def test_the_default_split_is_the_first_part_of_the_seeded_order():
    entries = grouped_entries()
    order = splitting.shuffled(entries, seed=1)
    assert splitting.train_test_split(entries, 0.8, seed=1) == (order[:80], order[80:])


@pytest.mark.parametrize("fraction, words", [
    (0.0, "the train fraction must be between 0 and 1, got 0.0"),
    (1.0, "the train fraction must be between 0 and 1, got 1.0"),
    (-0.5, "the train fraction must be between 0 and 1, got -0.5"),
    (0.01, "a train fraction of 0.01 of 10 images leaves one part empty"),
    (0.99, "a train fraction of 0.99 of 10 images leaves one part empty"),
])
def test_refuses_a_split_that_leaves_a_part_empty(fraction, words):
    with pytest.raises(UserError, match=f"^{re.escape(words)}$"):
        splitting.train_test_split(grouped_entries(10), fraction, seed=0)


@pytest.mark.parametrize("fraction, sizes", [(0.1, (1, 9)), (0.9, (9, 1))])
def test_a_part_of_one_image_is_allowed(fraction, sizes):
    train, test = splitting.train_test_split(grouped_entries(10), fraction, seed=0)
    assert (len(train), len(test)) == sizes


def in_split_order(rows, seed=0):
    """Entries whose flags are `rows` in the order the seeded split takes them."""
    order = splitting.shuffled(make_entries([[]] * len(rows)), seed)
    return [Entry(e.index, tuple(flags), e.path, e.line) for e, flags in zip(order, rows)]


def test_stratified_split_puts_positives_of_every_class_in_both_parts():
    # Class 3 has two positives only, both on images also in the big class 0: a plain
    # draw of 80/20 often leaves the test part without it.
    rows = [[1, 0, 0, 0]] * 60 + [[0, 1, 0, 0]] * 30 + [[0, 0, 1, 0]] * 8 + [[1, 0, 0, 1]] * 2
    entries = make_entries(rows)
    for seed in range(20):
        train, test = splitting.train_test_split(entries, 0.8, seed, stratify=True)
        assert {e.index for e in train}.isdisjoint(e.index for e in test)
        assert len(train) + len(test) == len(entries)
        assert abs(len(train) - 80) <= 2
        for c in range(4):
            assert any(e.flags[c] for e in train) and any(e.flags[c] for e in test), (seed, c)
        assert (train, test) == splitting.train_test_split(entries, 0.8, seed, stratify=True)


def test_stratified_split_keeps_class_proportions_close():
    rows = [[a, b, c] for a, b, c in itertools.product([0, 1], repeat=3)] * 25
    train, test = splitting.train_test_split(make_entries(rows), 0.8, 3, stratify=True)
    for c in range(3):
        assert sum(e.flags[c] for e in test) in (19, 20, 21)


def test_stratified_split_repairs_a_class_used_up_by_rarer_ones():
    # Found by search: the greedy pass leaves a class out of one part, the repair
    # moves an image across without taking any class's last positive.
    rows = [[0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1], [1, 0, 1, 0], [1, 1, 0, 0]]
    train, test = splitting.train_test_split(make_entries(rows), 0.5, 0, stratify=True)
    for c in range(4):
        assert any(e.flags[c] for e in train) and any(e.flags[c] for e in test), c


def test_stratified_split_worked_by_hand():
    # Images p0..p4 in the seeded order, fraction 0.3: wanted sizes 1.5 and 3.5, wanted
    # positives (0.9, 0.6, 0.6) and (2.1, 1.4, 1.4).
    rows = [[1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]
    p = in_split_order(rows)
    # Class 1 has the fewest positives (2; class 2 ties but comes later): p2 goes where
    # more of it is wanted (test, 1.4 > 0.6), p3 to train, which has none yet.
    # Class 0 then: p0 to test, which has none; p1 to test, which wants more (1.1 > -0.1).
    # p4 has no label: both parts want 0.5 more images, the tie goes to train.
    # Train now lacks class 2: the repair moves the first image of test that has it and
    # is not the last of any of its classes there, p0.
    train, test = splitting.train_test_split(p, 0.3, seed=0, stratify=True)
    assert (train, test) == ([p[0], p[3], p[4]], [p[1], p[2]])


def test_images_without_labels_fill_the_parts_to_the_fraction():
    # Wanted sizes 8 and 2. The two positives go one to each part (train wants more of
    # them, then test has none), leaving wants of 7 and 1: six unlabelled images to train
    # until both want 1, the tie to train, the last to test.
    rows = [[1], [1]] + [[0]] * 8
    train, test = splitting.train_test_split(in_split_order(rows), 0.8, 0, stratify=True)
    assert (len(train), len(test)) == (8, 2)
    assert sum(e.flags[0] for e in train) == sum(e.flags[0] for e in test) == 1


def test_the_repair_moves_images_one_by_one_without_taking_a_last_positive():
    # The greedy pass rarely needs two repairs, so the repair is given the state itself:
    # train holds a [1, 0], b [1, 1], c [0, 1]; test only d [0, 0].
    a, b, c, d = make_entries([[1, 0], [1, 1], [0, 1], [0, 0]])
    part_of = {a.path: 0, b.path: 0, c.path: 0, d.path: 1}
    have_class = [[2, 2], [0, 0]]
    splitting._repair([a, b, c, d], part_of, have_class, 2)
    # Class 0: a, the first that can go, moves to test, leaving b the last of class 0 in
    # train. Class 1: b may not go, so c does.
    assert part_of == {a.path: 1, b.path: 0, c.path: 1, d.path: 1}
    assert have_class == [[1, 1], [1, 1]]


# Equivalent mutant: `order[0]` -> `order[1]`: every entry has one flag per class and a
# stratified split has at least two entries (one a part), so any entry gives the number.


def test_stratified_split_refuses_a_class_with_one_positive():
    rows = [[1, 0]] * 9 + [[0, 1]]
    with pytest.raises(UserError, match="class 1 has 1"):
        splitting.train_test_split(make_entries(rows), 0.8, 0, stratify=True)


def test_stratified_split_reports_an_impossible_split():
    # Each image holds two of the three classes, so the part with one image lacks one.
    rows = [[1, 1, 0], [1, 0, 1], [0, 1, 1]]
    with pytest.raises(UserError, match="cannot split"):
        splitting.train_test_split(make_entries(rows), 0.5, 0, stratify=True)


def test_validation_split_matches_the_original_retrain_rule():
    entries = make_entries([[1]] * 500)
    training, validation = splitting.validation_split(entries, 10)
    assert len(training) + len(validation) == 500
    assert 30 < len(validation) < 70
    # At several cuts: one cut alone lets a percentage that is slightly off pass.
    percents = {}
    for e in entries:
        name = e.path.split("/")[-1]
        digest = int(hashlib.sha1(name.encode()).hexdigest(), 16)
        percents[e] = (digest % (2 ** 27)) * (100.0 / (2 ** 27 - 1))
    for cut in (10, 50, 90):
        training, validation = splitting.validation_split(entries, cut)
        assert validation == [e for e in entries if percents[e] < cut]
        assert training == [e for e in entries if percents[e] >= cut]


# Equivalent mutant: `_hash_percentage(entry.path) < percentage` -> `_hash_percentage(entry.path) <= percentage`:
# they differ only for a file name whose percentage is exactly the cut, a whole number
# (retrain.py's flag is an int). For a cut P from 1 to 99 the hash would be P (2 ** 27 - 1)
# / 100, no integer (2 ** 27 - 1 is odd and no multiple of 5), so every hash's percentage
# is at least 1 / (2 ** 27 - 1) from P, far beyond float rounding. A cut of 0 needs a hash
# of 0 modulo 2 ** 27: one file name in 134 million, none findable for a test.


def test_validation_split_depends_on_the_file_name_only():
    a = Entry(1, (1,), "images/cat_nohash_1.jpg", 1)
    b = Entry(2, (0,), "other/cat_nohash_2.jpg", 2)
    c = Entry(3, (0,), "other/cat", 3)
    for percentage in range(0, 100, 5):
        _, validation = splitting.validation_split([a, b, c], percentage)
        assert (a in validation) == (b in validation) == (c in validation)
    # Adding images never moves the ones already there.
    entries = make_entries([[1]] * 50)
    _, before = splitting.validation_split(entries, 20)
    _, after = splitting.validation_split(entries + make_entries([[0]] * 80)[50:], 20)
    assert set(before) <= set(after)


@pytest.mark.parametrize("percentage", [100, -1, 100.5])
def test_validation_split_rejects_a_bad_percentage(percentage):
    with pytest.raises(UserError, match=rf"^the validation percentage must be in \[0, 100\), "
                                        rf"got {percentage}$"):
        splitting.validation_split(grouped_entries(), percentage)


def test_validation_split_takes_nothing_at_0_percent():
    entries = grouped_entries()
    assert splitting.validation_split(entries, 0) == (entries, [])
