"""The train, validation and test parts of a list-file dataset, checked and ready.

`retrain.py` reads `dataset_train.lst` and `dataset_test.lst` from the dataset folder.
Validation is carved out of the training list by a stable hash of each file name, never
from the test list, so the test report stays an honest estimate. Without a test list,
the test part is carved from the training list the same way (`testing_percentage`).
"""

import concurrent.futures
import dataclasses
import logging
import os

import numpy as np

from multilabel.data import listfile, splitting
from multilabel.base import storage
from multilabel.base.errors import UserError
from multilabel.data.images import ImageError, verify_image

logger = logging.getLogger(__name__)

# A run stopped by invalid images names each of them on its own line, up to this many; the
# rest are counted. A list pointing at the wrong folder would otherwise flood the terminal.
MAX_LISTED_INVALID = 50
# Under this many validation images, or positives of a class there, a validation mAP moves
# by whole hundredths between near-identical models, so the step it picks is partly luck.
SMALL_VALIDATION = 50
FEW_POSITIVES = 5


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of the data: image paths with their 0/1 label rows."""

    name: str
    paths: tuple  # file paths to open
    labels: np.ndarray  # [N, num_classes] of 0/1
    sources: tuple  # "list_file:line" of each image, for messages

    def __len__(self):
        return len(self.paths)

    def subset(self, keep):
        keep = list(keep)
        return Part(self.name, tuple(self.paths[i] for i in keep), self.labels[keep],
                    tuple(self.sources[i] for i in keep))


@dataclasses.dataclass(frozen=True)
class Dataset:
    train: Part
    validation: Part
    test: Part
    class_names: tuple

    @property
    def num_classes(self):
        return len(self.class_names)


def _part(name, entries, dataset_dir, list_path, num_classes):
    return Part(
        name=name,
        paths=tuple(listfile.image_path(dataset_dir, e) for e in entries),
        # Shaped [N, num_classes] even when empty, so parts always concatenate.
        labels=np.array([e.flags for e in entries], dtype=np.int64).reshape(-1, num_classes),
        sources=tuple(f"{list_path}:{e.line}" for e in entries),
    )


TESTING_PERCENTAGE = 10  # the default; any other is warned about where a test list exists


def load_dataset(dataset_dir, num_classes=None, validation_percentage=10,
                 testing_percentage=TESTING_PERCENTAGE):
    """Read the lists under `dataset_dir` into train, validation and test parts.

    `num_classes`, when given, must match the lists; when None it is read from them.
    `testing_percentage` applies only where there is no test list (a warning says so).
    """
    train_list = os.path.join(dataset_dir, listfile.TRAIN_LIST)
    test_list = os.path.join(dataset_dir, listfile.TEST_LIST)
    if not storage.is_remote(dataset_dir) and not os.path.isdir(dataset_dir):
        raise UserError(f"dataset folder not found (looked for {os.path.abspath(dataset_dir)}"
                        "); --image_dir names it, relative to the current folder",
                        dataset_dir)
    if not _given(train_list):
        raise UserError("no training list; run data_generation.py to write it", train_list)
    train_entries = listfile.read_list_file(train_list)
    train_files = _files(train_entries, dataset_dir, train_list)
    found = len(train_entries[0].flags)
    if num_classes is not None and num_classes != found:
        raise UserError(f"has {found} flags per line but --num_classes is {num_classes}",
                        train_list, train_entries[0].line)
    num_classes = found

    if _given(test_list):
        if testing_percentage != TESTING_PERCENTAGE:
            logger.warning("--testing_percentage %d is ignored: %s is the test part",
                           testing_percentage, test_list)
        test_entries = listfile.read_list_file(test_list, num_classes=num_classes)
        repeated = len(_files(test_entries, dataset_dir, test_list).keys() & train_files.keys())
        if repeated:
            logger.warning("%d of the %d images of %s are also in %s (the same files): the "
                           "test report measures them as seen in training and overstates "
                           "the model", repeated, len(test_entries), test_list, train_list)
        test = _part("test", test_entries, dataset_dir, test_list, num_classes)
        train_entries, validation_entries = splitting.validation_split(
            train_entries, validation_percentage)
    else:
        # As the original: file-name hashes below v% validate, the next t% test.
        if validation_percentage + testing_percentage >= 100:
            raise UserError(
                f"no {listfile.TEST_LIST}, so the test part is carved from the training list, "
                f"but a validation percentage of {validation_percentage} and a testing "
                f"percentage of {testing_percentage} leave nothing to train on; their sum "
                "must be below 100 (or write a test list with data_generation.py)", train_list)
        logger.info("No %s: carving %d%% of the training list out for testing",
                    listfile.TEST_LIST, testing_percentage)
        train_entries, held_out = splitting.validation_split(
            train_entries, validation_percentage + testing_percentage)
        test_entries, validation_entries = splitting.validation_split(
            held_out, validation_percentage)
        test = _part("test", test_entries, dataset_dir, train_list, num_classes)

    class_names = _class_names(dataset_dir, num_classes)
    return Dataset(
        train=_part("train", train_entries, dataset_dir, train_list, num_classes),
        validation=_part("validation", validation_entries, dataset_dir, train_list,
                         num_classes),
        test=test,
        class_names=class_names,
    )


def _files(entries, dataset_dir, list_path):
    """`{file identity: entry}` of a list's images; `UserError` when two lines name one
    file in different spellings (`images//./1.jpg`, a symlink, a hard link), which would
    count one image twice. Identity is the file's device and inode where it exists
    (missing images are reported later, with the other invalid ones), else its
    resolved path."""
    files = {}
    for entry in entries:
        path = listfile.image_path(dataset_dir, entry)
        try:
            info = os.stat(path)
            identity = (info.st_dev, info.st_ino)
        except OSError:
            identity = os.path.realpath(path)
        first = files.setdefault(identity, entry)
        if first is not entry:
            raise UserError(f"image {entry.path} is the same file as {first.path} (line "
                            f"{first.line}); list each image once", list_path, entry.line)
    return files


def small_validation_note(dataset):
    """One line saying that the validation part is small and what rests on it, or None.

    An empty part has its own warning (the last step is kept), so it gets no note here.
    """
    size = len(dataset.validation)
    positives = dataset.validation.labels.sum(axis=0)
    few = [f"{name} {int(n)}" for name, n in zip(dataset.class_names, positives)
           if n < FEW_POSITIVES]
    if not size or (size >= SMALL_VALIDATION and not few):
        return None
    rare = f"; classes with under {FEW_POSITIVES} positives there: {', '.join(few)}" if few else ""
    return (f"Small validation part ({size} images{rare}): the kept step (and fine-tuning's "
            "kept model) is chosen on it, so it may be luck, and its validation measures are "
            "rough; the thresholds rest on more, out-of-fold predictions of all "
            f"{len(dataset.train) + size} training images")


def _given(path):
    """Whether anything stands at `path`. Only nothing at all counts as absent: a folder,
    a FIFO or a link to nothing there is the user's mistake, reported when it is read (or
    here), never taken for a missing file, which would silently name the classes
    `label_0...` or carve the test part out of the training list."""
    if storage.is_remote(path):
        return storage.isfile(path)
    if os.path.islink(path) and not os.path.exists(path):
        raise UserError(f"dangling symlink (to {os.readlink(path)!r}, which does not exist)",
                        path)
    return os.path.lexists(path)


def _class_names(dataset_dir, num_classes):
    path = os.path.join(dataset_dir, listfile.CLASS_NAMES_FILE)
    if not _given(path):
        logger.info("No %s: naming the classes label_0 ... label_%d", path, num_classes - 1)
        return tuple(f"label_{i}" for i in range(num_classes))
    names = listfile.read_class_names(path)
    if len(names) != num_classes:
        raise UserError(f"has {len(names)} class names but the lists have {num_classes} flags", path)
    return tuple(names)


def _in_list_order(parts, invalid_of):
    """The messages of `find_invalid_images` for `parts`, ordered by list file, then line.

    Validation is carved out of the training list by hash, so part order alone would
    jump back and forth through the list; list files rank in the order parts name them.
    """
    rank = {}
    keyed = []
    for part, invalid in zip(parts, invalid_of):
        for i, message in invalid:
            list_path, _, line = part.sources[i].rpartition(":")
            keyed.append(((rank.setdefault(list_path, len(rank)), int(line)), message))
    return [message for _, message in sorted(keyed)]


def find_invalid_images(part, max_workers=None):
    """`(index, message)` for each image of `part` that is missing or does not decode."""
    def check(i):
        try:
            verify_image(part.paths[i])
        except ImageError as e:
            return i, f"{part.sources[i]}: {part.paths[i]}: {e.message}"
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers or os.cpu_count()) as pool:
        return [r for r in pool.map(check, range(len(part))) if r is not None]


def _invalid_images_error(messages):
    """One image: its message is the error. Several: each is a detail line, and the
    error counts them."""
    hint = "fix the list or pass --skip_invalid_images"
    if len(messages) == 1:
        return UserError(f"{messages[0]}; {hint}")
    unlisted = len(messages) - MAX_LISTED_INVALID
    cut = f" ({MAX_LISTED_INVALID} listed, {unlisted} more not)" if unlisted > 0 else ""
    return UserError(f"{len(messages)} invalid images{cut}; {hint}",
                     details=messages[:MAX_LISTED_INVALID])


def drop_invalid_images(dataset, skip_invalid):
    """Check every image before any long work; stop on bad ones, or drop them.

    Stopping names every bad image of every part at once (up to `MAX_LISTED_INVALID`), in
    list order, so that one run shows all there is to fix.
    """
    parts = (dataset.train, dataset.validation, dataset.test)
    invalid_of = [find_invalid_images(part) for part in parts]
    messages = _in_list_order(parts, invalid_of)
    if messages and not skip_invalid:
        raise _invalid_images_error(messages)
    kept = {}
    for part, invalid in zip(parts, invalid_of):
        if invalid:
            for _, message in invalid:
                logger.warning("Skipping %s", message)
            logger.warning("Skipped %d invalid images of the %s part", len(invalid), part.name)
            bad = {i for i, _ in invalid}
            part = part.subset(i for i in range(len(part)) if i not in bad)
        kept[part.name] = part
    return dataclasses.replace(dataset, **kept)
