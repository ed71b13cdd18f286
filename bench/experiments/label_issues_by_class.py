"""Does weighing each class's doubts make the label-issue flags ones a user can trust?
Three rankings of the same flags, on the same held-out predictions of one retrain.py run
each:

- `plain`: confident learning's label quality score, every class alike;
- `by AP`: each class weighed by how well the model knows it, w_c = min(e) / e_c with
  e_c = 1 - AP_c on the training part's out-of-fold predictions (tried, not used);
- `by noise`: label_issues.py's own ranking, each class weighed by the label noise
  confident learning estimates in it, w_c = min(1, r_c / median(r)) (`class_weights`).

Each weight w_c turns a class's self-confidence into 1 - w_c (1 - self-confidence).

1. **Labels exact by construction.** A copy of the demo data in which a quarter of the
   photos, drawn at random, are turned grayscale and labelled `black & white`, and
   another quarter darkened (pixel values x0.3) and labelled `low light`, beside their
   scene labels; the demo's split is kept. Every flag on those two classes is wrong, so
   they should fall to the bottom: the table counts the rows that suggest adding or
   removing one of them among the top 20 and top 100 rows (train and test parts, as
   label_issues.csv lists them) and their mean position (0 the top, 1 the bottom).
2. **Labels corrupted on purpose** (bench/experiments/label_issues_vs_cleanlab.py's
   corruption: one present label swapped for an absent one on N training images):
   recall of the corrupted images in the top N and 2N rows; it must not drop.

    python -m bench.experiments.label_issues_by_class --seeds 1,2 --counts 40,80
"""

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image, ImageEnhance

import retrain
from bench.experiments.label_issues_vs_cleanlab import REPO, corrupt, measure, recorded_parts
from bench.retrain_outputs import output_flags
from multilabel.data import listfile
from multilabel.evaluation import label_issues, metrics

EXACT = ("black & white", "low light")


def run_retrain(folder, args, name):
    """retrain.py with its defaults on `folder` (outputs in folder/out, no TFLite model and
    no report page, which these measures do not read); `{part name: HeldOut}`, kept in
    --keep (an .npz per run) to rank again without training."""
    name = f"{name}.npz"
    if args.keep and os.path.exists(os.path.join(args.keep, name)):
        saved = np.load(os.path.join(args.keep, name))
        return {part: label_issues.HeldOut(part, tuple(saved[f"{part}_paths"]),
                                           saved[f"{part}_labels"], saved[f"{part}_probs"])
                for part in ("train", "test")}
    argv = ["--image_dir", folder, "--model_dir", args.model_dir,
            "--bottleneck_dir", args.bottleneck_dir, "--logging_verbosity", "ERROR",
            *output_flags(os.path.join(folder, "out")), "--tflite_output_file", "",
            "--report_page", ""]
    with recorded_parts() as parts:
        assert retrain.main(argv) == 0
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        np.savez(os.path.join(args.keep, name), **{
            f"{p.name}_{field}": np.asarray(getattr(p, field))
            for p in parts for field in ("paths", "labels", "probs")})
    return {p.name: p for p in parts}


ERROR_FLOOR = 0.005  # 1 - AP below this counts as this: no class weighs the others to zero


def class_weights(labels, probs):
    """[C]: `min(e) / e_c`, e_c = 1 - AP_c; 1 where a class has no positives."""
    errors = 1 - metrics.average_precision(labels, probs)
    known = ~np.isnan(errors)
    weights = np.ones(labels.shape[1])
    floor = max(np.nanmin(errors), ERROR_FLOOR)
    weights[known] = floor / np.maximum(errors[known], floor)
    return weights


def weighed_scores(labels, probs, weights, alpha=label_issues.SCORE_ALPHA):
    """label_issues.quality_scores with each class's doubt scaled by its weight."""
    confidence = np.where(labels == 1, probs, 1 - probs)
    confidence = 1 - weights * (1 - confidence)
    descending = -np.sort(-confidence, axis=1)
    score = descending[:, 0]
    for column in descending.T[1:]:
        score = alpha * column + (1 - alpha) * score
    return score


RULES = ("plain", "by AP", "by noise")


def ranked(parts, rule):
    """Every part's issues worst first by `rule` (RULES)."""
    if rule == "by noise":
        return label_issues.rank_issues(parts)
    train = next(part for part in parts if part.name == "train")
    weights = class_weights(train.labels, train.probs)
    issues = []
    for part in parts:
        if not len(part.paths):
            continue
        add, remove = label_issues.find_issues(part.labels, part.probs)
        scores = (weighed_scores(part.labels, part.probs, weights) if rule == "by AP"
                  else label_issues.quality_scores(part.labels, part.probs))
        for i in np.flatnonzero((add | remove).any(axis=1)):
            issues.append((float(scores[i]), part.paths[i], add[i] | remove[i]))
    return [label_issues.Issue(path, "", None, None, flags, flags, score)
            for score, path, flags in sorted(issues, key=lambda t: t[0])]


def exact_copy(source, folder, rng):
    """The demo data with `EXACT`'s classes made by construction, in `folder`."""
    os.makedirs(os.path.join(folder, "images"))
    names = listfile.read_class_names(os.path.join(source, "class_names.txt"))
    listfile.write_class_names(os.path.join(folder, "class_names.txt"), [*names, *EXACT])
    for list_name in ("dataset_train.lst", "dataset_test.lst"):
        entries = []
        for entry in listfile.read_list_file(os.path.join(source, list_name)):
            kind = rng.choice(3, p=[0.5, 0.25, 0.25])
            src = os.path.join(source, entry.path)
            dst = os.path.join(folder, entry.path)
            if kind == 0:
                os.symlink(src, dst)
            else:
                image = Image.open(src).convert("RGB")
                image = (image.convert("L").convert("RGB") if kind == 1
                         else ImageEnhance.Brightness(image).enhance(0.3))
                image.save(dst, quality=95)
            entries.append(dataclasses.replace(
                entry, flags=(*entry.flags, int(kind == 1), int(kind == 2))))
        listfile.write_list_file(os.path.join(folder, list_name), entries)
    return len(names)


def exact_table(args):
    source = os.path.abspath(args.image_dir)
    print("| seed | ranking | exact-class rows in top 20 | in top 100 | of all rows | "
          "mean position |\n| --- | --- | --- | --- | --- | --- |")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            scenes = exact_copy(source, folder, np.random.default_rng(seed))
            parts = run_retrain(folder, args, f"exact-{seed}")
            train = parts["train"]
            for rule, weights in (("by AP", class_weights(train.labels, train.probs)),
                                  ("by noise", label_issues.class_weights(train.labels,
                                                                          train.probs))):
                print(f"seed {seed}: weights {rule}: "
                      f"{', '.join(f'{w:.2f}' for w in weights)}", file=sys.stderr)
            for rule in RULES:
                issues = ranked(list(parts.values()), rule)
                on_exact = [bool((i.add | i.remove)[scenes:].any()) for i in issues]
                where = np.flatnonzero(on_exact) / max(len(issues) - 1, 1)
                print(f"| {seed} | {rule} | "
                      f"{sum(on_exact[:20])} | {sum(on_exact[:100])} | {sum(on_exact)} of "
                      f"{len(issues)} | {where.mean():.2f} |")


def corrupted_table(args):
    source = os.path.abspath(args.image_dir)
    train = listfile.read_list_file(os.path.join(source, "dataset_train.lst"))
    print("\n| corrupted | seed | k | " + " | ".join(f"recall {r}" for r in RULES)
          + " |\n| --- | --- | --- |" + " --- |" * len(RULES))
    for count in args.counts:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as folder:
                os.symlink(os.path.join(source, "images"), os.path.join(folder, "images"))
                for name in ("dataset_test.lst", "class_names.txt"):
                    shutil.copy(os.path.join(source, name), folder)
                entries, corrupted = corrupt(train, count, np.random.default_rng(seed))
                listfile.write_list_file(os.path.join(folder, "dataset_train.lst"), entries)
                parts = run_retrain(folder, args, f"corrupted-{count}-{seed}")
                # images/NAME, as the list names it (a kept run's folder was another).
                lists = [["/".join(i.image.replace(os.sep, "/").split("/")[-2:])
                          for i in ranked(list(parts.values()), rule)] for rule in RULES]
                for k in (count, 2 * count):
                    print(f"| {count} | {seed} | {k} | " + " | ".join(
                        f"{measure(ranking, corrupted, k)[1]:.3f}" for ranking in lists) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image_dir", default=os.path.join(REPO, "DATASET"))
    p.add_argument("--seeds", default="1", type=lambda t: [int(s) for s in t.split(",")])
    p.add_argument("--counts", default="40,80", type=lambda t: [int(s) for s in t.split(",")])
    p.add_argument("--only", choices=("exact", "corrupted"))
    p.add_argument("--keep", help="a folder keeping each run's held-out predictions, to rank "
                                  "them again without training")
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.only != "corrupted":
        exact_table(args)
    if args.only != "exact":
        corrupted_table(args)


if __name__ == "__main__":
    sys.exit(main())
