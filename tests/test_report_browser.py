"""The report page as a browser shows it: every image (plots, reliability diagrams, heat
maps, thumbnails) decodes and the page raises no error, in headless Chromium. Skipped
where Chromium is not installed (Debian: apt-get install -y chromium); on a real run:
`python -m tests.browser_check MODEL_DETAILS/report.html`."""

import collections

import numpy as np
import pytest
from PIL import Image

from multilabel.evaluation import bootstrap, calibration, metrics
from multilabel.report import heatmaps, page
from tests import browser_check

pytestmark = pytest.mark.skipif(browser_check.chromium() is None, reason="no chromium")
Evaluation = collections.namedtuple("Evaluation", "step train_loss validation_map")


def test_the_page_renders_its_diagrams_and_heat_maps_without_a_broken_image(tmp_path):
    rng = np.random.default_rng(0)
    names = ("sea", "sunset")
    labels = rng.random((12, 2)) < 0.5
    probs = np.clip(labels * 0.5 + rng.random((12, 2)) * 0.5, 0, 1)
    thresholds = np.array([0.5, 0.5])
    paths = []
    for i in range(len(labels)):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (60, 40), (20 * i, 120, 200)).save(paths[-1])
    test = {"class_names": list(names), **metrics.evaluate(labels, probs, thresholds),
            "intervals": bootstrap.intervals(labels, probs, thresholds)}
    measures = {"best_step": 20, "thresholds": thresholds.tolist(), "test": test,
                "intervals": bootstrap.describe(),
                "calibration": calibration.Calibration.identity(2).report()}
    wrong, right, _ = page.pick_examples(labels, probs, thresholds, 3, 2)
    shown = wrong + right
    images = rng.random((len(shown), 32, 32, 3)).astype(np.float32)
    explained = heatmaps.Explained(tuple(paths[i] for i in shown), labels[shown].astype(int),
                                   probs[shown], thresholds, False, images,
                                   (rng.normal(size=(len(shown), 4, 4, 2)),), ("m",), len(wrong))
    run = page.RunFacts("m", "details", {"train": 30, "validation": 5, "test": 12}, names, (),
                        {"training": 1.0}, (Evaluation(10, 0.5, 0.8), Evaluation(20, 0.4, 0.9)),
                        model_card="model_card.md")
    path = tmp_path / "report.html"
    page.write_page(str(path), run, measures, page.TestImages(
        tuple(paths), labels.astype(int), probs, thresholds), -1, explained=explained)
    result = browser_check.check(str(path))
    assert result["broken"] == [] and result["errors"] == []
    assert {"calibration", "heatmaps"} <= set(result["sections"])
    # The training curve, 2 PR curves, the reliability diagrams, a photo and a map per
    # shown label of each heat-map card, and the thumbnails of the cards.
    assert result["images"] >= 4 + len(shown) * 2
