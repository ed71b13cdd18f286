"""Calibration measured and mended, on arrays worked by hand and on draws of known
miscalibration."""

import numpy as np
import pytest

from multilabel.evaluation import calibration
from multilabel.evaluation.thresholds import apply_thresholds


def test_reliability_and_ece_worked_by_hand():
    # Bin [0.1, 0.2): 0.1, 0.1 (one true) -> mean 0.1, frequency 0.5, gap 0.4.
    # Bin [0.9, 1]: 0.9, 1.0 (both true) -> mean 0.95, frequency 1, gap 0.05.
    y = np.array([[1, 1], [0, 1]])
    p = np.array([[0.1, 0.9], [0.1, 1.0]])
    count, mean, frequency = calibration.reliability(y, p)
    assert count[1] == 2 and count[9] == 2 and count.sum() == 4
    assert mean[1] == pytest.approx(0.1) and frequency[1] == 0.5
    assert mean[9] == pytest.approx(0.95) and frequency[9] == 1.0
    assert np.isnan(mean[0])
    pooled, per_class = calibration.expected_calibration_error(y, p)
    assert pooled == pytest.approx((2 * 0.4 + 2 * 0.05) / 4)
    # Class 0: one bin, mean 0.1, frequency 0.5; class 1: one bin, mean 0.95, frequency 1.
    np.testing.assert_allclose(per_class, [0.4, 0.05])


def test_a_probability_of_one_falls_in_the_last_bin():
    assert calibration.bin_indices([0.0, 0.0999, 0.1, 0.95, 1.0]).tolist() == [0, 0, 1, 9, 9]


def _overconfident(n=4000, temperature=3.0, seed=0):
    """Labels drawn from sigmoid(z) while the model reports sigmoid(temperature * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, 2))
    y = rng.random((n, 2)) < calibration.sigmoid(z)
    return y, calibration.sigmoid(temperature * z)


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_a_fit_undoes_a_known_overconfidence_and_lowers_the_ece(method):
    y, probs = _overconfident()
    fitted = calibration.fit(y, probs, method)
    np.testing.assert_allclose(fitted.scale, 1 / 3, rtol=0.15)
    if method == "temperature":
        assert (fitted.shift == 0).all()
    held_y, held_probs = _overconfident(seed=1)
    before = calibration.expected_calibration_error(held_y, held_probs)[0]
    after = calibration.expected_calibration_error(held_y, fitted.probs(held_probs))[0]
    assert after < before / 2


def test_none_and_an_empty_set_are_the_identity():
    y, probs = _overconfident(n=50)
    for fitted in (calibration.fit(y, probs, "none"), calibration.fit(y[:0], probs[:0], "platt")):
        np.testing.assert_allclose(fitted.probs(probs), probs, atol=1e-6)
    with pytest.raises(ValueError, match="platt"):
        calibration.fit(y, probs, "isotonic")


def test_a_perfectly_separated_class_keeps_a_finite_scale():
    y = np.array([[0], [0], [1], [1]])
    probs = np.array([[0.1], [0.2], [0.8], [0.9]])
    fitted = calibration.fit(y, probs, "platt")
    assert np.isfinite(fitted.scale).all() and (fitted.scale > 0).all()


def test_a_class_ranked_backwards_is_left_alone():
    y = np.array([[1], [1], [0], [0], [1], [0]])
    probs = np.array([[0.1], [0.2], [0.8], [0.9], [0.3], [0.7]])
    fitted = calibration.fit(y, probs, "temperature")
    assert fitted.scale[0] == 1 and fitted.shift[0] == 0


def test_folded_layer_gives_the_calibrated_probabilities_and_thresholds_keep_label_sets():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    weights = rng.normal(size=(6, 3)).astype(np.float32)
    biases = rng.normal(size=3).astype(np.float32)
    raw = calibration.sigmoid(x @ weights + biases)
    fitted = calibration.Calibration("platt", np.array([0.5, 2.0, 1.3]),
                                     np.array([0.3, -1.0, 0.0]))
    w, b = fitted.fold(weights, biases)
    assert w.dtype == np.float32 and b.dtype == np.float32
    folded = calibration.sigmoid(x @ w + b)
    np.testing.assert_allclose(folded, fitted.probs(raw), atol=1e-5)
    thresholds = np.array([0.3, 0.5, 0.0])
    moved = fitted.thresholds(thresholds)
    assert moved[2] == 0.0 and 0 < moved[0] < 1
    assert (apply_thresholds(raw, thresholds) == apply_thresholds(folded, moved)).all()
    assert calibration.Calibration("platt", np.ones(1), np.ones(1)).thresholds([1.0])[0] == 1.0
    assert fitted.report() == {"method": "platt", "scale": [0.5, 2.0, 1.3],
                               "shift": [0.3, -1.0, 0.0]}
