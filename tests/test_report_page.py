"""The report page's choices and HTML, on hand-made results (no TensorFlow)."""

import collections
import math

import numpy as np
import pytest
from PIL import Image

from multilabel.evaluation import label_issues, metrics
from multilabel.report import page
from tests.report_html import assert_self_contained, decode_data_uri

# Five images, two labels, thresholds 0.5. Predicted sets and per-image loss, the mean
# binary cross-entropy over the two labels:
#   0 [1 0] right  (-ln .9 - ln .8) / 2 = 0.164
#   1 [1 0] wrong  (-ln .4 - ln .4) / 2 = 0.916  (both labels wrong)
#   2 [1 1] right  (-ln .8 - ln .7) / 2 = 0.290
#   3 [0 0] right  (-ln .9 - ln .7) / 2 = 0.231
#   4 [0 0] wrong  (-ln .45 - ln .9) / 2 = 0.452  (label 0 missed)
LABELS = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
PROBS = np.array([[0.9, 0.2], [0.6, 0.4], [0.8, 0.7], [0.1, 0.3], [0.45, 0.1]])
THRESHOLDS = np.array([0.5, 0.5])

Evaluation = collections.namedtuple("Evaluation", "step train_loss validation_map")


def test_image_losses_are_the_mean_cross_entropy_over_labels():
    losses = page.image_losses(LABELS, PROBS)
    np.testing.assert_allclose(losses[[1, 3]], [-math.log(0.4),
                                                -(math.log(0.9) + math.log(0.7)) / 2])
    assert np.isfinite(page.image_losses([[1]], [[0.0]])).all()  # clipped, not inf


def test_wrong_images_worst_first_and_confident_right_ones_best_first():
    wrong, correct, count = page.pick_examples(LABELS, PROBS, THRESHOLDS, -1, 2)
    assert (wrong, correct, count) == ([1, 4], [0, 3], 2)
    wrong, correct, count = page.pick_examples(LABELS, PROBS, THRESHOLDS, 1, 8)
    assert (wrong, correct, count) == ([1], [0, 3, 2], 2)


def _run_facts(class_names, history):
    return page.RunFacts(
        module="tiny", module_details="32 x 32 images -> 24 features",
        sizes={"train": 10, "validation": 3, "test": 5}, class_names=class_names,
        changed_flags=(("learning_rate", 0.05),), stage_seconds={"data": 0.5, "training": 1.5},
        history=history)


def _images(folder, count):
    paths = []
    for i in range(count):
        path = folder / f"<img {i}>.png"  # a name that must be escaped
        Image.new("RGB", (300, 200), (40 * i, 100, 200)).save(path)
        paths.append(str(path))
    return tuple(paths)


def test_a_page_with_every_section_escaped_and_self_contained(tmp_path):
    names = ("<sea>", "sun & set")
    history = (Evaluation(10, 0.7, 0.6), Evaluation(20, 0.5, 0.8), Evaluation(30, 0.4, 0.75))
    measures = {"best_step": 20, "thresholds": THRESHOLDS.tolist(),
                "test": metrics.evaluate(LABELS, PROBS, THRESHOLDS),
                "validation": metrics.evaluate(LABELS, PROBS, THRESHOLDS)}
    test = page.TestImages(_images(tmp_path, 5), LABELS, PROBS, THRESHOLDS)
    path = tmp_path / "out" / "report.html"
    page.write_page(path, _run_facts(names, history), measures, test, max_wrong=1)
    text = path.read_text(encoding="utf-8")

    shown = assert_self_contained(text)
    assert shown.sections == ["run", "measures", "curves", "calibration", "wrong", "correct", "labels"]
    assert "&lt;sea&gt;" in text and "sun &amp; set" in text and "<sea>" not in text
    assert "&lt;img 1&gt;.png" in text
    assert shown.cards == {"wrong": 1, "correct": 3}  # max_wrong=1 of 2; all 3 right ones
    assert "2 of 5 test images" in text and "the 1 with the highest loss" in text
    assert len(shown.images["curves"]) == 3  # the training curve and one PR curve a class
    thumbnails = [decode_data_uri(src) for section in ("wrong", "correct")
                  for src in shown.images[section]]
    assert all(max(t.size) == page.THUMBNAIL_SIZE for t in thumbnails)
    assert "--learning_rate" in text


def test_without_test_images_or_validation_the_page_says_so(tmp_path):
    empty = page.TestImages((), np.zeros((0, 2), int), np.zeros((0, 2)), THRESHOLDS)
    history = (Evaluation(10, 0.7, float("nan")),)
    text = page.render(_run_facts(("a", "b"), history),
                       {"best_step": 10, "thresholds": [0.5, 0.5]}, empty, 100)
    shown = assert_self_contained(text)
    assert shown.sections == ["run", "measures", "curves", "calibration", "wrong", "correct", "labels"]
    assert "The test part is empty" in text
    assert len(shown.images["curves"]) == 1  # the training curve only
    assert not shown.cards


def test_a_class_without_positive_test_images_has_no_curve(tmp_path):
    labels = LABELS.copy()
    labels[:, 1] = 0
    measures = {"best_step": 10, "thresholds": [0.5, 0.5],
                "test": metrics.evaluate(labels, PROBS, THRESHOLDS)}
    test = page.TestImages(_images(tmp_path, 5), labels, PROBS, THRESHOLDS)
    text = page.render(_run_facts(("a", "b"), ()), measures, test, 100)
    assert "b: no positive test image, no curve" in text
    assert "No evaluation ran" in text
    assert len(assert_self_contained(text).images["curves"]) == 1


@pytest.mark.parametrize("max_wrong", [0, -1])
def test_max_wrong_zero_shows_none_and_minus_one_all(tmp_path, max_wrong):
    measures = {"best_step": 10, "thresholds": [0.5, 0.5],
                "test": metrics.evaluate(LABELS, PROBS, THRESHOLDS)}
    test = page.TestImages(_images(tmp_path, 5), LABELS, PROBS, THRESHOLDS)
    shown = assert_self_contained(
        page.render(_run_facts(("a", "b"), ()), measures, test, max_wrong))
    assert shown.cards.get("wrong", 0) == (0 if max_wrong == 0 else 2)


def test_labels_that_look_wrong_worst_first_limited_like_the_wrong_images(tmp_path):
    paths = _images(tmp_path, 3)
    issues = [label_issues.Issue(path, part, np.array([True, False]), np.array([0.2, 0.9]),
                                 np.array([False, True]), np.array([True, False]), score)
              for path, part, score in zip(paths, ("train", "test", "train"), (0.1, 0.2, 0.3))]
    measures = {"best_step": 10, "thresholds": [0.5, 0.5],
                "test": metrics.evaluate(LABELS, PROBS, THRESHOLDS)}
    test = page.TestImages(_images(tmp_path, 5), LABELS, PROBS, THRESHOLDS)
    text = page.render(_run_facts(("<sea>", "sun"), ()), measures, test, 2, issues=issues)
    shown = assert_self_contained(text)
    assert shown.cards["labels"] == 2 and len(shown.images["labels"]) == 2
    section = text[text.index('<section id="labels">'):]
    assert "3 images whose given labels" in section and "the 2 worst" in section
    assert section.index("&lt;img 0&gt;.png (train)") < section.index("&lt;img 1&gt;.png (test)")
    assert "&lt;img 2&gt;" not in section and "score 0.100" in section
    box = '<b class="label">{}</b>'.format
    assert f"given: {box('&lt;sea&gt;')}</div>" in section
    assert f"predicted: {box('sun')}</div>" in section
    assert f"add: {box('sun')}, remove: {box('&lt;sea&gt;')}</div>" in section
    none = assert_self_contained(page.render(_run_facts(("a", "b"), ()), measures, test, -1))
    assert "labels" not in none.cards


def test_issue_cards_follow_the_runs_rule_for_empty_sets(tmp_path):
    """Issue 32: where the run never predicts an empty set, no card says (none)."""
    paths = _images(tmp_path, 1)
    issue = label_issues.Issue(paths[0], "train", np.array([True, False]),
                               np.array([0.3, 0.2]), np.array([False, False]),
                               np.array([True, False]), 0.1)  # both under 0.5
    measures = {"best_step": 10, "thresholds": [0.5, 0.5],
                "test": metrics.evaluate(LABELS, PROBS, THRESHOLDS)}
    for never_empty, shown in ((False, "(none)"), (True, '<b class="label">a</b>')):
        test = page.TestImages(_images(tmp_path, 5), LABELS, PROBS, THRESHOLDS, never_empty)
        text = page.render(_run_facts(("a", "b"), ()), measures, test, 2, issues=[issue])
        section = text[text.index('<section id="labels">'):]
        assert f"predicted: {shown}</div>" in section
