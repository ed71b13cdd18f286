"""Building the list files from labels.json and a folder of images (data_generation.py).

Line i of labels.json belongs to image i of the images folder in natural order
(`2.jpg` before `10.jpg`); every pairing and count is checked, the images are split
into training and test lists with a seed, and only then is anything written, each file
atomically, so a bad input leaves no partial list behind.
"""

import dataclasses
import errno
import logging
import os
import re

from multilabel.data import image_sources, labels_json, listfile, splitting
from multilabel.base import storage
from multilabel.base.errors import UserError, file_error

logger = logging.getLogger(__name__)

IMAGES_FOLDER = "images"


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    image_dir: str
    labels: str
    class_names: tuple  # empty when not given
    shuffle: bool
    split: float
    seed: int
    stratify: bool


def natural_key(name):
    """Sort key putting `2.jpg` before `10.jpg`: digit runs compare as numbers."""
    parts = re.split(r"([0-9]+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name


def list_images(images_dir):
    """Names of the image files in `images_dir`, in natural order.

    Hidden files, folders and files without an image extension (Thumbs.db, notes) are
    left out, so that they cannot shift the pairing of label lines with images.
    """
    images, others = image_sources.image_file_names(images_dir)
    if others:
        logger.warning("ignoring %d file(s) in %s without an image extension",
                       len(others), images_dir)
    return sorted(images, key=natural_key)


def pair_images(rows, names, labels_path, images_dir):
    """One `Entry` per label row: row i (1-based) with image i.

    When every image is named by its number (1.jpg, 2.jpg, ...), row i must find
    image i, so a missing image is reported instead of shifting later rows onto wrong
    images. Other names pair in natural order. Counts must match either way.
    """
    if not rows:
        raise UserError("no label rows", labels_path)
    stems = [os.path.splitext(n)[0] for n in names]
    if names and all(re.fullmatch(r"[0-9]+", s) for s in stems):
        by_number = {}
        for name, stem in zip(names, stems):
            number = int(stem)
            if number in by_number:
                raise UserError(f"{by_number[number]} and {name} both claim number {number}",
                                images_dir)
            by_number[number] = name
        for i, (line, _) in enumerate(rows, start=1):
            if i not in by_number:
                raise UserError(f"label line for image {i}, but {images_dir} has no image {i}",
                                labels_path, line)
        extra = sorted(n for n in by_number if not 1 <= n <= len(rows))
        if extra:
            raise UserError(f"no label line for {IMAGES_FOLDER}/{by_number[extra[0]]}: "
                            f"{len(rows)} label lines for {len(names)} images",
                            labels_path, len(rows) + 1 if extra[0] > len(rows) else None)
        ordered = [by_number[i] for i in range(1, len(rows) + 1)]
    else:
        if len(rows) < len(names):
            raise UserError(f"no label line for {IMAGES_FOLDER}/{names[len(rows)]}: "
                            f"{len(rows)} label lines for {len(names)} images",
                            labels_path, len(rows) + 1)
        if len(rows) > len(names):
            raise UserError(f"label line for image {len(names) + 1}, but {images_dir} holds "
                            f"only {len(names)} images", labels_path, rows[len(names)][0])
        ordered = names
    entries = []
    for i, ((line, flags), name) in enumerate(zip(rows, ordered), start=1):
        path = f"{IMAGES_FOLDER}/{name}"
        listfile.check_path(path, os.path.join(images_dir, name))
        _check_image_file(os.path.join(images_dir, name))
        entries.append(listfile.Entry(i, flags, path, line))
    return entries


def _check_image_file(path):
    """Raise `UserError` unless `path` is a non-empty regular file: a symlink that loops
    or points nowhere, a FIFO, a socket or a device would fail (or hang) retrain.py."""
    try:
        info = storage.check_regular(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError("symlink loop (the link leads back to itself)", path) from None
        if isinstance(e, FileNotFoundError) and os.path.islink(path):
            raise UserError(f"dangling symlink (to {os.readlink(path)!r}, which does not "
                            "exist)", path) from None
        if isinstance(e, storage.NotRegularFileError):
            raise UserError(e.strerror, path) from None
        raise file_error(e, path, "image file") from e
    if info.st_size == 0:
        raise UserError("empty image file", path)


def summary(entries, train, test, class_names, config):
    """The lines printed after a run: counts per class, cardinality, multi-label images."""
    num_classes = len(entries[0].flags)
    names = class_names or [f"class {c}" for c in range(num_classes)]
    width = max(len(n) for n in names)
    labels_per_image = [sum(e.flags) for e in entries]
    multi = sum(n > 1 for n in labels_per_image)
    unlabelled = sum(n == 0 for n in labels_per_image)
    how = "stratified" if config.stratify else "random"
    lines = [f"images: {len(entries)} (train {len(train)}, test {len(test)}; "
             f"{how} split, seed {config.seed})",
             f"positives per class:  {'all':>5} {'train':>6} {'test':>5}"]
    for c, name in enumerate(names):
        counts = [sum(e.flags[c] for e in part) for part in (entries, train, test)]
        lines.append(f"  {name:<{width}}  {counts[0]:>5} {counts[1]:>6} {counts[2]:>5}")
    lines.append(f"label cardinality: {sum(labels_per_image) / len(entries):.3f} labels per image")
    lines.append(f"multi-label images: {multi} ({100 * multi / len(entries):.2f} %)")
    if unlabelled:
        lines.append(f"images without any label: {unlabelled}")
    return lines


def generate(config):
    """Read, check, split and write; returns the summary lines."""
    images_dir = os.path.join(config.image_dir, IMAGES_FOLDER)
    rows = labels_json.read_labels_file(config.labels)
    if config.class_names and len(config.class_names) != len(rows[0][1]):
        raise UserError(f"{len(rows[0][1])} flags, but --class_names gives "
                        f"{len(config.class_names)} names", config.labels, rows[0][0])
    entries = pair_images(rows, list_images(images_dir), config.labels, images_dir)
    train, test = splitting.train_test_split(entries, config.split, config.seed, config.stratify)
    if config.shuffle:
        lists = [splitting.shuffled(part, config.seed) for part in (entries, train, test)]
    else:
        lists = [sorted(part, key=lambda e: e.index) for part in (entries, train, test)]

    # Everything is checked; only now touch the output folder.
    for name, part in zip((listfile.FULL_LIST, listfile.TRAIN_LIST, listfile.TEST_LIST), lists):
        listfile.write_list_file(os.path.join(config.image_dir, name), part)
    names_path = os.path.join(config.image_dir, listfile.CLASS_NAMES_FILE)
    if config.class_names:
        listfile.write_class_names(names_path, config.class_names)
        note = f"wrote {listfile.CLASS_NAMES_FILE}"
    elif os.path.exists(names_path):
        note = (f"no --class_names given: left the existing {names_path} as it is; "
                "check that it still matches the labels")
    else:
        note = (f"no --class_names given: wrote no {listfile.CLASS_NAMES_FILE}, "
                "so the classes will have no names")
    lines = summary(entries, train, test, config.class_names, config)
    lines.append(f"wrote {listfile.FULL_LIST}, {listfile.TRAIN_LIST}, {listfile.TEST_LIST} "
                 f"in {config.image_dir}; {note}")
    return lines
