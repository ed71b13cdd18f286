"""Does labelling the photos `label_image.py --rank uncertain` puts first teach the model
more than labelling photos at random? One table.

For each seed: 400 images of the demo's training list, drawn at random, are the labelled
set; the other training images are the unlabelled pool. retrain.py (defaults) trains on
the 400 with the pool as its test part, so test_predictions.jsonl holds the pool's
probabilities under the run's thresholds. The pool is ranked by the rule
(multilabel/labelling/ranking.py: smallest log-odds margin to a threshold first,
near-duplicates of a photo above or of the 400 last, on the cached MobileNetV2 vectors),
and 200 photos are added from its top; separately, 200 drawn at random. Each 600 is
trained on (defaults) and measured on the demo's real test part.

    python -m bench.experiments.label_next --seeds 1,2,3
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

import retrain
from bench.experiments.label_issues_vs_cleanlab import REPO
from bench.retrain_outputs import output_flags
from multilabel.data import listfile
from multilabel.features import module_set
from multilabel.labelling import ranking

START, ADDED = 400, 200


def train_on(folder, train, test, source, args):
    """retrain.py's defaults on the `train` entries, tested on `test`; its output folder."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.symlink(os.path.join(source, "images"), os.path.join(folder, "images"))
    shutil.copy(os.path.join(source, "class_names.txt"), folder)
    listfile.write_list_file(os.path.join(folder, "dataset_train.lst"), train)
    listfile.write_list_file(os.path.join(folder, "dataset_test.lst"), test)
    out = os.path.join(folder, "out")
    assert retrain.main(["--image_dir", folder, "--model_dir", args.model_dir,
                         "--bottleneck_dir", args.bottleneck_dir, "--logging_verbosity",
                         "ERROR", *output_flags(out), "--tflite_output_file", "",
                         "--report_page", "", "--review_page", ""]) == 0
    return out


def test_map(out):
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)["test"]["mean_average_precision"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image_dir", default=os.path.join(REPO, "DATASET"))
    p.add_argument("--seeds", default="1,2,3", type=lambda t: [int(s) for s in t.split(",")])
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    source = os.path.abspath(args.image_dir)
    train = listfile.read_list_file(os.path.join(source, "dataset_train.lst"))
    test = listfile.read_list_file(os.path.join(source, "dataset_test.lst"))
    module = module_set.load_module_set(("mobilenet_v2_100_224",), args.model_dir,
                                        args.bottleneck_dir, "auto")
    print(f"| seed | test mAP: {START} labelled + {ADDED} by the rule | + {ADDED} at random |"
          " near-duplicates put last |\n| --- | --- | --- | --- |", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(train))
            labelled = [train[i] for i in sorted(order[:START])]
            pool = [train[i] for i in sorted(order[START:])]
            out = train_on(os.path.join(scratch, "start"), labelled, pool, source, args)
            with open(os.path.join(out, "test_predictions.jsonl"), encoding="utf-8") as f:
                rows = [json.loads(line) for line in f]
            probs_of = {os.path.relpath(r["image"], os.path.join(scratch, "start")).replace(
                os.sep, "/"): r["probabilities"] for r in rows}
            probs = np.array([probs_of[e.path] for e in pool])
            thresholds = np.loadtxt(os.path.join(out, "output_thresholds.txt"), ndmin=1)
            paths = [listfile.image_path(source, e) for e in pool]
            vectors = module_set.set_bottlenecks(paths, module, args.bottleneck_dir, 32)
            known = module_set.set_bottlenecks([listfile.image_path(source, e)
                                                for e in labelled], module,
                                               args.bottleneck_dir, 32)
            ranked, repeats = ranking.rank_uncertain(probs, thresholds, vectors, known)
            by_rule = [pool[i] for i in ranked[:ADDED]]
            at_random = [pool[i] for i in rng.choice(len(pool), ADDED, replace=False)]
            scores = [test_map(out_) for out_ in (
                train_on(os.path.join(scratch, "rule"), labelled + by_rule, test, source, args),
                train_on(os.path.join(scratch, "random"), labelled + at_random, test, source,
                         args))]
            print(f"| {seed} | " + " | ".join(f"{s:.4f}" for s in scores)
                  + f" | {int(repeats.sum())} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
