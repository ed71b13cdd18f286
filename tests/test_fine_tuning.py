"""Fine-tuning (phase 2) on a tiny module with trainable layers: it learns, exports a graph
that reproduces its probabilities, resumes, and refuses modules it cannot train."""

import json

import numpy as np
import pytest
import tensorflow as tf

import retrain
from multilabel.base import run_guard
from multilabel.base.options import TrainOptions
from multilabel.labelling.frozen_graph import load_frozen_graph
from multilabel.training import fine_tuning, loop, trainer
from multilabel.features.engines import TFLITE_FILE
from tests.test_retrain import make_dataset, retrain_flags
from tests.test_feature_modules import _tf1_hub_format_module
from tests.tiny_module import make_tiny_trainable_module

FINE_TUNE = ("--fine_tune", "--fine_tune_epochs", "2", "--fine_tune_learning_rate", "0.01",
             "--how_many_training_steps", "100")


@pytest.fixture(scope="module")
def trainable_module(tmp_path_factory):
    return make_tiny_trainable_module(str(tmp_path_factory.mktemp("modules") / "trainable"))


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, trainable_module):
    """One --fine_tune run, shared by the tests that only read its outputs."""
    tmp_path = tmp_path_factory.mktemp("run")
    make_dataset(tmp_path / "data", per_set=6)
    assert retrain.main(retrain_flags(tmp_path, trainable_module, *FINE_TUNE)) == 0
    return tmp_path


def test_layers_are_grouped_by_name_in_the_order_the_module_uses_them(trainable_module):
    tunable = fine_tuning.load_fine_tunable(trainable_module)
    variables, layers = tunable.variables, tunable.layers
    assert [layer.name for layer in layers] == ["conv1", "conv2"]
    assert [len(layer.variables) for layer in layers] == [2, 2]
    assert len(variables) == 6  # the frozen ones too, which a saved copy must hold
    assert fine_tuning.top_layers(layers, 1) == layers[1:]
    assert fine_tuning.top_layers(layers, "all") == layers
    assert fine_tuning.top_layers(layers, 9) == layers


def test_reports_both_phases_and_exports_a_graph_that_reproduces_the_probabilities(fine_tuned):
    out = fine_tuned / "details"
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["phase_1"]) >= {"thresholds", "validation", "test"}
    assert report["fine_tuning"]["epochs"] == 2
    assert report["fine_tuning"]["best_epoch"] in (0, 2)  # phase 1 or the schedule's end
    assert report["export_check_max_difference"] < 1e-5
    # Phase 2 against phase 1 on the same test images, each measure with its paired
    # interval; the calibration fitted on the validation part, which fine-tuning did not
    # train on.
    gain = report["fine_tuning_gain"]["mean_average_precision"]
    assert gain["difference"] == pytest.approx(report["test"]["mean_average_precision"]
                                               - report["phase_1"]["test"]["mean_average_precision"])
    assert gain["interval"][0] <= gain["difference"] <= gain["interval"][1]
    assert report["calibration"]["fitted_on"] == "validation"
    assert report["phase_1"]["calibration"]["fitted_on"] == "out-of-fold"
    predictions = [json.loads(line) for line in (out / "test_predictions.jsonl").open()]
    from multilabel.data.images import load_image
    images = np.stack([load_image(p["image"], 32, 32) for p in predictions])
    with load_frozen_graph(str(out / "output_graph.pb")).running() as run:
        np.testing.assert_allclose(run(images), [p["probabilities"] for p in predictions],
                                   atol=1e-5)


def test_training_steps_lower_the_loss_and_move_only_the_chosen_layers(trainable_module):
    tunable = fine_tuning.load_fine_tunable(trainable_module)
    variables, layers = tunable.variables, tunable.layers
    rng = np.random.default_rng(0)
    images = rng.random((16, 32, 32, 3), dtype=np.float32)
    labels = (images[:, :16, :, 0].mean(axis=(1, 2)) > 0.5)[:, None].astype(np.float32)
    head = trainer.TrainedHead(np.zeros((32, 1), np.float32), np.zeros(1, np.float32), 0, 0.0)
    (cut,) = fine_tuning._cuts(tunable.parts, layers[-1].variables)
    tensors = [t.numpy() for t in cut.bottom(images)]
    model = fine_tuning._Model([cut], [tf.TensorSpec([None, *t.shape[1:]]) for t in tensors],
                               layers[-1].variables, head, TrainOptions(l2_regularization=0.0))
    before = [v.numpy() for v in variables]
    losses = [float(model.train_step(tensors, labels, 0.01)) for _ in range(10)]
    assert losses[-1] < losses[0]
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]
    tuned = {id(v) for v in layers[-1].variables}
    assert changed == [id(v) in tuned for v in variables]


def test_the_bottleneck_cache_keeps_only_the_frozen_modules_vectors(fine_tuned,
                                                                   trainable_module):
    from multilabel.features import bottlenecks
    from multilabel.features.engines import TensorFlowEngine
    from multilabel.features.feature_modules import module_fingerprint
    from multilabel.data.images import load_image

    root = fine_tuned / "details" / "bottlenecks"
    key = bottlenecks.module_key(module_fingerprint(trainable_module), 32, 32)
    assert [p.name for p in root.iterdir() if p.is_dir()] == [key]
    paths = sorted((fine_tuned / "data" / "images").iterdir())
    cache = bottlenecks.BottleneckCache(str(root), key, 32)
    cached = np.stack([cache.load(bottlenecks.content_hash(p)) for p in paths])
    frozen = TensorFlowEngine(trainable_module)(np.stack([load_image(p, 32, 32) for p in paths]))
    np.testing.assert_allclose(cached, frozen, atol=1e-5)


@pytest.mark.parametrize("scores, kept", [((0.5, 0.9, 0.6), 2), ((0.7, 0.9, 0.6), 0)])
def test_the_end_of_the_schedule_is_kept_unless_phase_1_scores_higher(
        tmp_path, trainable_module, monkeypatch, scores, kept):
    # Validation mAP before the first epoch and after each of two: a middle epoch never
    # wins, however it scores.
    make_dataset(tmp_path / "data", per_set=6)
    scripted = iter(scores)
    evaluate = fine_tuning.metrics.evaluate

    class ScriptedMetrics:
        @staticmethod
        def evaluate(labels, probs):
            return {**evaluate(labels, probs), "mean_average_precision": next(scripted)}

    monkeypatch.setattr(fine_tuning, "metrics", ScriptedMetrics)
    assert retrain.main(retrain_flags(tmp_path, trainable_module, *FINE_TUNE)) == 0
    report = json.loads((tmp_path / "details" / "metrics.json").read_text())
    assert report["fine_tuning"]["best_epoch"] == kept
    assert report["fine_tuning"]["validation_map_by_epoch"] == dict(
        zip(["0", "1", "2"], scores))


def test_an_interrupted_fine_tuning_resumes_where_it_stopped(tmp_path, trainable_module,
                                                             fine_tuned, monkeypatch):
    make_dataset(tmp_path / "data", per_set=6)
    flags = retrain_flags(tmp_path, trainable_module, *FINE_TUNE)
    train_epoch = fine_tuning._Run._train_epoch

    def stop_before_the_second_epoch(run, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return train_epoch(run, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(fine_tuning._Run, "_train_epoch", stop_before_the_second_epoch)
        assert retrain.main(flags) == 130
    out = tmp_path / "details"
    assert not (out / "output_graph.pb").exists()  # nothing exported from a stopped run
    assert retrain.main([*flags, "--resume"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["fine_tuning"]["train_loss_by_epoch"]) == ["2"]
    # The same probabilities as the run that went straight through.
    resumed = [json.loads(line)["probabilities"] for line in (out / "test_predictions.jsonl").open()]
    straight = [json.loads(line)["probabilities"]
                for line in (fine_tuned / "details" / "test_predictions.jsonl").open()]
    np.testing.assert_allclose(resumed, straight, atol=1e-5)


def test_a_checkpoint_of_another_run_is_refused_on_resume(fine_tuned, trainable_module, capsys):
    flags = retrain_flags(fine_tuned, trainable_module, *FINE_TUNE)
    before = (fine_tuned / "details" / "output_graph.pb").read_bytes()
    assert retrain.main([*flags, "--resume", "--fine_tune_layers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not match this run" in err and "\n" not in err
    assert (fine_tuned / "details" / "output_graph.pb").read_bytes() == before


@pytest.mark.parametrize("kind", ["tf1_hub_format", "no_trainable_variables"])
def test_a_module_that_cannot_be_fine_tuned_is_refused_before_any_long_work(
        tmp_path, tiny_module, kind, capsys):
    if kind == "tf1_hub_format":
        module = str(tmp_path / "tf1")
        _tf1_hub_format_module(module)
        expected = "TF1 Hub format module is not"
    else:
        module, expected = tiny_module, "has no trainable variables"
    make_dataset(tmp_path / "data", per_set=2)
    assert retrain.main(retrain_flags(tmp_path, module, "--fine_tune")) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
    # The module's TFLite conversion may be kept, and the run folder's lock file stays.
    cached = [p for p in (tmp_path / "details").rglob("*") if p.is_file()
              and p.name not in (TFLITE_FILE, run_guard.LOCK)]
    assert cached == []  # no bottleneck computed


class _ModuleWithTrainingFlag(tf.Module):
    """A TF2 hub-style module whose `training=True` differs (as batch norm's batch
    statistics would): fine-tuning must call it with `training=False`."""

    def __init__(self):
        super().__init__()
        with tf.name_scope("dense"):
            self.kernel = tf.Variable(tf.ones([3, 4]), name="kernel")

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def serve(self, images):
        return self(images, training=False)

    @tf.function
    def __call__(self, images, training=False):
        features = tf.reduce_mean(images, [1, 2]) @ self.kernel
        return features + 100.0 if training else features


def test_a_module_with_a_training_argument_is_called_in_inference_mode(tmp_path):
    module = _ModuleWithTrainingFlag()
    spec = tf.TensorSpec([None, 8, 8, 3], tf.float32)
    for training in (True, False):
        module.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    tunable = fine_tuning.load_fine_tunable(str(tmp_path / "m"))
    assert [layer.name for layer in tunable.layers] == ["dense"]
    images = np.full([1, 8, 8, 3], 0.5, np.float32)
    np.testing.assert_allclose(tunable.features(tf.constant(images)), np.full([1, 4], 1.5))
    (cut,) = fine_tuning._cuts(tunable.parts, tunable.layers[-1].variables)
    np.testing.assert_allclose(cut.top(*cut.bottom(tf.constant(images))), np.full([1, 4], 1.5))


def test_a_module_set_fine_tunes_its_last_members_top_on_cached_cut_tensors(
        tmp_path, tiny_module, trainable_module):
    # The frozen member's vectors come from its engine and the bottleneck cache, the
    # trainable member's top runs on its cut tensors; the export reproduces the result.
    make_dataset(tmp_path / "data", per_set=6)
    flags = retrain_flags(tmp_path, f"{tiny_module},{trainable_module}", *FINE_TUNE,
                          "--fine_tune_layers", "1", "--fine_tune_variants", "3")
    assert retrain.main(flags) == 0
    report = json.loads((tmp_path / "details" / "metrics.json").read_text())
    summary = report["fine_tuning"]
    assert summary["first_layer"] == "conv2" and summary["variants"] == 3
    # The frozen member's 24 features; in the trainable one, conv2's input (16 x 16 x 8
    # after conv1) and its own frozen tiny features, which its output concatenates.
    frozen, cut = summary["cut_shapes"]
    assert frozen == [[24]] and sorted(cut) == [[16, 16, 8], [24]]
    rows = 3 * 25 + 7 + 10  # three versions of the 25 training images, one of the others
    assert summary["cut_bytes"] == rows * 4 * (24 + 16 * 16 * 8 + 24)
    assert report["export_check_max_difference"] < 1e-5


def test_the_cut_tensors_of_a_distorted_copy_are_the_copys(tmp_path, trainable_module):
    # Version 2 of each training image is its mirror: its cut tensors are those of the
    # mirrored image, and version 1's those of the image itself.
    from multilabel.features import module_set

    make_dataset(tmp_path / "data", per_set=2)
    from multilabel.data import dataset as dataset_lib
    from multilabel.data.images import load_image

    data = dataset_lib.load_dataset(str(tmp_path / "data"), None, 0, 50)
    module = module_set.load_module_set((trainable_module,), str(tmp_path / "model"),
                                        str(tmp_path / "cache"), "tensorflow")
    tunable = fine_tuning.load_fine_tunable(module.path)
    cuts = fine_tuning._cuts(tunable.parts, tunable.layers[-1].variables)
    options = TrainOptions(fine_tune_variants=3, random_seed=0)
    cached = fine_tuning._CutTensors(options, module, tunable.parts, cuts, str(tmp_path))
    assert cached.distortions == fine_tuning.DEFAULT_DISTORTIONS  # no distortion flag given
    features = [np.zeros((len(p), module.dim), np.float32)
                for p in (data.train, data.validation, data.test)]
    cached.fill(data, features)
    n = len(data.train)
    images = np.stack([load_image(p, 32, 32) for p in data.train.paths])
    itself = cuts[0].bottom(tf.constant(images))
    mirrored = cuts[0].bottom(tf.constant(images[:, :, ::-1]))
    for train, own, mirror in zip(cached.part("train"), itself, mirrored):
        assert len(train) == 3 * n
        np.testing.assert_allclose(train[:n], own, atol=1e-6)
        np.testing.assert_allclose(train[n:2 * n], mirror, atol=1e-6)
        assert not np.allclose(train[2 * n:], own, atol=1e-3)  # randomly distorted copies


def test_the_best_preset_fine_tunes_and_says_so(tmp_path, trainable_module):
    make_dataset(tmp_path / "data", per_set=4)
    flags = retrain_flags(tmp_path, trainable_module, "--preset", "best", "--fine_tune_epochs",
                          "1", "--how_many_training_steps", "50")
    assert retrain.main(flags) == 0
    report = json.loads((tmp_path / "details" / "metrics.json").read_text())
    assert report["preset"] == "best" and report["fine_tuning"]["epochs"] == 1
    assert report["fine_tuning"]["layers"] == 2  # the preset's 4, of the module's 2
