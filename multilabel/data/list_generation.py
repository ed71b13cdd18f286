"""Building the list files from a folder of images and its labels (data_generation.py).

The labels come in one of the layouts of `label_formats`: a CSV file or label folders,
paired with the images by name, or labels.json, where line i belongs to image i of the
images folder in natural order (`2.jpg` before `10.jpg`). Every pairing and count is
checked, the images are split into training and test lists with a seed, and only then
is anything written, each file atomically, so a bad input leaves no partial list behind.
"""

import dataclasses
import logging
import os
import re

from multilabel.data import image_sources, label_formats, labels_json, listfile, splitting
from multilabel.base.errors import UserError

logger = logging.getLogger(__name__)

IMAGES_FOLDER = "images"
LABELS_JSON = "labels.json"


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    image_dir: str
    labels: str | None  # a .csv or .json file; None: labels.json in image_dir, or folders
    class_names: tuple  # empty when not given
    shuffle: bool
    split: float
    seed: int
    stratify: bool
    images: str = IMAGES_FOLDER  # the images folder, relative to image_dir
    suffix: str = ""  # appended to CSV names that lack it
    label_delim: str | None = None  # between the tags of a CSV cell; None: csv_labels' default
    label_folders: bool = False  # labels from images/<label>/<file>
    # Classes with fewer positives get a warning: retrain.py cannot place their threshold
    # (evaluation.thresholds.MIN_POSITIVES, passed in by data_generation.py); 0: none.
    few_positives: int = 0


def list_images(images_dir):
    """Names of the image files directly in `images_dir`, in natural order.

    Hidden files, folders and files without an image extension (Thumbs.db, notes) are
    left out, so that they cannot shift the pairing of label lines with images.
    """
    images, others = image_sources.image_file_names(images_dir)
    if others:
        logger.warning("ignoring %d file(s) in %s without an image extension",
                       len(others), images_dir)
    nested = [p for p in image_sources.image_files_under(images_dir)[0] if "/" in p]
    if nested:
        # Pairing by position has no place for subfolders; a CSV or label folders do.
        logger.warning("ignoring %d image(s) in subfolders of %s (%s%s): labels.json pairs "
                       "line i with image i of the folder's top level; for images in "
                       "subfolders give a CSV (--labels) or --label_folders", len(nested),
                       images_dir, nested[0], ", ..." if len(nested) > 1 else "")
    return sorted(images, key=image_sources.natural_key)


def pair_images(rows, names, labels_path, images_dir, prefix=IMAGES_FOLDER):
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
            raise UserError(f"no label line for {prefix}/{by_number[extra[0]]}: "
                            f"{len(rows)} label lines for {len(names)} images",
                            labels_path, len(rows) + 1 if extra[0] > len(rows) else None)
        ordered = [by_number[i] for i in range(1, len(rows) + 1)]
    else:
        if len(rows) < len(names):
            raise UserError(f"no label line for {prefix}/{names[len(rows)]}: "
                            f"{len(rows)} label lines for {len(names)} images",
                            labels_path, len(rows) + 1)
        if len(rows) > len(names):
            raise UserError(f"label line for image {len(names) + 1}, but {images_dir} holds "
                            f"only {len(names)} images", labels_path, rows[len(names)][0])
        ordered = names
    entries = []
    for i, ((line, flags), name) in enumerate(zip(rows, ordered), start=1):
        path = f"{prefix}/{name}" if prefix else name
        listfile.check_path(path, os.path.join(images_dir, name))
        image_sources.check_image_file(os.path.join(images_dir, name))
        entries.append(listfile.Entry(i, flags, path, line))
    return entries


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
    images_dir, prefix = _images_folder(config)
    entries, class_names = _labelled_entries(config, images_dir, prefix)
    # Names from the data (a CSV's tags or header, folder names) are checked here, before
    # any list is written: a bad name must not leave new lists beside the old names.
    listfile.check_class_names(class_names, _labels_path(config))
    _warn_empty_classes(entries, class_names)
    train, test = splitting.train_test_split(entries, config.split, config.seed, config.stratify)
    _warn_few_positives(class_names, (entries, train, test), config.few_positives)
    if config.shuffle:
        lists = [splitting.shuffled(part, config.seed) for part in (entries, train, test)]
    else:
        lists = [sorted(part, key=lambda e: e.index) for part in (entries, train, test)]

    # Everything is checked; only now touch the output folder.
    for name, part in zip((listfile.FULL_LIST, listfile.TRAIN_LIST, listfile.TEST_LIST), lists):
        listfile.write_list_file(os.path.join(config.image_dir, name), part)
    names_path = os.path.join(config.image_dir, listfile.CLASS_NAMES_FILE)
    if class_names:
        listfile.write_class_names(names_path, class_names)
        note = f"wrote {listfile.CLASS_NAMES_FILE}"
    elif os.path.exists(names_path):
        note = (f"no --class_names given: left the existing {names_path} as it is; "
                "check that it still matches the labels")
    else:
        note = (f"no --class_names given: wrote no {listfile.CLASS_NAMES_FILE}, "
                "so the classes will have no names")
    lines = summary(entries, train, test, class_names, config)
    lines.append(f"wrote {listfile.FULL_LIST}, {listfile.TRAIN_LIST}, {listfile.TEST_LIST} "
                 f"in {config.image_dir}; {note}")
    return lines


def _images_folder(config):
    """The images folder and its path inside the dataset folder, as list paths begin.

    --images, like --labels, is relative to the dataset folder (--image_dir), where the
    lists are written and whose paths they hold; --image_dir is relative to the current
    folder. A folder that is not there is named with where it was looked for and the
    flag that names it.
    """
    if os.path.exists(config.image_dir) and not os.path.isdir(config.image_dir):
        raise UserError("not a folder; --image_dir names the dataset folder, which holds the "
                        "images and the labels", config.image_dir)
    if not os.path.isdir(config.image_dir):
        raise UserError(f"dataset folder not found (looked for {os.path.abspath(config.image_dir)}"
                        "); --image_dir names it, relative to the current folder",
                        config.image_dir)
    images_dir = os.path.join(config.image_dir, config.images)
    inside = os.path.relpath(images_dir, config.image_dir).replace(os.sep, "/")
    if inside == ".." or inside.startswith("../"):
        raise UserError(f"--images {config.images} is outside the dataset folder "
                        f"{config.image_dir}; the lists name images relative to it")
    return images_dir, "" if inside == "." else inside


def _check_images_folder(config, images_dir):
    if not os.path.isdir(images_dir):
        raise UserError(f"image folder not found (looked for {os.path.abspath(images_dir)}); "
                        f"--images names it, relative to --image_dir (default: "
                        f"{IMAGES_FOLDER}){_cwd_hint(config.images, config.image_dir)}",
                        images_dir)


def _labels_path(config):
    """--labels (default labels.json) in the dataset folder; an absolute path as it is."""
    return os.path.join(config.image_dir, config.labels or LABELS_JSON)


def _cwd_hint(given, image_dir):
    """A hint for a path given relative to the current folder instead of --image_dir."""
    if not os.path.isabs(given) and os.path.exists(given):
        return (f"; {given} is in the current folder: give it relative to {image_dir}, "
                f"as {os.path.relpath(os.path.abspath(given), image_dir)}, or as an "
                "absolute path")
    return ""


def _labelled_entries(config, images_dir, prefix):
    """`(entries, class_names)` from the layout the flags name (see label_formats)."""
    if config.label_folders:
        _check_images_folder(config, images_dir)
        return label_formats.from_folders(images_dir, prefix, config.class_names)
    labels = _labels_path(config)
    if not os.path.lexists(labels):
        raise UserError(f"labels file not found (looked for {os.path.abspath(labels)}); "
                        f"--labels names it, relative to --image_dir (default: {LABELS_JSON})"
                        f"{_cwd_hint(config.labels or LABELS_JSON, config.image_dir)}; "
                        f"{label_formats.LAYOUTS}", labels)
    if os.path.isdir(labels):
        raise UserError("is a folder, not a labels file; for images/<label>/<file> give "
                        "--label_folders instead of --labels", labels)
    layout = label_formats.layout_of(labels)
    _check_images_folder(config, images_dir)
    if layout == "csv":
        return label_formats.from_csv(labels, images_dir, prefix, config.suffix,
                                      config.label_delim, config.class_names)
    rows = labels_json.read_labels_file(labels)
    if config.class_names and len(config.class_names) != len(rows[0][1]):
        raise UserError(f"{len(rows[0][1])} flags, but --class_names gives "
                        f"{len(config.class_names)} names", labels, rows[0][0])
    return (pair_images(rows, list_images(images_dir), labels, images_dir, prefix),
            config.class_names)


def _warn_few_positives(class_names, parts, few):
    """One warning per class with some positives but fewer than `few` in the training
    list, which retrain.py chooses thresholds on: it cannot place the class's threshold
    and gives it 0.5 (evaluation.thresholds.MIN_POSITIVES)."""
    for c, name in enumerate(class_names):
        total, train, test = (sum(e.flags[c] for e in part) for part in parts)
        if total and train < few:
            logger.warning("class %s has only %d positive image(s) in the training list "
                           "(all %d, test %d), under the %d that retrain.py needs to choose "
                           "its threshold: it will use 0.5 for it; add images of it", name,
                           train, total, test, few)


def _warn_empty_classes(entries, class_names):
    empty = [name for c, name in enumerate(class_names) if not any(e.flags[c] for e in entries)]
    if empty:
        logger.warning("no image has the label(s) %s: nothing to learn them from",
                       ", ".join(empty))
