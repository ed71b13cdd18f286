"""Run a TFLite model as a MediaPipe user would, and say what MediaPipe reads from it.

    python tests/mediapipe_client.py MODEL.tflite IMAGE...

Prints one JSON object: `metadata`, the model's TFLite metadata as MediaPipe's own
generated schema code reads it, with the files zipped onto the model, and `results`, per
image the categories MediaPipe's ImageClassifier gives with default options (every class,
best first). test_mediapipe.py runs it in a child process, so that MediaPipe's runtime never
shares a process with TensorFlow's.
"""

import io
import json
import sys
import zipfile

import mediapipe as mp
from mediapipe.tasks.metadata import metadata_schema_py_generated as meta_fb
from mediapipe.tasks.metadata import schema_py_generated as model_fb
from mediapipe.tasks.python import core, vision


def read_metadata(model_bytes):
    model = model_fb.Model.GetRootAs(model_bytes, 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}
    buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert meta_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    metadata = meta_fb.ModelMetadataT.InitFromPackedBuf(buffer, 0)
    (graph,) = metadata.subgraphMetadata
    (image,), (scores,) = graph.inputTensorMetadata, graph.outputTensorMetadata
    (unit,) = image.processUnits
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
        files = {name: archive.read(name).decode() for name in archive.namelist()}
    text = lambda b: b.decode() if b is not None else None  # noqa: E731
    return {
        "name": text(metadata.name), "description": text(metadata.description),
        "version": text(metadata.version), "license": text(metadata.license),
        "min_parser_version": text(metadata.minParserVersion),
        "input": {"name": text(image.name),
                  "content_type": image.content.contentPropertiesType,
                  "color_space": image.content.contentProperties.colorSpace,
                  "normalization": {"mean": [float(v) for v in unit.options.mean],
                                    "std": [float(v) for v in unit.options.std]}},
        "output_files": [{"name": text(f.name), "type": f.type, "description": text(f.description)}
                         for f in scores.associatedFiles],
        "zipped_files": files,
    }


def classify(model_path, images):
    options = vision.ImageClassifierOptions(
        base_options=core.base_options.BaseOptions(model_asset_path=model_path))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        return [{"image": path,
                 "categories": [[c.category_name, float(c.score)] for c in
                                classifier.classify(mp.Image.create_from_file(path))
                                .classifications[0].categories]}
                for path in images]


def main(argv):
    model_path, *images = argv
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    print(json.dumps({"metadata": read_metadata(model_bytes),
                      "results": classify(model_path, images)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
