"""Choose retrain.py's training defaults on the validation part, never on the test list.

Trains the head for each learning rate and L2 weight in a small grid, on the bottlenecks
of the training list (read from retrain.py's cache; any missing are computed first, as
retrain.py computes them, with the module opened as retrain.py opens it; a set of
modules, A,B, works too), with three seeds each, and
prints the validation mAP (at the kept step) and the kept step, averaged over seeds.
retrain.py's defaults (Adam, learning rate 0.001, L2 0.001) come from this table: every
setting lands within 0.004 of the others, which is noise on ~170 validation images, and
this one keeps its best step near the middle of the default 1,800 steps.

    python -m bench.experiments.tune_head --image_dir DATASET
"""

import argparse
import itertools
import logging

import numpy as np

from multilabel.base.options import TrainOptions
from multilabel.data import dataset
from multilabel.features import module_set
from multilabel.training import trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default="DATASET")
    p.add_argument("--tfhub_module", default="mobilenet_v2_100_224")
    p.add_argument("--model_dir", default="MODEL")
    p.add_argument("--bottleneck_dir", default="MODEL_DETAILS/bottlenecks")
    p.add_argument("--steps", type=int, default=1800)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    data = dataset.load_dataset(args.image_dir)
    module = module_set.load_module_set(tuple(args.tfhub_module.split(",")), args.model_dir,
                                        args.bottleneck_dir, "auto")
    every = module_set.set_bottlenecks(data.train.paths + data.validation.paths, module,
                                       args.bottleneck_dir, 32)
    train_x, val_x = every[:len(data.train)], every[len(data.train):]
    print(f"{len(train_x)} training and {len(val_x)} validation images, {args.seeds} seeds\n")
    print(f"{'optimizer':>9} {'lr':>7} {'l2':>7} {'val mAP':>8} {'kept step':>9}")
    grid = [("adam", lr, l2) for lr, l2 in itertools.product((0.0003, 0.001, 0.003),
                                                            (0.0, 1e-4, 1e-3))]
    grid += [("sgd", 0.3, 0.0), ("sgd", 1.0, 0.0)]
    for optimizer, lr, l2 in grid:
        scores, steps = [], []
        for seed in range(args.seeds):
            config = TrainOptions(how_many_training_steps=args.steps, learning_rate=lr,
                                  optimizer=optimizer, l2_regularization=l2, random_seed=seed)
            result = trainer.train(trainer.TrainData(lambda i: train_x[i], data.train.labels,
                                                     val_x, data.validation.labels), config)
            scores.append(result.validation_map)
            steps.append(result.step)
        print(f"{optimizer:>9} {lr:>7g} {l2:>7g} {np.mean(scores):8.4f} {np.mean(steps):9.0f}",
              flush=True)


if __name__ == "__main__":
    main()
