"""The TFLite exports side by side: float32 and its float16, dynamic-range and int8 copies.

    python -m bench.timings.quantized_exports                  # the default model
    python -m bench.timings.quantized_exports --preset best    # the best recipe (long)

One retrain.py run with `--quantize float16,dynamic,int8` on the scene set's lists
(data_generation.py --seed 1 ... in --image_dir), its outputs in a scratch folder, then
per export: size, largest probability difference from float on the test part, test mAP,
label accuracy and exact match with its own thresholds (and with float's, the other
threshold scheme), the run's own timings of one photo (interpreter built and run once,
in process) and of every test photo (one interpreter per core), and label_image.py on one
photo from process start (copies the run left out have no file to time: "-").
Printed as the Markdown table of docs/mobile.md#smaller-models.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

from bench.retrain_outputs import output_flags
from bench.timings.run_benchmarks import ROOT, Run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
VARIANTS = "float16,dynamic,int8"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default=os.path.join(ROOT, "DATASET"),
                   help="a folder with data_generation.py's lists (default: %(default)s)")
    p.add_argument("--bottleneck_dir", default=os.path.join(ROOT, "MODEL_DETAILS", "bottlenecks"),
                   help="the bottleneck cache to read and fill (default: %(default)s)")
    p.add_argument("--preset", default="default", choices=("default", "best"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="multilabel-quantized-")
    try:
        run = Run([sys.executable, "-m", "bench.timings.timed_retrain", "--image_dir",
                   args.image_dir, "--bottleneck_dir", args.bottleneck_dir, "--preset",
                   args.preset, "--quantize", VARIANTS, *output_flags(scratch)],
                  os.path.join(scratch, "retrain.log"))
        with open(os.path.join(scratch, "metrics.json")) as f:
            exports = json.load(f)["exports"]
        with open(os.path.join(scratch, "test_predictions.jsonl")) as f:
            photo = json.loads(f.readline())["image"]
        started = {name: _one_photo(scratch, name, photo) for name in exports}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.preset} recipe, {os.cpu_count()} CPU cores, run {run.seconds:.0f} s\n")
    print(table(exports, started))
    return 0


def _one_photo(folder, name, photo):
    """label_image.py on one photo with export `name`, process start to exit, in s; None
    where the run left that copy out."""
    variant = [] if name == "float32" else ["--variant", name]
    if name != "float32" and not os.path.exists(
            os.path.join(folder, f"output_graph.{name}.tflite")):
        return None
    return Run([sys.executable, os.path.join(ROOT, "label_image.py"), "--graph",
                os.path.join(folder, "output_graph.pb"), *variant, "--quiet", photo],
               os.path.join(folder, f"label_{name}.log")).seconds


def table(exports, started):
    """The Markdown table of the exports' measures."""
    rows = [("Export", "Size", "Max diff from float", "mAP", "Label accuracy", "Exact match",
             "With float's thresholds", "One photo (in run)", "One photo (process start)",
             "Test photos")]
    for name, m in exports.items():
        floats = m["with_float_thresholds"]
        rows.append((
            name + (" (left out)" if m.get("left_out") else ""),
            f"{m['size_bytes'] / 1e6:.1f} MB", f"{m['max_difference']:.4f}",
            f"{m['mean_average_precision']:.4f}", f"{m['label_accuracy']:.4f}",
            f"{m['exact_match']:.4f}",
            f"{floats['label_accuracy']:.4f} / {floats['exact_match']:.4f}",
            f"{m['one_photo_seconds'] * 1000:.0f} ms",
            "-" if started[name] is None else f"{started[name]:.2f} s",
            f"{m['images']} in {m['images_seconds']:.1f} s"))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(" --- " for _ in rows[0]) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
