"""The Python API and the run folder: `multilabel.train`, `multilabel.Classifier`, and
label_image.py on the run's TFLite model, on the tiny module and the striped images of
test_retrain.
"""

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import label_image
import multilabel
import retrain
from multilabel import api
from multilabel.base import options
from multilabel.labelling import run_folder
from tests.test_retrain import make_dataset
from tests.tf_start_up import start_up_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
OPTIONS = dict(how_many_training_steps=100, learning_rate=0.05, eval_step_interval=50,
               validation_percentage=20)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_module):
    """One run through `multilabel.train` into its own folder; returns (folder, result)."""
    tmp_path = tmp_path_factory.mktemp("api")
    make_dataset(tmp_path / "data", per_set=6)
    result = multilabel.train(str(tmp_path / "data"), output_dir=str(tmp_path / "run"),
                              module=tiny_module, model_dir=str(tmp_path / "model"),
                              bottleneck_dir=str(tmp_path / "bottlenecks"), **OPTIONS)
    return tmp_path / "run", result


def predictions(folder):
    return [json.loads(line) for line in (folder / "test_predictions.jsonl").open()]


def test_train_returns_its_measures_and_keeps_every_output_in_the_run_folder(run):
    folder, result = run
    assert result.measures["test"]["mean_average_precision"] > 0.9
    assert result.measures == json.loads((folder / "metrics.json").read_text())
    assert result.output_dir == str(folder)
    assert {"output_graph", "output_labels", "output_thresholds", "metrics_file",
            "test_predictions", "tflite_output_file", "report_page"} <= set(result.outputs)
    assert all(path.startswith(str(folder)) for path in result.outputs.values())
    assert {"output_graph.pb", "output_graph.tflite", "output_labels.txt",
            "output_thresholds.txt", "output_thresholds.json", "run_manifest.json",
            "checkpoints", "retrain_logs", "report.html"} <= set(os.listdir(folder))
    manifest = json.loads((folder / "run_manifest.json").read_text())
    assert manifest["run_id"] == result.measures["run_id"]
    assert set(manifest["files"]) == {"graph", "tflite", "labels", "thresholds", "rule",
                                      "metrics", "test_predictions", "label_issues",
                                      "near_duplicates", "model_card", "review_page",
                                      "report_page"}


def test_bad_options_raise_instead_of_exiting(tmp_path, tiny_module):
    with pytest.raises(multilabel.UserError, match="--validation_percentage must be in"):
        multilabel.train(str(tmp_path), output_dir=str(tmp_path / "run"), module=tiny_module,
                         validation_percentage=100)
    with pytest.raises(multilabel.UserError, match="dataset_train.lst: no training list"):
        multilabel.train(str(tmp_path), output_dir=str(tmp_path / "run"), module=tiny_module,
                         model_dir=str(tmp_path / "model"))
    with pytest.raises(TypeError):
        multilabel.train(str(tmp_path), output_dir=str(tmp_path / "run"), no_such_option=1)
    assert not (tmp_path / "run").exists()


def test_classifier_predicts_what_the_run_measured_from_paths_images_and_arrays(run):
    folder, _ = run
    classifier = multilabel.Classifier.load(folder)
    assert classifier.engine == "tflite"
    assert classifier.class_names == ("red", "green", "blue")
    expected = predictions(folder)[:4]
    paths = [p["image"] for p in expected]
    for images in (paths, [Image.open(p) for p in paths],
                   [np.asarray(Image.open(p)) for p in paths],
                   [np.asarray(Image.open(p), np.float32) / 255 for p in paths]):
        got = classifier.predict(images)
        assert [p.image for p in got] == images
        for mine, theirs in zip(got, expected):
            np.testing.assert_allclose(list(mine.probabilities.values()),
                                       theirs["probabilities"], atol=1e-4)
            assert mine.labels == theirs["predicted"]
    assert classifier.predict(paths[0])[0].labels == expected[0]["predicted"]  # one path


def test_the_tflite_model_and_the_frozen_graph_agree_within_1e4(run):
    folder, _ = run
    paths = [p["image"] for p in predictions(folder)]
    lite = multilabel.Classifier.load(folder).predict(paths)
    graph = multilabel.Classifier.load(folder, engine="tf").predict(paths)
    assert multilabel.Classifier.load(folder, engine="tf").engine == "tf"
    difference = max(abs(a.probabilities[c] - b.probabilities[c])
                     for a, b in zip(lite, graph) for c in a.probabilities)
    assert difference < 1e-4


def test_a_bad_image_raises_naming_it(run, tmp_path):
    folder, _ = run
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = predictions(folder)[0]["image"]
    with pytest.raises(multilabel.UserError, match=f"{bad}: cannot decode image"):
        multilabel.Classifier.load(folder).predict([good, str(bad)])
    with pytest.raises(multilabel.UserError, match="<image 0>: an array of shape"):
        multilabel.Classifier.load(folder).predict([np.zeros((4, 4, 7), np.uint8)])


def test_an_image_under_every_threshold_gets_the_closest_label_unless_allow_empty(run):
    folder, _ = run
    image = predictions(folder)[0]["image"]
    ruled = multilabel.Classifier.load(folder, threshold=0.999999)  # every class under it
    assert ruled.never_empty
    probabilities = ruled.predict(image)[0].probabilities
    assert ruled.predict(image)[0].labels == [max(probabilities, key=probabilities.get)]
    assert multilabel.Classifier.load(folder, threshold=0.999999,
                                      allow_empty=True).predict(image)[0].labels == []


def test_label_image_reads_a_run_folder(run, capsys):
    folder, _ = run
    expected = predictions(folder)[:3]
    status = label_image.main(["--model_dir", str(folder), "--output_format", "json",
                               *[p["image"] for p in expected]])
    assert status == 0
    for line, theirs in zip(capsys.readouterr().out.splitlines(), expected):
        np.testing.assert_allclose(json.loads(line)["probabilities"], theirs["probabilities"],
                                   atol=1e-4)


LABEL_AND_LIST_MODULES = """
import sys
import label_image
status = label_image.main(sys.argv[1:])
print("tensorflow" in sys.modules, status)
"""


def test_label_image_on_the_tflite_model_never_imports_tensorflow(run):
    folder, _ = run
    images = [p["image"] for p in predictions(folder)[:3]]
    for engine, imported in (("auto", "False"), ("tf", "True")):
        process = subprocess.run(
            [sys.executable, "-c", LABEL_AND_LIST_MODULES, "--model_dir", str(folder),
             "--engine", engine, "--quiet", *images],
            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
        assert process.stdout.splitlines()[-1] == f"{imported} 0", process.stderr
        assert process.stderr == ""  # nor any start-up noise


KILL_DURING_EXPORT = """
import os, signal, sys
import numpy as np
from multilabel.base import atomic
from multilabel.base.options import TrainOptions, resolve
from multilabel.export import stage

module, folder, kill_after = sys.argv[1:]
replace = os.replace

def replace_then_die(source, target):
    replace(source, target)
    if os.path.basename(target) == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

atomic.os.replace = replace_then_die
rng = np.random.default_rng(1)
trained = stage.TrainedModel(module, 32, 32, rng.normal(size=(24, 2)).astype(np.float32),
                             np.zeros(2, np.float32), "final_result")
outputs = resolve(TrainOptions(output_dir=folder, saved_model_dir=""))
with atomic.recording():  # as run_guard.guarded records a run's writes
    stage.write_outputs(outputs, trained, stage.Results(
        ("cat", "dog"), np.array([0.5, 0.5]), (), np.zeros((0, 2)), {})).write_manifest()
"""


@pytest.mark.parametrize("kill_after, refused", [
    # The new graph beside the old run's files: the graph is refused; the old run's
    # TFLite model, labels and thresholds are still one whole set, and are used.
    ("output_graph.pb", {"tf": "output_graph.pb is", "auto": None}),
    ("output_labels.txt", {"tf": "output_graph.pb, output_labels.txt are",
                           "auto": "output_graph.tflite, output_labels.txt are"}),
])
def test_a_kill_during_export_never_lets_a_mixed_set_be_used(
        run, tmp_path, tiny_module, capsys, kill_after, refused):
    folder = tmp_path / "run"
    subprocess.run(["cp", "-r", str(run[0]), str(folder)], check=True)
    process = subprocess.run(
        [sys.executable, "-c", KILL_DURING_EXPORT, tiny_module, str(folder), kill_after],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr
    image = predictions(run[0])[0]["image"]
    for engine, named in refused.items():
        capsys.readouterr()
        status = label_image.main(["--model_dir", str(folder), "--engine", engine, image])
        err = capsys.readouterr().err
        if named is None:
            assert status == 0 and err == ""
            assert multilabel.Classifier.load(folder).class_names == ("red", "green", "blue")
            continue
        assert status == 2
        assert err.startswith(f"label_image.py: error: {folder / 'run_manifest.json'}: {named} not "
                              "the file")
        assert "the folder mixes two runs" in err
        with pytest.raises(multilabel.UserError, match="mixes two runs"):
            multilabel.Classifier.load(folder, engine=engine)


def test_a_finished_export_is_one_new_set(run, tmp_path, tiny_module):
    folder = tmp_path / "run"
    subprocess.run(["cp", "-r", str(run[0]), str(folder)], check=True)
    subprocess.run([sys.executable, "-c", KILL_DURING_EXPORT, tiny_module, str(folder),
                    "never"], cwd=REPO, env=ENV, check=True, capture_output=True, timeout=300)
    classifier = multilabel.Classifier.load(folder)
    assert classifier.class_names == ("cat", "dog")
    assert classifier.never_empty is False  # the new run's rule, written with its thresholds


def test_a_stray_tflite_model_the_manifest_does_not_list_is_not_used(run, tmp_path):
    folder = tmp_path / "run"
    subprocess.run(["cp", "-r", str(run[0]), str(folder)], check=True)
    manifest = json.loads((folder / run_folder.MANIFEST).read_text())
    del manifest["files"]["tflite"]
    (folder / run_folder.MANIFEST).write_text(json.dumps(manifest))
    assert multilabel.Classifier.load(folder).engine == "tf"
    with pytest.raises(multilabel.UserError, match="no TFLite model"):
        multilabel.Classifier.load(folder, engine="tflite")


def test_import_multilabel_is_light():
    process = subprocess.run(
        [sys.executable, "-c", "import sys, multilabel; multilabel.Classifier; "
         "print(sorted(m for m in ('tensorflow', 'PIL', 'ai_edge_litert') if m in sys.modules))"],
        cwd=REPO, env=ENV, capture_output=True, text=True, check=True, timeout=120)
    # LiteRT only once a TFLite model is loaded, and never TensorFlow.
    assert process.stdout.strip() == "['PIL']"


def test_each_output_goes_into_the_run_folder_unless_its_own_option_names_a_path(tmp_path):
    paths = api.resolve(multilabel.TrainOptions(output_dir="runs/a",
                                                metrics_file="elsewhere/m.json"))
    assert paths.output_graph == os.path.join("runs/a", "output_graph.pb")
    assert paths.tflite_output_file == os.path.join("runs/a", "output_graph.tflite")
    assert paths.checkpoint_path == os.path.join("runs/a", "checkpoints", "retrain")
    assert paths.label_issues == os.path.join("runs/a", "label_issues.csv")
    assert paths.metrics_file == "elsewhere/m.json"
    beside = api.resolve(multilabel.TrainOptions(output_graph="g/graph.pb"))
    assert beside.output_labels == os.path.join("g", "output_labels.txt")
    default = api.resolve(multilabel.TrainOptions())
    assert default.output_graph == os.path.join(REPO, "MODEL_DETAILS", "output_graph.pb")
    assert default.model_dir == os.path.join(REPO, "MODEL")
    assert default.image_dir == os.path.join(REPO, "DATASET")
    # Every output with a usual name is resolved: none is left None.
    assert all(getattr(default, name) for name in options.output_files())


def test_retrain_flags_are_the_options_with_their_defaults(tmp_path):
    given, verbosity = retrain.parse_args(["--output_dir", "runs/b", "--learning_rate", "0.1"])
    assert given == {"output_dir": "runs/b", "learning_rate": 0.1} and verbosity == "INFO"
    assert multilabel.TrainOptions.from_preset(**given) == multilabel.TrainOptions(
        output_dir="runs/b", learning_rate=0.1)
    assert retrain.parse_args([]) == ({}, "INFO")
    # Every option is a flag, and every flag is an option (or the log level).
    flags = set(re.findall(r"\[--(\w+)", retrain.parser().format_usage()))
    assert flags == {f.name for f in options.fields()} | {"logging_verbosity"}


def test_every_option_parses_its_flag_text_to_the_type_of_its_default():
    for field in options.fields():
        if isinstance(field.default, bool) or field.default is None:
            continue
        text = ",".join(field.default) if isinstance(field.default, tuple) else str(
            field.default)
        given, _ = retrain.parse_args([f"--{field.name}", text])
        assert given == {field.name: field.default}, field.name


def test_train_starts_tensorflow_quietly_and_raises_its_error():
    process = subprocess.run(
        [sys.executable, "-c", "import multilabel\ntry:\n    multilabel.train('no_such_dir', "
         "output_dir='unused')\nexcept multilabel.UserError as e:\n    print(e)"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert process.stdout.startswith("no_such_dir: dataset folder not found (looked for "
                                     + os.path.join(REPO, "no_such_dir") + ")")
    assert start_up_lines(process.stderr) == [], process.stderr


def test_the_frozen_graph_path_is_quiet_from_python_too(run):
    folder, _ = run
    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.run(
        [sys.executable, "-c", "import sys, multilabel\nc = multilabel.Classifier.load("
         "sys.argv[1], engine='tf')\nprint(c.predict(sys.argv[2])[0].labels)", str(folder),
         predictions(folder)[0]["image"]],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0 and process.stderr == "", process.stderr


def test_a_missing_run_folder_is_named_without_starting_tensorflow(tmp_path):
    process = subprocess.run(
        [sys.executable, "-c", "import sys, multilabel\ntry:\n    multilabel.Classifier.load("
         "sys.argv[1])\nexcept multilabel.UserError as e:\n    print(e)\n"
         "print('tensorflow' in sys.modules)", str(tmp_path / "nowhere")],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert process.stdout.splitlines() == [
        f"{tmp_path / 'nowhere'}: run folder not found (retrain.py --output_dir writes one)",
        "False"]


def test_a_preset_sets_its_recipe_and_flags_given_beside_it_win():
    best = multilabel.TrainOptions.from_preset(**retrain.parse_args(["--preset", "best"])[0])
    assert best.fine_tune and best.preset == "best"
    assert best.tfhub_module == options.PRESETS["best"]["tfhub_module"]
    # A flag given beside the preset wins, even one given at the default's value.
    default_layers = multilabel.TrainOptions().fine_tune_layers
    given, _ = retrain.parse_args(["--preset", "best", "--fine_tune_layers",
                                   str(default_layers)])
    assert multilabel.TrainOptions.from_preset(**given).fine_tune_layers == default_layers
    assert best.fine_tune_layers != default_layers
    assert multilabel.TrainOptions.from_preset("default") == multilabel.TrainOptions()
    assert multilabel.TrainOptions.from_preset("best", tfhub_module="a,b").tfhub_module == (
        "a", "b")
    with pytest.raises(multilabel.UserError, match="no preset 'fastest'"):
        multilabel.TrainOptions.from_preset("fastest")
