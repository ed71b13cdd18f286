"""Where the project's relative default paths (DATASET/, MODEL/, MODEL_DETAILS/) resolve.

Defaults resolve against the project, not the current folder: `retrain.py` run from a
data folder must not rebuild the module and every bottleneck there. The project is the
clone holding the package when it runs from one (retrain.py stands beside the package);
an installed package has no project, and its defaults resolve against the current folder.
"""

import os


def project_folder():
    """The clone holding the package, or the current folder for an installed package."""
    clone = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return clone if os.path.isfile(os.path.join(clone, "retrain.py")) else os.getcwd()


DATASET = "DATASET"
MODELS = "MODEL"
DETAILS = "MODEL_DETAILS"
BOTTLENECKS = os.path.join(DETAILS, "bottlenecks")


def default_path(relative):
    """`relative` (DATASET, MODELS, DETAILS, BOTTLENECKS) in the project folder."""
    return os.path.join(project_folder(), relative)
