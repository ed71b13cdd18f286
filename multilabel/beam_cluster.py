"""Run both Beam pipelines on a local cluster and check what they did (`make beam-cluster`).

    python -m multilabel.beam_cluster --image_dir ./DATASET/ --workers 2

Starts a Beam job server and a worker pool on 127.0.0.1 (multilabel/beam/cluster.py),
builds this project as a wheel and ships it with each job (`--extra_package`), as a
user ships it to Dataflow, Flink or Spark; each worker installs it before running
anything. Then, as separate commands:

  1. `beam_bottlenecks` fills the bottleneck cache for the data set's lists;
  2. `retrain.py` trains on that cache into a scratch folder: it must compute no
     bottleneck ("All N bottlenecks cached");
  3. `beam_label` labels a folder of the set's images (and one broken file) with the
     graph just trained, and `label_image.py --engine tf --output_format json` (the same
     frozen graph in TensorFlow) labels the same folder: the records must be the same.

Prints what ran where (each worker process, where its code came from, the images it
ran through a model, its seconds in the model, and each step's time) and exits 0 only
when every check holds. The cluster and every process it started are stopped at the
end, also after a failure or Ctrl-C. Nothing in the project's MODEL_DETAILS/ is written;
the bottleneck cache is --bottleneck_dir's.

Exit status: 0 every check holds; 1 a check failed, or a full disk; 2 bad usage or
input; 130 interrupted.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("python -m multilabel.beam_cluster", environment.BEAM)

from multilabel.base import options
from multilabel.base.arguments import positive_int
from multilabel.base.command import run_command
from multilabel.base.errors import EXIT_OK, EXIT_SOME_FAILED
from multilabel.beam.command import with_option_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The files a wheel of the project is built from (pyproject.toml names them).
PACKAGE_FILES = ("pyproject.toml", "requirements.txt", "README.md", "multilabel")
EXIT_CHECK_FAILED = 1
# retrain.py's flags this command takes (base/options.py) and hands to the steps.
FLAGS = ("image_dir", "tfhub_module", "model_dir", "bottleneck_dir")
_WORKER_LINE = re.compile(r"Worker (.*): (\d+) images, ([\d.]+) s in the model")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_flags(p, FLAGS)
    p.add_argument("--workers", type=positive_int, default=2,
                   help="worker processes of the cluster (default: %(default)s)")
    p.add_argument("--label_images", type=positive_int, default=200,
                   help="images of the set that beam_label labels (default: %(default)s)")
    p.add_argument("--training_steps", type=positive_int, default=200,
                   help="retrain.py's --how_many_training_steps: the graph only has to "
                        "exist for the labelling check (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds each step may take (default: %(default)s)")
    return with_option_defaults(p, p.parse_args(argv), FLAGS)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_command("beam_cluster", run, args, interrupted="the cluster was stopped")


def run(args):
    """Start the cluster, run and check the three steps, stop it; return the exit status."""
    from multilabel.beam.cluster import LocalCluster

    scratch = tempfile.mkdtemp(prefix="multilabel-beam-cluster-")
    steps, failures = [], []
    try:
        wheel = build_wheel(os.path.join(scratch, "dist"))
        with LocalCluster(workers=args.workers) as cluster:
            print(f"Cluster: job server {cluster.addresses['job_endpoint']}, worker pool "
                  f"{cluster.addresses['worker_pool']}, {args.workers} workers; shipping "
                  f"{os.path.basename(wheel)}", flush=True)
            beam_flags = cluster.beam_flags() + ["--extra_package", wheel]
            steps.append(_step("beam_bottlenecks", [
                "-m", "multilabel.beam_bottlenecks", "--image_dir", args.image_dir,
                "--tfhub_module", ",".join(args.tfhub_module), "--model_dir", args.model_dir,
                "--bottleneck_dir", args.bottleneck_dir] + beam_flags, args.timeout))
            details = os.path.join(scratch, "details")
            steps.append(_step("retrain.py", [
                os.path.join(ROOT, "retrain.py"), "--image_dir", args.image_dir,
                "--tfhub_module", ",".join(args.tfhub_module), "--model_dir", args.model_dir,
                "--bottleneck_dir", args.bottleneck_dir,
                "--how_many_training_steps", str(args.training_steps)]
                + retrain_outputs(details), args.timeout))
            failures += cache_was_complete(steps[-1].output, len(args.tfhub_module))
            folder = label_folder(args.image_dir, args.label_images,
                                  os.path.join(scratch, "photos"))
            graph = ["--graph", os.path.join(details, "output_graph.pb")]
            prefix = os.path.join(scratch, "labels", "part")
            steps.append(_step("beam_label", [
                "-m", "multilabel.beam_label", "--image_dir", folder, "--output", prefix]
                + graph + beam_flags, args.timeout, ok=(EXIT_SOME_FAILED,)))  # the broken file
            steps.append(_step("label_image.py", [
                os.path.join(ROOT, "label_image.py"), "--engine", "tf", "--output_format", "json",
                "-q", folder]
                + graph, args.timeout, ok=(EXIT_SOME_FAILED,), keep_stdout=True))
            failures += compare_labels(prefix, steps[-1].stdout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failures += [f"{s.name} exited {s.status}" for s in steps if not s.ok]
    print_summary(steps)
    for failure in failures:
        print(f"beam_cluster: check failed: {failure}", file=sys.stderr)
    print("All checks hold." if not failures else f"{len(failures)} checks failed.")
    return EXIT_CHECK_FAILED if failures else EXIT_OK


def cache_was_complete(retrain_log, modules):
    """[] when retrain.py found every bottleneck of each module cached, else what it says."""
    computed = re.findall(r".*(?:bottlenecks cached; computing|Computing bottlenecks).*",
                          retrain_log)
    complete = len(re.findall(r"All \d+ bottlenecks cached", retrain_log))
    if computed or complete != modules:
        return [f"retrain.py computed bottlenecks ({complete} of {modules} modules fully "
                f"cached): {'; '.join(computed)[:300]}"]
    return []


def build_wheel(dist):
    """The project as a wheel in `dist`, built from a copy of its files (the checkout is
    left untouched: setuptools would write build/ and egg-info into it)."""
    source = os.path.join(dist, "source")
    os.makedirs(source)
    for name in PACKAGE_FILES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(source, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--wheel-dir", dist, source],
                   check=True, stdout=subprocess.DEVNULL)
    (wheel,) = [os.path.join(dist, n) for n in os.listdir(dist) if n.endswith(".whl")]
    return wheel


def retrain_outputs(folder):
    """retrain.py's output flags: the run's folder, no report page."""
    return ["--output_dir", folder, "--report_page", ""]


def label_folder(image_dir, count, folder):
    """A folder of the set's first `count` images (by name) and one broken file."""
    images = os.path.join(image_dir, "images")
    names = sorted(os.listdir(images), key=lambda n: (len(n), n))[:count]
    os.makedirs(folder)
    for name in names:
        shutil.copy(os.path.join(images, name), folder)
    with open(os.path.join(folder, "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def compare_labels(prefix, reference_lines):
    """What differs between beam_label's records and label_image.py's (as messages)."""
    import numpy as np

    records = {r["image"]: r for r in _json_lines(prefix + "-*")}
    errors = _json_lines(os.path.join(os.path.dirname(prefix),
                                      "errors-" + os.path.basename(prefix) + "-*"))
    reference = {r["image"]: r for r in map(json.loads, reference_lines)
                 if "probabilities" in r}
    failures = []
    if set(records) != set(reference):
        failures.append(f"beam_label labelled {len(records)} images, label_image.py "
                        f"{len(reference)}")
    for image in sorted(set(records) & set(reference)):
        got, wanted = records[image], reference[image]
        if ((got["labels"], got["predicted"]) != (wanted["labels"], wanted["predicted"])
                or not np.allclose(got["probabilities"], wanted["probabilities"], atol=1e-5)):
            failures.append(f"{image}: beam_label {got}, label_image.py {wanted}")
    if [os.path.basename(e["image"]) for e in errors] != ["broken.jpg"]:
        failures.append(f"beam_label's errors are {errors}, not the one broken file")
    return failures[:10]


def _json_lines(pattern):
    """The JSON objects of every line of the files matching `pattern`."""
    import glob

    found = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            found += [json.loads(line) for line in f]
    return found


class _Step:
    def __init__(self, name, status, seconds, output, stdout, ok):
        self.name, self.status, self.seconds = name, status, seconds
        self.output, self.stdout, self.ok = output, stdout, ok


def _step(name, argv, timeout, ok=(EXIT_OK,), keep_stdout=False):
    """Run one command (this Python), its log shown as it comes; stop it on any exit."""
    print(f"\n=== {name}", flush=True)
    start = time.monotonic()
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable] + argv, text=True,
                               stdout=subprocess.PIPE if keep_stdout else log,
                               stderr=log)
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    log.seek(0)
    output = log.read()
    print(output[-4000:], end="", flush=True)
    return _Step(name, process.returncode, time.monotonic() - start, output,
                 (stdout or "").splitlines(), process.returncode in ok)


def print_summary(steps):
    """What ran where: each step's time, then each worker's images and model time."""
    print("\nWhat ran where")
    print(f"  {'step':<18} {'exit':>4} {'seconds':>8}")
    for s in steps:
        print(f"  {s.name:<18} {s.status:>4} {s.seconds:>8.1f}")
        for worker, images, seconds in _WORKER_LINE.findall(s.output):
            print(f"      worker {worker}: {images} images, {seconds} s in the model")


if __name__ == "__main__":
    sys.exit(main())
