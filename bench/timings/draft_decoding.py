"""Would decoding large JPEGs at reduced size (PIL's `draft`) keep the bottlenecks?

    python -m bench.timings.draft_decoding [PHOTO ...]   # default: shared/datasets/extra-photos

The issue asks for draft decoding only where it leaves the bottlenecks within 1e-4
(relative) of a full decode. For each photo this prints the JPEG's size, the relative
difference of the MobileNetV2 vectors (draft vs full decode, both then resized the same
way) and the decoding time of both. The scene images (384 x 256) are too small for
draft to apply at 224 x 224 at all.
"""

import glob
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image, ImageOps  # noqa: E402

from multilabel.data.images import load_image, resize_and_scale, to_rgb  # noqa: E402
from multilabel.features import engines, feature_modules  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHOTOS = os.path.join(ROOT, "..", "shared", "datasets", "extra-photos", "*.jpg")


def draft_load(path, height, width):
    """`load_image`, but letting libjpeg scale by 1/2, 1/4 or 1/8 while staying >= the size."""
    with Image.open(path) as img:
        img.draft("RGB", (width, height))
        img.load()
        return resize_and_scale(to_rgb(ImageOps.exif_transpose(img)), height, width)


def milliseconds(load, path, height, width, repeat=5):
    start = time.perf_counter()
    for _ in range(repeat):
        load(path, height, width)
    return 1000 * (time.perf_counter() - start) / repeat


def main(argv):
    paths = argv or sorted(glob.glob(PHOTOS))
    module = feature_modules.resolve_module(feature_modules.DEFAULT_MODULE,
                                            os.path.join(ROOT, "MODEL"))
    height, width = feature_modules.image_size(module)
    engine = engines.TensorFlowEngine(module)
    print(f"{'photo':<16} {'size':>11} {'relative diff':>13} {'full ms':>8} {'draft ms':>8}")
    for path in paths:
        full = engine(load_image(path, height, width)[None])
        draft = engine(draft_load(path, height, width)[None])
        with Image.open(path) as img:
            size = "%dx%d" % img.size
        print(f"{os.path.basename(path):<16} {size:>11} "
              f"{engines.relative_difference(draft, full):>13.2g} "
              f"{milliseconds(load_image, path, height, width):>8.1f} "
              f"{milliseconds(draft_load, path, height, width):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
