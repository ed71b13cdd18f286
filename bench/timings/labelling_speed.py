"""How long label_image.py takes, from process start to the printed labels, by engine.

    python -m bench.timings.labelling_speed [--model_dir MODEL_DETAILS] [--photos LIST] [--repeats 3]

In one run on one machine, each a fresh process, the median of --repeats: `python -c
"import tensorflow"` (the floor of anything that imports TensorFlow), then label_image.py
on one photo and on every photo of --photos (default DATASET/dataset_test.lst, 400),
with the run's TFLite model through LiteRT (`--engine auto`, the default) and with the
frozen graph through TensorFlow (`--engine tf`). The last column is the largest
difference between the two engines' probabilities on the same photos. The run folder
must hold the TFLite model retrain.py exports by default.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(argv, repeats):
    """(median seconds, stdout of the last run) of a fresh process running `argv`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        process = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if process.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{process.stderr}")
    return statistics.median(seconds), process.stdout


def probabilities(stdout):
    return {r["image"]: r["probabilities"] for r in map(json.loads, stdout.splitlines())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", default=os.path.join(ROOT, "MODEL_DETAILS"))
    p.add_argument("--photos", default=os.path.join(ROOT, "DATASET", "dataset_test.lst"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    with open(args.photos, encoding="utf-8") as f:
        first = os.path.join(os.path.dirname(args.photos), f.readline().split()[-1])
    count = sum(1 for line in open(args.photos, encoding="utf-8") if line.strip())
    label = [sys.executable, os.path.join(ROOT, "label_image.py"), "--model_dir",
             args.model_dir, "--output_format", "json", "--quiet"]

    floor, _ = timed([sys.executable, "-c", "import tensorflow"], args.repeats)
    rows = [("python -c 'import tensorflow'", floor, "", "")]
    for what, source in (("1 photo", ["--image", first]),
                         (f"{count} photos", ["--image_list", args.photos])):
        results = {}
        for engine in ("auto", "tf"):
            seconds, out = timed(label + ["--engine", engine] + source, args.repeats)
            results[engine] = (seconds, probabilities(out))
        difference = max(abs(a - b) for image, row in results["auto"][1].items()
                         for a, b in zip(row, results["tf"][1][image]))
        for engine, name in (("auto", "LiteRT (default)"), ("tf", "TensorFlow (--engine tf)")):
            seconds = results[engine][0]
            rate = f"{count / seconds:.0f} img/s" if what != "1 photo" else ""
            rows.append((f"label_image.py, {what}, {name}", seconds, rate,
                         f"{difference:.1e}" if engine == "tf" else ""))
    print(f"\n{os.cpu_count()} CPUs, median of {args.repeats} fresh processes each\n")
    print(f"| {'command':<52} | {'seconds':>7} | {'/ import tf':>11} | {'rate':>10} | "
          f"{'max |LiteRT - TF|':>17} |")
    print(f"|{'-' * 54}|{'-' * 9}|{'-' * 13}|{'-' * 12}|{'-' * 19}|")
    for name, seconds, rate, difference in rows:
        print(f"| {name:<52} | {seconds:7.2f} | {seconds / floor:11.2f} | {rate:>10} | "
              f"{difference:>17} |")


if __name__ == "__main__":
    main()
