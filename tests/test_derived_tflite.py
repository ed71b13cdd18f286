"""The exports derived from what the run keeps of the module (its TFLite model, its frozen
graph) with the trained layer appended compute what the exports made from scratch do."""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from multilabel.export import derived_tflite, formats, tflite_metadata
from multilabel.features import engines
from multilabel.labelling.frozen_graph import import_frozen_graph

RNG = np.random.default_rng(0)
WEIGHTS = RNG.normal(size=(24, 3)).astype(np.float32)
BIASES = RNG.normal(size=3).astype(np.float32)


@pytest.fixture(scope="module")
def module_and_converted(tiny_module, tmp_path_factory):
    """The tiny module as TFLite (what the bottleneck engine keeps), and the classifier
    converted from its SavedModel (the other way to make the export)."""
    saved = str(tmp_path_factory.mktemp("saved") / "model")
    formats.write_saved_model(saved, tiny_module, 32, 32, WEIGHTS, BIASES)
    return engines.convert(tiny_module), engines.convert(saved)


def test_the_derived_model_gives_the_converted_one_s_probabilities(module_and_converted):
    module, converted = module_and_converted
    derived = derived_tflite.with_final_layer(module, WEIGHTS, BIASES)
    images = RNG.random((5, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(engines.TFLiteEngine(derived)(images),
                               engines.TFLiteEngine(converted)(images), atol=1e-6)
    # The converted model's signature, which label_image.py and MediaPipe do not need but
    # users of LiteRT's signature runner do.
    runner = Interpreter(model_content=derived).get_signature_runner("serving_default")
    np.testing.assert_allclose(runner(image=images[:1])["prediction"],
                               engines.TFLiteEngine(converted)(images[:1]), atol=1e-6)


def test_the_derived_model_takes_metadata_like_a_converted_one(module_and_converted):
    derived = derived_tflite.with_final_layer(module_and_converted[0], WEIGHTS, BIASES)
    info = tflite_metadata.ModelInfo("pets", "three", "1", ("cat", "dog", "sky"),
                                     (0.5, 0.5, 0.5), "MIT")
    images = RNG.random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        engines.TFLiteEngine(tflite_metadata.with_metadata(derived, info))(images),
        engines.TFLiteEngine(derived)(images))


def test_a_layer_that_does_not_fit_the_features_is_refused(module_and_converted):
    with pytest.raises(ValueError, match="not"):
        derived_tflite.with_final_layer(module_and_converted[0], WEIGHTS[:20], BIASES)


def test_the_graph_derived_from_the_module_s_own_graph_is_the_frozen_graph(tiny_module):
    direct = formats.frozen_graph_def(tiny_module, 32, 32, WEIGHTS, BIASES, "final_result")
    derived = formats.with_final_layer(
        formats.parse_graph_def(formats.module_graph_def(tiny_module, 32, 32)
                                .SerializeToString()), WEIGHTS, BIASES, "final_result")
    layer = {"final_retrain_ops/final_weights", "final_retrain_ops/final_biases",
             "final_retrain_ops/logits", "final_result"}
    assert layer <= {node.name for node in derived.node}
    images = RNG.random((3, 32, 32, 3), dtype=np.float32)
    probs = []
    for graph_def in (direct, derived):
        graph = import_frozen_graph(graph_def, "graph.pb", output_layer="final_result",
                                    height=32, width=32)
        with graph.running() as run:
            probs.append(run(images))
    np.testing.assert_allclose(probs[1], probs[0], atol=1e-6)


def test_bytes_that_are_no_graph_are_refused():
    with pytest.raises(ValueError, match="not a GraphDef"):
        formats.parse_graph_def(b"\xff\xff not a graph")
