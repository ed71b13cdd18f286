"""Small data sets of distinct random images, made in the tests."""

import json

import numpy as np
from PIL import Image


def write_random_images(folder, count, seed):
    """Write `folder/images/1.png ... count.png`, random 8 x 8 RGB, all distinct.

    Returns each image's label row as a JSON line for labels.json: three labels, one per
    colour channel, present where that channel's mean is over half.
    """
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, count + 1):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
        rows.append(json.dumps([1 if pixels[..., c].mean() > 127 else -1 for c in range(3)]))
    return rows
