"""Turn an image file into the float array a feature module expects.

Training (retrain.py) and inference (label_image.py) both call `load_image`, so the
decoding, the resize method and the scaling can never differ between them (the
original project trained with bilinear resizing and labelled with AREA).

Decoding goes by the file's content, not its extension, through Pillow: JPEG (also
CMYK and progressive), PNG (also 16-bit, palette, alpha), GIF (first frame), BMP,
TIFF and WebP all become 8-bit RGB.
"""

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from multilabel.base import storage
from multilabel.base.errors import UserError

# Pillow warns past ~89 Mpx and raises past twice that; a photo this large is either
# a decompression bomb or far more than a 224 x 224 model needs, so refuse it early.
MAX_PIXELS = 89_478_485
# Pillow's warning for the same images would print two lines of its own source on stderr
# beside our one-line error; we refuse those images, so the warning says nothing more.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


class ImageError(UserError):
    """An image that cannot be decoded: missing, empty, truncated or not an image."""


def decode_image(path, data=None):
    """Decode `path` into an upright 8-bit RGB `PIL.Image`, or raise `ImageError`.

    `data`, when given, is the file's content already read (from an object store, say);
    `path` then only names it in errors.
    """
    def finish(img):
        img.load()  # first frame only for animations; raises on truncated data
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of upright images
        return to_rgb(img)
    return _decode(path, finish, data)


def verify_image(path):
    """Raise `ImageError` unless `decode_image(path)` would succeed, at a fraction of its cost.

    JPEGs are decoded at 1/8 scale: every entropy-coded byte is still read, so a
    truncated or corrupt file fails here, but the inverse DCT is mostly skipped.
    """
    def check(img):
        img.draft(img.mode, (1, 1))
        img.load()
    _decode(path, check)


def _decode(path, finish, data=None):
    """Open `path` (or `data`), refuse bombs, hand it to `finish`; errors become `ImageError`.

    Only a regular file is opened (`storage.open_regular`): Pillow would block forever
    reading a FIFO named like a photo.
    """
    try:
        source = io.BytesIO(data) if data is not None else storage.open_regular(path)
        with source, Image.open(source) as img:
            width, height = img.size
            if not (width and height):
                raise ImageError(f"image is {width} x {height} pixels: nothing to label", path)
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"image is {width} x {height} pixels, more than the {MAX_PIXELS} allowed "
                    "(a decompression bomb?)", path)
            return finish(img)
    except FileNotFoundError:
        raise ImageError("image file not found", path) from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image file", path) from None
    except storage.NotRegularFileError as e:
        raise ImageError(e.strerror, path) from None
    except UnidentifiedImageError as e:
        # Pillow names the file object it was given; name the path, as it would.
        raise ImageError(f"cannot decode image: cannot identify image file "
                         f"{os.fspath(path)!r}", path) from e
    except Image.DecompressionBombError as e:
        raise ImageError(f"refused as a decompression bomb: {e}", path) from e
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow's UnidentifiedImageError is an OSError; truncated files raise OSError.
        raise ImageError(f"cannot decode image: {e}", path) from e


def to_rgb(img):
    """Convert any Pillow mode to RGB, compositing transparency onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own I;16 -> L conversion clips at 255 instead of scaling.
        values = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if values.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.round(values * (255.0 / scale)).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def resize(img, height, width):
    """An RGB image resized to `height` x `width` (bilinear), as uint8 `[h, w, 3]`."""
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def scale(pixels):
    """uint8 pixels (one image or a batch) as the float32 values in [0, 1] models take."""
    return np.asarray(pixels, dtype=np.float32) / np.float32(255.0)


def resize_and_scale(img, height, width):
    """Resize an RGB image to `height` x `width` (bilinear) as float32 in [0, 1]."""
    return scale(resize(img, height, width))


def load_pixels(path, height, width, data=None):
    """One image file (or its content, `data`) decoded and resized, as uint8 `[height, width, 3]`.

    Bulk work keeps images as uint8 until a whole batch is scaled at once: a quarter of
    the memory, and one vectorised conversion instead of one per image.
    """
    return resize(decode_image(path, data), height, width)


def load_image(path, height, width):
    """The model input for one image file: float32 `[height, width, 3]` in [0, 1]."""
    return scale(load_pixels(path, height, width))


def image_in_memory(image, height, width, name):
    """The model input for an image already in memory, prepared as `load_image` prepares
    a file: a `PIL.Image` (any mode), or an array [H, W] or [H, W, 3 or 4] of uint8, or of
    floats in [0, 1] (taken to 8 bits, as a decoded photo is), or the bytes of an image
    file (a JPEG read into memory). `name` names it in errors."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return scale(load_pixels(name, height, width, data=bytes(image)))
    if isinstance(image, Image.Image):
        if not (image.width and image.height):
            raise ImageError(f"image is {image.width} x {image.height} pixels: nothing to "
                             "label", name)
        return resize_and_scale(to_rgb(image), height, width)
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) \
            or not array.size:
        raise ImageError(f"an array of shape {array.shape} is not an image: [H, W] (grey), "
                         "[H, W, 3] (RGB) or [H, W, 4] (RGBA)", name)
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating) or not (
                (array >= 0) & (array <= 1)).all():  # also refuses NaN
            raise ImageError(f"an array of {array.dtype} must be uint8, or floats in [0, 1]",
                             name)
        array = np.round(array * 255.0).astype(np.uint8)
    return resize_and_scale(to_rgb(Image.fromarray(array)), height, width)
