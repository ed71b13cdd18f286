"""Decoding by content: odd but valid formats decode, bombs and non-images are refused."""

import io

import numpy as np
import pytest
from PIL import Image

from multilabel.data import images
from multilabel.data.images import ImageError
from tests.fake_images import png_header


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


def test_an_array_that_is_no_image_names_every_shape_accepted():
    from multilabel.data.images import ImageError, image_in_memory
    for shape in ((4, 4, 7), (4,)):
        with pytest.raises(ImageError, match=r"not an image: \[H, W\] \(grey\), \[H, W, 3\] "
                                             r"\(RGB\) or \[H, W, 4\] \(RGBA\)"):
            image_in_memory(np.zeros(shape, np.uint8), 2, 2, "<image 0>")
    rgba = image_in_memory(np.zeros((4, 4, 4), np.uint8), 2, 2, "<image 0>")
    assert rgba.shape == (2, 2, 3)  # RGBA is accepted, as the message says
