"""retrain.py end to end on the tiny module: data_generation -> retrain -> label_image.

The images are made here: each of three classes (red, green, blue) is present when its
colour fills a vertical stripe of the image, so an image can carry one, two or three
labels. The tiny module's quadrant means tell the stripes apart.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

import data_generation
import label_image
import retrain
from multilabel.data import listfile
from multilabel.evaluation import near_duplicates
from multilabel.labelling import ranking
from multilabel.report import plots
from tests.report_html import assert_self_contained, decode_data_uri

COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]
LABEL_SETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1)]
NAMES = "red,green,blue"


def make_dataset(folder, per_set=10, seed=0):
    """Images with stripes of the present colours, plus labels.json, then the lists."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    rows = []
    for n in range(per_set * len(LABEL_SETS)):
        flags = LABEL_SETS[n % len(LABEL_SETS)]
        colours = [c for c, f in zip(COLOURS, flags) if f]
        width = 36
        pixels = np.zeros((30, width, 3), np.uint8)
        for s, colour in enumerate(colours):
            pixels[:, s * width // len(colours):(s + 1) * width // len(colours)] = colour
        noise = rng.integers(-15, 16, pixels.shape)
        pixels = np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{n + 1}.jpg", quality=95)
        rows.append(json.dumps([1 if f else -1 for f in flags]))
    (folder / "labels.json").write_text("\n".join(rows))
    assert data_generation.main(["--image_dir", str(folder), "--class_names", NAMES,
                                 "--split", "0.75", "--seed", "1"]) == 0
    return folder


def retrain_flags(tmp_path, module, *extra):
    out = tmp_path / "details"
    return ["--image_dir", str(tmp_path / "data"), "--tfhub_module", module,
            "--model_dir", str(tmp_path / "model"),
            "--bottleneck_dir", str(out / "bottlenecks"),
            "--output_graph", str(out / "output_graph.pb"),
            "--output_labels", str(out / "output_labels.txt"),
            "--output_thresholds", str(out / "output_thresholds.txt"),
            "--metrics_file", str(out / "metrics.json"),
            "--test_predictions", str(out / "test_predictions.jsonl"),
            "--summaries_dir", str(out / "logs"),
            "--checkpoint_path", str(out / "checkpoints" / "retrain"),
            "--intermediate_output_graphs_dir", str(out / "intermediate"),
            "--report_page", str(out / "report.html"),
            "--how_many_training_steps", "300", "--learning_rate", "0.05",
            "--eval_step_interval", "50", "--validation_percentage", "20",
            *extra]


def corrupt_first_training_label_set(folder):
    """Give the first training image the complement of its labels, as a careless
    labeller might; return its list entry (the corrupted one)."""
    path = folder / "dataset_train.lst"
    first, *rest = listfile.read_list_file(path)
    corrupted = dataclasses.replace(first, flags=tuple(1 - f for f in first.flags))
    listfile.write_list_file(path, [corrupted, *rest])
    return corrupted


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_module):
    """One full run, shared by the tests that only read its outputs; one training
    image's labels are wrong."""
    tmp_path = tmp_path_factory.mktemp("run")
    make_dataset(tmp_path / "data")
    corrupt_first_training_label_set(tmp_path / "data")
    assert retrain.main(retrain_flags(tmp_path, tiny_module, "--num_classes", "3")) == 0
    return tmp_path


def test_exports_a_graph_labels_thresholds_and_metrics(trained):
    out = trained / "details"
    assert (out / "output_labels.txt").read_text() == "red\ngreen\nblue\n"
    thresholds = [float(t) for t in (out / "output_thresholds.txt").read_text().split()]
    assert len(thresholds) == 3 and all(0 < t < 1 for t in thresholds)
    report = json.loads((out / "metrics.json").read_text())
    assert report["test"]["mean_average_precision"] > 0.95
    assert report["test"]["label_accuracy"] > 0.9
    assert report["validation"]["num_instances"] > 0
    assert report["export_check_max_difference"] < 1e-5
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((out / "output_graph.pb").read_bytes())
    names = {node.name for node in graph_def.node}
    assert {"Placeholder", "final_result"} <= names
    assert not any(node.op in ("VarHandleOp", "VariableV2") for node in graph_def.node)


def test_label_image_reproduces_the_probabilities_retrain_reported(trained, capsys):
    out = trained / "details"
    predictions = [json.loads(line) for line in
                   (out / "test_predictions.jsonl").read_text().splitlines()]
    images = [p["image"] for p in predictions[:5]]
    capsys.readouterr()
    assert label_image.main(["--graph", str(out / "output_graph.pb"), "--output_format", "json",
                             *[arg for image in images for arg in ("--image", image)]]) == 0
    labelled = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in labelled] == images
    for mine, theirs in zip(predictions, labelled):
        np.testing.assert_allclose(theirs["probabilities"], mine["probabilities"], atol=1e-5)
        assert theirs["predicted"] == mine["predicted"]


def test_predicted_label_sets_follow_the_stripes(trained):
    out = trained / "details"
    predictions = [json.loads(line) for line in
                   (out / "test_predictions.jsonl").read_text().splitlines()]
    truth = {e.path: e.flags for e in listfile.read_list_file(trained / "data" / "dataset_test.lst")}
    right = 0
    for p in predictions:
        flags = truth[os.path.relpath(p["image"], trained / "data").replace(os.sep, "/")]
        right += p["predicted"] == [n for n, f in zip(NAMES.split(","), flags) if f]
    assert right >= 0.8 * len(predictions)


def test_the_report_page_shows_the_run_and_embeds_everything(trained):
    out = trained / "details"
    text = (out / "report.html").read_text(encoding="utf-8")
    page = assert_self_contained(text)
    assert page.sections == ["run", "measures", "curves", "calibration", "wrong", "correct",
                             "heatmaps", "labels", "near-duplicates", "review"]
    assert ("a", "href", "review.html") in page.urls
    images = [decode_data_uri(src) for srcs in page.images.values() for src in srcs]
    assert len(images) == sum(len(srcs) for srcs in page.images.values())
    assert [i.format for i in images[:4]] == ["PNG"] * 4  # training curve, 3 PR curves
    assert len(page.images["curves"]) == 4
    # The cards are the test images whose label set test_predictions.jsonl calls wrong.
    predictions = [json.loads(line) for line in
                   (out / "test_predictions.jsonl").read_text().splitlines()]
    entries = listfile.read_list_file(trained / "data" / "dataset_test.lst")
    truth = {e.path: [n for n, f in zip(NAMES.split(","), e.flags) if f] for e in entries}
    wrong = sum(p["predicted"] != truth[os.path.relpath(p["image"], trained / "data")]
                for p in predictions)
    assert page.cards.get("wrong", 0) == min(wrong, 100)
    assert page.cards["correct"] == min(8, len(predictions) - wrong)
    assert len(page.images["wrong"] if wrong else []) == page.cards.get("wrong", 0)
    report = json.loads((out / "metrics.json").read_text())
    assert f"kept step {report['best_step']}" in text
    for stage in ("data", "module", "bottlenecks", "training", "evaluation",
                  "export: frozen graph", "export: checks", "export: label issues"):
        assert f"<td>{stage}</td>" in text


def test_the_wrong_labels_come_first_in_label_issues_csv_and_on_the_page(trained):
    out = trained / "details"
    corrupted = listfile.read_list_file(trained / "data" / "dataset_train.lst")[0]
    true_flags = LABEL_SETS[(corrupted.index - 1) % len(LABEL_SETS)]
    names = NAMES.split(",")
    with open(out / "label_issues.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["image"].endswith(corrupted.path) and rows[0]["part"] == "train"
    assert rows[0]["suggested_add"] == "\t".join(
        n for n, t, g in zip(names, true_flags, corrupted.flags) if t and not g)
    assert rows[0]["suggested_remove"] == "\t".join(
        n for n, t, g in zip(names, true_flags, corrupted.flags) if g and not t)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores) and {r["part"] for r in rows} <= {"train", "test"}
    page = assert_self_contained((out / "report.html").read_text(encoding="utf-8"))
    assert page.cards["labels"] == min(len(rows), 100)


def test_a_class_with_three_positives_keeps_one_half_and_is_named(tmp_path, tiny_module,
                                                                   caplog):
    """Issue 32: a threshold chosen on 3 positives sits near 0 and floods new images
    (docs/data.md, "A class with few images"); the run gives the class 0.5 and says so."""
    folder = make_dataset(tmp_path / "data", per_set=4)
    kept = 0
    for name in (listfile.TRAIN_LIST, listfile.TEST_LIST):
        entries = []
        for e in listfile.read_list_file(folder / name):
            blue = e.flags[2] and name == listfile.TRAIN_LIST and kept < 3
            kept += bool(blue)
            entries.append(dataclasses.replace(e, flags=(*e.flags[:2], int(blue))))
        listfile.write_list_file(folder / name, entries)
    assert retrain.main(retrain_flags(tmp_path, tiny_module, "--how_many_training_steps", "20",
                                      "--eval_step_interval", "10")) == 0
    report = json.loads((tmp_path / "details" / "metrics.json").read_text())
    assert report["few_positives"] == {"blue": 3}
    assert report["thresholds"][2] == 0.5
    warning = next(r.getMessage() for r in caplog.records if "Class blue" in r.getMessage())
    assert "Class blue: only 3 positive image(s) to choose its threshold on (train " in warning
    assert ", test 0), under 8: threshold 0.5, not " in warning


def test_near_duplicates_csv_and_the_review_page_are_in_the_run_folder(trained):
    out = trained / "details"
    with open(out / "near_duplicates.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # Images of one label set differ only by noise: every one has near-duplicates.
    assert rows and all(float(r["similarity"]) >= near_duplicates.THRESHOLD for r in rows)
    assert {r["part"] for r in rows} <= {"train", "validation", "test"}
    assert {r["same_labels"] for r in rows} <= {"yes", "no"}
    text = (out / "review.html").read_text(encoding="utf-8")
    start = text.index('id="data"')
    data = json.loads(text[text.index(">", start) + 1:text.index("</script>", start)])
    corrupted = listfile.read_list_file(trained / "data" / "dataset_train.lst")[0]
    assert data["layout"] == "json" and data["classes"] == NAMES.split(",")
    assert len(data["files"]) == len(listfile.read_list_file(trained / "data" / "dataset.lst"))
    first = data["cards"][0]
    assert data["files"][first["images"][0]]["name"] == corrupted.path.removeprefix("images/")
    true_flags = LABEL_SETS[(corrupted.index - 1) % len(LABEL_SETS)]
    assert first["suggested"] == [int(f) for f in true_flags]


def test_label_image_ranks_photos_to_label_next_with_near_duplicates_last(trained, capsys):
    out = trained / "details"
    data = trained / "data"
    test = [str(data / e.path) for e in listfile.read_list_file(data / "dataset_test.lst")]
    capsys.readouterr()
    assert label_image.main(["--model_dir", str(out), "--rank", "uncertain", "--output_format",
                             "json", "--bottleneck_dir", str(out / "bottlenecks"),
                             "--labelled", str(data / "dataset_train.lst"),
                             "--review_page", str(trained / "next.html"), *test]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["image"] for r in rows) == sorted(test)
    thresholds = np.array([float(t) for t in (out / "output_thresholds.txt").read_text().split()])
    margins = ranking.margins(np.array([r["probabilities"] for r in rows]), thresholds)
    # Every test image has a near-duplicate among the training stripes: all go last, in
    # margin order.
    assert list(margins) == sorted(margins)
    page = (trained / "next.html").read_text(encoding="utf-8")
    start = page.index('id="data"')
    cards = json.loads(page[page.index(">", start) + 1:page.index("</script>", start)])["cards"]
    assert [c["kind"] for c in cards] == ["new"] * len(rows)
    assert [c["probs"][0] for c in cards] == [
        [round(p, 4) for p in r["probabilities"]] for r in rows]


def test_dedupe_leaves_the_leaked_test_images_out_of_the_measures(tmp_path, tiny_module):
    make_dataset(tmp_path / "data", per_set=4)
    assert retrain.main(retrain_flags(tmp_path, tiny_module, "--how_many_training_steps", "20",
                                      "--eval_step_interval", "10", "--dedupe")) == 0
    out = tmp_path / "details"
    with open(out / "near_duplicates.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    leaked = {r["image"] if r["part"] == "test" else r["other_image"] for r in rows
              if sorted([r["part"], r["other_part"]]) in (["test", "train"],
                                                          ["test", "validation"])}
    report = json.loads((out / "metrics.json").read_text())
    assert leaked
    every = report["test_with_near_duplicates"]["num_instances"]
    assert every == len(listfile.read_list_file(tmp_path / "data" / "dataset_test.lst"))
    assert report.get("test", {"num_instances": 0})["num_instances"] == every - len(leaked)


def test_a_report_page_that_fails_is_one_warning_and_the_run_still_succeeds(
        tmp_path, tiny_module, caplog, monkeypatch):
    def broken(*args):
        raise RuntimeError("no plots today")

    monkeypatch.setattr(plots, "training_curve", broken)
    make_dataset(tmp_path / "data", per_set=4)
    assert retrain.main(retrain_flags(tmp_path, tiny_module, "--how_many_training_steps", "20",
                                      "--eval_step_interval", "10")) == 0
    out = tmp_path / "details"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings if "report page" in r.getMessage()] == [
        f"Could not write the report page {out / 'report.html'} (RuntimeError: no plots "
        "today); the other outputs are written"]
    assert (out / "metrics.json").is_file() and (out / "output_graph.pb").is_file()
    assert not any(name.startswith(".report.html") for name in os.listdir(out))
    assert not (out / "report.html").exists()


def test_a_second_run_computes_no_bottleneck(trained, tiny_module, caplog):
    caplog.set_level("INFO")
    assert retrain.main(retrain_flags(trained, tiny_module)) == 0
    assert "All 70 bottlenecks cached" in caplog.text


def test_each_run_writes_summaries_into_a_new_folder(trained):
    runs = sorted(os.listdir(trained / "details" / "logs"))
    assert len(runs) >= 1 and all(r.startswith("run-") for r in runs)
    folder = trained / "details" / "logs" / runs[0] / "validation"
    tags, plugins = {}, {}
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
            for value in event.summary.value:
                tags[value.tag] = value
                if value.metadata.plugin_data.plugin_name:  # written with a tag's first value
                    plugins[value.tag] = value.metadata.plugin_data.plugin_name
    assert tags["validation/mean_average_precision"].simple_value > 0.5
    curve = tf.make_ndarray(tags["pr_curves/blue"].tensor)
    assert curve.shape == (6, 51)  # TP, FP, TN, FN, precision, recall at 51 thresholds
    assert plugins["pr_curves/blue"] == "pr_curves"


def test_num_classes_that_disagrees_with_the_lists_is_one_clear_error(trained, tiny_module, capsys):
    assert retrain.main(retrain_flags(trained, tiny_module, "--num_classes", "4")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "dataset_train.lst:1: has 3 flags per line but --num_classes is 4" in err[0]


def test_missing_lists_name_the_file(tmp_path, tiny_module, capsys):
    (tmp_path / "data").mkdir()
    assert retrain.main(retrain_flags(tmp_path, tiny_module)) == 2
    assert "dataset_train.lst: no training list" in capsys.readouterr().err


def test_bad_flag_values_are_refused_before_any_work(tmp_path, tiny_module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        retrain.main(retrain_flags(tmp_path, tiny_module, "--validation_percentage", "100"))
    assert exit_info.value.code == 2
    assert "--validation_percentage must be in [0, 100)" in capsys.readouterr().err


def test_saved_model_tflite_intermediate_graphs_and_misclassified_list(
        tmp_path, tiny_module, capsys):
    make_dataset(tmp_path / "data", per_set=4)
    saved = tmp_path / "saved"
    tflite = tmp_path / "model.tflite"
    assert retrain.main(retrain_flags(
        tmp_path, tiny_module, "--how_many_training_steps", "100",
        "--intermediate_store_frequency", "50", "--saved_model_dir", str(saved),
        "--tflite_output_file", str(tflite), "--print_misclassified_test_images")) == 0
    assert sorted(os.listdir(tmp_path / "details" / "intermediate")) == [
        "intermediate_100.pb", "intermediate_50.pb"]
    assert "test images with a wrong label set" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(saved))
    image = np.full((1, 32, 32, 3), 0.5, np.float32)
    prediction = loaded.signatures["serving_default"](image=tf.constant(image))["prediction"]
    assert prediction.shape == (1, 3)
    interpreter = Interpreter(model_path=str(tflite))
    runner = interpreter.get_signature_runner("serving_default")
    np.testing.assert_allclose(runner(image=image)["prediction"], prediction.numpy(), atol=1e-5)


def test_distortions_train_from_fresh_images(tmp_path, tiny_module):
    make_dataset(tmp_path / "data", per_set=4)
    assert retrain.main(retrain_flags(
        tmp_path, tiny_module, "--how_many_training_steps", "20", "--eval_step_interval", "10",
        "--train_batch_size", "8", "--flip_left_right", "--random_crop", "10",
        "--random_scale", "10", "--random_brightness", "10")) == 0
    report = json.loads((tmp_path / "details" / "metrics.json").read_text())
    assert report["best_step"] in (10, 20)


FRESH_PROCESS_LOAD = """
import json, sys
import numpy as np
import tensorflow as tf
from PIL import Image

graph_path, predictions_path = sys.argv[1:]
graph_def = tf.compat.v1.GraphDef()
graph_def.ParseFromString(open(graph_path, "rb").read())
graph = tf.Graph()
with graph.as_default():
    tf.compat.v1.import_graph_def(graph_def, name="")
size = graph.get_tensor_by_name("Placeholder:0").shape[1]
predictions = [json.loads(line) for line in open(predictions_path)]
images = np.stack([np.asarray(Image.open(p["image"]).convert("RGB").resize(
    (size, size), Image.BILINEAR), np.float32) / 255 for p in predictions])
with tf.compat.v1.Session(graph=graph) as sess:
    probs = sess.run("final_result:0", {"Placeholder:0": images})
print(np.abs(probs - [p["probabilities"] for p in predictions]).max())
"""


def test_the_graph_loads_in_a_fresh_process_without_project_code(trained, tmp_path):
    out = trained / "details"
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS_LOAD)
    result = subprocess.run(
        [sys.executable, str(script), str(out / "output_graph.pb"),
         str(out / "test_predictions.jsonl")],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert float(result.stdout.strip().splitlines()[-1]) < 1e-5


def test_help_names_every_built_in_module_and_the_rules_the_code_follows(capsys):
    from multilabel.features.feature_modules import known_modules

    with pytest.raises(SystemExit) as exit_info:
        retrain.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in known_modules())
    assert "out-of-fold predictions of all training images" in text
    assert "kept unless the phase 1 model scores at least as high" in text
    assert "applies ONLY when --image_dir has no dataset_test.lst" in text


def test_a_kaggle_style_csv_trains_and_labels_under_the_users_names(tmp_path, tiny_module,
                                                                     capsys):
    """Images renamed to ids in train-jpg/, a shuffled image_name,tags CSV: the run's
    outputs and label_image.py's CSV name the user's files."""
    data = make_dataset(tmp_path / "data")
    names = NAMES.split(",")
    rows = []
    for entry in listfile.read_list_file(data / listfile.FULL_LIST):
        target = data / "train-jpg" / f"img_{entry.index:05d}.jpg"
        target.parent.mkdir(exist_ok=True)
        os.rename(data / entry.path, target)
        rows.append(f"img_{entry.index:05d},{' '.join(n for n, f in zip(names, entry.flags) if f)}")
    (data / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(reversed(rows)))
    assert data_generation.main(["--image_dir", str(data), "--labels", str(data / "train_v2.csv"),
                                 "--images", "train-jpg", "--suffix", ".jpg",
                                 "--split", "0.75", "--seed", "1"]) == 0
    assert retrain.main(retrain_flags(tmp_path, tiny_module)) == 0
    details = tmp_path / "details"
    predictions = [json.loads(line) for line in open(details / "test_predictions.jsonl")]
    assert all("/train-jpg/img_" in p["image"] for p in predictions)
    metrics = json.load(open(details / "metrics.json"))
    assert metrics["test"]["mean_average_precision"] > 0.9  # the labels followed the images
    capsys.readouterr()
    assert label_image.main(["-q", "--graph", str(details / "output_graph.pb"),
                             "--image_dir", str(data / "train-jpg"), "--output_format",
                             "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "image,blue,green,red,predicted"  # class names from the tags, sorted
    assert out[1].startswith(str(data / "train-jpg" / "img_00001.jpg") + ",")
    assert out[1].endswith(",red")  # image 1 has the first label set: red alone
