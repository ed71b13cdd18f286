"""label_image.py --rank: unlabelled photos in the order to label them (labelling.ranking),
with the feature vectors that tell their near-duplicates apart.

The rule needs each photo's probabilities (the classifier's) and its feature vector from
the module the run trained on (metrics.json names it), computed through the project's
bottleneck cache as a run computes them, so photos already seen cost nothing.
"""

import json
import os

import numpy as np

from multilabel.base import project, storage
from multilabel.base.errors import UserError
from multilabel.base.options import module_handles
from multilabel.features import module_set
from multilabel.labelling import ranking

BATCH = 32  # images per forward pass of the module


def run_module(folder, cache):
    """The feature module set the run in `folder` trained on (its metrics.json)."""
    path = os.path.join(folder, "metrics.json")
    try:
        handles = module_handles(json.loads(storage.read_text(path, "metrics file"))["module"])
    except (UserError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"--rank needs the run's metrics.json, which names its feature "
                        f"module ({type(e).__name__}: {e})", path) from e
    return module_set.load_module_set(handles, project.default_path(project.MODELS), cache,
                                      "auto")


def ranked(folder, paths, probs, thresholds, labelled=(), cache=None):
    """`(order, repeats)` of `paths` (ranking.rank_uncertain), near-duplicates judged on
    the features of the run's module; `labelled` are images already labelled; `cache`
    the bottleneck cache (default: the project's)."""
    cache = cache or project.default_path(project.BOTTLENECKS)
    module = run_module(folder, cache)
    vectors = module_set.set_bottlenecks(list(paths), module, cache, BATCH)
    known = (module_set.set_bottlenecks(list(labelled), module, cache, BATCH)
             if labelled else None)
    return ranking.rank_uncertain(np.asarray(probs), np.asarray(thresholds), vectors, known)
