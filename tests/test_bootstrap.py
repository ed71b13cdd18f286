"""Bootstrap intervals: each resample measures what metrics.evaluate measures on the
resampled images, and the intervals and paired differences behave as intervals must."""

import time

import numpy as np
import pytest

from multilabel.evaluation import bootstrap, metrics

Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]])
P = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.1], [0.4, 0.7, 0.2], [0.2, 0.1, 0.9],
              [0.6, 0.6, 0.3], [0.5, 0.4, 0.7]])
T = np.array([0.5, 0.5, 0.65])


def test_resample_counts_draw_every_image_n_times_in_all():
    counts = bootstrap.resample_counts(6, resamples=50, seed=3)
    assert counts.shape == (50, 6)
    assert (counts.sum(axis=1) == 6).all()
    assert (counts == bootstrap.resample_counts(6, resamples=50, seed=3)).all()
    assert (counts != bootstrap.resample_counts(6, resamples=50, seed=4)).any()


@pytest.mark.parametrize("never_empty", [False, True])
def test_each_resample_measures_as_evaluate_does_on_the_drawn_images(never_empty):
    counts = bootstrap.resample_counts(len(Y), resamples=20, seed=1)
    resampled = bootstrap.resampled_measures(Y, P, T, never_empty, counts)
    for b, row in enumerate(counts):
        drawn = np.repeat(np.arange(len(Y)), row)
        expected = metrics.evaluate(Y[drawn], P[drawn], T, never_empty)
        for name, values in resampled.items():
            want = expected[name]
            if isinstance(want, list):
                want = [np.nan if w is None else w for w in want]
            elif want is None:
                want = np.nan
            np.testing.assert_allclose(values[b], want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{name} of resample {b}")


def test_the_data_as_it_is_gives_evaluate_s_numbers():
    plain = bootstrap.resampled_measures(Y, P, T)
    expected = metrics.evaluate(Y, P, T)
    assert plain["exact_match"][0] == pytest.approx(expected["exact_match"])
    assert plain["mean_average_precision"][0] == pytest.approx(expected["mean_average_precision"])
    np.testing.assert_allclose(plain["f1"][0], expected["f1"])


def test_intervals_hold_the_measure_and_narrow_with_more_images():
    rng = np.random.default_rng(0)
    y = rng.random((400, 3)) < 0.4
    p = np.clip(y * 0.5 + rng.random((400, 3)) * 0.6, 0, 1)
    expected = metrics.evaluate(y, p, 0.5)
    small = bootstrap.intervals(y[:50], p[:50], 0.5)
    large = bootstrap.intervals(y, p, 0.5)
    for name in ("label_accuracy", "exact_match", "micro_f1", "mean_average_precision",
                 "expected_calibration_error"):
        low, high = large[name]
        assert low <= expected[name] <= high, name
        assert high - low < small[name][1] - small[name][0], name
    assert len(large["average_precision"]) == 3
    for c, (low, high) in enumerate(large["f1"]):
        assert low <= expected["f1"][c] <= high


def test_a_class_never_positive_has_no_ap_interval():
    y = Y.copy()
    y[:, 2] = 0
    assert bootstrap.intervals(y, P, T, resamples=30)["average_precision"][2] is None


def test_a_thousand_resamples_of_400_images_take_well_under_a_second():
    rng = np.random.default_rng(0)
    y, p = rng.random((400, 5)) < 0.3, rng.random((400, 5))
    start = time.perf_counter()
    bootstrap.intervals(y, p, 0.5, True)
    # Not a timing test: a bound two orders of magnitude over what it takes, which only a
    # loop over resamples in Python would pass.
    assert time.perf_counter() - start < 5


def test_paired_differences_of_a_model_with_itself_are_zero_and_a_better_one_positive():
    rng = np.random.default_rng(1)
    y = rng.random((300, 2)) < 0.5
    noise = rng.random((300, 2))
    noisy = np.clip(y * 0.3 + noise * 0.7, 0, 1)
    sharp = np.clip(y * 0.4 + noise * 0.6, 0, 1)  # the same hard images, a little better
    same = bootstrap.paired_differences(y, (noisy, 0.5, False), (noisy, 0.5, False))
    assert same["label_accuracy"] == {"difference": 0.0, "interval": [0.0, 0.0]}
    better = bootstrap.paired_differences(y, (noisy, 0.5, False), (sharp, 0.5, False))
    gain = better["mean_average_precision"]
    assert gain["difference"] > 0 and gain["interval"][0] > 0
    assert len(better["f1"]["difference"]) == 2
    # Paired: both models see the same hard images, so the difference varies less than
    # either model's own measure.
    own = [bootstrap.intervals(y, m, 0.5)["label_accuracy"] for m in (noisy, sharp)]
    width = better["label_accuracy"]["interval"][1] - better["label_accuracy"]["interval"][0]
    assert width < min(high - low for low, high in own)


def test_the_log_table_shows_each_measure_with_its_interval():
    measured = {**metrics.evaluate(Y, P, T), "intervals": bootstrap.intervals(Y, P, T)}
    text = metrics.format_report(measured, ["a", "b", "c"])
    low, high = measured["intervals"]["exact_match"]
    assert f"exact match {measured['exact_match']:.4f} [{low:.3f}, {high:.3f}]" in text
    low, high = measured["intervals"]["f1"][2]
    assert f"{measured['f1'][2]:.4f} [{low:.3f}, {high:.3f}]" in text.splitlines()[-1]
    assert "calibration error (ECE)" in text
    plain = metrics.format_report(metrics.evaluate(Y, P, T), ["a", "b", "c"])
    assert "[" not in plain
