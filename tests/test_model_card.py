"""The model card says what the run measured, on what terms, with which limits."""

import os

import numpy as np
import pytest

from multilabel.evaluation import bootstrap, label_issues, metrics
from multilabel.export import model_card

Y = np.array([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0], [0, 1]])
P = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.7], [0.2, 0.4], [0.7, 0.6], [0.1, 0.9]])


def _card(image_dir, issues=()):
    test = {**metrics.evaluate(Y, P, 0.5), "intervals": bootstrap.intervals(Y, P, 0.5)}
    report = {"run_id": "r1", "best_step": 40, "thresholds": [0.5, 0.45], "never_empty": True,
              "test": test, "calibration": {"method": "temperature", "fitted_on": "out-of-fold",
                                            "images": 90, "test_ece_before": 0.05,
                                            "test_ece_after": 0.03}}
    return model_card.Card(str(image_dir), ("sea", "sunset"),
                           {"train": [60, 12], "validation": [8, 3], "test": [3, 4]},
                           {"train": 80, "validation": 10, "test": 6},
                           (("m1", "a module", "MIT"),), (("how_many_training_steps", 40),),
                           report, tuple(issues), ("output_graph.pb", "metrics.json"),
                           {"leaked_test": 2, "within_training": 5, "different_labels": 1})


def _issue(part):
    flags = np.array([True, False])
    return label_issues.Issue("x.jpg", part, flags, np.array([0.1, 0.9]), ~flags, flags, 0.1)


def test_the_card_holds_the_run_s_numbers_terms_and_limits(tmp_path):
    (tmp_path / "README.md").write_text("Source: <http://www.lamda.nju.edu.cn/data>")
    text = model_card.render(_card(tmp_path, [_issue("train"), _issue("train"), _issue("test")]))
    assert text.startswith("# Model card: multi-label classifier of sea, sunset")
    assert "| sea | 60 | 8 | 3 |" in text
    assert "academic purposes only" in text and "citation" in text
    assert "Terms of its weights: MIT" in text
    interval = bootstrap.intervals(Y, P, 0.5)["exact_match"]
    assert f"| exact match | {metrics.exact_match_ratio(Y, P):.4f} | {interval[0]:.3f} to " \
           f"{interval[1]:.3f} |" in text
    assert "ECE 0.0500 before, 0.0300 after" in text
    assert "sea 0.500, sunset 0.450" in text
    assert "sunset (12 training positives)" in text and "sea (60" not in text
    assert "2 in train, 1 in test" in text and "2.2% of the training images" in text
    assert ("2 test images with a near-duplicate in training (their measures may be too "
            "good), 5 pairs within training, 1 pairs labelled differently") in text
    assert "`--how_many_training_steps 40`" in text


def test_the_user_states_the_terms_of_their_own_data(tmp_path):
    text = model_card.render(_card(tmp_path))
    assert "state them here" in text and "academic" not in text
    assert "none found" in text


def test_the_card_is_written_where_asked(tmp_path):
    model_card.write(tmp_path / "model_card.md", _card(tmp_path))
    assert (tmp_path / "model_card.md").read_text().count("## ") == 6


@pytest.mark.timeout(30)
def test_a_data_folder_readme_that_is_a_fifo_is_not_waited_on(tmp_path):
    """The card reads the data folder's README.md for its terms: a FIFO there (no writer)
    blocked the end of the run forever; through the regular-file check it is skipped."""
    os.mkfifo(tmp_path / "README.md")
    assert "state them here" in model_card.render(_card(tmp_path))
