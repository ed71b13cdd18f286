"""What each named feature module costs: size, features, engine and bottleneck speed.

    python -m bench.timings.module_speed [--model_dir MODEL] [--images 100] [NAME ...]

For each module (default: all), built into --model_dir when missing: the SavedModel's
size, the feature dimension, which engine `engines.make_engine("auto", ...)` picks (TFLite
only where it matches TensorFlow within engines.TOLERANCE on its probe), the relative
difference of the TFLite and TensorFlow vectors on the real images, and images/s of
both engines on the first --images photos of DATASET/, decoded and resized beforehand,
in batches of 32 (the best of 2 rounds). Scratch files go to a temporary folder.
"""

import argparse
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from multilabel.data.images import load_image  # noqa: E402
from multilabel.features import engines, feature_modules  # noqa: E402
from multilabel.features.backbones import module_builder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH = 32


def images_per_second(engine, images, rounds=2):
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        vectors = [engine(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
        best = min(best, time.perf_counter() - started)
    return len(images) / best, np.concatenate(vectors)


def folder_mb(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path)
               for f in fs) / 1e6


def measure(name, model_dir, count, scratch):
    started = time.monotonic()
    path = feature_modules.resolve_module(name, model_dir)
    build_s = time.monotonic() - started
    size = feature_modules.image_size(path)
    images = np.stack([load_image(os.path.join(ROOT, "DATASET", "images", f"{i}.jpg"), *size)
                       for i in range(1, count + 1)])
    auto = engines.make_engine("auto", path, os.path.join(scratch, name))
    tensorflow = engines.TensorFlowEngine(path)
    tf_rate, tf_vectors = images_per_second(tensorflow, images)
    if auto.name == "tflite":
        tflite_rate, tflite_vectors = images_per_second(auto, images)
        difference = f"{engines.relative_difference(tflite_vectors, tf_vectors):.1e}"
        tflite = f"{tflite_rate:.0f}"
    else:
        difference = tflite = "-"
    return (name, f"{build_s:.0f}", f"{folder_mb(path):.1f}", f"{size[0]}",
            str(tf_vectors.shape[1]), auto.name, difference, tflite, f"{tf_rate:.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default=os.path.join(ROOT, "MODEL"))
    parser.add_argument("--images", type=int, default=100, help="how many DATASET photos")
    parser.add_argument("names", nargs="*", help="modules (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    header = ("module", "build/load s", "MB", "input", "dim", "auto engine",
              "tflite vs tf", "tflite img/s", "tf img/s")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.names or module_builder.RECIPES:
            rows.append(measure(name, args.model_dir, args.images, scratch))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(main())
