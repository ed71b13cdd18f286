"""Read labels from the folder layout `images/<label>/<file>`: one folder per label.

A multi-label image lies in several label folders, as copies. Copies are found two
ways, so that either habit works: the same relative name under two labels
(`sea/beach.jpg` and `sunset/beach.jpg`), or the same bytes under any names. Each group
of copies is one image with every label of the group, listed at its first path in
name order. Files lying directly in `images/`, outside any label folder, have no label
the layout can name: `label_formats` warns about them and leaves them out.

Class names are the folder names, sorted, unless `class_names` gives the order; a folder
not among them is then an error. No TensorFlow here.
"""

import dataclasses
import hashlib
import os

from multilabel.base.errors import UserError
from multilabel.data import image_sources


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
    groups = _copies(in_folders, images_dir)
    merged = []
    for members in groups:
        labels = frozenset(p.split("/", 1)[0] for p in members)
        merged.append((min(members), labels))
    return FolderLabels(tuple(class_names) or tuple(folders), tuple(sorted(merged)), loose)


def _subfolders(images_dir):
    """Label folders with no image in them yet: classes without positives, but classes."""
    return [e.name for e in os.scandir(images_dir) if e.is_dir() and not e.name.startswith(".")]


def _copies(paths, images_dir):
    """`paths` grouped into copies of one image: same name inside the label folder, or
    same content. Union-find over both keys."""
    parent = list(range(len(paths)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of = {}
    for i, path in enumerate(paths):
        for key in (("name", path.split("/", 1)[1]), ("content", _digest(images_dir, path))):
            j = first_of.setdefault(key, i)
            parent[root(i)] = root(j)
    groups = {}
    for i, path in enumerate(paths):
        groups.setdefault(root(i), []).append(path)
    return list(groups.values())


def _digest(images_dir, path):
    file_path = os.path.join(images_dir, *path.split("/"))
    # Checked here: every empty file would otherwise count as a copy of every other.
    image_sources.check_image_file(file_path)
    with open(file_path, "rb") as f:
        return hashlib.sha256(f.read()).digest()
