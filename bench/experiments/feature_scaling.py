"""Does scaling a module set's feature blocks help the head? One table, with and without.

For each split seed (data_generation.py --split 0.8 --seed S, as choose_modules.py
makes them; seed 1 is the demo split) the head is trained on the set's cached
bottlenecks by the run's own stage functions (retrain.py's defaults, best step by
validation mAP, thresholds from out-of-fold heads: trainer.train and
trainer.out_of_fold_thresholds), once on the plain concatenation and once with each
module's block scaled by multilabel/training/feature_scaling.py, and tested on the split's
test part. Bottlenecks go to --bottleneck_dir and are computed once for every seed.

    python -m bench.experiments.feature_scaling \\
        --tfhub_module mobilenet_v2_100_224,places365_resnet18 --seeds 1,2,3,4,5,6,7,8,9,10

Run as a module from the repository root: retrain.py's flag defaults are the head's
settings, and choose_modules.py makes the splits.
"""

import argparse
import logging
import os
import sys
import tempfile

import numpy as np

from bench.experiments.choose_modules import MEASURES, split_folder
from multilabel.base.options import TrainOptions
from multilabel.data import dataset
from multilabel.evaluation import metrics
from multilabel.features import module_set
from multilabel.training import feature_scaling, trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default=os.path.join(REPO, "DATASET"))
    p.add_argument("--class_names", default="desert,mountains,sea,sunset,trees")
    p.add_argument("--tfhub_module", default="mobilenet_v2_100_224,places365_resnet18")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = TrainOptions()  # the run's defaults
    handles = tuple(args.tfhub_module.split(","))
    modules = module_set.load_module_set(handles, args.model_dir, args.bottleneck_dir, "auto")
    dims = [m.dim for m in modules.members]

    rows = {"plain": [], "scaled": []}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in (int(s) for s in args.seeds.split(",")):
            data = dataset.load_dataset(split_folder(args.image_dir, args.class_names, seed,
                                                     scratch), len(args.class_names.split(",")))
            parts = (data.train, data.validation, data.test)
            every = module_set.set_bottlenecks([q for part in parts for q in part.paths],
                                               modules, args.bottleneck_dir, 32)
            x = np.split(every, np.cumsum([len(part) for part in parts])[:-1])
            for name, scales in (("plain", None),
                                 ("scaled", feature_scaling.block_scales(x[0], dims))):
                result = _test(x, data, config, scales)
                rows[name].append(result)
                print(f"seed {seed} {name}: " + ", ".join(
                    f"{label} {result[key]:.4f}" for key, label in MEASURES), flush=True)
    print(f"\n{args.tfhub_module}, seeds {args.seeds}: mean ± sample standard deviation "
          "(lowest)\n")
    print("| head input | " + " | ".join(label for _, label in MEASURES) + " |")
    print("| --- |" + " --- |" * len(MEASURES))
    for name, results in rows.items():
        cells = []
        for key, _ in MEASURES:
            values = np.array([r[key] for r in results])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.4f} ± {spread:.4f} ({values.min():.4f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def _test(x, data, config, scales):
    """Test measures of a head trained as a run trains it, on `scales`-scaled features."""
    train_x, validation_x, test_x = x
    result = trainer.train(trainer.TrainData(lambda i: train_x[i], data.train.labels,
                                             validation_x, data.validation.labels,
                                             feature_scales=scales), config)
    chosen, _ = trainer.out_of_fold_thresholds(
        np.concatenate([train_x, validation_x]),
        np.concatenate([data.train.labels, data.validation.labels]), config, result.step,
        scales)
    probs = trainer.sigmoid(test_x @ result.weights + result.biases)
    return metrics.evaluate(data.test.labels, probs, chosen)


if __name__ == "__main__":
    sys.exit(main())
