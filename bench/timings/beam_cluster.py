"""beam_bottlenecks on the local Beam cluster against the in-process pipeline: one table.

    python -m bench.timings.beam_cluster                # the 2,000 scene images, about 5 minutes
    python -m bench.timings.beam_cluster --images 200   # a smoke test of the bench, not a measure

Both compute the default module's bottlenecks of the same images into a fresh cache,
each timed from process start to its last vector (TensorFlow's start-up included):

  * in process: retrain.py's own pipeline (`module_set.set_bottlenecks`) in one process;
  * on the local cluster (multilabel/beam/cluster.py: a job server and WORKERS worker
    processes on 127.0.0.1): `beam_bottlenecks` shipping the project as a wheel, which
    each worker installs before it runs; the cluster's start is timed apart.

The module's TFLite conversion is made once beforehand and copied into both caches, so
neither run pays for it. Prints the largest relative difference between the two runs'
vectors. Scratch files go to a temporary folder, removed at the end.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")

MODULE = "mobilenet_v2_100_224"
CLASS_NAMES = "desert,mountains,sea,sunset,trees"
IN_PROCESS = """
import sys
from multilabel.features import module_set
from multilabel.data import dataset
data = dataset.load_dataset(sys.argv[1])
paths = sorted({p for part in (data.train, data.validation, data.test) for p in part.paths})
opened = module_set.load_module_set((sys.argv[2],), sys.argv[3], sys.argv[4], "auto")
module_set.set_bottlenecks(paths, opened, sys.argv[4], 32)
"""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", default=os.path.join(ROOT, "DATASET"))
    p.add_argument("--model_dir", default=os.path.join(ROOT, "MODEL"))
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="multilabel-bench-cluster-")
    try:
        data = subset(args.scenes, args.images, os.path.join(scratch, "data"))
        caches, dim = prepare_caches(args.model_dir, scratch, ("in_process", "cluster"))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", IN_PROCESS, data, MODULE, args.model_dir,
                        caches["in_process"]], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        in_process = time.perf_counter() - start
        cluster_start, cluster, workers = cluster_run(args, data, caches["cluster"], scratch)
        difference, compared = largest_difference(caches["cluster"], caches["in_process"], dim)
        if compared != args.images:
            raise SystemExit(f"the cluster's shards hold {compared} vectors, not {args.images}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    n = args.images
    rows = [("in process (retrain.py's pipeline)", f"{in_process:.1f} s",
             f"{n / in_process:.0f} img/s", "one process"),
            (f"local Beam cluster, {args.workers} workers", f"{cluster:.1f} s",
             f"{n / cluster:.0f} img/s",
             f"cluster start {cluster_start:.1f} s apart; " + "; ".join(workers))]
    print(f"\n{n} images, {MODULE}, cold cache, {os.cpu_count()} CPU cores; vectors differ by "
          f"{difference:.1g} at most (relative)\n")
    header = ("run", "process start to last vector", "rate", "notes")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    return 0


def subset(scenes, count, folder):
    """A data set of the scenes' first `count` images, with its lists."""
    os.makedirs(os.path.join(folder, "images"))
    with open(os.path.join(scenes, "labels.json")) as f:
        rows = f.read().splitlines()[:count]
    for i in range(1, count + 1):
        shutil.copy(os.path.join(scenes, "images", f"{i}.jpg"), os.path.join(folder, "images"))
    with open(os.path.join(folder, "labels.json"), "w") as f:
        f.write("\n".join(rows) + "\n")
    subprocess.run([sys.executable, os.path.join(ROOT, "data_generation.py"), "--image_dir",
                    folder, "--class_names", CLASS_NAMES, "--split", "0.8", "--seed", "1"],
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def prepare_caches(model_dir, scratch, names):
    """({name: a fresh cache holding the module's TFLite conversion}, vector length)."""
    from multilabel.features import engines, module_set

    first = os.path.join(scratch, "conversion")
    member = module_set.load_module_set((MODULE,), model_dir, first, "auto").members[0]
    caches = {}
    for name in names:
        caches[name] = os.path.join(scratch, name)
        kept = engines.tflite_model_path(os.path.join(first, member.engine_key))
        if os.path.exists(kept):
            target = engines.tflite_model_path(os.path.join(caches[name], member.engine_key))
            os.makedirs(os.path.dirname(target))
            shutil.copy(kept, target)
    return caches, member.dim


def cluster_run(args, data, cache, scratch):
    """(cluster start s, beam_bottlenecks s, ["pid: N images"]) on a fresh cluster."""
    from multilabel import beam_cluster
    from multilabel.beam.cluster import LocalCluster

    wheel = beam_cluster.build_wheel(os.path.join(scratch, "dist"))
    start = time.perf_counter()
    with LocalCluster(workers=args.workers) as cluster:
        started = time.perf_counter() - start
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "multilabel.beam_bottlenecks", "--image_dir", data,
             "--tfhub_module", MODULE, "--model_dir", args.model_dir, "--bottleneck_dir", cache,
             "--extra_package", wheel] + cluster.beam_flags(),
            cwd=ROOT, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    workers = [f"pid {pid}: {n} images" for pid, n in
               re.findall(r"Worker .* pid (\d+), .*: (\d+) images", done.stderr)]
    return started, seconds, workers


def largest_difference(shard_cache, file_cache, dim):
    """(largest relative difference between the cluster's shards and the in-process files,
    vectors compared)."""
    from multilabel.features import bottleneck_shards, bottlenecks, engines

    worst, compared = 0.0, 0
    for key in os.listdir(shard_cache):
        folder = os.path.join(shard_cache, key)
        if not bottleneck_shards.shard_files(folder):
            continue
        files = bottlenecks.BottleneckCache(file_cache, key, dim)
        for digest, vector in bottleneck_shards.read_shards(folder, dim).items():
            reference = files.load_file(digest)
            worst = max(worst, engines.relative_difference([vector], [reference]))
            compared += 1
    return worst, compared


if __name__ == "__main__":
    sys.exit(main())
