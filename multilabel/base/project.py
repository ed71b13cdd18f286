"""Where the project's default paths (DATASET/, MODEL/, MODEL_DETAILS/) resolve: one rule.

Defaults resolve against the project folder, not the current folder: `retrain.py` run
from a data folder must not rebuild the module and every bottleneck there. Every command
and the Python API take their defaults from `default_path`, so they agree.
"""

import os

DATASET = "DATASET"  # the data set: images, labels, the lists data_generation.py writes
MODELS = "MODEL"  # the feature modules, built or downloaded once
DETAILS = "MODEL_DETAILS"  # a run's outputs: graph, labels, thresholds, report
BOTTLENECKS = os.path.join(DETAILS, "bottlenecks")  # the bottleneck cache


def project_folder():
    """The project folder: the clone holding the package when it runs from one (a folder
    with `retrain.py` beside `multilabel/`), else the current folder (an installed
    package has no project of its own)."""
    clone = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return clone if os.path.isfile(os.path.join(clone, "retrain.py")) else os.getcwd()


def default_path(relative):
    """`relative` (one of the names above) in the project folder."""
    return os.path.join(project_folder(), relative)
