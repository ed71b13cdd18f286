"""Random distortions of training images, as the original's flags define them."""

import numpy as np
from PIL import Image

from multilabel.data.distortions import Distortions, distorted_image
from multilabel.data.images import load_image


def gradient_image(path):
    """Left half dark, right half bright: mirroring it is visible."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, 30:] = 200
    Image.fromarray(pixels).save(path)
    return str(path)


def test_no_distortion_is_the_plain_training_image(tmp_path):
    path = gradient_image(tmp_path / "g.png")
    image = distorted_image(path, 16, 16, Distortions(), np.random.default_rng(0))
    np.testing.assert_array_equal(image, load_image(path, 16, 16))
    assert not Distortions().enabled


def test_distortions_are_random_but_repeatable(tmp_path):
    path = gradient_image(tmp_path / "g.png")
    d = Distortions(flip_left_right=True, random_crop=20, random_scale=30, random_brightness=25)
    assert d.enabled
    views = [distorted_image(path, 16, 16, d, np.random.default_rng(s)) for s in range(8)]
    assert all(v.shape == (16, 16, 3) and v.dtype == np.float32 for v in views)
    assert len({v.tobytes() for v in views}) > 1
    np.testing.assert_array_equal(views[3], distorted_image(path, 16, 16, d,
                                                            np.random.default_rng(3)))


def test_flip_mirrors_about_half_the_images(tmp_path):
    path = gradient_image(tmp_path / "g.png")
    flips = 0
    for seed in range(40):
        image = distorted_image(path, 16, 16, Distortions(flip_left_right=True),
                                np.random.default_rng(seed))
        flips += image[:, 0].mean() > image[:, -1].mean()
    assert 10 <= flips <= 30


def test_brightness_scales_pixel_values_within_its_range(tmp_path):
    path = gradient_image(tmp_path / "g.png")
    plain = load_image(path, 16, 16)
    for seed in range(10):
        image = distorted_image(path, 16, 16, Distortions(random_brightness=20),
                                np.random.default_rng(seed))
        factor = image.sum() / plain.sum()
        assert 0.8 - 1e-6 <= factor <= 1.2 + 1e-6
        np.testing.assert_allclose(image, plain * factor, atol=1e-5)
