"""Training the head: it learns, keeps the best step, resumes, and stops on NaN."""

import numpy as np
import pytest
import tensorflow as tf

from multilabel.base.errors import UserError
from multilabel.base.options import TrainOptions
from multilabel.evaluation.thresholds import best_f1_thresholds
from multilabel.training import trainer


def _data(n, seed):
    """Bottlenecks where class c is present exactly when feature c is positive."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.int64)
    return x, y


def _config(**changes):
    base = dict(how_many_training_steps=200, learning_rate=0.05, train_batch_size=32,
                optimizer="adam", l2_regularization=0.0, pos_weight=None,
                eval_step_interval=20, validation_batch_size=-1, random_seed=3)
    base.update(changes)
    return TrainOptions(**base)


def _train(config, tmp_path=None, resume=False, **kwargs):
    x, y = _data(300, 0)
    vx, vy = _data(100, 1)
    checkpoint = str(tmp_path / "ckpt" / "retrain") if tmp_path else ""
    return trainer.train(trainer.TrainData(lambda i: x[i], y, vx, vy), config,
                         trainer.TrainRecords(checkpoint_path=checkpoint, resume=resume, **kwargs))


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_learns_separable_labels_and_keeps_its_best_validation_step():
    result = _train(_config())
    vx, vy = _data(100, 1)
    probs = _sigmoid(vx @ result.weights + result.biases)
    assert ((probs > 0.5) == vy).mean() > 0.95
    assert result.validation_map > 0.98
    assert result.step % 20 == 0 and 0 < result.step <= 200
    # The training curve: one point per evaluation; the kept step has the best mAP.
    assert [e.step for e in result.history] == list(range(20, 201, 20))
    kept = {e.step: e for e in result.history}[result.step]
    assert kept.validation_map == pytest.approx(result.validation_map)
    assert kept.validation_map == max(e.validation_map for e in result.history)
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_same_seed_same_weights_and_sgd_also_learns():
    a = _train(_config(how_many_training_steps=60))
    b = _train(_config(how_many_training_steps=60))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.biases, b.biases)
    other = _train(_config(how_many_training_steps=60, random_seed=4))
    assert not np.allclose(a.weights, other.weights)
    x, y = _data(100, 0)
    np.testing.assert_array_equal(trainer.out_of_fold_probs(x, y, _config(), 30),
                                  trainer.out_of_fold_probs(x, y, _config(), 30))
    sgd = _train(_config(optimizer="sgd", learning_rate=1.0))
    assert sgd.validation_map > 0.95


def test_without_validation_data_the_last_step_is_kept():
    x, y = _data(100, 0)
    empty = np.zeros((0, 6), np.float32), np.zeros((0, 3), np.int64)
    result = trainer.train(trainer.TrainData(lambda i: x[i], y, *empty),
                           _config(how_many_training_steps=30))
    assert result.step == 30
    assert np.isnan(result.validation_map)
    assert [e.step for e in result.history] == [20, 30]
    assert all(np.isnan(e.validation_map) for e in result.history)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    straight = _train(_config(how_many_training_steps=100))
    _train(_config(how_many_training_steps=40), tmp_path)
    resumed = _train(_config(how_many_training_steps=100), tmp_path, resume=True)
    np.testing.assert_allclose(resumed.weights, straight.weights, rtol=1e-5, atol=1e-6)
    assert resumed.step == straight.step


def test_a_checkpoint_of_an_earlier_version_is_one_line_saying_what_to_do(tmp_path):
    # As the TF1 graph of earlier versions saved it: by variable names, no object graph.
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.get_variable("final_retrain_ops/final_weights", [6, 3])
        v1.get_variable("final_retrain_ops/final_biases", [3])
        v1.train.get_or_create_global_step()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            old = v1.train.Saver().save(sess, str(tmp_path / "ckpt" / "retrain"),
                                        global_step=40, write_meta_graph=False)
    with pytest.raises(UserError) as error:
        _train(_config(how_many_training_steps=60), tmp_path, resume=True)
    assert str(error.value) == (
        f"{old}: the checkpoint was written by an earlier version of retrain.py, whose "
        "checkpoints can't be resumed; remove it or run without --resume")
    # Without --resume the run starts afresh and replaces it.
    _train(_config(how_many_training_steps=20), tmp_path)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("retrain-20")


def test_a_checkpoint_of_another_run_is_refused_on_resume(tmp_path):
    _train(_config(how_many_training_steps=20), tmp_path)
    x, y = _data(300, 0)
    y = np.concatenate([y, y[:, :1]], axis=1)  # four classes, not three
    with pytest.raises(UserError, match=r"retrain-20: the checkpoint does not match this run"):
        trainer.train(trainer.TrainData(lambda i: x[i], y, x[:0], y[:0]),
                      _config(how_many_training_steps=40),
                      trainer.TrainRecords(checkpoint_path=str(tmp_path / "ckpt" / "retrain"),
                                           resume=True))
    # The other optimizer's state is another run's too.
    with pytest.raises(UserError, match=r"the checkpoint does not match this run"):
        _train(_config(how_many_training_steps=40, optimizer="sgd"), tmp_path, resume=True)


def test_training_summaries_have_the_originals_content(tmp_path):
    _train(_config(how_many_training_steps=40), summaries_dir=str(tmp_path / "logs"))
    (run,) = (tmp_path / "logs").iterdir()
    tags = {}
    for part in ("train", "validation"):
        (events,) = (run / part).iterdir()
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                tags.setdefault(part, {}).setdefault(value.tag, []).append((event.step, value))
    train = tags["train"]
    assert sorted(train) == ["activations", "cross_entropy", "final_biases", "final_weights"]
    assert [step for step, _ in train["cross_entropy"]] == [20, 40]
    first, last = (value.simple_value for _, value in train["cross_entropy"])
    assert 0 < last < first
    assert train["final_weights"][0][1].histo.num == 6 * 3
    assert train["activations"][0][1].histo.num == 32 * 3  # a batch's probabilities
    assert "validation/mean_average_precision" in tags["validation"]
    assert "pr_curves/class_0" in tags["validation"]


def test_a_damaged_checkpoint_is_a_user_error_naming_it(tmp_path):
    _train(_config(how_many_training_steps=20), tmp_path)
    (data,) = (tmp_path / "ckpt").glob("retrain-20.data-*")
    data.write_bytes(data.read_bytes()[:50])
    with pytest.raises(UserError, match=r"retrain-20: the checkpoint is damaged \(Read less"):
        _train(_config(how_many_training_steps=40), tmp_path, resume=True)


def test_l2_regularization_shrinks_the_weights():
    plain = _train(_config(how_many_training_steps=100))
    shrunk = _train(_config(how_many_training_steps=100, l2_regularization=0.05))
    assert np.abs(shrunk.weights).sum() < 0.7 * np.abs(plain.weights).sum()


def test_pos_weight_raises_the_probability_of_positives():
    plain = _train(_config(how_many_training_steps=100))
    weighted = _train(_config(how_many_training_steps=100, pos_weight=5.0))
    vx, _ = _data(100, 1)
    assert (_sigmoid(vx @ weighted.weights + weighted.biases).mean()
            > _sigmoid(vx @ plain.weights + plain.biases).mean())


def test_a_diverging_loss_stops_with_the_step():
    with pytest.raises(UserError, match=r"loss became nan at step \d+"):
        x, y = _data(50, 0)
        x[0, 0] = np.nan
        trainer.train(trainer.TrainData(lambda i: x[i], y, x[:0], y[:0]),
                      _config(train_batch_size=-1, how_many_training_steps=5))


def test_every_evaluation_is_reported(tmp_path):
    seen = []
    _train(_config(how_many_training_steps=60),
           on_eval=lambda step, w, b: seen.append((step, w.shape, b.shape)))
    assert seen == [(20, (6, 3), (3,)), (40, (6, 3), (3,)), (60, (6, 3), (3,))]


def test_out_of_fold_heads_never_see_the_rows_they_predict():
    x, y = _data(200, 0)
    probs = trainer.out_of_fold_probs(x, y, _config(), steps=150, folds=4)
    assert probs.shape == y.shape
    assert ((probs > 0.5) == y).mean() > 0.9  # learnable labels, predicted out of fold
    # A row that contradicts the rest is predicted by heads that never saw it.
    x_odd, y_odd = x.copy(), y.copy()
    y_odd[0] = 1 - y_odd[0]
    odd = trainer.out_of_fold_probs(x_odd, y_odd, _config(), steps=150, folds=4)
    np.testing.assert_array_equal((odd[0] > 0.5), y[0].astype(bool))


def test_heads_trained_side_by_side_match_heads_trained_alone():
    x, y = _data(120, 0)
    config = _config(how_many_training_steps=40, train_batch_size=-1)
    together = trainer.out_of_fold_probs(x, y, config, steps=40, folds=2)
    fold_of = np.arange(len(y)) % 2
    for k in range(2):
        fit = fold_of != k
        alone = trainer.train(trainer.TrainData(lambda i: x[fit][i], y[fit], x[:0], y[:0]),
                              config)
        np.testing.assert_allclose(together[fold_of == k],
                                   _sigmoid(x[fold_of == k] @ alone.weights + alone.biases),
                                   atol=0.02)


def test_scaled_features_train_on_scaled_inputs_and_return_folded_weights():
    # Training on x * s with the scales inside the graph is training on scaled bottlenecks:
    # the same weights as training on pre-scaled inputs, folded so raw inputs get them.
    x, y = _data(300, 0)
    vx, vy = _data(100, 1)
    scales = np.array([0.5, 2.0, 1.0, 3.0, 0.25, 1.5], np.float32)
    config = _config(l2_regularization=1e-3)
    folded = trainer.train(trainer.TrainData(lambda i: x[i], y, vx, vy, feature_scales=scales),
                           config)
    scaled = trainer.train(trainer.TrainData(lambda i: x[i] * scales, y, vx * scales, vy), config)
    assert folded.step == scaled.step
    np.testing.assert_allclose(folded.weights, scales[:, None] * scaled.weights, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(vx @ folded.weights, (vx * scales) @ scaled.weights, atol=1e-4)
    # The out-of-fold heads scale their inputs the same way.
    np.testing.assert_allclose(
        trainer.out_of_fold_probs(x, y, config, 50, feature_scales=scales),
        trainer.out_of_fold_probs(x * scales, y, config, 50), atol=1e-5)


def test_thresholds_are_chosen_on_the_out_of_fold_predictions():
    x, y = _data(100, 0)
    config = _config(how_many_training_steps=40)
    chosen, probs = trainer.out_of_fold_thresholds(x, y, config, 40)
    np.testing.assert_array_equal(
        probs, trainer.out_of_fold_probs(x, y, config, 40, trainer.THRESHOLD_FOLDS))
    np.testing.assert_array_equal(chosen, best_f1_thresholds(y, probs))


def test_too_few_images_for_the_folds_keep_one_half(caplog):
    x, y = _data(trainer.THRESHOLD_FOLDS - 1, 0)
    chosen, probs = trainer.out_of_fold_thresholds(x, y, _config(), 40)
    assert chosen.tolist() == [0.5] * y.shape[1] and probs is None
    assert "Too few images" in caplog.text
