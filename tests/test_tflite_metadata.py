"""TFLite metadata: added without changing what the model computes, files zipped on the end.

test_mediapipe.py checks the same model with a real client (MediaPipe's own schema code
and ImageClassifier); these tests need no MediaPipe.
"""

import dataclasses
import io
import json
import zipfile

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tflite_schema

from multilabel.evaluation import thresholds as thresholds_lib
from multilabel.export import formats, tflite_metadata
from multilabel.features.backbones import module_builder
from multilabel.features import engines

CLASSES = ("cat", "dog", "sky")
THRESHOLDS = (0.25, 0.5, 0.1 + 0.2)  # 0.30000000000000004 must come back exactly
INFO = tflite_metadata.ModelInfo(name="pets", description="three classes", version="7",
                                 class_names=CLASSES, thresholds=THRESHOLDS, licence="MIT")


@pytest.fixture(scope="module")
def plain_model(tiny_module, tmp_path_factory):
    """The tiny module plus a 24 -> 3 sigmoid layer, as retrain.py converts it to TFLite."""
    rng = np.random.default_rng(0)
    saved = str(tmp_path_factory.mktemp("saved") / "model")
    formats.write_saved_model(saved, tiny_module, 32, 32, rng.normal(size=(24, 3)).astype("f4"),
                              rng.normal(size=3).astype("f4"))
    return engines.convert(saved)


def _root_string(buffer, slot):
    """The string in field `slot` of a flatbuffer's root table, read without our builder."""
    table = flatbuffers.table.Table(buffer, flatbuffers.encode.Get(
        flatbuffers.packer.uoffset, buffer, 0))
    offset = table.Offset(4 + 2 * slot)
    return table.String(offset + table.Pos).decode() if offset else None


def _metadata_buffer(model_bytes):
    model = tflite_schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    found = [m.buffer for m in model.metadata if m.name == b"TFLITE_METADATA"]
    assert len(found) == 1
    return bytearray(model.buffers[found[0]].data.tobytes()), model


def test_the_model_computes_exactly_what_it_did(plain_model):
    images = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    with_metadata = tflite_metadata.with_metadata(plain_model, INFO)
    np.testing.assert_array_equal(engines.TFLiteEngine(with_metadata)(images),
                                  engines.TFLiteEngine(plain_model)(images))
    _, model = _metadata_buffer(with_metadata)
    plain = tflite_schema.ModelT.InitFromPackedBuf(bytearray(plain_model), 0)
    assert [t.name for t in model.subgraphs[0].tensors] == \
           [t.name for t in plain.subgraphs[0].tensors]
    # The converter's own entries (min_runtime_version, ...) are kept.
    assert {m.name for m in plain.metadata} < {m.name for m in model.metadata}


def test_the_metadata_names_the_model_and_its_licence(plain_model):
    buffer, _ = _metadata_buffer(tflite_metadata.with_metadata(plain_model, INFO))
    assert bytes(buffer[4:8]) == b"M001"  # the metadata schema's file identifier
    # Slots of ModelMetadata in metadata_schema.fbs: name 0, description 1, version 2,
    # license 5, min_parser_version 7.
    assert [_root_string(buffer, s) for s in (0, 1, 2, 5, 7)] == \
           ["pets", "three classes", "7", "MIT", "1.0.0"]


def test_labels_and_thresholds_are_zipped_onto_the_model(plain_model, tmp_path):
    content = tflite_metadata.with_metadata(plain_model, INFO)
    assert content.startswith(plain_model[:4])  # still a flatbuffer from its first byte
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == ["labels.txt", "thresholds.txt"]
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        assert archive.read("labels.txt").decode().splitlines() == list(CLASSES)
        (tmp_path / "t.txt").write_bytes(archive.read("thresholds.txt"))
    assert tuple(thresholds_lib.read_thresholds(str(tmp_path / "t.txt"), 3)) == THRESHOLDS


def test_adding_metadata_again_replaces_it(plain_model):
    once = tflite_metadata.with_metadata(plain_model, INFO)
    twice = tflite_metadata.with_metadata(once, dataclasses.replace(INFO, name="pets v2"))
    buffer, _ = _metadata_buffer(twice)  # asserts there is exactly one entry
    assert _root_string(buffer, 0) == "pets v2"
    assert twice.count(b"PK\x05\x06") == 1  # one zip's end record: the first zip is gone


def test_class_names_must_fit_the_thresholds_and_the_model(plain_model):
    with pytest.raises(ValueError, match="2 class names but 3 thresholds"):
        tflite_metadata.ModelInfo("m", "d", "1", ("a", "b"), (0.5, 0.5, 0.5), "MIT")
    four = tflite_metadata.ModelInfo("m", "d", "1", tuple("abcd"), (0.5,) * 4, "MIT")
    with pytest.raises(ValueError, match="the model has 3 outputs but 4 class names"):
        tflite_metadata.with_metadata(plain_model, four)


def test_the_licence_comes_from_the_module_provenance(tmp_path):
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / module_builder.PROVENANCE_FILE).write_text(
        json.dumps({"weights": {"license": "Apache-2.0"}}))
    assert module_builder.weights_licence(str(tmp_path / "built")) == "Apache-2.0"
    assert module_builder.weights_licence(str(tmp_path)) is None  # a module built elsewhere
