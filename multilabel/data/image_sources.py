"""Where images are found: a folder (label_image.py, data_generation.py) or a list file.

A folder yields its image files (by extension, not recursing), sorted by name; a list
file yields its entries' paths, which are relative to the list file's own folder (as
data_generation.py writes them: `images/NAME`).
"""

import os
import re

from multilabel.base.errors import UserError
from multilabel.data.listfile import image_path, read_list_file

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(name):
    """Sort key putting `2.jpg` before `10.jpg`: digit runs compare as numbers."""
    parts = re.split(r"([0-9]+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name


def image_file_names(folder):
    """`(images, others)`: names of the image files directly in `folder` (by extension),
    and of the other files there. Dot files and folders are in neither: macOS leaves
    `._NAME.jpg` resource forks that are not images."""
    folder = os.fspath(folder)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise UserError("image folder not found", folder) from None
    except NotADirectoryError:
        raise UserError("not a folder", folder) from None
    except OSError as e:
        raise UserError(f"cannot list the folder: {e.strerror}", folder) from e
    files = [n for n in names
             if not n.startswith(".") and not os.path.isdir(os.path.join(folder, n))]
    is_image = [os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in files]
    return ([n for n, image in zip(files, is_image) if image],
            [n for n, image in zip(files, is_image) if not image])


def image_files_under(folder):
    """`(images, others)` as `image_file_names`, but through every subfolder too: paths
    relative to `folder` with forward slashes, sorted. Dot files and dot folders are left
    out, as there."""
    folder = os.fspath(folder)
    image_file_names(folder)  # the same errors for a missing folder or a file
    images, others = [], []
    for where, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        prefix = os.path.relpath(where, folder).replace(os.sep, "/")
        for name in files:
            if name.startswith("."):
                continue
            path = name if prefix == "." else f"{prefix}/{name}"
            is_image = os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            (images if is_image else others).append(path)
    return sorted(images), sorted(others)


def images_in_folder(folder):
    """Paths of the image files directly in `folder`, sorted; UserError if there are none."""
    images, _ = image_file_names(folder)
    if not images:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise UserError(f"no image files ({extensions}) in the folder", folder)
    return sorted(os.path.join(os.fspath(folder), name) for name in images)


def images_in_list(path):
    """The image paths of a list file, joined onto the list file's folder."""
    folder = os.path.dirname(os.fspath(path))
    return [image_path(folder, entry) for entry in read_list_file(path)]
