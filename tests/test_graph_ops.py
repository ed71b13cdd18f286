"""A graph from elsewhere runs only if it holds what an image classifier needs.

retrain.py's own exports always pass (here the tiny and TF1 Hub format modules and the
EfficientNet-Lite0 network; tests/test_retrain.py and tests/test_real_scenes.py load
the tiny and the real MobileNetV2 exports through label_image.py, which checks them).
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import label_image
from multilabel.features.backbones import efficientnet_lite
from multilabel.export import formats
from multilabel.labelling import graph_ops
from multilabel.base.errors import UserError
from multilabel.features.backbones.saved_feature_module import keras_feature_module, save_feature_module
from tests.test_feature_modules import _tf1_hub_format_module

SIZE = 4
LABELS = ("red", "green", "blue")


def _classifier(images):
    return tf.sigmoid(tf.reduce_mean(images, axis=[1, 2]), name="final_result")


def write_file_graph(path, target):
    """A working classifier that also writes `target` each time it runs."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="Placeholder")
        with tf.control_dependencies([tf.io.write_file(str(target), "written by the graph")]):
            _classifier(tf.identity(images))
    path.write_bytes(graph.as_graph_def().SerializeToString())
    (path.parent / "output_labels.txt").write_text("".join(f"{n}\n" for n in LABELS))
    return path


def nested_write_graph_def(target):
    """WriteFile inside a cond branch inside a function: no top-level node shows it."""
    @tf.function
    def features(images):
        def write():
            with tf.control_dependencies([tf.io.write_file(str(target), "x")]):
                return tf.identity(images)
        return tf.cond(tf.reduce_all(images >= 0), write, lambda: tf.identity(images))

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="Placeholder")
        _classifier(features(images))
    return graph.as_graph_def()


def switch_case_write_graph_def(target):
    """WriteFile in one branch of a `tf.switch_case`: a `Case` node names its branches in
    a list of functions (`branches`), not in one function-valued attribute."""
    @tf.function
    def features(images):
        def write():
            with tf.control_dependencies([tf.io.write_file(str(target), "x")]):
                return tf.identity(images)
        branch = tf.cast(tf.reduce_all(images >= 0), tf.int32)
        return tf.switch_case(branch, [lambda: tf.identity(images), write])

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="Placeholder")
        _classifier(features(images))
    return graph.as_graph_def()


def test_a_graph_that_writes_a_file_is_refused_before_it_runs(tmp_path, capsys):
    target = tmp_path / "written.txt"
    graph = write_file_graph(tmp_path / "graph.pb", target)
    image = tmp_path / "red.png"
    Image.new("RGB", (5, 5), (255, 0, 0)).save(image)
    argv = ["--graph", str(graph), "--image", str(image), "--threshold", "0.5"]
    assert label_image.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"label_image.py: error: {graph}: the graph holds operations an image classifier "
        "does not need, which may "
        "read or write files or run code: WriteFile (node 'WriteFile'); it was not run. If you "
        "trust the graph, pass --allow_ops WriteFile"]
    assert not target.exists()
    # Allowed by name, it runs: the refusal above is what kept the file from being written.
    assert label_image.main(argv + ["--allow_ops", "WriteFile"]) == 0
    assert target.read_text() == "written by the graph"


def test_ops_inside_nested_functions_are_found(tmp_path):
    graph_def = nested_write_graph_def(tmp_path / "x")
    assert "WriteFile" not in {node.op for node in graph_def.node}
    found = graph_ops.ops_in_graph(graph_def)
    assert "WriteFile" in found
    function_name = found["WriteFile"].split("/")[0]
    assert function_name in {f.signature.name for f in graph_def.library.function}
    with pytest.raises(UserError, match=r"^g\.pb: .*: WriteFile \(node '[^']+/WriteFile'\)"):
        graph_ops.check_classifier_ops(graph_def, "g.pb")


def test_ops_in_the_branches_of_a_switch_case_are_found(tmp_path):
    graph_def = switch_case_write_graph_def(tmp_path / "x")
    function_ops = {n.op for f in graph_def.library.function for n in f.node_def}
    assert function_ops & {"Case", "StatelessCase"}  # the graph holds what the test is about
    found = graph_ops.ops_in_graph(graph_def)
    assert "WriteFile" in found
    with pytest.raises(UserError, match=r"^g\.pb: .*: WriteFile \(node '[^']+/WriteFile'\)"):
        graph_ops.check_classifier_ops(graph_def, "g.pb")


def test_functions_nothing_calls_are_not_counted(tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        _classifier(tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="Placeholder"))
    graph_def = graph.as_graph_def()
    @tf.function
    def unused():
        tf.io.write_file(str(tmp_path / "x"), "x")

    function_def = unused.get_concrete_function().function_def
    assert "WriteFile" in {node.op for node in function_def.node_def}
    graph_def.library.function.add().CopyFrom(function_def)
    assert "WriteFile" not in graph_ops.ops_in_graph(graph_def)
    graph_ops.check_classifier_ops(graph_def, "g.pb")


def test_allow_names_the_trusted_ops_only(tmp_path):
    graph_def = nested_write_graph_def(tmp_path / "x")
    graph_ops.check_classifier_ops(graph_def, "g.pb", allow=("WriteFile",))
    with pytest.raises(UserError, match="pass --allow_ops WriteFile$"):
        graph_ops.check_classifier_ops(graph_def, "g.pb", allow=("ReadFile",))


def test_bad_allow_ops_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        label_image.parse_args(["--allow_ops", "WriteFile,,ReadFile"])
    assert exit_info.value.code == 2


def test_exports_of_the_tiny_and_tf1_hub_format_modules_pass(tiny_module, tmp_path):
    _tf1_hub_format_module(tmp_path / "tf1")
    for module in (tiny_module, str(tmp_path / "tf1")):
        graph_def = formats.frozen_graph_def(
            module, 32, 32, np.zeros([24 if module == tiny_module else 4, 2], np.float32),
            np.zeros(2, np.float32), "final_result")
        graph_ops.check_classifier_ops(graph_def, module)
        # The library also holds the module's save and restore functions, which never run.
        library_ops = {n.op for f in graph_def.library.function for n in f.node_def}
        assert "SaveV2" in library_ops or "RestoreV2" in library_ops


def test_export_of_the_efficientnet_lite0_network_passes(tmp_path):
    """The network retrain.py builds for efficientnet_lite0; its ops do not depend on
    the weights, so Keras's initial ones stand in for the downloaded ImageNet ones."""
    variant = efficientnet_lite.LITE0
    model = efficientnet_lite._architecture(variant, include_top=False)
    path = str(tmp_path / "efficientnet_lite0")
    save_feature_module(keras_feature_module(model, efficientnet_lite.preprocess,
                                             variant.image_size), path)
    graph_def = formats.frozen_graph_def(path, *variant.image_size,
                                        np.zeros([efficientnet_lite.FEATURE_DIM, 2], np.float32),
                                        np.zeros(2, np.float32), "final_result")
    found = graph_ops.ops_in_graph(graph_def)
    assert {"Conv2D", "DepthwiseConv2dNative", "Relu6"} <= set(found)  # the network is inside
    graph_ops.check_classifier_ops(graph_def, path)
