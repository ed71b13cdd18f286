"""How closely MediaPipe's ImageClassifier follows label_image.py on an exported model.

    python -m bench.experiments.mediapipe_agreement --tflite M.tflite --graph G.pb \
        --labels L.txt [--image_dir DATASET] [--count 20] [--python PY]

Takes `--count` photos spread evenly over the test list of `--image_dir`, labels them with
label_image.py's code on the frozen graph and with MediaPipe on the TFLite model (default
options, run by tests/mediapipe_client.py with `--python`, by default this interpreter),
and prints a table: each photo's top class by both, and the largest difference between
the two scores of any class; then how often the top classes agree and the largest
differences. The two differ only in how the photo is resized to the model's input
(MediaPipe resizes its own way). Exit code 0.
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys

import label_image
from multilabel.data import listfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", required=True)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--image_dir", default=os.path.join(ROOT, "DATASET"))
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--python", default=sys.executable, help="a Python with mediapipe")
    args = parser.parse_args(argv)

    entries = listfile.read_list_file(os.path.join(args.image_dir, "dataset_test.lst"))
    paths = [os.path.join(args.image_dir, entry.path) for entry in entries]
    photos = [paths[i * len(paths) // args.count] for i in range(args.count)]

    ours = io.StringIO()
    with contextlib.redirect_stdout(ours):
        label_image.main(["--graph", args.graph, "--labels", args.labels,
                          "--output_format", "json", *photos])
    ours = [json.loads(line) for line in ours.getvalue().splitlines()]
    client = subprocess.run([args.python, os.path.join(ROOT, "tests", "mediapipe_client.py"),
                             args.tflite, *photos], capture_output=True, text=True, check=True)
    theirs = json.loads(client.stdout)["results"]

    print(f"{'photo':<12} {'label_image.py':<18} {'MediaPipe':<18} max |difference|")
    matches, worst, worst_top = 0, 0.0, 0.0
    for mine, other in zip(ours, theirs):
        scores = dict(zip(mine["labels"], mine["probabilities"]))
        top = max(scores, key=scores.get)
        their_scores = dict(other["categories"])
        their_top = other["categories"][0][0]
        difference = max(abs(scores[name] - their_scores[name]) for name in scores)
        matches += top == their_top
        worst = max(worst, difference)
        worst_top = max(worst_top, abs(scores[top] - their_scores[top]))
        print(f"{os.path.basename(mine['image']):<12} {top:<9} {scores[top]:.3f}    "
              f"{their_top:<9} {their_scores[their_top]:.3f}    {difference:.3f}")
    print(f"top class agrees on {matches} of {len(ours)} photos; label_image.py's top class's "
          f"score differs by at most {worst_top:.3f}, any class's by {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
