"""Which label layout a data set uses, and its labels paired with image files by name.

data_generation.py reads three layouts (`LAYOUTS` says it in one line, for errors):

- a CSV file (`csv_labels`): the first column names each image, relative to the images
  folder, with `suffix` appended where the name lacks it (Kaggle's names have none);
- label folders (`label_folders`): `images/<label>/<file>`;
- `labels.json` (`labels_json`, paired by position in `list_generation`): the demo's.

Pairing by name is what makes a CSV's row order not matter: every row must find its
image, two rows naming one image must agree, and images that no row names are named in
one warning and left out, never paired by position. The list paths keep the user's own
names below the dataset folder (`train-jpg/img_00042.jpg`), so every later output shows
them. No TensorFlow here.
"""

import logging
import os

from multilabel.base.errors import UserError
from multilabel.data import csv_labels, image_sources, label_folders, listfile

logger = logging.getLogger(__name__)

LAYOUTS = ("labels are read from --labels FILE.csv (a header, then one row per image: "
           "image,tags with the tags separated by --label_delim, or image,class_1,class_2,... "
           "with 1/0 per class; names relative to --images, default images/), from "
           "--label_folders (images/<label>/<file>, one folder per label), or from "
           "labels.json (line i: a JSON list of 1/-1 flags, one per class, for image i of "
           "images/ in name order; needs --class_names for names)")
# How many of the images no row names the warning shows by name.
SHOWN_UNNAMED = 5


def layout_of(labels_path):
    """'csv' or 'json' by the label file's extension; a UserError saying what is read
    for any other file."""
    extension = os.path.splitext(labels_path)[1].lower()
    if extension in (".csv", ".json"):
        return extension[1:]
    raise UserError(f"not a label file this tool reads; {LAYOUTS}", labels_path)


def from_csv(labels_path, images_dir, prefix, suffix="", delimiter=None, class_names=()):
    """`(entries, class_names)` of a CSV label file, its rows paired with the image files
    under `images_dir` by name; `prefix` is that folder's path in the dataset folder."""
    table = csv_labels.read_csv_labels(labels_path, delimiter, class_names)
    images, others = image_sources.image_files_under(images_dir)
    on_disk = set(images)
    labels_of, line_of, missing = {}, {}, []
    for row in table.rows:
        name = _relative(row.name.removeprefix("./"), images_dir)
        if suffix and not name.lower().endswith(suffix.lower()):
            name += suffix
        listfile.check_path(name, labels_path, row.line)
        if name not in on_disk:
            missing.append((row, name))
            continue
        image_sources.check_image_file(os.path.join(images_dir, *name.split("/")))
        if name in labels_of and labels_of[name] != row.labels:
            raise UserError(f"{name} is labelled {_shown(row.labels)} here but "
                            f"{_shown(labels_of[name])} on line {line_of[name]}",
                            labels_path, row.line)
        labels_of.setdefault(name, row.labels)
        line_of.setdefault(name, row.line)
    if missing:
        raise _missing_error(missing, images_dir, images, others, labels_path)
    _warn_unnamed(sorted(on_disk - set(labels_of)), images_dir,
                  f"named by no row of {labels_path}")
    return _entries(labels_of, line_of, prefix, table.class_names), table.class_names


def from_folders(images_dir, prefix, class_names=()):
    """`(entries, class_names)` of the label folders under `images_dir`."""
    found = label_folders.read_label_folders(images_dir, class_names)
    _warn_unnamed(found.loose, images_dir, "in no label folder")
    labels_of = dict(found.images)
    return _entries(labels_of, {}, prefix, found.class_names), found.class_names


def _relative(name, images_dir):
    """An absolute image name inside the images folder (label_image.py's CSV names the
    paths it was given: `label_image.py ~/photos/new`) as the path in it; any other name
    as it is (`listfile.check_path` refuses an absolute one outside)."""
    if not os.path.isabs(name):
        return name
    inside = os.path.relpath(name, os.path.abspath(images_dir))
    if inside == ".." or inside.startswith(".." + os.sep):
        return name
    return inside.replace(os.sep, "/")


def _entries(labels_of, line_of, prefix, class_names):
    """List entries in natural path order, numbered from 1."""
    ordered = sorted(labels_of, key=image_sources.natural_key)
    return [listfile.Entry(i, tuple(int(c in labels_of[name]) for c in class_names),
                           f"{prefix}/{name}" if prefix else name, line_of.get(name, i))
            for i, name in enumerate(ordered, start=1)]


def _missing_error(missing, images_dir, images, others, labels_path):
    row, name = missing[0]
    hint = ""
    stems = {os.path.splitext(p)[0]: p for p in images}
    if name in stems:
        found = stems[name]
        hint = f" ({found} is: add --suffix {os.path.splitext(found)[1]})"
    elif name in others:
        hint = f" ({name} is there, but not an image file by its extension)"
    more = f"; {len(missing) - 1} more rows name images that are not there" if len(missing) > 1 else ""
    return UserError(f"no image {name} under {images_dir}{hint}{more}", labels_path, row.line)


def _warn_unnamed(unnamed, images_dir, why):
    """One warning line for images the labels leave out: a few names, then the count."""
    if not unnamed:
        return
    shown = ", ".join(unnamed[:SHOWN_UNNAMED]) + (", ..." if len(unnamed) > SHOWN_UNNAMED else "")
    logger.warning("%d image(s) under %s left out, not trained on (%s): %s",
                   len(unnamed), images_dir, why, shown)


def _shown(labels):
    return " ".join(sorted(labels)) or "(no label)"
