"""Multi-label transfer learning on frozen image feature modules.

The top-level scripts (data_generation.py, retrain.py, label_image.py) parse flags and
call into this package; each module here holds one idea. From Python:

    import multilabel
    result = multilabel.train("DATASET", output_dir="runs/scenes")
    classifier = multilabel.Classifier.load("runs/scenes")
    classifier.predict(["photo.jpg"])[0].labels

`import multilabel` stays light: the names below load on first use (PEP 562), and
TensorFlow only when training or when a graph without its TFLite model is run.
"""

import importlib

_LAZY = {
    "Classifier": "multilabel.labelling.classifier",
    "Prediction": "multilabel.labelling.classifier",
    "train": "multilabel.api",
    "TrainOptions": "multilabel.base.options",
    "TrainResult": "multilabel.api",
    "UserError": "multilabel.base.errors",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'multilabel' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # found directly next time
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
