"""Where a run's time goes, on the real scene images and the default module: one table.

    python -m bench.timings.run_benchmarks            # about 20 minutes on 2 cores
    python -m bench.timings.run_benchmarks --quick    # fewer images, about 2 minutes

Every figure is measured in this one run, next to its reference, on the same images:

1. the default bottleneck pipeline (hashing, decoding, TFLite engine, cache writes) on
   all 2,000 images, cold cache, in images/s;
2. the original retrain.py's flow: one `sess.run` to decode an image, one to run the
   module on it (a v1 graph around `hub.load`);
3. the engines alone on images already decoded and resized, in batches: the TFLite
   engine in its default layout (one single-thread interpreter per core) and in the old
   one (one interpreter on every core), and TensorFlow: the ceilings the pipeline can
   reach;
4. a second retrain.py run over fully cached bottlenecks, split into its phases (the
   head's training among them), and its export stage into its parts (frozen graph,
   checks, SavedModel, TFLite model, metadata, label issues, report page), from the
   run's own stage clock (the "Export stage:" log line);
5. label_image.py: process start to printed vector for one image, and a folder;
6. cold retrain.py runs on 250 ... 2,000 images: time and peak memory;
7. where Apache Beam is installed (requirements-beam.txt): beam_bottlenecks on the
   DirectRunner with 2 worker processes on the largest set, cold cache, start-up
   included, against the cold retrain.py run's time to its last bottleneck, with the
   largest relative difference between their vectors;
9. `retrain.py --preset best` (a module set, fine-tuned) on all 2,000 images, cold
   cache: time and peak memory against the 21 minutes it took before, where the time
   went, and its test measures (left out with --quick; figure 8, the Beam cluster, is
   bench/timings/beam_cluster.py's).

Scratch files go to a temporary folder, removed at the end; nothing in the project's
own MODEL_DETAILS/ is touched. The default module is built into MODEL/ when missing.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would bury the table

import numpy as np  # noqa: E402

from bench.retrain_outputs import output_flags  # noqa: E402
from multilabel import api  # noqa: E402

CLASS_NAMES = "desert,mountains,sea,sunset,trees"
BATCH = 32
# Images for the engines alone and the original flow: decoded ahead, held in memory.
CEILING_IMAGES = 320


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", default=os.path.join(ROOT, "DATASET"),
                   help="folder with images/1.jpg ... and labels.json (default: %(default)s)")
    p.add_argument("--model_dir", default=os.path.join(ROOT, "MODEL"),
                   help="where the default module is, or is built (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="fewer images everywhere: a smoke test of the bench, not a measure")
    p.add_argument("--best_only", action="store_true",
                   help="only figure 9, the cold --preset best run (about 13 minutes)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    images_dir = os.path.join(args.scenes, "images")
    if not os.path.isfile(os.path.join(args.scenes, "labels.json")):
        print(f"run_benchmarks.py: no scene data in {args.scenes} (see DATASET/README.md)",
              file=sys.stderr)
        return 2
    pipeline_images = 200 if args.quick else 2000
    sizes = (100, 200) if args.quick else (250, 500, 1000, 2000)

    scratch = tempfile.mkdtemp(prefix="multilabel-bench-")
    if args.best_only:
        try:
            print_table(best_preset_rows(args.scenes, args.model_dir, scratch),
                        f"Preset best: {','.join(api.PRESETS['best']['tfhub_module'])}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return 0
    try:
        # Subprocesses first, while this process is small: a child's peak memory counts
        # the memory of the process it was forked from.
        runs = scaling_runs(args.scenes, sizes, args.model_dir, scratch)
        rows = cached_run_rows(runs[-1], scratch)
        rows += label_image_rows(runs[-1], runs[0].dataset, scratch)
        rows += scaling_rows(runs)
        rows += beam_rows(runs[-1], scratch)
        if not args.quick:
            rows += best_preset_rows(args.scenes, args.model_dir, scratch)

        paths = [os.path.join(images_dir, f"{i}.jpg") for i in range(1, pipeline_images + 1)]
        module, first_rows = engine_rows(args.model_dir, paths, scratch,
                                         rounds=1 if args.quick else 3)
        rows = first_rows + rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows, f"Module {os.path.relpath(module.path, ROOT)}")
    return 0


# --- 1 to 3: engines and the bottleneck pipeline, in this process -----------------------

def engine_rows(model_dir, paths, scratch, rounds):
    """The default module as a run opens it, and figures 1 to 3, each the best of `rounds`
    rounds that take turns.

    On a shared machine another process can slow down any one measure; taking turns
    and keeping each one's best compares them at the same, quietest moments. The
    pipeline runs on every path, cold; the engines alone and the original flow on the
    first CEILING_IMAGES (their rates do not depend on the number of images).
    """
    from multilabel.data.images import load_image
    from multilabel.base import host
    from multilabel.features import bottlenecks, engines, feature_modules, module_set
    from multilabel.features.input_pipeline import feature_batches

    n = len(paths)
    # Opened by the run's own opener, with a scratch cache so that the TFLite conversion
    # is made (and timed) here rather than found in the project's cache.
    start = time.perf_counter()
    opened = module_set.load_module_set((feature_modules.DEFAULT_MODULE,), model_dir,
                                        os.path.join(scratch, "engine"), "auto")
    conversion = time.perf_counter() - start
    (member,) = opened.members
    module, engine, key = opened.path, opened.engine, member.key
    height, width, dim = opened.height, opened.width, opened.dim
    kept = os.path.join(scratch, "engine", key)
    few = paths[:CEILING_IMAGES]
    decoded = np.stack([load_image(p, height, width) for p in few])
    reference = engines.TensorFlowEngine(module)
    layouts = {"tensorflow": (reference, 1)}
    if engine.name == "tflite":
        content = engines.cached_tflite_model(engines.tflite_model_path(kept))
        old = engines.TFLiteEngine(content, interpreters=1, threads=host.cores(),
                                   invoke_images=BATCH)
        layouts.update(new=(engine, engine.parallelism), old=(old, 1))

    best = {}
    for r in range(rounds):
        # 1. What retrain.py does on a cold cache: hash, decode, run, store.
        cache = bottlenecks.BottleneckCache(os.path.join(scratch, f"pipeline_{r}"), key, dim)
        start = time.perf_counter()
        bottlenecks.cached_bottlenecks(
            paths, cache, lambda todo: feature_batches(engine, todo, height, width, BATCH))
        best["pipeline"] = min(best.get("pipeline", float("inf")), time.perf_counter() - start)
        shutil.rmtree(cache.folder)
        # 3. The ceilings: the same images decoded beforehand, then only the engines.
        for name, (runner, callers) in layouts.items():
            best[name] = min(best.get(name, float("inf")),
                             batched_seconds(runner, decoded, callers))
        # 2. The original flow.
        best["original"] = min(best.get("original", float("inf")),
                               original_flow_seconds(module, few, height, width))

    rate = {name: (n if name == "pipeline" else len(few)) / seconds
            for name, seconds in best.items()}
    ceiling = max(rate.get("new", 0), rate.get("old", 0), rate["tensorflow"])
    of = f"best of {rounds} rounds" if rounds > 1 else "one round"
    rows = [
        ("1", f"Default pipeline ({engine.name} engine), cold cache, decoding and cache writes",
         f"{rate['pipeline']:.0f} img/s",
         f"{n} images, {of}: {rate['pipeline'] / rate['original']:.1f}x the original flow, "
         f"{100 * rate['pipeline'] / ceiling:.0f}% of the best engine's ceiling"),
        ("1", "Opening the module: loading it, one-time TFLite conversion and check (kept "
              "for later runs)", f"{conversion:.1f} s", "before the first bottleneck of a module"),
        ("2", "Original flow: sess.run to decode + sess.run per image (v1 graph, hub.load)",
         f"{rate['original']:.0f} img/s", f"first {len(few)} images, same process, {of}"),
    ]
    if "new" in rate:
        rows += [
            ("3", f"Ceiling: TFLite engine alone, default layout ({engine.parallelism} "
                  "single-thread interpreters)", f"{rate['new']:.0f} img/s",
             f"{len(few)} decoded images, batches of {BATCH} from {engine.parallelism} "
             f"threads, {engines.INVOKE_IMAGES} per invoke, {of}"),
            ("3", f"Ceiling: TFLite engine alone, old layout (one interpreter, "
                  f"{host.cores()} threads)", f"{rate['old']:.0f} img/s",
             f"same images, batches of {BATCH} from one thread, {of}; the default layout is "
             f"{rate['new'] / rate['old']:.2f}x faster"),
        ]
    rows.append(("3", "Ceiling: TensorFlow engine alone, decoded batches",
                 f"{rate['tensorflow']:.0f} img/s",
                 f"batches of {BATCH}, {of}" + (f"; TFLite is {ceiling / rate['tensorflow']:.1f}x "
                                                "faster" if "new" in rate else "")))
    return opened, rows


def batched_seconds(engine, images, callers):
    """Seconds for `engine` to run `images` in batches, called from `callers` threads."""
    batches = [images[i:i + BATCH] for i in range(0, len(images), BATCH)]
    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        list(pool.map(engine, batches[:callers]))  # first calls: allocations
        start = time.perf_counter()
        list(pool.map(engine, batches))
        return time.perf_counter() - start


def original_flow_seconds(module, paths, height, width):
    """TF Hub's retrain.py `run_bottleneck_on_image`, image by image (without its text files)."""
    import tensorflow as tf
    import tensorflow_hub as hub
    v1 = tf.compat.v1

    graph = tf.Graph()
    with graph.as_default():
        jpeg = v1.placeholder(tf.string)
        decoded = tf.image.convert_image_dtype(tf.image.decode_jpeg(jpeg, channels=3),
                                               tf.float32)
        resized = v1.image.resize_bilinear(tf.expand_dims(decoded, 0), [height, width])
        resized_input = v1.placeholder(tf.float32, [None, height, width, 3])
        bottleneck = hub.load(module)(resized_input)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())

            def one(path):
                with open(path, "rb") as f:
                    values = sess.run(resized, {jpeg: f.read()})
                return sess.run(bottleneck, {resized_input: values})

            one(paths[0])
            start = time.perf_counter()
            for path in paths:
                one(path)
            return time.perf_counter() - start


# --- 4 to 6: retrain.py and label_image.py as users run them -------------------------------

class Run:
    """One finished subprocess: wall time, peak memory, log stamped by timed_retrain.py."""

    def __init__(self, argv, log_path, cwd=ROOT):
        self.argv = argv
        start = time.perf_counter()
        with open(log_path, "w") as log:
            process = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(process.pid, 0)
        self.seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        self.peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
        self.log = open(log_path).read()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}):\n"
                               f"{self.log[-3000:]}")

    def stamp(self, pattern):
        """Seconds from process start to the first log line matching `pattern`, or None."""
        match = re.search(r"^@(\d+) \S+ .*" + pattern, self.log, re.MULTILINE)
        return int(match.group(1)) / 1000 if match else None


def make_dataset(scenes, n, folder):
    """The first `n` scene images with their labels, split 80/20 by data_generation.py."""
    os.makedirs(os.path.join(folder, "images"))
    for i in range(1, n + 1):
        os.symlink(os.path.abspath(os.path.join(scenes, "images", f"{i}.jpg")),
                   os.path.join(folder, "images", f"{i}.jpg"))
    with open(os.path.join(scenes, "labels.json")) as f:
        lines = f.read().splitlines()[:n]
    with open(os.path.join(folder, "labels.json"), "w") as f:
        f.write("\n".join(lines))
    subprocess.run([sys.executable, os.path.join(ROOT, "data_generation.py"), "--image_dir",
                    folder, "--class_names", CLASS_NAMES, "--split", "0.8", "--seed", "1"],
                   check=True, capture_output=True)


def retrain(dataset, model_dir, details, log_path, *flags):
    return Run([sys.executable, "-m", "bench.timings.timed_retrain",
                "--image_dir", dataset, "--model_dir", model_dir,
                "--bottleneck_dir", os.path.join(details, "bottlenecks"), *output_flags(details),
                *flags], log_path)


def scaling_runs(scenes, sizes, model_dir, scratch):
    """One cold retrain.py run per size, each with its own empty bottleneck cache."""
    runs = []
    for n in sizes:
        dataset = os.path.join(scratch, f"dataset_{n}")
        make_dataset(scenes, n, dataset)
        run = retrain(dataset, model_dir, os.path.join(scratch, f"details_{n}"),
                      os.path.join(scratch, f"retrain_{n}.log"))
        run.images, run.dataset = n, dataset
        run.model_dir, run.details = model_dir, os.path.join(scratch, f"details_{n}")
        runs.append(run)
    return runs


def scaling_rows(runs):
    """The bottleneck stage of each cold run, from the module being ready (its TFLite
    conversion done) to the last vector stored: hashing, decoding, engine, cache writes."""
    rows = []
    for run in runs:
        start, end = run.stamp(r"Module .* features"), run.stamp(r"Bottlenecks: \d+ images in")
        converted = run.stamp(r"TFLite engine matches")
        notes = []
        if start is not None and end is not None:
            notes.append(f"bottleneck stage {end - start:.1f} s "
                         f"({run.images / (end - start):.0f} img/s)")
        else:
            notes.append("bottleneck stage not found in log")
        if converted is not None and run.stamp(r"Converting") is not None:
            notes.append(f"first TFLite conversion and check {converted - run.stamp('Converting'):.1f} s")
        rows.append(("6", f"Cold retrain.py run, {run.images} images",
                     f"{run.seconds:.1f} s, {run.peak_mb:.0f} MB peak", "; ".join(notes)))
    return rows


def cached_run_rows(cold, scratch):
    """Run retrain.py again on the largest data set: every bottleneck is now cached."""
    run = retrain(cold.dataset, cold.model_dir, cold.details,
                  os.path.join(scratch, "retrain_cached.log"))
    marks = [("start-up, image checks, module", r"Module .* features"),
             ("read bottlenecks", r"bottlenecks cached"),
             ("train head", r"Keeping step"),
             ("thresholds, test report", r"Test report on"),
             ("export", r"Wrote .*output_graph")]
    parts, previous = [], 0.0
    for name, pattern in marks:
        at = run.stamp(pattern)
        if at is None:
            parts.append(f"{name} ?")
            continue
        parts.append(f"{name} {at - previous:.1f}")
        previous = at
    parts.append(f"rest {run.seconds - previous:.1f}")
    read, trained = run.stamp(r"bottlenecks cached"), run.stamp(r"Keeping step")
    steps = re.findall(r"Step (\d+):", run.log)
    rows = []
    if read is not None and trained is not None and steps:
        rows.append(("4", f"Head training, {max(map(int, steps))} steps (retrain.py defaults: "
                          "checkpoints and summaries on)",
                     f"{trained - read:.1f} s", f"{cold.images} images' cached bottlenecks"))
    rows.append(("4", f"Second retrain.py run, {cold.images} images, all bottlenecks cached",
                 f"{run.seconds:.1f} s", "; ".join(parts) + " (s)"))
    export = re.search(r"Export stage: (.*)$", run.log, re.MULTILINE)
    rows.append(("4", "Its export stage, part by part (the run's stage clock)",
                 f"{export_seconds(export.group(1)):.1f} s" if export else "?",
                 export.group(1) if export else "no Export stage line in the log"))
    return rows


def export_seconds(parts):
    """The sum of the "NAME 1.23 s" parts of an "Export stage:" log line."""
    return sum(float(s) for s in re.findall(r"([\d.]+) s(?:,|$)", parts))


def label_image_rows(cold, small_dataset, scratch):
    """label_image.py as users run it, on the run's TFLite model through LiteRT (the
    default) and on the frozen graph in TensorFlow (--engine tf), side by side."""
    graph = os.path.join(cold.details, "output_graph.pb")
    script = os.path.join(ROOT, "label_image.py")
    folder = os.path.join(small_dataset, "images")
    count = len(os.listdir(folder))
    rows = []
    for engine, name in (("auto", "LiteRT, no TensorFlow import"),
                         ("tf", "frozen graph, TensorFlow")):
        one = Run([sys.executable, script, "--graph", graph, "--engine", engine,
                   os.path.join(cold.dataset, "images", "1.jpg")],
                  os.path.join(scratch, f"label_one_{engine}.log"))
        many = Run([sys.executable, script, "--graph", graph, "--engine", engine,
                    "--output_format", "csv", folder],
                   os.path.join(scratch, f"label_folder_{engine}.log"))
        inner = re.search(r"Labelled (\d+) of \d+ images in ([\d.]+) s", many.log)
        steady = f"; {int(inner.group(1)) / float(inner.group(2)):.0f} img/s once loaded" \
            if inner else ""
        rows += [
            ("5", f"label_image.py, one image: process start to printed vector ({engine})",
             f"{one.seconds:.1f} s", name),
            ("5", f"label_image.py, a folder of {count} images ({engine})",
             f"{count / many.seconds:.0f} img/s", f"{many.seconds:.1f} s in all{steady}"),
        ]
    return rows


# --- 7: the Beam pipeline against the in-process one -----------------------------------------

def beam_rows(cold, scratch, workers=2):
    """beam_bottlenecks on `cold`'s data set with a fresh cache; none without Beam."""
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        return []
    cache = os.path.join(scratch, "beam_bottlenecks")
    run = Run([sys.executable, "-m", "multilabel.beam_bottlenecks", "--image_dir", cold.dataset,
               "--model_dir", cold.model_dir, "--bottleneck_dir", cache,
               "--runner", "DirectRunner", "--direct_num_workers", str(workers),
               "--direct_running_mode", "multi_processing"],
              os.path.join(scratch, "beam_bottlenecks.log"))
    in_process = cold.stamp(r"Step \d+:")
    vs = f"; the in-process retrain.py took {in_process:.1f} s to its last bottleneck" \
        if in_process is not None else ""
    return [("7", f"Beam bottlenecks, DirectRunner, {workers} worker processes, "
                  f"{cold.images} images, cold cache",
             f"{run.seconds:.1f} s",
             f"process start to last shard ({cold.images / run.seconds:.0f} img/s){vs}; "
             f"vectors differ from retrain.py's by {beam_difference(cache, cold.details):.1g} "
             "at most (relative)")]


def beam_difference(beam_cache, details):
    """Largest relative difference between the Beam shards and retrain.py's own cache."""
    from multilabel.features import bottleneck_shards, engines

    worst = 0.0
    for folder in glob.glob(os.path.join(beam_cache, "*", "")):
        own = os.path.join(details, "bottlenecks", os.path.basename(os.path.dirname(folder)))
        dim = len(np.load(glob.glob(os.path.join(own, "*", "*.npy"))[0]))
        for digest, vector in bottleneck_shards.read_shards(folder, dim).items():
            reference = np.load(os.path.join(own, digest[:2], digest + ".npy"))
            worst = max(worst, engines.relative_difference([vector], [reference]))
    return worst


# --- 9: the best preset, cold ------------------------------------------------------------

# A cold run of the module set with fine-tuning before the cut cache (docs/performance.md).
BEST_BEFORE_MINUTES = 21


def best_preset_rows(scenes, model_dir, scratch):
    """`retrain.py --preset best` on a 2,000-image split (seed 1), from an empty
    bottleneck cache: wall time and peak memory against the 21 minutes the recipe took
    before its frozen part was cached at the cut, where the time went, and its test
    measures."""
    dataset = os.path.join(scratch, "dataset_best")
    make_dataset(scenes, 2000, dataset)
    details = os.path.join(scratch, "details_best")
    run = retrain(dataset, model_dir, details, os.path.join(scratch, "retrain_best.log"),
                  "--preset", "best")
    with open(os.path.join(details, "metrics.json")) as f:
        test = json.load(f)["test"]
    marks = [("bottlenecks", r"Module set of", r"Bottlenecks: \d+ images in"),
             ("cut tensors", r"Caching the tensors at the cut", r"Fine-tuning epoch 0:"),
             ("fine-tuning epochs", r"Fine-tuning epoch 0:", r"Keeping fine-tuning epoch")]
    phases = []
    for name, start, end in marks:
        a, b = run.stamp(start), run.stamp(end)
        if a is not None and b is not None:
            phases.append(f"{name} {b - a:.0f} s")
    return [("9", "Cold retrain.py --preset best, 2,000 images",
             f"{run.seconds / 60:.1f} min, {run.peak_mb:.0f} MB peak "
             f"(before: {BEST_BEFORE_MINUTES} min)",
             "; ".join(phases) + f"; test label accuracy {test['label_accuracy']:.4f}, "
             f"mAP {test['mean_average_precision']:.4f}, exact {test['exact_match']:.4f}")]


def print_table(rows, title):
    print(f"\n{title}, {os.cpu_count()} CPU cores\n")
    header = ("#", "Measure", "Result", "Notes")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    sys.exit(main())
