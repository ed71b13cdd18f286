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


def test_blocks_must_cover_the_features():
    with pytest.raises(ValueError, match="features have 4 columns, the blocks 5"):
        feature_scaling.block_scales(np.ones((2, 4)), [2, 3])


def test_folded_weights_give_raw_features_what_the_weights_gave_scaled_ones():
    rng = np.random.default_rng(2)
    x, weights = rng.normal(size=(7, 6)), rng.normal(size=(6, 3)).astype(np.float32)
    scales = feature_scaling.block_scales(np.abs(x) * [1, 1, 1, 9, 9, 9], [3, 3])
    np.testing.assert_allclose(x @ feature_scaling.fold_into_weights(weights, scales),
                               (x * scales) @ weights, rtol=1e-5)
