"""The one training stack (training.loop) that the head, the out-of-fold heads and
fine-tuning share: its optimizer updates as TF1's did, its checkpoints resume or fail in
one line, it keeps copies of the best model, and all three loops run on its step."""

import numpy as np
import pytest
import tensorflow as tf

from multilabel.base.errors import UserError
from multilabel.base.options import TrainOptions
from multilabel.training import fine_tuning, loop, summaries, trainer

v1 = tf.compat.v1


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = (rng.random((20, 3)) > 0.5).astype(np.float32)
    w0 = rng.normal(size=(4, 3)).astype(np.float32)
    return x, y, w0


def _tf1_weights(kind, rates):
    """The weights after one step per learning rate in `rates`, by TF1's optimizers."""
    x, y, w0 = _problem()
    graph = tf.Graph()
    with graph.as_default():
        w = v1.get_variable("w", initializer=w0, use_resource=True)
        rate = v1.placeholder(tf.float32, [])
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x @ w))
        optimizer = (v1.train.AdamOptimizer(rate) if kind == "adam"
                     else v1.train.GradientDescentOptimizer(rate))
        train_op = optimizer.minimize(loss)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for r in rates:
                sess.run(train_op, {rate: r})
            return sess.run(w)


@pytest.mark.parametrize("kind", loop.OPTIMIZERS)
def test_the_optimizers_update_as_tf1s_did(kind):
    # A learning rate that changes at every step, as fine-tuning's cosine does.
    rates = [0.1, 0.05, 0.02, 0.01, 0.005]
    x, y, w0 = _problem()
    w = tf.Variable(w0)
    optimizer = loop.Optimizer(kind, [w])
    step = loop.train_step(
        lambda inputs, labels: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=labels, logits=inputs @ w)),
        [w], optimizer, [tf.TensorSpec([None, 4]), tf.TensorSpec([None, 3])])
    for r in rates:
        step(x, y, r)
    np.testing.assert_allclose(w.numpy(), _tf1_weights(kind, rates), rtol=1e-6, atol=1e-7)


def test_the_head_the_out_of_fold_heads_and_fine_tuning_train_on_one_step(
        monkeypatch, tmp_path):
    built = []
    make_step = loop.train_step

    def spy(loss, variables, optimizer, input_signature):
        built.append((type(optimizer), optimizer.kind, len(variables)))
        return make_step(loss, variables, optimizer, input_signature)

    monkeypatch.setattr(loop, "train_step", spy)
    x, y, _ = _problem()
    options = TrainOptions(how_many_training_steps=3, eval_step_interval=3)
    trainer.train(trainer.TrainData(lambda i: x[i], y, x[:5], y[:5]), options)
    trainer.out_of_fold_probs(x, y, options, steps=3, folds=4)
    module = tf.Module()
    module.kernel = tf.Variable(tf.ones([4, 4]))
    cut = fine_tuning.module_cut.Cut(None, lambda t: t @ module.kernel, ((4,),))
    head = trainer.TrainedHead(np.zeros((4, 3), np.float32), np.zeros(3, np.float32), 0, 0.0)
    fine_tuning._Model([cut], [tf.TensorSpec([None, 4])], [module.kernel], head, options)
    assert built == [(loop.Optimizer, "adam", 2)] * 2 + [(loop.Optimizer, "adam", 3)]


def test_the_best_copies_keep_by_keep_bests_rule_and_restore():
    w = tf.Variable([1.0, 2.0])
    best = loop.BestCopies([w])
    assert best.kept() == (0, -1.0)
    assert best.offer(0.5, 10)
    w.assign([3.0, 4.0])
    assert not best.offer(0.5, 20)  # a tie keeps the earlier model
    best.restore()
    assert w.numpy().tolist() == [1.0, 2.0] and best.kept() == (10, 0.5)
    w.assign([5.0, 6.0])
    assert best.offer(float("nan"), 30)  # no validation: the latest wins
    w.assign([0.0, 0.0])
    best.restore()
    assert w.numpy().tolist() == [5.0, 6.0] and best.kept()[0] == 30


def test_a_checkpoint_restores_every_object_and_its_number(tmp_path):
    w, step = tf.Variable([1.0, 2.0]), tf.Variable(0, dtype=tf.int64)
    best = loop.BestCopies([w])
    optimizer = loop.Optimizer("adam", [w])
    saved = loop.Checkpoints(str(tmp_path / "ck" / "run"), w=w, step=step, best=best.state,
                             optimizer=optimizer)
    assert saved.restore() is None  # nothing to resume yet
    best.offer(0.7, 5)
    optimizer.beta_1_power.assign(0.5)
    w.assign([3.0, 4.0])
    step.assign(7)
    saved.save(7)
    w2, step2 = tf.Variable([0.0, 0.0]), tf.Variable(0, dtype=tf.int64)
    best2, optimizer2 = loop.BestCopies([w2]), loop.Optimizer("adam", [w2])
    restored = loop.Checkpoints(str(tmp_path / "ck" / "run"), w=w2, step=step2,
                                best=best2.state, optimizer=optimizer2)
    assert restored.restore() == str(tmp_path / "ck" / "run-7")
    assert w2.numpy().tolist() == [3.0, 4.0] and int(step2.numpy()) == 7
    assert best2.kept() == (5, 0.7) and float(optimizer2.beta_1_power.numpy()) == 0.5


def test_checkpoints_come_at_most_seconds_apart_but_the_last_always(tmp_path):
    w = tf.Variable(1.0)
    checkpoints = loop.Checkpoints(str(tmp_path / "r"), seconds_apart=3600, w=w)
    assert checkpoints.save(10)  # the first
    assert not checkpoints.save(20)
    assert checkpoints.save(30, last=True)
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "r-30")


def _tf1_checkpoint(prefix):
    """A name-based checkpoint as the TF1 graph of earlier versions wrote it."""
    graph = tf.Graph()
    with graph.as_default():
        v1.get_variable("final_retrain_ops/final_weights", [6, 3])
        v1.train.get_or_create_global_step()
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return saver.save(sess, prefix, global_step=20, write_meta_graph=False)


def test_a_tf1_checkpoint_is_one_line_saying_it_cannot_be_resumed(tmp_path):
    old = _tf1_checkpoint(str(tmp_path / "ck" / "retrain"))
    checkpoints = loop.Checkpoints(str(tmp_path / "ck" / "retrain"), "fine-tuning checkpoint",
                                   w=tf.Variable(tf.zeros([6, 3])))
    with pytest.raises(UserError) as error:
        checkpoints.restore()
    assert str(error.value) == (
        f"{old}: the fine-tuning checkpoint was written by an earlier version of retrain.py, "
        "whose checkpoints can't be resumed; remove it or run without --resume")


def test_another_runs_checkpoint_does_not_match(tmp_path):
    loop.Checkpoints(str(tmp_path / "r"), w=tf.Variable(tf.zeros([6, 3]))).save(1)
    for other in ({"w": tf.Variable(tf.zeros([6, 4]))},  # another shape
                  {"w": tf.Variable(tf.zeros([6, 3])), "v": tf.Variable(1.0)}):  # more
        with pytest.raises(UserError, match=r"r-1: the checkpoint does not match this run "
                                            r"\(another module, .*\); remove it or drop"):
            loop.Checkpoints(str(tmp_path / "r"), **other).restore()


def test_a_loss_that_is_not_a_number_stops_with_where_and_what_to_lower():
    assert loop.finite(np.float32(0.5), "at step 3") == 0.5
    with pytest.raises(UserError, match=r"^the fine-tuning loss became inf in epoch 2; "
                                        r"lower --fine_tune_learning_rate$"):
        loop.finite(float("inf"), "in epoch 2", "fine-tuning", "--fine_tune_learning_rate")


def test_no_validation_data_scores_nan():
    assert np.isnan(loop.validation_score(None))
    assert np.isnan(loop.validation_score({"mean_average_precision": None}))
    assert loop.validation_score({"mean_average_precision": 0.75}) == 0.75


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).normal(size=(50, 3)) * 0.001, [0.0, 0.0, 1.0, 5.0, -2.0], []])
def test_histograms_have_tensorflows_buckets(values):
    values = np.asarray(values, np.float32)
    graph = tf.Graph()
    with graph.as_default():
        op = v1.summary.histogram("h", tf.constant(values))
        with v1.Session(graph=graph) as sess:
            expected = v1.Summary.FromString(sess.run(op)).value[0].histo
    mine = summaries.histogram(values)
    assert list(mine.bucket_limit) == list(expected.bucket_limit)
    assert list(mine.bucket) == list(expected.bucket)
    assert (mine.min, mine.max, mine.num) == (expected.min, expected.max, expected.num)
    assert mine.sum == pytest.approx(expected.sum)
    assert mine.sum_squares == pytest.approx(expected.sum_squares)
