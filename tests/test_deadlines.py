"""Issue 38 case 3: a deadline and Ctrl-C that hold for every engine and entry point.

Each hang is reproduced with a tiny crafted model: a TFLite model whose WHILE loop never
ends, a frozen graph of nested functions whose set-up outlasts TensorFlow's own run
deadline, and beam_label on an endless graph. Whatever may hang runs in a child process,
so that a regression fails the test at its timeout instead of spinning in this one.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, types_pb2

import label_image
import multilabel
from multilabel.base import deadline
from multilabel.base.errors import UserError
from multilabel.beam_label import main as beam_label_main  # noqa: F401 (import checked)
from multilabel.labelling import graph_ops, litert_model
from tests.test_hardening import _endless_graph
from tests.test_label_image import write_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


def endless_tflite(folder):
    """A 2 KB TFLite classifier [1, 4, 4, 3] -> [1, 3] whose WHILE loop never ends: a
    float counter stops growing at 2**24, and the loop runs while it is >= 0."""
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.float32)])
    def endless(x):
        start = tf.reduce_sum(x) * 0.0
        count = tf.while_loop(lambda i: i >= 0.0, lambda i: i + 1.0, [start])[0]
        return tf.reduce_mean(x, [1, 2]) + count * 0.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [endless.get_concrete_function()], endless)
    folder.mkdir(exist_ok=True)
    (folder / "output_graph.tflite").write_bytes(converter.convert())
    (folder / "output_labels.txt").write_text("a\nb\nc\n")
    return folder


def nested_functions_graph(path, depth):
    """A frozen graph of allowed ops only: f0 is Identity, each f(k) calls f(k-1) twice,
    and the graph calls the last; 2**depth calls once expanded."""
    graph = graph_pb2.GraphDef()
    for k in range(depth):
        function = graph.library.function.add()
        function.signature.name = f"f{k}"
        function.signature.input_arg.add(name="x", type=types_pb2.DT_FLOAT)
        function.signature.output_arg.add(name="y", type=types_pb2.DT_FLOAT)
        if k == 0:
            node = function.node_def.add(name="a", op="Identity", input=["x"])
            node.attr["T"].type = types_pb2.DT_FLOAT
            function.ret["y"] = "a:output:0"
        else:
            function.node_def.add(name="a", op=f"f{k - 1}", input=["x"])
            function.node_def.add(name="b", op=f"f{k - 1}", input=["a:y:0"])
            function.ret["y"] = "b:y:0"
    placeholder = graph.node.add(name="Placeholder", op="Placeholder")
    placeholder.attr["dtype"].type = types_pb2.DT_FLOAT
    for size in (-1, 4, 4, 3):
        placeholder.attr["shape"].shape.dim.add(size=size)
    graph.node.add(name="call", op=f"f{depth - 1}", input=["Placeholder"])
    axes = graph.node.add(name="axes", op="Const")
    axes.attr["dtype"].type = types_pb2.DT_INT32
    axes.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([1, 2], np.int32)))
    mean = graph.node.add(name="final_result", op="Mean", input=["call", "axes"])
    mean.attr["T"].type = types_pb2.DT_FLOAT
    mean.attr["Tidx"].type = types_pb2.DT_INT32
    path.write_bytes(graph.SerializeToString())
    (path.parent / "output_labels.txt").write_text("a\nb\nc\n")
    return str(path)


def label_image_process(*args):
    return subprocess.Popen([sys.executable, "label_image.py", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_tflite_model_that_is_not_the_runs_own_is_refused_for_its_while_loop(
        tmp_path, capsys):
    folder = endless_tflite(tmp_path / "model")  # no manifest: nothing vouches for it
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    assert label_image.main(["--model_dir", str(folder), str(image), "-q"]) == 2
    model = folder / "output_graph.tflite"
    assert capsys.readouterr().err == (
        f"label_image.py: error: {model}: the TFLite model holds WHILE, which can run "
        "without end; a classifier retrain.py exports has none, and this one is not the "
        "run's own (no manifest lists it). If you trust it, pass --allow_ops WHILE "
        "(--timeout still bounds each batch)\n")
    with pytest.raises(UserError, match="holds WHILE"):
        multilabel.Classifier.load(folder)
    assert litert_model.operators(model.read_bytes()) >= {"WHILE", "MEAN"}


# A child process imports LiteRT or TensorFlow: seconds alone, up to a minute on the shared
# two-core machine under load; the hangs themselves are stopped within seconds.
@pytest.mark.timeout(150)
def test_an_endless_tflite_loop_is_stopped_by_the_timeout(tmp_path):
    folder = endless_tflite(tmp_path / "model")
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    start = time.monotonic()
    process = label_image_process("--model_dir", str(folder), "--engine", "tflite",
                                  "--allow_ops", "WHILE", "--timeout", "1", "--threshold", "0.5",
                                  str(image), "-q")
    out, err = process.communicate(timeout=140)
    assert process.returncode == 2
    assert err == (f"label_image.py: error: {folder / 'output_graph.tflite'}: running the "
                   "TFLite model on one batch took longer than the 1 s allowed (--timeout); "
                   "does it loop forever? Stopped\n")
    assert time.monotonic() - start < 140


@pytest.mark.timeout(150)
def test_ctrl_c_stops_an_endless_tflite_loop(tmp_path):
    folder = endless_tflite(tmp_path / "model")
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    process = label_image_process("--model_dir", str(folder), "--engine", "tflite",
                                  "--allow_ops", "WHILE", str(image))
    # Wait until the model is loaded (its log line), then interrupt the endless run.
    line = process.stderr.readline()
    while line and "Loaded TFLite model" not in line:
        line = process.stderr.readline()
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.endswith("label_image.py: interrupted\n")


@pytest.mark.timeout(150)
def test_nested_functions_whose_set_up_outlasts_the_run_deadline_are_stopped(tmp_path):
    """12 levels took minutes of set-up past --timeout 20 (TensorFlow's deadline starts
    with the run); the watchdog stops it at timeout * 1.5 + 5 s."""
    graph = nested_functions_graph(tmp_path / "nested.pb", 12)
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    start = time.monotonic()
    process = label_image_process("--graph", graph, "--engine", "tf", "--timeout", "1",
                                  str(image), "-q")
    out, err = process.communicate(timeout=140)
    assert process.returncode == 2, err
    assert err.endswith(f"label_image.py: error: {graph}: running the graph on one batch took "
                        "longer than the 1 s allowed (--timeout); does it loop forever? "
                        "Stopped\n")
    assert "Stopped" in err


def test_functions_nested_beyond_the_bound_are_refused_before_anything_runs(tmp_path):
    """30 levels would never finish setting up."""
    graph = nested_functions_graph(tmp_path / "nested.pb", 30)
    with pytest.raises(UserError, match="call each other more than 10000 times"):
        label_image.Classifier.open(
            label_image.run_folder.model_files(graph=graph),
            label_image.LoadOptions(engine="tf"))
    shallow = graph_pb2.GraphDef()
    shallow.ParseFromString(open(nested_functions_graph(tmp_path / "ok.pb", 8), "rb").read())
    assert "Identity" in graph_ops.ops_in_graph(shallow)  # 256 calls: allowed


@pytest.mark.timeout(180)
def test_beam_label_has_a_timeout(tmp_path):
    """Beam retries a failed bundle: 70 s on the busy two-core machine."""
    graph = _endless_graph(tmp_path / "endless.pb")
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "red.png", (255, 0, 0))
    process = subprocess.run(
        [sys.executable, "-m", "multilabel.beam_label", "--graph", graph, "--image_dir",
         str(photos), "--output", str(tmp_path / "out" / "labels"), "--timeout", "1"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=170)
    assert process.returncode == 2, process.stderr
    assert process.stderr.splitlines()[-1] == (
        f"beam_label: error: {graph}: running the graph on one batch took longer than the "
        "1 s allowed (--timeout); does it loop forever? Stopped")


def test_a_call_past_its_deadline_raises_and_is_abandoned():
    import threading

    release = threading.Event()
    with pytest.raises(UserError, match="stuck"):
        deadline.call_with_deadline(release.wait, 0.1, lambda: UserError("stuck"))
    assert deadline.abandoned()
    release.set()
    time.sleep(0.2)
    assert not deadline.abandoned()
    assert deadline.call_with_deadline(lambda: 7, 5, lambda: UserError("never")) == 7
    with pytest.raises(ZeroDivisionError):
        deadline.call_with_deadline(lambda: 1 / 0, 5, lambda: UserError("never"))
