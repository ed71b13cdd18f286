"""The demo photos in each label layout a user may have, trained on as a user would.

Builds three copies of DATASET/ under --work, the photos renamed to Kaggle-style ids
(`img_00042.jpg`, a seeded shuffle of the numbers, so no name gives its label away):

- planet: `train-jpg/<id>.jpg` and `train_v2.csv` (`image_name,tags`, names without a
  suffix, rows in random order), as Kaggle's Planet data;
- one-hot: `images/<id>.jpg` and `labels.csv` (`image,desert,...,trees`, 1/0, shuffled);
- folders: `images/<label>/<id>.jpg`, a copy in each of an image's label folders;

and, as the baseline, DATASET/ itself (labels.json). For each it runs docs/data.md's
commands: data_generation.py (split 0.8, seed 1), retrain.py with default flags, and
label_image.py --output_format csv on a few of the layout's photos; then prints a table
of the test measures, and checks every list line's labels against labels.json. The
split is drawn by a hash of each path, so renamed photos split differently from
DATASET/'s: the parts hold other photos, and the measures differ by that much.

    python -m bench.experiments.own_data_layouts --model_dir MODEL --bottleneck_dir MODEL_DETAILS/bottlenecks

The bottleneck cache is keyed by image content, so the renamed copies hit the demo's.
"""

import argparse
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

from multilabel.data import listfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLASSES = ("desert", "mountains", "sea", "sunset", "trees")
MEASURES = (("label_accuracy", "label acc"), ("mean_average_precision", "mAP"),
            ("micro_f1", "micro F1"), ("exact_match", "exact"))
LABELLED_PHOTOS = 6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=os.path.join(REPO, "DATASET"))
    p.add_argument("--work", help="where the layouts and runs go (default: a temporary folder)")
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="own_data_")
    flags = read_labels(os.path.join(args.dataset, "labels.json"))
    ids = list(range(1, len(flags) + 1))
    random.Random(42).shuffle(ids)
    id_of = {number: f"img_{i:05d}" for number, i in zip(range(1, len(flags) + 1), ids)}
    layouts = {
        "DATASET (labels.json)": demo(work, args.dataset),
        "planet (image,tags CSV)": planet(work, args.dataset, flags, id_of),
        "one-hot CSV": one_hot(work, args.dataset, flags, id_of),
        "label folders": folders(work, args.dataset, flags, id_of),
    }
    truth = {name: flags[number - 1] for number, name in id_of.items()}
    rows = []
    for title, (root, generation) in layouts.items():
        run("data_generation.py", "--image_dir", root, *generation, "--split", "0.8",
            "--seed", "1")
        right = check_lists(root, truth, flags)
        out = os.path.join(root, "run")
        run("retrain.py", "--image_dir", root, "--model_dir", args.model_dir,
            "--bottleneck_dir", args.bottleneck_dir, *outputs(out))
        labelled = label_some(root, out)
        metrics = json.load(open(os.path.join(out, "metrics.json"), encoding="utf-8"))
        rows.append((title, right, metrics, labelled))
    print_table(rows)


def read_labels(path):
    with open(path, encoding="utf-8") as f:
        return [tuple(int(v == 1) for v in json.loads(line)) for line in f if line.strip()]


def link(source, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy(source, target)


def demo(work, dataset):
    root = os.path.join(work, "demo")
    os.makedirs(root, exist_ok=True)
    if not os.path.exists(os.path.join(root, "images")):
        os.symlink(os.path.join(os.path.abspath(dataset), "images"), os.path.join(root, "images"))
    shutil.copy(os.path.join(dataset, "labels.json"), root)
    return root, ["--class_names", ",".join(CLASSES)]


def planet(work, dataset, flags, id_of):
    root = os.path.join(work, "planet")
    rows = []
    for number, name in id_of.items():
        link(os.path.join(dataset, "images", f"{number}.jpg"),
             os.path.join(root, "train-jpg", f"{name}.jpg"))
        rows.append([name, " ".join(c for c, f in zip(CLASSES, flags[number - 1]) if f)])
    write_csv(os.path.join(root, "train_v2.csv"), ["image_name", "tags"], rows)
    return root, ["--labels", os.path.join(root, "train_v2.csv"), "--images", "train-jpg",
                  "--suffix", ".jpg"]


def one_hot(work, dataset, flags, id_of):
    root = os.path.join(work, "one_hot")
    rows = []
    for number, name in id_of.items():
        link(os.path.join(dataset, "images", f"{number}.jpg"),
             os.path.join(root, "images", f"{name}.jpg"))
        rows.append([f"{name}.jpg", *flags[number - 1]])
    write_csv(os.path.join(root, "labels.csv"), ["image", *CLASSES], rows)
    return root, ["--labels", os.path.join(root, "labels.csv")]


def folders(work, dataset, flags, id_of):
    root = os.path.join(work, "folders")
    for number, name in id_of.items():
        for c, f in zip(CLASSES, flags[number - 1]):
            if f:
                link(os.path.join(dataset, "images", f"{number}.jpg"),
                     os.path.join(root, "images", c, f"{name}.jpg"))
    return root, ["--label_folders"]


def write_csv(path, header, rows):
    random.Random(7).shuffle(rows)  # label files are rarely in name order
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def check_lists(root, truth, flags):
    """Lines whose flags are the photo's labels.json flags, of all lines."""
    entries = listfile.read_list_file(os.path.join(root, listfile.FULL_LIST))
    right = 0
    for entry in entries:
        stem = os.path.splitext(entry.path.rsplit("/", 1)[-1])[0]
        expected = truth[stem] if stem in truth else flags[int(stem) - 1]
        right += entry.flags == expected
    return f"{right}/{len(entries)}"


def outputs(out):
    names = {"--output_graph": "output_graph.pb", "--output_labels": "output_labels.txt",
             "--output_thresholds": "output_thresholds.txt", "--metrics_file": "metrics.json",
             "--test_predictions": "test_predictions.jsonl", "--summaries_dir": "retrain_logs",
             "--checkpoint_path": "checkpoints/retrain", "--report_page": "report.html",
             "--intermediate_output_graphs_dir": "intermediate_graph"}
    return [x for flag, name in names.items() for x in (flag, os.path.join(out, name))]


def label_some(root, out):
    """label_image.py's CSV for a few photos of the layout, as the user names them."""
    entries = listfile.read_list_file(os.path.join(root, listfile.TEST_LIST))[:LABELLED_PHOTOS]
    photos = os.path.join(root, "photos")
    for entry in entries:
        link(listfile.image_path(root, entry),
             os.path.join(photos, entry.path.rsplit("/", 1)[-1]))
    return run("label_image.py", "-q", "--graph", os.path.join(out, "output_graph.pb"),
               "--image_dir", photos, "--output_format", "csv")


def run(script, *argv):
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, os.path.join(REPO, script), *argv], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def print_table(rows):
    print("| Layout | labels right | val/test images | "
          + " | ".join(title for _, title in MEASURES) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in MEASURES) + " |")
    for title, right, metrics, _ in rows:
        sizes = f"{metrics['validation']['num_instances']}/{metrics['test']['num_instances']}"
        print(f"| {title} | {right} | {sizes} | "
              + " | ".join(f"{metrics['test'][key]:.4f}" for key, _ in MEASURES) + " |")
    for title, _, _, labelled in rows:
        shown = list(csv.reader(io.StringIO(labelled)))
        print(f"\nlabel_image.py --output_format csv, {title}:")
        for row in shown[:4]:
            print("  " + ",".join([row[0].rsplit("/", 1)[-1], *row[1:]]))


if __name__ == "__main__":
    main()
