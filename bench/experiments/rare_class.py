"""How few positives can a class have before its chosen threshold floods the predictions?

For each split seed (data_generation.py --split 0.8 --seed S, as choose_modules.py
makes them) one demo class is made rare: of its positive images in the training part
(training and validation lists), k are kept and the others dropped, for each k of
--positives. The head is then trained and its thresholds chosen as a run does
(trainer.train, trainer.out_of_fold_thresholds, retrain.py's defaults, on the cached
bottlenecks), and the test part (unchanged) is labelled. A row per k: the threshold
the run chose for the rare class, the share of test images predicted that class with it,
the share of the test images WITHOUT the class predicted it (false positives), and the
same two shares at 0.5, the safe threshold (evaluation.thresholds.MIN_POSITIVES).

    python -m bench.experiments.rare_class --seeds 1,2,3 --rare_class desert

Run as a module from the repository root.
"""

import argparse
import logging
import os
import sys
import tempfile

import numpy as np

from bench.experiments.choose_modules import split_folder
from multilabel.base.options import TrainOptions
from multilabel.data import dataset
from multilabel.evaluation import thresholds as thresholds_lib
from multilabel.features import module_set
from multilabel.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default=os.path.join(REPO, "DATASET"))
    p.add_argument("--class_names", default="desert,mountains,sea,sunset,trees")
    p.add_argument("--rare_class", default="desert")
    p.add_argument("--positives", default="1,2,3,4,5,6,8,10,12,15,20")
    p.add_argument("--tfhub_module", default="mobilenet_v2_100_224")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    config = TrainOptions()  # the run's defaults
    names = args.class_names.split(",")
    c = names.index(args.rare_class)
    ks = [int(k) for k in args.positives.split(",")]
    modules = module_set.load_module_set(tuple(args.tfhub_module.split(",")), args.model_dir,
                                         args.bottleneck_dir, "auto")
    rows = {k: [] for k in ks}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in (int(s) for s in args.seeds.split(",")):
            data = dataset.load_dataset(split_folder(args.image_dir, args.class_names, seed,
                                                     scratch), len(names))
            parts = (data.train, data.validation, data.test)
            every = module_set.set_bottlenecks([q for part in parts for q in part.paths],
                                               modules, args.bottleneck_dir, 32)
            train_x, validation_x, test_x = np.split(
                every, np.cumsum([len(part) for part in parts])[:-1])
            rng = np.random.default_rng(seed)
            for k in ks:
                row = _rare(k, c, rng, train_x, data.train.labels, validation_x,
                            data.validation.labels, test_x, data.test.labels, config)
                rows[k].append(row)
                print(f"seed {seed} k {k}: threshold {row[0]:.4f}, test predicted "
                      f"{row[1]:.3f}, false positives {row[2]:.3f}, at 0.5 {row[3]:.3f} / "
                      f"{row[4]:.3f}", flush=True)
    print(f"\n{args.rare_class} made rare, {args.tfhub_module}, seeds {args.seeds}: mean "
          "(highest) over the seeds\n")
    print("| positives kept | chosen threshold | test predicted | false positives | "
          "test predicted at 0.5 | false positives at 0.5 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, results in rows.items():
        values = np.array(results)
        cells = [f"{values[:, 0].mean():.4f} ({values[:, 0].min():.4f} lowest)"] + [
            f"{values[:, i].mean():.3f} ({values[:, i].max():.3f})" for i in range(1, 5)]
        print(f"| {k} | " + " | ".join(cells) + " |")
    return 0


def _rare(k, c, rng, train_x, train_labels, validation_x, validation_labels, test_x,
          test_labels, config):
    """(threshold chosen for class c, share of the test part predicted c, share of the
    test images without c predicted c, the same two at 0.5) with k positives of c kept
    among the training and validation images."""
    positives = np.flatnonzero(np.concatenate([train_labels[:, c], validation_labels[:, c]]))
    drop = set(rng.permutation(positives)[k:].tolist())
    keep = np.array([i not in drop for i in range(len(train_labels) + len(validation_labels))])
    keep_train, keep_validation = keep[:len(train_labels)], keep[len(train_labels):]
    tx, ty = train_x[keep_train], train_labels[keep_train]
    vx, vy = validation_x[keep_validation], validation_labels[keep_validation]
    result = trainer.train(trainer.TrainData(lambda i: tx[i], ty, vx, vy), config)
    chosen, _ = trainer.out_of_fold_thresholds(np.concatenate([tx, vx]),
                                               np.concatenate([ty, vy]), config, result.step)
    probs = trainer.sigmoid(test_x @ result.weights + result.biases)[:, c]
    negatives = test_labels[:, c] == 0
    out = [float(chosen[c])]
    for threshold in (chosen[c], thresholds_lib.DEFAULT_THRESHOLD):
        predicted = probs >= threshold
        out += [float(predicted.mean()), float(predicted[negatives].mean())]
    return out


if __name__ == "__main__":
    sys.exit(main())
