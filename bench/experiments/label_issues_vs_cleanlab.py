"""Does label_issues.csv find labels corrupted on purpose? Ours beside cleanlab's, one table.

For each corruption count, that many training images of the demo split (train and
validation parts, as the out-of-fold predictions cover both) get one present label
swapped for an absent one, in a copy of dataset_train.lst in a scratch folder whose
`images` links to the demo images; the test list and class names are copied unchanged
(`make demo` or data_generation.py writes them). retrain.py then
runs with its defaults on the copy (reusing the bottleneck cache, which is keyed by
image content) and writes label_issues.csv. The table gives, for the top k rows
(k = the number corrupted, and twice that):

- `csv`: the first k rows of label_issues.csv itself (test rows included: what a user
  reads);
- `ours`: multilabel/evaluation/label_issues.py on the training part's out-of-fold
  predictions, the very probabilities retrain.py passed it;
- `cleanlab`: cleanlab 2.9.0's `find_label_issues(multi_label=True,
  return_indices_ranked_by="self_confidence")` on the same probabilities;
- `max|y-p|`: every training image ranked by its largest |given - p|, no filter.

precision = corrupted among the top k / k, recall = corrupted among the top k / number
corrupted; `flagged` is how many images the rule reports at all (and, for cleanlab,
"same list" when its ranked list is ours, image for image, else how many both flag).

cleanlab is AGPL-3.0: it is never a dependency of the project, only of this script,
installed into a folder of its own and put at the end of sys.path:

    python -m pip install --target /work/venvs/cleanlab cleanlab==2.9.0
    python -m bench.experiments.label_issues_vs_cleanlab --cleanlab_path /work/venvs/cleanlab \\
        --counts 0,40,80,160 --seeds 1,2

It first compares the two rules' flags on random label sets and probabilities, then
corrupts. A run takes under a minute once the bottlenecks are cached. With no corruption, the
first rows of label_issues.csv are printed instead, for a look at the images.
"""

import argparse
import contextlib
import csv
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np

import retrain
from bench.retrain_outputs import output_flags
from multilabel.data import listfile
from multilabel.evaluation import label_issues

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHOWN_CLEAN = 12  # rows of the uncorrupted run's label_issues.csv printed for a look


def corrupt(entries, count, rng):
    """`(entries, corrupted paths)`: `count` entries, drawn at random among those with a
    present and an absent label, with one present label swapped for an absent one."""
    eligible = [i for i, e in enumerate(entries) if 0 < sum(e.flags) < len(e.flags)]
    chosen = rng.choice(eligible, count, replace=False)
    out = list(entries)
    for i in chosen:
        flags = np.array(entries[i].flags)
        present, absent = np.flatnonzero(flags), np.flatnonzero(flags == 0)
        flags[rng.choice(present)], flags[rng.choice(absent)] = 0, 1
        out[i] = dataclasses.replace(entries[i], flags=tuple(int(f) for f in flags))
    return out, {entries[i].path for i in chosen}


@contextlib.contextmanager
def recorded_parts():
    """The label_issues.HeldOut list retrain.py hands to write_label_issues, recorded."""
    original, seen = label_issues.write_label_issues, []

    def recording(path, parts, class_names):
        seen.extend(parts)
        return original(path, parts, class_names)

    label_issues.write_label_issues = recording
    try:
        yield seen
    finally:
        label_issues.write_label_issues = original


def run_retrain(folder, args):
    out = os.path.join(folder, "out")
    argv = ["--image_dir", folder, "--model_dir", args.model_dir,
            "--bottleneck_dir", args.bottleneck_dir, "--logging_verbosity", "ERROR",
            *output_flags(out)]
    with recorded_parts() as parts:
        assert retrain.main(argv) == 0
    with open(os.path.join(out, "label_issues.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows, {p.name: p for p in parts}


def relative(path, folder):
    return os.path.relpath(path, folder).replace(os.sep, "/")


def cleanlab_ranking(labels, probs):
    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_label_issues([list(np.flatnonzero(r)) for r in labels], probs,
                                 multi_label=True, return_indices_ranked_by="self_confidence")


def random_agreement(cases):
    """One line: on `cases` random label sets and probabilities, how often ours and
    cleanlab's per-class flags differ, and whether each difference is a count estimate on
    exactly one half (which cleanlab's floating-point rounding decides either way)."""
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class

    differ = at_half = 0
    for seed in range(cases):
        rng = np.random.default_rng(seed)
        n, c = rng.integers(20, 300), rng.integers(2, 6)
        labels = (rng.random((n, c)) < 0.3).astype(int)
        probs = np.clip(labels * 0.7 + rng.normal(0.15, 0.2, (n, c)), 0, 1)
        labels = np.where(rng.random((n, c)) < 0.05, 1 - labels, labels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = find_multilabel_issues_per_class(
                [list(np.flatnonzero(r)) for r in labels], probs)
        add, remove = label_issues.find_issues(labels, probs)
        classes = np.flatnonzero(((add | remove) != theirs).any(axis=0))
        if len(classes):
            joint = label_issues.confident_joint(labels, probs)
            given = np.stack([(labels == 0).sum(axis=0), (labels == 1).sum(axis=0)], axis=1)
            raw = given * joint[:, [0, 1], [1, 0]] / joint.sum(axis=2)
            differ += 1
            at_half += all(np.isclose(raw[k] % 1, 0.5).any() for k in classes)
    print(f"{cases} random cases: ours and cleanlab's flags differ in {differ}, "
          f"{at_half} of them only where a count estimate is exactly one half\n")


def measure(ranked, corrupted, k):
    hits = len(set(ranked[:k]) & corrupted)
    return hits / k, hits / len(corrupted)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default=os.path.join(REPO, "DATASET"),
                   help="the demo folder: images/, dataset_train.lst, dataset_test.lst")
    p.add_argument("--counts", default="0,40,80,160", help="training images to corrupt")
    p.add_argument("--seeds", default="1", help="one corruption draw per seed")
    p.add_argument("--cleanlab_path", default="/work/venvs/cleanlab",
                   help="the folder cleanlab was installed into with pip --target")
    p.add_argument("--random_cases", type=int, default=300,
                   help="random label sets on which the flags are compared first")
    p.add_argument("--model_dir", default=os.path.join(REPO, "MODEL"))
    p.add_argument("--bottleneck_dir", default=os.path.join(REPO, "MODEL_DETAILS", "bottlenecks"))
    args = p.parse_args(argv)
    sys.path.append(args.cleanlab_path)  # last: the project's own numpy comes first
    logging.basicConfig(level=logging.ERROR)
    source = os.path.abspath(args.image_dir)
    train = listfile.read_list_file(os.path.join(source, "dataset_train.lst"))
    random_agreement(args.random_cases)

    header = (f"{'corrupted':>9} {'seed':>4} {'k':>4} | {'rule':<9} {'precision':>9} "
              f"{'recall':>6} {'flagged':>16}")
    print(header)
    print("-" * len(header))
    for count in [int(c) for c in args.counts.split(",")]:
        # Without corruption the seed draws nothing: one run is enough.
        for seed in [int(s) for s in args.seeds.split(",")][:1 if not count else None]:
            with tempfile.TemporaryDirectory() as folder:
                os.symlink(os.path.join(source, "images"), os.path.join(folder, "images"))
                for name in ("dataset_test.lst", "class_names.txt"):
                    shutil.copy(os.path.join(source, name), folder)
                entries, corrupted = corrupt(train, count, np.random.default_rng(seed))
                listfile.write_list_file(os.path.join(folder, "dataset_train.lst"), entries)
                rows, parts = run_retrain(folder, args)
                part = parts["train"]
                paths = [relative(path, folder) for path in part.paths]
                if not count:
                    print_clean_rows(rows, folder)
                    continue
                csv_ranked = [relative(r["image"], folder) for r in rows]
                ours = [relative(i.image, folder) for i in label_issues.rank_issues([part])]
                theirs = [paths[i] for i in cleanlab_ranking(part.labels, part.probs)]
                largest = np.abs(part.labels - part.probs).max(axis=1)
                plain = [paths[i] for i in np.argsort(-largest, kind="stable")]
                agree = ("same list" if ours == theirs
                         else f"{len(set(ours) & set(theirs))} common")
                for k in (count, 2 * count):
                    for name, ranked, flagged in (
                            ("csv", csv_ranked, f"{len(rows)}"), ("ours", ours, f"{len(ours)}"),
                            ("cleanlab", theirs, f"{len(theirs)}, {agree}"),
                            ("max|y-p|", plain, "all")):
                        precision, recall = measure(ranked, corrupted, k)
                        print(f"{count:>9} {seed:>4} {k:>4} | {name:<9} {precision:>9.3f} "
                              f"{recall:>6.3f} {flagged:>16}")
                print()


def print_clean_rows(rows, folder):
    print(f"        0 corrupted: {len(rows)} rows in label_issues.csv; the first "
          f"{min(SHOWN_CLEAN, len(rows))}:")
    for r in rows[:SHOWN_CLEAN]:
        print(f"          {relative(r['image'], folder):<18} {r['part']:<5} given "
              f"{r['given'] or '-':<22} add {r['suggested_add'] or '-':<16} "
              f"remove {r['suggested_remove'] or '-':<16} score {r['score']}")
    print()


if __name__ == "__main__":
    sys.exit(main())
