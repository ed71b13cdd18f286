"""Scaling a module set's feature blocks to one mean norm, and folding it into the layer."""

import numpy as np
import pytest

from multilabel.training import feature_scaling


def test_each_block_ends_with_the_blocks_mean_norm_over_the_root_of_their_number():
    rng = np.random.default_rng(0)
    small = rng.normal(size=(50, 3))
    large = 10 * rng.normal(size=(50, 5))
    features = np.concatenate([small, large], axis=1)
    scales = feature_scaling.block_scales(features, [3, 5])
    assert scales.shape == (8,) and scales.dtype == np.float32
    assert len(set(scales[:3])) == 1 and len(set(scales[3:])) == 1
    scaled = features * scales
    norms = [np.linalg.norm(scaled[:, :3], axis=1).mean(),
             np.linalg.norm(scaled[:, 3:], axis=1).mean()]
    target = np.mean([np.linalg.norm(small, axis=1).mean(),
                      np.linalg.norm(large, axis=1).mean()]) / np.sqrt(2)
    np.testing.assert_allclose(norms, [target, target], rtol=1e-6)


def test_one_module_and_an_all_zero_block_keep_the_factor_one():
    features = np.random.default_rng(1).normal(size=(10, 4))
    np.testing.assert_array_equal(feature_scaling.block_scales(features, [4]), np.ones(4))
    features[:, 2:] = 0
    scales = feature_scaling.block_scales(features, [2, 2])
    np.testing.assert_allclose(scales, [2 ** -0.5] * 2 + [1.0] * 2, rtol=1e-6)
    np.testing.assert_array_equal(feature_scaling.block_scales(0 * features, [2, 2]), np.ones(4))


def test_blocks_of_small_norms_are_scaled_too():
    # Every row of block 0 is (0.06, 0.08), norm 0.1; of block 1 (0.4), norm 0.4. Target
    # (0.1 + 0.4) / 2 / sqrt(2) = 0.25 / sqrt(2): factors 2.5 / sqrt(2) and 0.625 / sqrt(2).
    features = np.tile([0.06, 0.08, 0.4], (3, 1))
    np.testing.assert_allclose(feature_scaling.block_scales(features, [2, 1]),
                               np.array([2.5, 2.5, 0.625]) / np.sqrt(2), rtol=1e-6)


def test_the_factors_do_not_depend_on_the_overall_magnitude():
    features = np.abs(np.random.default_rng(3).normal(size=(20, 5))) * [1, 1, 4, 4, 4]
    scales = feature_scaling.block_scales(features, [2, 3])
    for magnitude in (1e-3, 0.5, 1e3):
        np.testing.assert_allclose(feature_scaling.block_scales(magnitude * features, [2, 3]),
                                   scales, rtol=1e-5)


@pytest.mark.filterwarnings("error")
def test_all_zero_blocks_give_no_numpy_warning():
    # No empty mean, no division by a zero norm, even where the result would be discarded.
    features = np.zeros((4, 5))
    features[:, :2] = 0.3
    np.testing.assert_allclose(feature_scaling.block_scales(features, [2, 2, 1]),
                               [1 / np.sqrt(3)] * 2 + [1.0] * 3, rtol=1e-6)
    np.testing.assert_array_equal(feature_scaling.block_scales(np.zeros((4, 5)), [2, 3]),
                                  np.ones(5))


# Equivalent mutant: `np.where(norms > 0, norms, 1.0)` -> `np.where(norms > 0, norms, 2.0)`:
# the 1.0 only keeps a zero-norm block from a division whose result np.where then drops.


def test_blocks_must_cover_the_features():
    with pytest.raises(ValueError, match="features have 4 columns, the blocks 5"):
        feature_scaling.block_scales(np.ones((2, 4)), [2, 3])


def test_folded_weights_give_raw_features_what_the_weights_gave_scaled_ones():
    rng = np.random.default_rng(2)
    x, weights = rng.normal(size=(7, 6)), rng.normal(size=(6, 3)).astype(np.float32)
    scales = feature_scaling.block_scales(np.abs(x) * [1, 1, 1, 9, 9, 9], [3, 3])
    np.testing.assert_allclose(x @ feature_scaling.fold_into_weights(weights, scales),
                               (x * scales) @ weights, rtol=1e-5)
