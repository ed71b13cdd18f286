"""Which cosine similarity of bottlenecks makes two images near-duplicates? A measurement.

Photos of the scene set (DATASET) are copied four ways each, in a scratch folder:
re-encoded as a JPEG of quality 30, resized to half (the longer side), cropped by 8% of
each side, and recoloured (brightness x1.15, saturation x0.8). Every original and copy
goes through the real module (MobileNetV2 by default, through the same cache code a run
uses, into a scratch cache), and every pair of images is scored by the cosine similarity
of their vectors (multilabel/evaluation/near_duplicates.py).

- A *true* pair is a photo and one of its copies, or two copies of one photo.
- A *hard negative* is two distinct photos that share a label set (the same kind of
  scene): the pairs a threshold must not call copies. The scene set itself may hold real
  near-duplicates; the hard negatives above the threshold are printed, for a look.

For each threshold: recall (true pairs found / true pairs, per kind of copy and over
all) and precision (true pairs found / all pairs at or above it among true pairs and hard
negatives). The photos are split in two halves by a seeded shuffle: the threshold is
chosen on the first half (the lowest with precision >= 0.99) and checked on the second,
which it was not chosen on.

    python -m bench.experiments.near_duplicate_threshold --photos 300 --seed 1
"""

import argparse
import logging
import os
import tempfile

import numpy as np
from PIL import Image, ImageEnhance

from multilabel.base import project
from multilabel.data import listfile
from multilabel.evaluation import near_duplicates
from multilabel.features import module_set

COPIES = {
    "jpeg q30": lambda im: im,  # the quality is set when saving
    "half size": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)),
                                      Image.BILINEAR),
    "crop 8%": lambda im: im.crop((int(0.08 * im.width), int(0.08 * im.height),
                                   int(0.92 * im.width), int(0.92 * im.height))),
    "recolour": lambda im: ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(1.15))
    .enhance(0.8),
}
THRESHOLDS = (0.60, 0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96)


def make_copies(entries, dataset_dir, scratch):
    """`(paths, photo of each path, kind of each path)`: originals, then their copies."""
    paths, photo, kind = [], [], []
    for n, entry in enumerate(entries):
        source = listfile.image_path(dataset_dir, entry)
        paths.append(source), photo.append(n), kind.append("original")
        image = Image.open(source).convert("RGB")
        for name, make in COPIES.items():
            out = os.path.join(scratch, f"{n}-{name.replace(' ', '_').replace('%', '')}.jpg")
            make(image).save(out, quality=30 if name == "jpeg q30" else 90)
            paths.append(out), photo.append(n), kind.append(name)
    return paths, np.array(photo), np.array(kind)


def pair_table(vectors, photo, kind, labels):
    """`(similarity, is_true, copy kind of the pair or "", hard negative)` of every pair."""
    unit = near_duplicates.unit_rows(vectors)
    first, second = np.triu_indices(len(unit), 1)
    similarity = np.einsum("ij,ij->i", unit[first], unit[second])
    true = photo[first] == photo[second]
    copy_kind = np.where(true, np.where(kind[first] == "original", kind[second], "copy-copy"), "")
    hard = ~true & (labels[photo[first]] == labels[photo[second]]).all(axis=1)
    return similarity, true, copy_kind, hard, first, second


def rates(similarity, true, copy_kind, hard, threshold):
    """{"precision", "recall", kind: recall, "false": count} at `threshold`."""
    above = similarity >= threshold
    found = (above & true).sum()
    false = (above & hard).sum()
    out = {"precision": found / max(found + false, 1), "recall": found / true.sum(),
           "false": int(false)}
    for name in COPIES:
        of_kind = copy_kind == name
        out[name] = (above & of_kind).sum() / of_kind.sum()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_dir", default=project.default_path(project.DATASET))
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--module", default="mobilenet_v2_100_224")
    parser.add_argument("--measure", choices=("cosine", "centred"), default="cosine",
                        help="cosine of the vectors, or of the vectors less their mean")
    parser.add_argument("--vectors", help="an .npz to keep the vectors in and reuse")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    entries = listfile.read_list_file(os.path.join(args.image_dir, listfile.FULL_LIST))
    rng = np.random.default_rng(args.seed)
    chosen = [entries[i] for i in rng.permutation(len(entries))[:args.photos]]
    labels = np.array([e.flags for e in chosen])
    if args.vectors and os.path.exists(args.vectors):
        saved = np.load(args.vectors)
        paths, photo, kind, vectors = (list(saved["paths"]), saved["photo"], saved["kind"],
                                       saved["vectors"])
    else:
        with tempfile.TemporaryDirectory() as scratch:
            paths, photo, kind = make_copies(chosen, args.image_dir, scratch)
            cache = os.path.join(scratch, "cache")  # copies never enter the project's cache
            module = module_set.load_module_set(
                (args.module,), project.default_path(project.MODELS), cache, "auto")
            vectors = module_set.set_bottlenecks(paths, module, cache, 32)
        if args.vectors:
            np.savez(args.vectors, paths=np.array(paths), photo=photo, kind=kind,
                     vectors=vectors)
    if args.measure == "centred":
        # As a run centres them: on the mean of its images, here the distinct photos.
        vectors = vectors - vectors[kind == "original"].mean(axis=0)
    halves = {"chosen on (first half)": photo < args.photos // 2,
              "checked on (second half)": photo >= args.photos // 2}
    tables = {}
    for name, keep in halves.items():
        tables[name] = pair_table(vectors[keep], photo[keep], kind[keep], labels)
    first = tables["chosen on (first half)"]
    chosen_threshold = min((t for t in np.arange(0.50, 0.995, 0.005)
                            if rates(*first[:4], t)["precision"] >= 0.99), default=None)
    print(f"{args.photos} photos of {args.image_dir} (seed {args.seed}), 4 copies each, "
          f"module {args.module}, measure: {args.measure}\n")
    print("| half | threshold | precision | recall | " + " | ".join(COPIES)
          + " | hard negatives above |")
    print("|" + " --- |" * (5 + len(COPIES)))
    for name, table in tables.items():
        for t in sorted({*THRESHOLDS, round(float(chosen_threshold or 0.9), 3)}):
            r = rates(*table[:4], t)
            print(f"| {name} | {t:.3f} | {r['precision']:.4f} | {r['recall']:.4f} | "
                  + " | ".join(f"{r[k]:.4f}" for k in COPIES) + f" | {r['false']} |")
    print(f"\nlowest threshold with precision >= 0.99 on the first half: {chosen_threshold}")
    similarity, true, _, hard, a, b = tables["checked on (second half)"]
    worst = np.flatnonzero(hard & (similarity >= near_duplicates.THRESHOLD))
    keep = np.flatnonzero(halves["checked on (second half)"])
    for i in worst[np.argsort(-similarity[worst])][:10]:
        print(f"hard negative above {near_duplicates.THRESHOLD}: {similarity[i]:.4f} "
              f"{paths[keep[a[i]]]} {paths[keep[b[i]]]}")


if __name__ == "__main__":
    main()
