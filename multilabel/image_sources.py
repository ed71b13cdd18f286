"""Where label_image.py finds images: a folder or a list file.

A folder yields its image files (by extension, not recursing), sorted by name; a list
file yields its entries' paths, which are relative to the list file's own folder (as
data_generation.py writes them: `images/NAME`).
"""

import os

from multilabel.errors import UserError
from multilabel.listfile import image_path, read_list_file

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


def images_in_folder(folder):
    """Paths of the image files directly in `folder`, sorted; UserError if there are none."""
    folder = os.fspath(folder)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise UserError("image folder not found", folder) from None
    except NotADirectoryError:
        raise UserError("not a folder", folder) from None
    except OSError as e:
        raise UserError(f"cannot list the folder: {e.strerror}", folder) from e
    # Dot files are skipped: macOS leaves `._NAME.jpg` resource forks that are not images.
    paths = sorted(os.path.join(folder, name) for name in names
                   if not name.startswith(".")
                   and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
                   and not os.path.isdir(os.path.join(folder, name)))
    if not paths:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise UserError(f"no image files ({extensions}) in the folder", folder)
    return paths


def images_in_list(path):
    """The image paths of a list file, joined onto the list file's folder."""
    folder = os.path.dirname(os.fspath(path))
    return [image_path(folder, entry) for entry in read_list_file(path)]
