"""Loading frozen graphs: the layers found, and a clear error for each thing wrong."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from multilabel.base.errors import UserError  # noqa: E402
from multilabel.labelling.frozen_graph import load_frozen_graph  # noqa: E402


def write_graph(path, shape=(None, 5, 7, 3), dtype=tf.float32, output_rank=2):
    """Placeholder -> mean over all but the batch axis -> [N, 2] (or [N, 2, 1]) outputs."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(dtype, shape, name="Placeholder")
        flat = tf.reshape(tf.cast(images, tf.float32), [tf.shape(images)[0], -1])
        means = tf.reduce_mean(flat, axis=1, keepdims=True)
        scores = tf.concat([means, -means], axis=1)
        if output_rank == 3:
            scores = scores[:, :, tf.newaxis]
        tf.sigmoid(scores, name="final_result")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return str(path)


def load_error(*args, **kwargs):
    with pytest.raises(UserError) as error:
        load_frozen_graph(*args, **kwargs)
    return error.value


def test_finds_layers_and_sizes(tmp_path):
    model = load_frozen_graph(write_graph(tmp_path / "g.pb"))
    assert (model.height, model.width, model.batch_size, model.num_classes) == (5, 7, None, 2)
    assert (model.input.name, model.output.name) == ("Placeholder:0", "final_result:0")
    with tf.compat.v1.Session(graph=model.graph) as session:
        out = session.run(model.output, {model.input: np.zeros((2, 5, 7, 3), np.float32)})
    np.testing.assert_allclose(out, 0.5)


def test_accepts_tensor_names(tmp_path):
    model = load_frozen_graph(write_graph(tmp_path / "g.pb"), "Placeholder:0", "final_result:0")
    assert model.output.name == "final_result:0"


def test_open_size_is_taken_from_the_caller(tmp_path):
    path = write_graph(tmp_path / "g.pb", shape=(None, None, None, 3))
    assert load_frozen_graph(path, height=9, width=4)[4:6] == (9, 4)
    assert "leaves the image height open" in str(load_error(path))


@pytest.mark.parametrize("content, message", [
    (b"", "holds no operations"),
    (b"\x00\x01garbage\xff\xff\xff", "not a frozen TensorFlow graph (binary GraphDef)"),
])
def test_not_a_graph(tmp_path, content, message):
    path = tmp_path / "g.pb"
    path.write_bytes(content)
    error = load_error(str(path))
    assert error.path == str(path)
    assert message in error.message


def test_missing_file_and_folder(tmp_path):
    missing = str(tmp_path / "nope.pb")
    assert str(load_error(missing)) == f"{missing}: graph file not found"
    assert "is a folder" in str(load_error(str(tmp_path)))


def test_missing_layers_list_candidates(tmp_path):
    path = write_graph(tmp_path / "g.pb")
    assert str(load_error(path, input_layer="input")) == \
        f"{path}: the graph has no input layer 'input' (candidates: Placeholder)"
    assert str(load_error(path, output_layer="final_result:1")) == \
        f"{path}: the graph has no output layer 'final_result:1' (candidates: final_result)"


@pytest.mark.parametrize("kwargs, graph_kwargs, message", [
    ({}, {"dtype": tf.uint8}, "takes uint8, not float images"),
    ({}, {"shape": (None, 5, 3)}, "not [batch, height, width, 3]"),
    ({}, {"shape": (None, 5, 7, 1)}, "takes 1 channels, not 3"),
    ({"height": 6}, {}, "takes images of height 5, not 6"),
    ({}, {"output_rank": 3}, "not [batch, num_classes]"),
])
def test_unusable_shapes(tmp_path, kwargs, graph_kwargs, message):
    path = write_graph(tmp_path / "g.pb", **graph_kwargs)
    error = load_error(path, **kwargs)
    assert error.path == path
    assert message in error.message
