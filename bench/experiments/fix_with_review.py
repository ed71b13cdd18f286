"""What fixing labels on the review page buys: test measures clean, corrupted, corrected.

For each seed, 40 training labels of the demo split are corrupted as
bench/experiments/label_issues_vs_cleanlab.py corrupts them (one present label swapped
for an absent one, on 40 training images drawn at random), retrain.py runs with its
defaults on the corrupted copy and writes review.html, and this script stands in for a
careful person on that page: it reads the page's cards (the JSON the page's own script
reads) and, for the top 80, accepts the suggestion where it is the image's true label set
(for a pair, both images') and rejects it otherwise, which is what "Save labels" then
writes (tests/test_review_page.py checks the page saves exactly its choices). The
corrected training list is trained on again. The demo's labels are the truth here; they
are not all right (docs/label_issues.md), so a suggestion that fixes a label of the demo
itself is rejected too.

    python -m bench.experiments.fix_with_review --seeds 1,2
"""

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

import retrain
from bench.experiments.label_issues_vs_cleanlab import REPO, corrupt
from bench.retrain_outputs import output_flags
from multilabel.data import listfile

TOP = 80  # cards a reviewer goes through


def page_data(path):
    text = open(path, encoding="utf-8").read()
    start = text.index('id="data"')
    return json.loads(text[text.index(">", start) + 1:text.index("</script>", start)])


def train_on(folder, entries, source, args):
    """retrain.py's defaults on `entries` as the training list; its metrics.json."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.symlink(os.path.join(source, "images"), os.path.join(folder, "images"))
    for name in ("dataset_test.lst", "class_names.txt"):
        shutil.copy(os.path.join(source, name), folder)
    listfile.write_list_file(os.path.join(folder, "dataset_train.lst"), entries)
    out = os.path.join(folder, "out")
    assert retrain.main(["--image_dir", folder, "--model_dir", args.model_dir,
                         "--bottleneck_dir", args.bottleneck_dir, "--logging_verbosity",
                         "ERROR", *output_flags(out), "--tflite_output_file", "",
                         "--report_page", ""]) == 0
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        return json.load(f), out


def reviewed(entries, truth, data):
    """`(entries corrected, cards accepted, images on the top cards)`: the top TOP cards'
    suggestions accepted where they are the truth."""
    names = [f["name"] for f in data["files"]]
    fixed = dict((e.path.removeprefix("images/"), e) for e in entries)
    accepted = 0
    for card in data["cards"][:TOP]:
        images = [names[i] for i in card["images"]]
        if all(tuple(card["suggested"]) == truth[n] for n in images):
            accepted += 1
            for n in images:
                if n in fixed:
                    fixed[n] = dataclasses.replace(fixed[n], flags=tuple(card["suggested"]))
    shown = {names[i] for card in data["cards"][:TOP] for i in card["images"]}
    return [fixed[e.path.removeprefix("images/")] for e in entries], accepted, shown


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image_dir", default=os.path.join(REPO, "DATASET"))
    p.add_argument("--seeds", default="1", type=lambda t: [int(s) for s in t.split(",")])
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    source = os.path.abspath(args.image_dir)
    clean = listfile.read_list_file(os.path.join(source, "dataset_train.lst"))
    truth = {e.path.removeprefix("images/"): e.flags
             for name in ("dataset_train.lst", "dataset_test.lst")
             for e in listfile.read_list_file(os.path.join(source, name))}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        base, _ = train_on(os.path.join(scratch, "clean"), clean, source, args)
        for seed in args.seeds:
            entries, corrupted = corrupt(clean, args.count, np.random.default_rng(seed))
            bad, out = train_on(os.path.join(scratch, "corrupted"), entries, source, args)
            fixed, accepted, shown = reviewed(entries, truth, page_data(
                os.path.join(out, "review.html")))
            left = sum(e.flags != truth[e.path.removeprefix("images/")] for e in fixed)
            found = len({c.removeprefix("images/") for c in corrupted} & shown)
            good, _ = train_on(os.path.join(scratch, "corrected"), fixed, source, args)
            rows.append((seed, accepted, found, left, bad, good))
    print(f"| seed | corrupted among the top {TOP} cards | accepted | wrong labels left "
          "| test mAP clean / corrupted / corrected | exact match clean / corrupted / corrected |")
    print("| --- | --- | --- | --- | --- | --- |")
    for seed, accepted, found, left, bad, good in rows:
        print(f"| {seed} | {found} of {args.count} | {accepted} | {left} | "
              + " / ".join(f"{m['test']['mean_average_precision']:.4f}" for m in (base, bad, good))
              + " | " + " / ".join(f"{m['test']['exact_match']:.4f}" for m in (base, bad, good))
              + " |")


if __name__ == "__main__":
    sys.exit(main())
