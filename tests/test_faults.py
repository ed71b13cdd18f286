"""retrain.py under faults: killed while caching or training, run twice at once, a
corrupt cache. Nothing finished is lost, and no output is ever left half-written.

The runs are real subprocesses on 600 tiny images with the tiny module; a run is
killed as soon as the files that prove it reached the stage in question appear.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import data_generation
from tests.random_images import write_random_images
from tests.tf_start_up import start_up_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_IMAGES = 600
DIM = 24  # the tiny module's feature length


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """600 distinct 8 x 8 images with three labels, listed by data_generation.py."""
    folder = tmp_path_factory.mktemp("faults") / "data"
    rows = write_random_images(folder, NUM_IMAGES, seed=0)
    (folder / "labels.json").write_text("\n".join(rows))
    assert data_generation.main(["--image_dir", str(folder)]) == 0
    return folder


class Run:
    """One retrain.py process with every output under `out`; stderr goes to a file."""

    def __init__(self, dataset, module, out, *extra, bottlenecks=None, checkpoints=None):
        self.out = out
        self.bottlenecks = bottlenecks or out / "bottlenecks"
        self.checkpoints = checkpoints or out / "checkpoints"
        self.graph = out / "output_graph.pb"
        out.mkdir(parents=True, exist_ok=True)
        self.log = out / f"stderr-{time.monotonic_ns()}.txt"
        flags = ["--image_dir", dataset, "--tfhub_module", module, "--model_dir", out / "model",
                 "--bottleneck_dir", self.bottlenecks, "--output_graph", self.graph,
                 "--output_labels", out / "labels.txt",
                 "--output_thresholds", out / "thresholds.txt",
                 "--metrics_file", out / "metrics.json",
                 "--test_predictions", out / "predictions.jsonl", "--summaries_dir", out / "logs",
                 "--checkpoint_path", self.checkpoints / "retrain",
                 "--intermediate_output_graphs_dir", out / "intermediate",
                 "--report_page", out / "report.html",
                 "--eval_step_interval", "20", *extra]
        with open(self.log, "w") as log:
            # SIGINT back to its default in the child: a test run started in the background
            # by a shell without job control inherits it ignored, and Ctrl-C would do nothing.
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(REPO, "retrain.py"), *map(str, flags)],
                stdout=subprocess.DEVNULL, stderr=log,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def kill_when(self, ready, sig=signal.SIGKILL, timeout=60):
        """Send `sig` as soon as `ready()` is true; fail if the run ends first."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"it ended before the signal:\n{self.stderr()}"
            assert time.monotonic() < deadline, "the run never got there"
            time.sleep(0.02)
        self.process.send_signal(sig)
        return self.wait()

    def wait(self, timeout=120):
        return self.process.wait(timeout)

    def stderr(self):
        return self.log.read_text()

    def lines(self):
        """stderr without the progress bar; it holds no TensorFlow start-up line."""
        assert not start_up_lines(self.stderr()), self.stderr()
        return [line for line in self.stderr().splitlines()
                if not line.startswith("Bottlenecks:")]


def cache_entries(folder):
    """The finished cache files (temporary files start with a dot and end in .tmp)."""
    return glob.glob(os.path.join(folder, "*", "*", "*.npy"))


def assert_every_entry_whole(folder):
    for path in cache_entries(folder):
        vector = np.load(path, allow_pickle=False)
        assert vector.shape == (DIM,) and np.isfinite(vector).all(), path


def parse_graph(path):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    assert {"Placeholder", "final_result"} <= {node.name for node in graph_def.node}
    return graph_def


def previous_graph(path):
    """A whole frozen graph standing for the output of an earlier run."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 32, 32, 3], name="Placeholder")
        tf.sigmoid(tf.reduce_mean(images, axis=[1, 2]), name="final_result")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path.read_bytes()


def test_killed_while_caching_then_while_training_loses_nothing(tmp_path, dataset, tiny_module):
    out = tmp_path / "out"
    old_graph = previous_graph(out / "output_graph.pb")

    # 1. SIGKILL in the middle of bottleneck caching (one image per forward pass).
    caching = Run(dataset, tiny_module, out, "--bottleneck_batch_size", "1")
    caching.kill_when(lambda: len(cache_entries(caching.bottlenecks)) >= 5)
    finished = len(cache_entries(caching.bottlenecks))
    assert 5 <= finished < NUM_IMAGES
    assert_every_entry_whole(caching.bottlenecks)
    assert caching.graph.read_bytes() == old_graph

    # 2. The next run reuses every finished bottleneck; SIGKILL it once it has a checkpoint.
    training = Run(dataset, tiny_module, out, "--how_many_training_steps", "1000000")
    training.kill_when(lambda: os.path.exists(training.checkpoints / "checkpoint"))
    assert (f"{finished} of {NUM_IMAGES} bottlenecks cached; computing {NUM_IMAGES - finished}"
            in training.stderr())
    assert len(cache_entries(training.bottlenecks)) == NUM_IMAGES
    assert training.graph.read_bytes() == old_graph  # the old graph, whole
    latest = tf.train.latest_checkpoint(str(training.checkpoints))
    step = int(latest.rsplit("-", 1)[1])
    assert step >= 20

    # 3. --resume continues from that checkpoint with every bottleneck cached.
    resumed = Run(dataset, tiny_module, out, "--resume", "--how_many_training_steps", step + 20)
    assert resumed.wait() == 0, resumed.stderr()
    assert f"All {NUM_IMAGES} bottlenecks cached" in resumed.stderr()
    assert f"Resuming from {latest} at step {step}" in resumed.stderr()
    assert resumed.graph.read_bytes() != old_graph
    parse_graph(resumed.graph)  # the new graph, whole


def test_ctrl_c_stops_with_one_line_and_keeps_the_cache(tmp_path, dataset, tiny_module):
    run = Run(dataset, tiny_module, tmp_path / "out", "--bottleneck_batch_size", "1")
    status = run.kill_when(lambda: len(cache_entries(run.bottlenecks)) >= 5, signal.SIGINT)
    assert status == 130
    assert "Traceback" not in run.stderr()
    assert run.lines()[-1] == ("retrain.py: interrupted; finished bottlenecks are kept, and "
                               "--resume continues from the last checkpoint")
    assert_every_entry_whole(run.bottlenecks)


@pytest.fixture(scope="module")
def shared_cache_runs(tmp_path_factory, dataset, tiny_module):
    """Two runs started together on one --bottleneck_dir."""
    root = tmp_path_factory.mktemp("shared")
    shared = root / "bottlenecks"
    runs = [Run(dataset, tiny_module, root / name, "--how_many_training_steps", "40",
                bottlenecks=shared) for name in ("a", "b")]
    return [run.wait() for run in runs], runs, shared


def test_two_runs_sharing_a_bottleneck_dir_both_finish_with_a_whole_cache(shared_cache_runs):
    statuses, runs, shared = shared_cache_runs
    assert statuses == [0, 0], [run.stderr() for run in runs]
    assert len(cache_entries(shared)) == NUM_IMAGES
    assert_every_entry_whole(shared)
    assert not glob.glob(os.path.join(shared, "*", "*", ".*"))  # no temporary file left
    # Same seed, same data: the same predictions, whichever run wrote which vector.
    a, b = ((run.out / "predictions.jsonl").read_text() for run in runs)
    assert a == b
    for run in runs:
        parse_graph(run.graph)


def test_corrupt_cache_entries_are_recomputed_with_a_warning(tmp_path, shared_cache_runs,
                                                             dataset, tiny_module):
    cache = tmp_path / "bottlenecks"
    shutil.copytree(shared_cache_runs[2], cache)
    entries = sorted(cache_entries(cache))[:3]
    good = [np.load(path) for path in entries]
    truncated, wrong_length, with_nan = entries
    data = open(truncated, "rb").read()
    open(truncated, "wb").write(data[: len(data) // 2])
    np.save(wrong_length, np.zeros(DIM - 1, np.float32))
    np.save(with_nan, np.full(DIM, np.nan, np.float32))

    run = Run(dataset, tiny_module, tmp_path / "out", "--how_many_training_steps", "20",
              bottlenecks=cache)
    assert run.wait() == 0, run.stderr()
    warnings = [line for line in run.lines() if "Corrupt bottleneck" in line]
    assert sorted(re.search(r"Corrupt bottleneck (\S+)", w)[1] for w in warnings) == entries
    assert f"{NUM_IMAGES - 3} of {NUM_IMAGES} bottlenecks cached; computing 3" in run.stderr()
    for path, vector in zip(entries, good):
        np.testing.assert_allclose(np.load(path), vector, rtol=1e-6)
