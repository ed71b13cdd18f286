"""Where images are found: a folder (label_image.py, data_generation.py) or a list file.

A folder yields its image files (by extension, not recursing), sorted by name; a list
file yields its entries' paths, which are relative to the list file's own folder (as
data_generation.py writes them: `images/NAME`).
"""

import os

from multilabel.base.errors import UserError
from multilabel.data.listfile import image_path, read_list_file

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


def is_image_name(name):
    """Whether a file name is an image's: by its extension, and never a dot file (macOS
    leaves `._NAME.jpg` resource forks that are not images). Every folder listing, local
    or through Beam's file systems, filters by this."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def no_images_error(folder):
    """The error for a folder without image files, wherever it was listed."""
    return UserError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the folder",
                     folder)


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


def images_in_folder(folder):
    """Paths of the image files directly in `folder`, sorted; UserError if there are none."""
    images, _ = image_file_names(folder)
    if not images:
        raise no_images_error(folder)
    return sorted(os.path.join(os.fspath(folder), name) for name in images)


def images_in_list(path):
    """The image paths of a list file, joined onto the list file's folder."""
    folder = os.path.dirname(os.fspath(path))
    return [image_path(folder, entry) for entry in read_list_file(path)]
