"""Random image distortions for training, as the original retrain.py applied them.

With any distortion on, a training image's bottleneck can't be cached: each step
decodes its images, distorts them afresh and runs them through the module. The
operations and their ranges follow the original's `add_input_distortions`: scale the
image up by a random factor, crop a random window of the module's size, maybe mirror
it, and multiply its brightness.
"""

import dataclasses

import numpy as np

from multilabel.data.images import decode_image, resize_and_scale


@dataclasses.dataclass(frozen=True)
class Distortions:
    flip_left_right: bool = False
    random_crop: float = 0.0  # percent of margin around the crop
    random_scale: float = 0.0  # percent by which to randomly scale up
    random_brightness: float = 0.0  # percent by which to randomly scale pixel values

    @classmethod
    def of(cls, options):
        """The distortions that `options` (a TrainOptions, whose flags share these names) set."""
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})

    @property
    def enabled(self):
        return (self.flip_left_right or self.random_crop != 0 or self.random_scale != 0
                or self.random_brightness != 0)


def distorted_image(path, height, width, distortions, rng):
    """One randomly distorted float32 `[height, width, 3]` view of the image at `path`."""
    scale = (1.0 + distortions.random_crop / 100.0) * rng.uniform(
        1.0, 1.0 + distortions.random_scale / 100.0)
    big_h, big_w = int(round(height * scale)), int(round(width * scale))
    image = resize_and_scale(decode_image(path), big_h, big_w)
    top = rng.integers(0, big_h - height + 1)
    left = rng.integers(0, big_w - width + 1)
    image = image[top:top + height, left:left + width]
    if distortions.flip_left_right and rng.random() < 0.5:
        image = image[:, ::-1]
    brightness = distortions.random_brightness / 100.0
    image = image * rng.uniform(1.0 - brightness, 1.0 + brightness)
    return np.ascontiguousarray(image, dtype=np.float32)
