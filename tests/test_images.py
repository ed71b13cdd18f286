"""Decoding by content: odd but valid formats decode, bombs and non-images are refused."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from multilabel import images
from multilabel.images import ImageError


def png_header(width, height):
    """A PNG that declares `width` x `height` RGB pixels but holds almost no data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 100_000])  # past Pillow's warning, past its error
def test_a_decompression_bomb_is_refused(tmp_path, side):
    # That Pillow's warning stays off stderr is checked in test_bad_inputs.py: pytest
    # records every warning, whatever the filters say.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side))
    for check in (images.verify_image, images.decode_image):
        with pytest.raises(ImageError, match="decompression bomb") as info:
            check(str(path))
        assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("make, mean", [
    (lambda: Image.new("L", (6, 4), 128), 128),
    (lambda: Image.new("CMYK", (6, 4), (0, 0, 0, 0)), 255),
    (lambda: Image.fromarray(np.full((4, 6), 65535, np.uint16)), 255),
    (lambda: Image.new("RGBA", (6, 4), (0, 0, 0, 0)), 255),  # transparent: white
    (lambda: Image.new("RGB", (1, 1), (30, 30, 30)), 30),
])
def test_odd_formats_decode_to_rgb(tmp_path, make, mean):
    buffer = io.BytesIO()
    img = make()
    img.save(buffer, "PNG" if img.mode != "CMYK" else "JPEG")
    path = tmp_path / "odd.jpg"  # the extension does not matter
    path.write_bytes(buffer.getvalue())
    pixels = images.load_image(str(path), 8, 8)
    assert pixels.shape == (8, 8, 3)
    assert abs(pixels.mean() * 255 - mean) < 2
