"""Where images are found: a folder (label_image.py, data_generation.py) or a list.

A folder yields its image files (by extension), through its subfolders (a camera roll
in dated folders, the `images/<label>/` layout) unless only its top level is asked
for, in natural path order (`IMG_9` before `IMG_10`). A list is a `.lst` list file
(index, flags, path, as data_generation.py writes them) or any other text file of image
paths, one a line; relative paths in either are relative to the list
file's own folder, as a list file's `images/NAME` is.
"""

import errno
import os
import re

from multilabel.base import storage
from multilabel.base.errors import UserError, file_error
from multilabel.data.listfile import image_path, read_list_file

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


def is_image_name(name):
    """Whether a file name is an image's: by its extension, and never a dot file (macOS
    leaves `._NAME.jpg` resource forks that are not images). Every folder listing, local
    or through Beam's file systems, filters by this."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def no_images_error(folder):
    """The error for a folder without image files, wherever it was listed."""
    return UserError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the folder "
                     "or its subfolders", folder)


def natural_key(name):
    """Sort key putting `2.jpg` before `10.jpg`: digit runs compare as numbers."""
    parts = re.split(r"([0-9]+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name


def image_file_names(folder):
    """`(images, others)`: names of the image files directly in `folder` (`is_image_name`),
    and of the other files there. Dot files and folders are in neither."""
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
    is_image = [is_image_name(n) for n in files]
    return ([n for n, image in zip(files, is_image) if image],
            [n for n, image in zip(files, is_image) if not image])


def image_files_under(folder):
    """`(images, others)` as `image_file_names`, but through every subfolder too: paths
    relative to `folder` with forward slashes, sorted. Dot files and dot folders are left
    out, as there. A linked folder is followed (its files are listed through the link),
    once: a link back to a folder already listed is skipped, so a loop ends."""
    folder = os.fspath(folder)
    image_file_names(folder)  # the same errors for a missing folder or a file
    images, others = [], []
    seen = {os.path.realpath(folder)}
    for where, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and _first_visit(os.path.join(where, d), seen)]
        prefix = os.path.relpath(where, folder).replace(os.sep, "/")
        for name in files:
            if name.startswith("."):
                continue
            path = name if prefix == "." else f"{prefix}/{name}"
            is_image = os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            (images if is_image else others).append(path)
    return sorted(images), sorted(others)


def _first_visit(path, seen):
    real = os.path.realpath(path)
    if real in seen:
        return False
    seen.add(real)
    return True


def check_image_file(path):
    """Raise `UserError` unless `path` is a non-empty regular file, before any work: a
    symlink that loops or points nowhere, a FIFO, a socket or a device would fail (or
    hang) retrain.py, and a zero-byte file is an interrupted copy."""
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


def images_in_folder(folder, top_level_only=False):
    """Paths of the image files under `folder` (only directly in it with
    `top_level_only`), in natural order of their path in it (`IMG_9` before `IMG_10`);
    UserError if there are none."""
    if top_level_only:
        images, _ = image_file_names(folder)
    else:
        images, _ = image_files_under(folder)
    if not images:
        raise no_images_error(folder)
    return [os.path.join(os.fspath(folder), *name.split("/"))
            for name in sorted(images, key=natural_key)]


def images_in_list(path):
    """The image paths of a `.lst` list file or of a plain list of paths, joined onto the
    list file's folder (an absolute path stays as it is)."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if path.lower().endswith(".lst"):
        return [image_path(folder, entry) for entry in read_list_file(path)]
    try:
        with storage.open_file(path, "r", encoding="utf-8-sig", newline="") as f:
            return [os.path.join(folder, p) for p in read_paths(f, path)]
    except OSError as e:
        raise file_error(e, path, "list file") from e
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 text: {e}", path) from e


def read_paths(lines, source="<stream>"):
    """The image paths of a plain list, one a line (blank lines skipped, CRLF forgiven)."""
    paths = []
    for number, text in enumerate(lines, start=1):
        text = text.rstrip("\r\n").strip()
        if not text:
            continue
        if "\t" in text:
            # A paths-only list has no fields: this is a list file under another name.
            raise UserError("a tab in an image path; a list file of index, flags and path "
                            "must be named *.lst", source, number)
        paths.append(text)
    if not paths:
        raise UserError("no image paths in the list", source)
    return paths
