"""TFLite metadata, so that MediaPipe's ImageClassifier (and TFLite Support) run our model as is.

MediaPipe refuses a float32 image model without metadata saying how to turn uint8 pixels
into its input, and it names classes only from a label file attached to the output. This
module adds, without touching a tensor, what the TFLite metadata format
(`metadata_schema.fbs` of tensorflow/tflite-support, copied into MediaPipe, Apache-2.0)
defines for that:

- a `ModelMetadata` flatbuffer (file identifier "M001") stored as one more buffer of the
  model, named "TFLITE_METADATA" in the model's `metadata` list;
- the files it refers to (class names, thresholds) zipped onto the end of the model file,
  where TFLite metadata readers look for them; the TFLite runtime ignores the trailing zip.

The metadata flatbuffer is built here by hand with the `flatbuffers` package the stack
already has: we write nine small tables of the schema, and the slots below mirror it.
The writers that ship it do not install beside our pins (`tflite-support` takes protobuf
down to 3.20; MediaPipe's writer needs a C++ module its wheel lacks), and generated code
would be 29 modules and 3,300 lines to write those nine tables. The model flatbuffer
itself is repacked with LiteRT's generated schema (`ai_edge_litert.schema_py_generated`).
"""

import dataclasses
import io
import zipfile

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tflite_schema

METADATA_NAME = "TFLITE_METADATA"  # the name readers look for in the model's metadata list
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
# The oldest metadata parser that understands every field written here: all are of 1.0.0.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
THRESHOLDS_FILE = "thresholds.txt"
# The exported model takes RGB images in [0, 1] (formats.py): uint8 pixels / 255.
PIXEL_MEAN, PIXEL_STD = 0.0, 255.0

# Enum values and field slots of metadata_schema.fbs (schema 1.5.0). A field's slot is its
# position in the table; a union field takes two slots, its type and then its value.
_AXIS_LABELS, _UNKNOWN_FILE = 2, 0  # AssociatedFileType
_RGB = 1  # ColorSpaceType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION = 1  # ProcessUnitOptions union
_FILE = {"name": 0, "description": 1, "type": 2}
_IMAGE = {"color_space": 0}
_CONTENT = {"properties_type": 0, "properties": 1}
_NORM = {"mean": 0, "std": 1}
_UNIT = {"options_type": 0, "options": 1}
_STATS = {"max": 0, "min": 1}
_TENSOR = {"name": 0, "description": 1, "content": 3, "process_units": 4, "stats": 5,
           "associated_files": 6}
_SUBGRAPH = {"name": 0, "input_tensor_metadata": 2, "output_tensor_metadata": 3}
_MODEL = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4,
          "license": 5, "min_parser_version": 7}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the metadata says about one exported classifier."""

    name: str
    description: str
    version: str
    class_names: tuple
    thresholds: tuple  # one per class, in class order
    licence: str  # of the weights the model was built from
    author: str = ""

    def __post_init__(self):
        if len(self.class_names) != len(self.thresholds):
            raise ValueError(f"{len(self.class_names)} class names but "
                             f"{len(self.thresholds)} thresholds")


def with_metadata(model_bytes, info):
    """`model_bytes` (a TFLite flatbuffer) with `info` as TFLite metadata and its files.

    Tensors, operators and weights are kept as they are; any earlier TFLITE_METADATA entry
    is replaced. The result is the model flatbuffer followed by a zip of labels.txt and
    thresholds.txt.
    """
    model = tflite_schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    output_size = _output_size(model)
    if output_size != len(info.class_names):
        raise ValueError(f"the model has {output_size} outputs but {len(info.class_names)} "
                         "class names")
    buffer = tflite_schema.BufferT()
    buffer.data = np.frombuffer(_metadata_flatbuffer(info), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = tflite_schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in model.metadata or () if m.name != METADATA_NAME.encode()]
    model.metadata.append(entry)
    return _append_files(pack(model, len(model_bytes)), _associated_files(info))


def pack(model, size_hint):
    """The TFLite flatbuffer of `model` (a schema `ModelT`), about `size_hint` bytes."""
    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    return bytes(builder.Output())


def _output_size(model):
    """How many scores the model's one output holds (its last dimension)."""
    graph = model.subgraphs[0]
    return int(graph.tensors[graph.outputs[0]].shape[-1])


def _associated_files(info):
    """The files the metadata names, as {name: bytes}; thresholds as output_thresholds.txt."""
    return {LABELS_FILE: "".join(f"{n}\n" for n in info.class_names).encode("utf-8"),
            THRESHOLDS_FILE: "".join(f"{float(t)!r}\n" for t in info.thresholds).encode()}


def _append_files(model_bytes, files):
    """The model with `files` zipped onto its end (stored, not compressed, as readers expect:
    they may map a file straight out of the model)."""
    out = io.BytesIO(model_bytes)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def _metadata_flatbuffer(info):
    """The ModelMetadata flatbuffer: one subgraph, an image input and a score output."""
    b = flatbuffers.Builder(1024)
    image = _tensor(
        b, name="image",
        description=(f"An RGB image in [0, 1]: uint8 pixels minus {PIXEL_MEAN:g}, divided "
                     f"by {PIXEL_STD:g}."),
        content=_content(b, _IMAGE_PROPERTIES, _table(b, {}, {_IMAGE["color_space"]: _RGB})),
        process_units=[_normalization(b, PIXEL_MEAN, PIXEL_STD)],
        stats=(0.0, 1.0), files=())
    scores = _tensor(
        b, name="probability",
        description=("The sigmoid probability of each class, independently of the others "
                     f"(they need not sum to 1). A class is present when its probability "
                     f"reaches its own threshold, line by line in {THRESHOLDS_FILE}."),
        content=_content(b, _FEATURE_PROPERTIES, _table(b, {}, {})),
        process_units=(), stats=(0.0, 1.0),
        files=[(LABELS_FILE, "The class names, one a line, in score order.", _AXIS_LABELS),
               (THRESHOLDS_FILE,
                "Per-class decision thresholds (maximising F1 on out-of-fold training "
                "predictions), one a line, in class order. MediaPipe applies one global "
                "score_threshold: set it to the smallest of these and keep a category only "
                "when its score reaches its own threshold.", _UNKNOWN_FILE)])
    subgraph = _table(b, {
        _SUBGRAPH["name"]: b.CreateString("classifier"),
        _SUBGRAPH["input_tensor_metadata"]: _vector(b, [image]),
        _SUBGRAPH["output_tensor_metadata"]: _vector(b, [scores])})
    fields = {
        _MODEL["name"]: b.CreateString(info.name),
        _MODEL["description"]: b.CreateString(info.description),
        _MODEL["version"]: b.CreateString(info.version),
        _MODEL["subgraph_metadata"]: _vector(b, [subgraph]),
        _MODEL["license"]: b.CreateString(info.licence),
        _MODEL["min_parser_version"]: b.CreateString(MIN_PARSER_VERSION)}
    if info.author:
        fields[_MODEL["author"]] = b.CreateString(info.author)
    b.Finish(_table(b, fields), file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _tensor(b, name, description, content, process_units, stats, files):
    """A TensorMetadata table; `stats` is (min, max), `files` (name, description, type)."""
    high, low = _floats(b, [stats[1]]), _floats(b, [stats[0]])
    fields = {
        _TENSOR["name"]: b.CreateString(name),
        _TENSOR["description"]: b.CreateString(description),
        _TENSOR["content"]: content,
        _TENSOR["stats"]: _table(b, {_STATS["max"]: high, _STATS["min"]: low})}
    if process_units:
        fields[_TENSOR["process_units"]] = _vector(b, process_units)
    if files:
        fields[_TENSOR["associated_files"]] = _vector(b, [_file(b, *f) for f in files])
    return _table(b, fields)


def _file(b, name, description, kind):
    fields = {_FILE["name"]: b.CreateString(name),
              _FILE["description"]: b.CreateString(description)}
    return _table(b, fields, {_FILE["type"]: kind})


def _content(b, kind, properties):
    return _table(b, {_CONTENT["properties"]: properties}, {_CONTENT["properties_type"]: kind})


def _normalization(b, mean, std):
    options = _table(b, {_NORM["mean"]: _floats(b, [mean]), _NORM["std"]: _floats(b, [std])})
    return _table(b, {_UNIT["options"]: options}, {_UNIT["options_type"]: _NORMALIZATION})


def _table(b, offsets, small_ints=None):
    """A table of `offsets` {slot: offset of a string, vector or table} and `small_ints`
    {slot: enum or union type, one byte}. Everything referred to must be built already."""
    small_ints = small_ints or {}
    b.StartObject(max([*offsets, *small_ints], default=-1) + 1)
    for slot, offset in offsets.items():
        b.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, value in small_ints.items():
        b.PrependInt8Slot(slot, value, 0)
    return b.EndObject()


def _vector(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b, values):
    return b.CreateNumpyVector(np.asarray(values, dtype="<f4"))
