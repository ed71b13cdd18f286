"""Which thresholds go with a fine-tuned model: measured on several splits.

After `--fine_tune` the module was trained on the training images, so a head's
out-of-fold predictions on its features of those images are more confident than its
predictions on new images, and thresholds chosen on them can come out worse than 0.5.
For each --seeds split this runs retrain.py (its own `main`) with the given flags (by
default `--preset best`), keeps what the run's evaluation step saw, and scores the fine-tuned
model's test predictions with each way of choosing thresholds:

  * the run's rule: best-F1 thresholds on out-of-fold heads over the fine-tuned
    features of the training images, each replaced by 0.5 where 0.5 has the higher F1
    on the fine-tuned model's validation predictions (thresholds.guarded);
  * out-of-fold alone, without that check (the rule before this experiment);
  * validation: best-F1 thresholds on the fine-tuned model's own predictions of the
    validation images, which it did not train on;
  * phase 1: the thresholds chosen for the phase 1 model (out-of-fold, frozen features);
  * 0.5 for every class.

    python -m bench.experiments.fine_tune_thresholds --image_dir DATASET --seeds 1,2,3

Run as a module from the repository root, which puts the root, and so retrain.py, on the
import path.
"""

import argparse
import logging
import os
import tempfile

import numpy as np

import retrain
from bench.experiments.choose_modules import split_folder
from bench.retrain_outputs import output_flags
from multilabel import retraining
from multilabel.evaluation import metrics, thresholds as thresholds_lib
from multilabel.training import trainer

MEASURES = (("label_accuracy", "label acc"), ("exact_match", "exact"),
            ("mean_average_precision", "mAP"),
            ("label_ranking_average_precision", "example-based AP"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default="DATASET")
    p.add_argument("--class_names", default="desert,mountains,sea,sunset,trees")
    p.add_argument("--seeds", default="1,2,3", help="split seeds (default: %(default)s)")
    p.add_argument("--bottleneck_dir", default="MODEL_DETAILS/bottlenecks")
    p.add_argument("--flags", default="--preset best",
                   help="retrain.py flags of the fine-tuned run (default: %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    seeds = [int(s) for s in args.seeds.split(",")]
    table = {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            data_dir = split_folder(args.image_dir, args.class_names, seed, scratch)
            seen = _run(data_dir, os.path.join(scratch, f"out-{seed}"), args)
            for scheme, row in _schemes(*seen).items():
                table.setdefault(scheme, {})[seed] = row
                print(f"seed {seed} {scheme}: " + ", ".join(
                    f"{label} {row[key]:.4f}" for key, label in MEASURES), flush=True)
    _print_table(table, seeds)


def _run(data_dir, out, args):
    """Run retrain.py; return what its two evaluations (phase 1, fine-tuned) saw."""
    seen = []
    evaluate = retraining._evaluate

    def recorded(config, data, result, features, head_steps, scales, **kind):
        evaluation = evaluate(config, data, result, features, head_steps, scales, **kind)
        seen.append((config, data, result, features, head_steps, scales, evaluation))
        return evaluation

    retraining._evaluate = recorded
    try:
        status = retrain.main(["--image_dir", data_dir, "--bottleneck_dir", args.bottleneck_dir,
                               "--logging_verbosity", "WARN", *args.flags.split(),
                               *output_flags(out)])
    finally:
        retraining._evaluate = evaluate
    if status or len(seen) != 2:
        raise SystemExit(f"retrain.py {args.flags} failed, or did not fine-tune")
    return seen


def _schemes(phase_1, tuned):
    config, data, result, (train_x, validation_x, test_x), steps, scales, evaluation = tuned
    validation_probs = trainer.sigmoid(validation_x @ result.weights + result.biases)
    test_probs = trainer.sigmoid(test_x @ result.weights + result.biases)
    classes = test_probs.shape[1]
    out_of_fold, _ = trainer.out_of_fold_thresholds(
        np.concatenate([train_x, validation_x]),
        np.concatenate([data.train.labels, data.validation.labels]), config, steps, scales)
    chosen = {
        "the run's rule": evaluation.thresholds,
        "out-of-fold alone": out_of_fold,
        "validation": thresholds_lib.best_f1_thresholds(data.validation.labels,
                                                        validation_probs),
        "phase 1": phase_1[-1].thresholds,
        "0.5": np.full(classes, thresholds_lib.DEFAULT_THRESHOLD),
    }
    return {name: metrics.evaluate(data.test.labels, test_probs, t, evaluation.never_empty)
            for name, t in chosen.items()}


def _print_table(table, seeds):
    print(f"\nFine-tuned model, test measures by threshold rule, split seeds "
          f"{', '.join(map(str, seeds))}: mean (each seed)\n")
    print("| thresholds | " + " | ".join(label for _, label in MEASURES) + " |")
    print("| --- |" + " --- |" * len(MEASURES))
    for scheme, runs in table.items():
        cells = []
        for key, _ in MEASURES:
            values = [runs[s][key] for s in seeds]
            cells.append(f"{np.mean(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})")
        print(f"| {scheme} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
