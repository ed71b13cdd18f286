"""Read labels from the folder layout `images/<label>/<file>`: one folder per label.

A multi-label image lies in several label folders, as copies: the same bytes, under any
names. Each group of copies is one image with every label of the group, listed at its
first path in name order. The same name with different content (`sea/IMG_0001.jpg` and
`sunset/IMG_0001.jpg`, as two phones name two photos) is two images, each with its own
folder's label, and a warning names them: merging them would drop one photo and give
the other a label it may not have. Files lying directly in `images/`, outside any label
folder, have no label the layout can name: `label_formats` warns about them and leaves
them out. Subfolders of a label folder are read too, and a linked label folder is
followed (its images are named through the link, which must then stay).

Class names are the folder names, in `label_sets.sorted_names` order, unless
`class_names` gives the order; a folder not among them is then an error. No TensorFlow
here.
"""

import dataclasses
import hashlib
import logging
import os

from multilabel.base import label_sets
from multilabel.base.errors import UserError
from multilabel.data import image_sources

logger = logging.getLogger(__name__)
# How many same-named, different photos the warning names.
SHOWN_APART = 3


@dataclasses.dataclass(frozen=True)
class FolderLabels:
    class_names: tuple
    images: tuple  # (path relative to the images folder, frozenset of labels), by path
    loose: tuple  # image files directly in the images folder, in no label folder


def read_label_folders(images_dir, class_names=()):
    """The images under the label folders of `images_dir` with their labels."""
    images, _ = image_sources.image_files_under(images_dir)
    loose = tuple(p for p in images if "/" not in p)
    folders = sorted({p.split("/", 1)[0] for p in images if "/" in p}
                     | set(_subfolders(images_dir)))
    if not folders:
        raise UserError("no label folders; --label_folders reads images/<label>/<file>, one "
                        "folder per label", images_dir)
    if class_names:
        unknown = [f for f in folders if f not in class_names]
        if unknown:
            raise UserError(f"label folder {unknown[0]!r} is not among --class_names "
                            f"({','.join(class_names)})", images_dir)
    in_folders = [p for p in images if "/" in p]
    if not in_folders:
        raise UserError(f"no image files in the label folders ({', '.join(folders)})", images_dir)
    for name in folders:
        path = os.path.join(images_dir, name)
        if os.path.islink(path):
            logger.info("label folder %s is a link to %s: its images are read, and listed, "
                        "through the link", name, os.path.realpath(path))
    groups = _copies(in_folders, images_dir)
    merged = []
    for members in groups:
        labels = frozenset(p.split("/", 1)[0] for p in members)
        merged.append((min(members), labels))
    _warn_same_names(groups)
    return FolderLabels(tuple(class_names) or label_sets.sorted_names(folders),
                        tuple(sorted(merged)), loose)


def _warn_same_names(groups):
    """One warning for names found under several label folders with different content."""
    group_of = {}
    for g, members in enumerate(groups):
        for path in members:
            group_of.setdefault(path.split("/", 1)[1], set()).add(g)
    apart = sorted(name for name, gs in group_of.items() if len(gs) > 1)
    if apart:
        shown = "; ".join(" and ".join(sorted(p for g in sorted(group_of[name])
                                              for p in groups[g] if p.endswith("/" + name)))
                          for name in apart[:SHOWN_APART])
        logger.warning("%d name(s) lie in several label folders with different content, "
                       "kept as different images, each with its own folder's label (a "
                       "multi-label image must be a byte-for-byte copy in each folder): %s%s",
                       len(apart), shown, "; ..." if len(apart) > SHOWN_APART else "")


def _subfolders(images_dir):
    """Label folders with no image in them yet: classes without positives, but classes."""
    return [e.name for e in os.scandir(images_dir) if e.is_dir() and not e.name.startswith(".")]


def _copies(paths, images_dir):
    """`paths` grouped into copies of one image: the same content, in `paths` order."""
    groups = {}
    for path in paths:
        groups.setdefault(_digest(images_dir, path), []).append(path)
    return list(groups.values())


def _digest(images_dir, path):
    file_path = os.path.join(images_dir, *path.split("/"))
    # Checked here: every empty file would otherwise count as a copy of every other.
    image_sources.check_image_file(file_path)
    with open(file_path, "rb") as f:
        return hashlib.sha256(f.read()).digest()
