"""Reproducible ways to divide a list of entries into parts.

- `shuffled` and `train_test_split` (used by data_generation.py) order images by a
  seeded SHA-256 of their path rather than by `random.shuffle`, so the same seed gives
  the same lists on every Python version and platform.
- `validation_split` (used by retrain.py) is the original retrain.py's rule: an image
  goes to validation by a hash of its file name alone, so it stays on the same side
  when images are added, removed or the list is shuffled.

No TensorFlow here.
"""

import hashlib
import logging
import math
import posixpath
import re

from multilabel.base.errors import UserError

logger = logging.getLogger(__name__)

# From the original retrain.py: the hash is taken modulo a number far larger than any
# image count, so the resulting percentage is spread evenly.
MAX_NUM_IMAGES_PER_CLASS = 2 ** 27 - 1


def shuffled(entries, seed):
    """`entries` in a seeded pseudo-random order that depends only on seed and paths."""
    return sorted(entries, key=lambda e: _seeded_key(seed, e))


def _seeded_key(seed, entry):
    return hashlib.sha256(f"{seed}\0{entry.path}".encode("utf-8")).digest()


def train_test_split(entries, train_fraction, seed, stratify=False):
    """Divide `entries` into `(train, test)`, both in the seeded order of `shuffled`.

    Without `stratify`, train is the first `round(train_fraction * n)` entries of that
    order. With `stratify`, see `_stratified`: every class with at least two positive
    images gets positives in both parts, and the sizes are close to, not exactly,
    the fraction. Raises `UserError` when a part would be empty or, stratified, when
    a class has fewer than two positives.
    """
    if not 0 < train_fraction < 1:
        raise UserError(f"the train fraction must be between 0 and 1, got {train_fraction}")
    order = shuffled(entries, seed)
    num_train = math.floor(train_fraction * len(order) + 0.5)
    if not 0 < num_train < len(order):
        raise UserError(f"a train fraction of {train_fraction} of {len(order)} images leaves "
                        "one part empty")
    if not stratify:
        return order[:num_train], order[num_train:]
    return _stratified(order, train_fraction)


def _stratified(order, train_fraction):
    """Iterative stratification (Sechidis, Tsoumakas and Vlahavas, ECML 2011), two folds.

    Taking the class with the fewest unassigned positives first, each of its images goes
    to the part that still wants the most positives of that class (ties: the part that
    wants the most images, then train). Rare classes are placed while there is still
    freedom, which is what keeps label combinations balanced in multi-label data, where
    a split per class is impossible. On top of the published rule, a part that has no
    positive of the class yet takes the next one, and a final repair moves an image across
    for any class still missing from a part, if that takes no class's last positive away.
    This is a greedy, not a search: on tiny contrived sets it can give up where some
    split exists (5 in 10,000 random sets of 4 to 9 images), and then says so.
    """
    num_classes = len(order[0].flags)
    totals = [sum(e.flags[c] for e in order) for c in range(num_classes)]
    too_rare = [c for c in range(num_classes) if totals[c] < 2]
    if too_rare:
        raise UserError(f"a stratified split needs at least 2 positive images per class; class "
                        f"{too_rare[0]} has {totals[too_rare[0]]}")
    fractions = (train_fraction, 1 - train_fraction)
    wanted = [f * len(order) for f in fractions]
    wanted_class = [[f * t for t in totals] for f in fractions]
    have_class = [[0] * num_classes for _ in fractions]
    part_of = {}

    def assign(entry, part):
        part_of[entry.path] = part
        wanted[part] -= 1
        for c, flag in enumerate(entry.flags):
            wanted_class[part][c] -= flag
            have_class[part][c] += flag

    unassigned = list(order)
    while any(any(e.flags) for e in unassigned):
        remaining = [sum(e.flags[c] for e in unassigned) for c in range(num_classes)]
        c = min((n, c) for c, n in enumerate(remaining) if n > 0)[1]
        for entry in [e for e in unassigned if e.flags[c]]:
            missing = [p for p in (0, 1) if have_class[p][c] == 0]
            if len(missing) == 1:
                part = missing[0]
            else:
                part = max((0, 1), key=lambda p: (wanted_class[p][c], wanted[p], -p))
            assign(entry, part)
        unassigned = [e for e in unassigned if e.path not in part_of]
    for entry in unassigned:  # images without any label only balance the sizes
        assign(entry, max((0, 1), key=lambda p: (wanted[p], -p)))

    _repair(order, part_of, have_class, num_classes)
    train = [e for e in order if part_of[e.path] == 0]
    test = [e for e in order if part_of[e.path] == 1]
    return train, test


def _repair(order, part_of, have_class, num_classes):
    for c in range(num_classes):
        for part in (0, 1):
            if have_class[part][c]:
                continue
            other = 1 - part
            movable = [e for e in order if part_of[e.path] == other and e.flags[c]
                       and all(have_class[other][k] > 1 for k, f in enumerate(e.flags) if f)]
            if not movable:
                raise UserError(f"cannot split so that class {c} has positive images in both "
                                "parts; try another seed or no stratification")
            entry = movable[0]
            part_of[entry.path] = part
            for k, flag in enumerate(entry.flags):
                have_class[other][k] -= flag
                have_class[part][k] += flag


def validation_split(entries, percentage):
    """Divide `entries` into `(training, validation)` by a stable hash of the file name.

    We want to keep files in the same set even if more files are added later: a plain
    seeded draw would reshuffle everything and leak former validation images into
    training, tainting the validation numbers. So, as the original retrain.py did, the
    set is chosen by the SHA-1 of the image's base name with any `_nohash_...` suffix
    removed (that suffix lets near-duplicates of one photo share a side), taken
    modulo 2**27 and scaled to a percentage. About `percentage` percent go to validation.
    """
    if not 0 <= percentage < 100:
        raise UserError(f"the validation percentage must be in [0, 100), got {percentage}")
    training, validation = [], []
    for entry in entries:
        (validation if _hash_percentage(entry.path) < percentage else training).append(entry)
    return training, validation


def _hash_percentage(path):
    hash_name = re.sub(r"_nohash_.*$", "", posixpath.basename(path))
    hashed = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    return (hashed % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)
