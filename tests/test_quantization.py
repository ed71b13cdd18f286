"""--quantize: the smaller TFLite copies, their thresholds, their measures, and the clients
that run them (multilabel.Classifier, label_image.py); on the tiny module."""

import json
import shutil

import numpy as np
import pytest

import label_image
import multilabel
from multilabel.base.errors import UserError
from multilabel.base.options import TrainOptions, quantized_variants
from multilabel.evaluation.agreement import agreeing_threshold, agreeing_thresholds
from multilabel.evaluation.thresholds import read_thresholds
from multilabel.export import quantization
from multilabel.labelling import run_folder
from tests.test_retrain import make_dataset

OPTIONS = dict(how_many_training_steps=100, learning_rate=0.05, eval_step_interval=50,
               validation_percentage=20)
VARIANTS = ("float16", "dynamic", "int8")


# --- the thresholds that make a copy agree with float --------------------------------

def test_the_threshold_that_reproduces_the_reference_decisions_is_chosen():
    # Float said yes to the first two images; the copy's scores sit lower.
    scores = [0.35, 0.30, 0.20, 0.10]
    assert agreeing_threshold(scores, [1, 1, 0, 0], 0.4) == pytest.approx(0.25)


def test_where_no_threshold_agrees_better_the_reference_one_stands():
    # 0.4 already agrees on every image, as does every threshold in (0.3, 0.5].
    assert agreeing_threshold([0.5, 0.3], [1, 0], 0.4) == 0.4


def test_ties_go_to_the_candidate_nearest_the_reference():
    # Decisions no threshold reproduces: 0.2 -> yes, 0.6 -> no. Every candidate agrees
    # on exactly one image; the reference 0.9 is itself one of them.
    assert agreeing_threshold([0.2, 0.6], [1, 0], 0.9) == 0.9


def test_agreeing_thresholds_work_class_by_class():
    reference = np.array([[0.9, 0.1], [0.6, 0.7], [0.2, 0.8]])
    copy = np.array([[0.8, 0.1], [0.45, 0.4], [0.3, 0.6]])
    # Float at 0.5: class 0 yes, yes, no; class 1 no, yes, yes.
    np.testing.assert_allclose(agreeing_thresholds(copy, reference, [0.5, 0.5]),
                               [0.375, 0.25])


def test_copy_and_reference_of_different_shapes_are_refused():
    with pytest.raises(ValueError):
        agreeing_thresholds(np.zeros((2, 2)), np.zeros((3, 2)), [0.5, 0.5])


# --- the option and the file names ----------------------------------------------------

def test_quantize_takes_known_names_each_once():
    assert quantized_variants("int8, float16") == ("int8", "float16")
    assert quantized_variants("") == ()
    for text in ("int4", "int8,int8"):
        with pytest.raises(UserError):
            quantized_variants(text)
    assert TrainOptions.from_preset(quantize="dynamic").quantize == ("dynamic",)
    with pytest.raises(UserError):
        TrainOptions(quantize="int8").check()  # a bare string is not a list of names
    with pytest.raises(UserError, match="TFLite"):
        TrainOptions(quantize=("int8",), tflite_output_file="").check()


def test_a_copy_lies_beside_its_float_file_under_its_own_role():
    assert run_folder.variant_path("run/output_graph.tflite", "int8") == \
        "run/output_graph.int8.tflite"
    assert run_folder.variant_role("thresholds", "int8") == "thresholds.int8"
    assert run_folder.variant_role("thresholds", None) == "thresholds"


def test_the_representative_images_are_a_fixed_sample_of_the_training_images():
    assert list(quantization.representative_indices(5, limit=10)) == [0, 1, 2, 3, 4]
    chosen = quantization.representative_indices(1000, limit=10)
    assert len(set(chosen)) == 10 and list(chosen) == sorted(chosen)
    assert list(chosen) == list(quantization.representative_indices(1000, limit=10))


# --- a run with every copy, and its clients ---------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_module):
    tmp_path = tmp_path_factory.mktemp("quantize")
    make_dataset(tmp_path / "data", per_set=6)
    result = multilabel.train(str(tmp_path / "data"), output_dir=str(tmp_path / "run"),
                              module=tiny_module, model_dir=str(tmp_path / "model"),
                              bottleneck_dir=str(tmp_path / "bottlenecks"),
                              quantize=",".join(VARIANTS), **OPTIONS)
    return tmp_path / "run", result


def test_each_copy_is_measured_and_written_with_its_thresholds_where_it_keeps_float_accuracy(run):
    folder, result = run
    exports = result.measures["exports"]
    assert set(exports) == {"float32", *VARIANTS}
    float32 = exports["float32"]
    assert float32["max_difference"] < 1e-4
    assert float32["images"] == result.measures["test"]["num_instances"]
    manifest = json.loads((folder / run_folder.MANIFEST).read_text())["files"]
    for name in VARIANTS:
        measures = exports[name]
        assert measures["size_bytes"] > 0 and measures["images_seconds"] > 0
        kept = not measures.get("left_out")
        assert kept == (float32["mean_average_precision"] - measures["mean_average_precision"]
                        <= quantization.MAP_TOLERANCE and float32["label_accuracy"]
                        - measures["label_accuracy"] <= quantization.LABEL_ACCURACY_TOLERANCE)
        model = folder / f"output_graph.{name}.tflite"
        assert model.exists() == kept
        assert (f"tflite.{name}" in manifest) == kept
        if kept:
            assert manifest[f"thresholds.{name}"]["path"] == f"output_thresholds.{name}.txt"
            np.testing.assert_allclose(
                read_thresholds(folder / f"output_thresholds.{name}.txt", 3),
                measures["thresholds"])
    # float16 moves the tiny model's probabilities by far less than any tolerance.
    assert not exports["float16"].get("left_out")
    assert exports["float16"]["max_difference"] < 1e-2


def test_classifier_and_label_image_run_a_copy_with_its_thresholds(run, capsys):
    folder, result = run
    classifier = multilabel.Classifier.load(folder, variant="float16")
    assert classifier.model.path.endswith("output_graph.float16.tflite")
    np.testing.assert_allclose(classifier.thresholds,
                               result.measures["exports"]["float16"]["thresholds"])
    image = json.loads((folder / "test_predictions.jsonl").open().readline())["image"]
    assert label_image.main(["--model_dir", str(folder), "--variant", "float16",
                             "--output_format", "json", image]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["probabilities"] == pytest.approx(
        list(classifier.predict(image)[0].probabilities.values()), abs=1e-6)


def test_a_copy_the_run_did_not_write_is_named(run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run[0], folder)
    manifest = json.loads((folder / run_folder.MANIFEST).read_text())
    del manifest["files"]["tflite.float16"]  # as a run that left float16 out records it
    (folder / run_folder.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="no float16 TFLite model"):
        multilabel.Classifier.load(folder, variant="float16")
