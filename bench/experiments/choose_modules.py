"""Which feature module, or which set of modules, to train on: accuracy against cost.

For each row (one module, or several joined by commas as --tfhub_module takes them) it
runs retrain.py (its own `main`: its defaults and its outputs, as users run it) with its
default head settings on the 80/20 split of each --seeds seed (the lists data_generation.py
--split 0.8 --seed S writes; seed 1 is the demo split), and prints the test
label accuracy, mAP and exact match as mean and spread (sample standard deviation) over
the seeds, then what the row costs:

  * bottlenecks: seconds per image to compute them cold (decoding included), timed on
    --time_images images of the set, into a scratch cache;
  * graph: the size of the exported output_graph.pb;
  * label 1 image: label_image.py on one image, process start to printed result.

Every run shares one --bottleneck_dir: vectors are keyed by image content and module,
so each module's bottlenecks are computed once for all rows and seeds (a module resized
inside a set has its own key, and is computed once more for that set's input size).

    python -m bench.experiments.choose_modules --image_dir DATASET --seeds 1,2,3

Run as a module from the repository root, which puts the root, and so retrain.py, on the
import path.
"""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import retrain
from bench.retrain_outputs import output_flags
from multilabel.data import dataset, list_generation
from multilabel.features import module_set

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROWS = ("mobilenet_v2_100_224", "efficientnet_lite0", "places365_resnet18", "efficientnet_lite2",
        "mobilenet_v2_100_224,places365_resnet18", "efficientnet_lite0,places365_resnet18",
        "efficientnet_lite2,places365_resnet18", "mobilenet_v2_100_224,efficientnet_lite2")
MEASURES = (("label_accuracy", "label acc"), ("mean_average_precision", "mAP"),
            ("exact_match", "exact"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default="DATASET",
                   help="dataset folder with images/ and labels.json (default: %(default)s)")
    p.add_argument("--class_names", default="desert,mountains,sea,sunset,trees")
    p.add_argument("--rows", default=";".join(ROWS),
                   help="rows separated by ';', each a --tfhub_module value")
    p.add_argument("--seeds", default="1,2,3", help="split seeds (default: %(default)s)")
    p.add_argument("--model_dir", default="MODEL")
    p.add_argument("--bottleneck_dir", default="MODEL_DETAILS/bottlenecks")
    p.add_argument("--time_images", type=int, default=64,
                   help="images to time cold bottlenecks on (default: %(default)s)")
    p.add_argument("--label_image", default="",
                   help="image for the label_image.py timing (default: the first test image)")
    p.add_argument("--json", default="", help="also write every run's numbers here")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(";") if r.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

    results = {row: {"runs": {}} for row in rows}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            data_dir = split_folder(args.image_dir, args.class_names, seed, scratch)
            for row in rows:
                out = os.path.join(scratch, f"out-{seed}-{len(results[row]['runs'])}")
                started = time.monotonic()
                report = _retrain(row, data_dir, out, args)
                results[row]["runs"][seed] = report["test"]
                print(f"seed {seed} {row}: " + ", ".join(
                    f"{label} {report['test'][key]:.4f}" for key, label in MEASURES)
                    + f" ({time.monotonic() - started:.0f} s)", flush=True)
                if seed == seeds[0]:
                    results[row]["graph_mb"] = os.path.getsize(
                        os.path.join(out, "output_graph.pb")) / 1e6
                    image = args.label_image or _first_test_image(data_dir)
                    results[row]["label_image_s"] = _label_image_seconds(out, image)
        test_paths = dataset.load_dataset(data_dir).test.paths[:args.time_images]
        for row in rows:
            results[row]["bottleneck_ms"] = _bottleneck_ms(row, test_paths, args, scratch)
    _print_table(rows, seeds, results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


def split_folder(image_dir, class_names, seed, scratch):
    """A dataset folder for one split: the images linked, the lists written for `seed`."""
    folder = os.path.join(scratch, f"split-{seed}")
    os.makedirs(folder)
    os.symlink(os.path.abspath(os.path.join(image_dir, "images")),
               os.path.join(folder, "images"))
    labels = shutil.copy(os.path.join(image_dir, "labels.json"), folder)
    list_generation.generate(list_generation.GenerationConfig(
        image_dir=folder, labels=labels, class_names=tuple(class_names.split(",")),
        shuffle=False, split=0.8, seed=seed, stratify=False))
    return folder


def _retrain(row, data_dir, out, args):
    status = retrain.main([
        "--image_dir", data_dir, "--tfhub_module", row, "--model_dir", args.model_dir,
        "--bottleneck_dir", args.bottleneck_dir, "--logging_verbosity", "WARN",
        *output_flags(out)])
    if status:
        raise SystemExit(f"retrain.py failed on {row}")
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def _first_test_image(data_dir):
    return dataset.load_dataset(data_dir).test.paths[0]


def _label_image_seconds(out, image):
    """label_image.py on one image in a fresh process, start to printed result."""
    started = time.monotonic()
    subprocess.run([sys.executable, os.path.join(REPO, "label_image.py"),
                    "--graph", os.path.join(out, "output_graph.pb"),
                    "--labels", os.path.join(out, "output_labels.txt"),
                    "--thresholds", os.path.join(out, "output_thresholds.txt"),
                    "--image", image], check=True, capture_output=True)
    return time.monotonic() - started


def _bottleneck_ms(row, paths, args, scratch):
    """Milliseconds per image to compute the row's bottlenecks cold, decoding included.

    The engines (and their TFLite conversions, kept in --bottleneck_dir) are made
    first and not timed; the vectors go to a fresh scratch cache.
    """
    handles = tuple(h.strip() for h in row.split(","))
    loaded = module_set.load_module_set(handles, args.model_dir, args.bottleneck_dir, "auto")
    cold = tempfile.mkdtemp(dir=scratch)
    started = time.monotonic()
    module_set.set_bottlenecks(paths, loaded, cold, 32)
    return 1000 * (time.monotonic() - started) / len(paths)


def _print_table(rows, seeds, results):
    print(f"\nTest measures over split seeds {', '.join(map(str, seeds))} "
          f"(mean ± sample std; seed {seeds[0]} alone in brackets)\n")
    header = ["modules"] + [label for _, label in MEASURES] + [
        "bottleneck ms/img", "graph MB", "label 1 image s"]
    lines = []
    for row in rows:
        runs = results[row]["runs"]
        cells = [row.replace(",", " + ")]
        for key, _ in MEASURES:
            values = np.array([runs[s][key] for s in seeds])
            spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.3f}{spread} ({values[0]:.3f})")
        cells += [f"{results[row]['bottleneck_ms']:.0f}", f"{results[row]['graph_mb']:.1f}",
                  f"{results[row]['label_image_s']:.1f}"]
        lines.append(cells)
    widths = [max(len(c[i]) for c in [header] + lines) for i in range(len(header))]
    for cells in [header, ["-" * w for w in widths]] + lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |")


if __name__ == "__main__":
    main()
