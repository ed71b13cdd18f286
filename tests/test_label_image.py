"""label_image.py end to end, on a tiny frozen graph and solid-colour images made here.

The graph averages each colour channel and gives class c the probability
sigmoid(8 * mean_c - 4), with classes red, green, blue: a solid colour's expected
probabilities are computable by hand.
"""

import csv
import io
import json
import logging
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

import data_generation  # noqa: E402
import label_image  # noqa: E402
from multilabel.base import project  # noqa: E402
from multilabel.data import listfile  # noqa: E402
from multilabel.data.images import load_image  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ERROR = "label_image.py: error: "  # what every error line of the command starts with
SIZE = 4
LABELS = ("red", "green", "blue")
RED, MAGENTA, GREY = (255, 0, 0), (255, 0, 255), (128, 128, 128)


def expected(rgb, mean=0.0, std=1.0):
    channels = (np.asarray(rgb, np.float64) / 255 - mean) / std
    return 1 / (1 + np.exp(-(8 * channels - 4)))


def write_graph(path, batch=None):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [batch, SIZE, SIZE, 3], name="Placeholder")
        means = tf.reduce_mean(images, axis=[1, 2])
        logits = tf.matmul(means, tf.constant(8 * np.eye(3, dtype=np.float32))) - 4
        tf.sigmoid(logits, name="final_result")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def write_image(path, rgb, size=(10, 7)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)
    return path


@pytest.fixture
def model(tmp_path):
    """A MODEL_DETAILS folder as retrain.py leaves it; returns the flags to use it."""
    details = tmp_path / "MODEL_DETAILS"
    details.mkdir()
    write_graph(details / "output_graph.pb")
    (details / "output_labels.txt").write_text("".join(f"{n}\n" for n in LABELS))
    # Blue needs 0.99, so magenta (red 0.982, blue 0.982) is predicted red only.
    (details / "output_thresholds.txt").write_text("0.5\n0.5\n0.99\n")
    return ["--graph", str(details / "output_graph.pb")]


def run(argv, capsys):
    status = label_image.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def vector(text):
    """The probabilities of the text format's per-label lines (`red  0.98201  (threshold
    0.5)`), in LABELS order."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] in LABELS and words[2] == "(threshold":
            found[words[0]] = float(words[1])
    return np.array([found[name] for name in LABELS])


def test_single_image_prints_vector_sorted_labels_and_prediction(tmp_path, model, capsys):
    image = write_image(tmp_path / "magenta.png", MAGENTA)
    status, out, _ = run(model + ["--image", str(image)], capsys)
    assert status == 0
    lines = out.splitlines()
    np.testing.assert_allclose(vector(out), expected(MAGENTA), atol=1e-5)
    assert [line.split()[0] for line in lines[:3]] == ["red", "blue", "green"]
    assert lines[3] == "predicted: red"  # blue is under its 0.99 threshold
    assert len(lines) == 4


def test_prepares_images_like_training(tmp_path, model, capsys):
    """Any size, any content: the probabilities are the graph's on `load_image`'s pixels."""
    image = tmp_path / "gradient.jpg"
    pixels = np.linspace(0, 255, 30 * 20 * 3).reshape(20, 30, 3).astype(np.uint8)
    Image.fromarray(pixels).save(image, quality=90)
    status, out, _ = run(model + ["--image", str(image), "--output_format", "json"], capsys)
    assert status == 0
    means = load_image(image, SIZE, SIZE).mean(axis=(0, 1))
    want = 1 / (1 + np.exp(-(8 * means.astype(np.float64) - 4)))
    np.testing.assert_allclose(json.loads(out)["probabilities"], want, atol=1e-5)


def test_several_images_are_named_in_order(tmp_path, model, capsys):
    red = write_image(tmp_path / "red.png", RED)
    grey = write_image(tmp_path / "grey.png", GREY)
    status, out, _ = run(model + ["--image", str(red), "--image", str(grey)], capsys)
    assert status == 0
    headers = [line for line in out.splitlines() if line.startswith("==>")]
    assert headers == [f"==> {red} <==", f"==> {grey} <=="]
    blocks = out.split("\n\n")
    assert blocks[0].splitlines()[-1] == "predicted: red"
    # Grey 128/255 gives 0.5039 for each class: over red's and green's 0.5, not blue's 0.99.
    assert blocks[1].splitlines()[-1] == "predicted: red, green"
    np.testing.assert_allclose(vector(blocks[1]), expected(GREY), atol=1e-5)


def test_folder_labels_image_files_sorted(tmp_path, model, capsys):
    folder = tmp_path / "photos"
    write_image(folder / "b.png", RED)
    write_image(folder / "a.jpg", GREY)
    (folder / "notes.txt").write_text("not an image")
    (folder / "._a.jpg").write_bytes(b"macOS resource fork")
    for argv in ([str(folder)], ["--image_dir", str(folder)], ["--image", str(folder)]):
        status, out, _ = run(model + argv + ["--output_format", "csv"], capsys)
        assert status == 0
        rows = list(csv.reader(io.StringIO(out)))
        assert [row[0] for row in rows[1:]] == [str(folder / "a.jpg"), str(folder / "b.png")]


def test_a_folder_is_searched_through_its_subfolders_unless_top_level_only(tmp_path, model,
                                                                          capsys):
    """A camera roll in dated folders, or images/<label>/, is labelled whole (issue 32)."""
    folder = tmp_path / "roll"
    write_image(folder / "top.png", RED)
    write_image(folder / "2024-05" / "b.png", GREY)
    write_image(folder / "2024-05" / "deeper" / "c.png", MAGENTA)
    status, out, _ = run(model + [str(folder), "--output_format", "json"], capsys)
    assert status == 0
    assert [json.loads(line)["image"] for line in out.splitlines()] == [
        str(folder / "2024-05" / "b.png"), str(folder / "2024-05" / "deeper" / "c.png"),
        str(folder / "top.png")]
    status, out, _ = run(model + ["--image_dir", str(folder), "--top_level_only",
                                  "--output_format", "json"], capsys)
    assert status == 0
    assert [json.loads(line)["image"] for line in out.splitlines()] == [str(folder / "top.png")]


def test_the_csv_given_back_to_data_generation_makes_the_same_classes(tmp_path, model,
                                                                      capsys):
    """Issue 32's done-when: a run on classes named `black & white` and `sun set` (and
    `désert`), its CSV given back to data_generation.py, yields the same classes."""
    names = ("black & white", "sun set", "désert")
    (tmp_path / "MODEL_DETAILS" / "output_labels.txt").write_text(
        "".join(f"{n}\n" for n in names), encoding="utf-8")
    photos = tmp_path / "photos"
    for i, rgb in enumerate([RED, MAGENTA, GREY] * 2):
        write_image(photos / "images" / f"{i}.png", rgb)
    status, out, _ = run(model + [str(photos / "images"), "--output_format", "csv"], capsys)
    assert status == 0
    (photos / "predicted.csv").write_text(out, encoding="utf-8")
    assert data_generation.main(["--image_dir", str(photos), "--labels", "predicted.csv"]) == 0
    assert listfile.read_class_names(photos / listfile.CLASS_NAMES_FILE) == list(names)
    flags = {e.path: e.flags for e in listfile.read_list_file(photos / listfile.FULL_LIST)}
    # Red: the first class; grey: the first two (blue needs 0.99); magenta: the first.
    assert flags["images/0.png"] == (1, 0, 0) and flags["images/2.png"] == (1, 1, 0)


def test_image_flag_mixes_files_and_folders_in_order(tmp_path, model, capsys):
    folder = tmp_path / "photos"
    write_image(folder / "b.png", RED)
    write_image(folder / "a.jpg", GREY)
    single = write_image(tmp_path / "magenta.png", MAGENTA)
    status, out, err = run(model + ["--image", str(single), "--image", str(folder),
                                    "--output_format", "json"], capsys)
    assert status == 0, err
    assert [json.loads(line)["image"] for line in out.splitlines()] == \
        [str(single), str(folder / "a.jpg"), str(folder / "b.png")]


def test_image_flag_with_a_folder_holding_no_image(tmp_path, model, capsys):
    (tmp_path / "empty").mkdir()
    status, out, err = run(model + ["--image", str(tmp_path / "empty")], capsys)
    assert status == 2 and out == ""
    assert err.startswith(f"{ERROR}{tmp_path / 'empty'}: no image files (")
    assert len(err.splitlines()) == 1


def test_list_file_paths_are_relative_to_its_folder(tmp_path, model, capsys):
    dataset = tmp_path / "DATASET"
    write_image(dataset / "images" / "1.png", RED)
    write_image(dataset / "images" / "2.png", MAGENTA)
    (dataset / "dataset_test.lst").write_text("1\t1\t0\t0\timages/1.png\n"
                                              "2\t1\t0\t1\timages/2.png\n")
    status, out, _ = run(model + ["--image_list", str(dataset / "dataset_test.lst"),
                                  "--output_format", "json"], capsys)
    assert status == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in records] == [str(dataset / "images" / "1.png"),
                                             str(dataset / "images" / "2.png")]


def test_plain_list_of_paths_gives_a_csv_of_predicted_sets(tmp_path, model, capsys):
    write_image(tmp_path / "photos" / "img_00001.png", GREY)
    write_image(tmp_path / "photos" / "img_00002.png", MAGENTA)
    (tmp_path / "photos" / "list.txt").write_text("img_00002.png\nimg_00001.png\n")
    status, out, _ = run(model + ["--image_list", str(tmp_path / "photos" / "list.txt"),
                                  "--output_format", "csv"], capsys)
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["image"], r["predicted"]) for r in rows] == [
        (str(tmp_path / "photos" / "img_00002.png"), "red"),
        (str(tmp_path / "photos" / "img_00001.png"), "red\tgreen")]


def test_json_records(tmp_path, model, capsys):
    image = write_image(tmp_path / "magenta.png", MAGENTA)
    status, out, _ = run(model + ["--image", str(image), "--output_format", "json"], capsys)
    assert status == 0
    record = json.loads(out)
    assert set(record) == {"image", "probabilities", "labels", "predicted"}
    assert record["image"] == str(image)
    assert record["labels"] == list(LABELS)
    assert record["predicted"] == ["red"]
    np.testing.assert_allclose(record["probabilities"], expected(MAGENTA), atol=1e-6)


def test_csv_header_and_rows(tmp_path, model, capsys):
    red = write_image(tmp_path / "red, bright.png", RED)
    status, out, _ = run(model + ["--image", str(red), "--output_format", "csv"], capsys)
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["image", *LABELS, "predicted"]
    assert rows[1][0] == str(red)
    np.testing.assert_allclose(np.array(rows[1][1:-1], float), expected(RED), atol=1e-6)
    assert rows[1][-1] == "red"
    assert len(rows) == 2


def test_threshold_flag_overrides_the_file(tmp_path, model, capsys):
    image = write_image(tmp_path / "magenta.png", MAGENTA)
    status, out, _ = run(model + ["--image", str(image), "--threshold", "0.5"], capsys)
    assert status == 0
    assert out.splitlines()[-1] == "predicted: red, blue"


def test_missing_default_thresholds_fall_back_to_one_half(tmp_path, model, capsys, caplog):
    (tmp_path / "MODEL_DETAILS" / "output_thresholds.txt").unlink()
    image = write_image(tmp_path / "magenta.png", MAGENTA)
    with caplog.at_level(logging.WARNING):
        status, out, _ = run(model + ["--image", str(image)], capsys)
    assert status == 0
    assert out.splitlines()[-1] == "predicted: red, blue"
    assert "output_thresholds.txt not found" in caplog.text


def test_explicit_thresholds_file_must_exist_and_fit(tmp_path, model, capsys):
    image = write_image(tmp_path / "red.png", RED)
    missing = tmp_path / "nowhere.txt"
    status, _, err = run(model + ["--image", str(image), "--thresholds", str(missing)], capsys)
    assert status == 2
    assert str(missing) in err
    short = tmp_path / "short.txt"
    short.write_text("0.5\n")
    status, _, err = run(model + ["--image", str(image), "--thresholds", str(short)], capsys)
    assert status == 2
    assert err.startswith(f"{ERROR}{short}: expected 3 thresholds")


def test_top_k_limits_label_lines(tmp_path, model, capsys):
    image = write_image(tmp_path / "magenta.png", MAGENTA)
    status, out, _ = run(model + ["--image", str(image), "--top_k", "1", "--threshold", "0.5"],
                         capsys)
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("red ")
    assert lines[1] == "predicted: red, blue"  # the set stays complete


def test_input_mean_and_std_apply_after_scaling(tmp_path, model, capsys):
    image = write_image(tmp_path / "grey.png", GREY)
    status, out, _ = run(model + ["--image", str(image), "--input_mean", "0.25",
                                  "--input_std", "2", "--output_format", "json"], capsys)
    assert status == 0
    np.testing.assert_allclose(json.loads(out)["probabilities"],
                               expected(GREY, mean=0.25, std=2), atol=1e-6)


def test_default_model_path_and_no_image(tmp_path, model, capsys, monkeypatch):
    """The model in the project's MODEL_DETAILS, wherever the current folder is (here the
    project is stood in for by tmp_path); no image given says what to give."""
    write_image(tmp_path / "elsewhere" / "photo.jpeg", RED)
    monkeypatch.setattr(project, "project_folder", lambda: str(tmp_path))
    monkeypatch.chdir(tmp_path / "elsewhere")
    status, out, _ = run(["photo.jpeg"], capsys)
    assert status == 0
    np.testing.assert_allclose(vector(out), expected(RED), atol=0.02)
    with pytest.raises(SystemExit) as stop:
        label_image.main([])
    assert stop.value.code == 2
    assert ("error: no image given: name image files or folders "
            "(label_image.py photo.jpg photos/), or give --image_list FILE"
            in capsys.readouterr().err)


def test_batch_keeps_order_and_labels_around_failures(tmp_path, model, capsys, caplog):
    """Seven images in batches of two, two of them bad: one graph load, the rest labelled."""
    paths = []
    for i in range(7):
        if i in (1, 4):
            path = tmp_path / f"{i}.jpg"
            path.write_text("not a JPEG")
        else:
            path = write_image(tmp_path / f"{i}.png", RED if i % 2 else GREY)
        paths.append(str(path))
    paths[4] = str(tmp_path / "missing.png")
    with caplog.at_level(logging.INFO):
        status, out, err = run(model + ["--batch_size", "2", "--output_format", "json", *paths],
                               capsys)
    assert status == 1
    assert [json.loads(line)["image"] for line in out.splitlines()] == \
        [p for i, p in enumerate(paths) if i not in (1, 4)]
    assert err.splitlines() == [f"{paths[1]}: cannot decode image: cannot identify image file "
                                f"{paths[1]!r}", f"{paths[4]}: image file not found"]
    assert caplog.text.count("Loaded graph") == 1


def test_fixed_batch_graph_pads_the_last_batch(tmp_path, model, capsys):
    graph = write_graph(tmp_path / "MODEL_DETAILS" / "output_graph.pb", batch=2)
    images = [str(write_image(tmp_path / f"{i}.png", c)) for i, c in enumerate([RED, GREY, RED])]
    status, out, _ = run(["--graph", str(graph), "--output_format", "csv", *images], capsys)
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))[1:]
    assert len(rows) == 3
    np.testing.assert_allclose(np.array(rows[2][1:-1], float), expected(RED), atol=1e-6)


@pytest.mark.parametrize("content", [None, b"plain text, not an image"])
def test_single_bad_image_is_bad_input(tmp_path, model, capsys, content):
    image = tmp_path / "photo.jpg"
    if content is not None:
        image.write_bytes(content)
    status, out, err = run(model + ["--image", str(image)], capsys)
    assert status == 2  # nothing could be labelled
    assert out == ""
    assert err.startswith(f"{image}: ")
    assert len(err.splitlines()) == 1


def test_graph_lacking_the_layer(tmp_path, model, capsys):
    image = write_image(tmp_path / "red.png", RED)
    status, out, err = run(model + ["--image", str(image), "--output_layer", "softmax"], capsys)
    assert status == 2
    assert out == ""
    assert err == (f"{ERROR}{model[1]}: the graph has no output layer 'softmax' "
                   "(candidates: final_result)\n")


def test_labels_that_do_not_fit_the_graph(tmp_path, model, capsys):
    image = write_image(tmp_path / "red.png", RED)
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\n")
    status, out, err = run(model + ["--image", str(image), "--labels", str(labels)], capsys)
    assert status == 2
    assert out == ""
    assert err.startswith(f"{ERROR}{labels}: 2 class names, but the graph")
    assert "gives 3 probabilities" in err


@pytest.mark.parametrize("flag, content, message", [
    ("--graph", None, "graph file not found"),
    ("--graph", b"\x00\x01 definitely not protobuf \xff\xff", "not a frozen TensorFlow graph"),
    ("--labels", None, "class names file not found"),
])
def test_missing_or_bad_model_files(tmp_path, model, capsys, flag, content, message):
    image = write_image(tmp_path / "red.png", RED)
    path = tmp_path / "other"
    if content is not None:
        path.write_bytes(content)
    status, out, err = run(model + ["--image", str(image), flag, str(path)], capsys)
    assert status == 2
    assert out == ""
    assert err.startswith(f"{ERROR}{path}: {message}")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("argv", [["--top_k", "0"], ["--threshold", "1.5"],
                                  ["--input_std", "0"], ["--output_format", "xml"]])
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        label_image.main(argv)
    assert exit_info.value.code == 2


def test_command_line(tmp_path, model):
    """The real command: a good and a missing image give one result, one line, status 1."""
    good = write_image(tmp_path / "test.jpeg", RED)
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "label_image.py"), *model, "--image", str(good),
         "--image", "missing.jpg", "--output_format", "json", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert process.returncode == 1
    assert json.loads(process.stdout)["predicted"] == ["red"]
    assert "missing.jpg: image file not found" in process.stderr.splitlines()
    assert "Traceback" not in process.stderr


def test_graph_needing_another_input(tmp_path, capsys):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="Placeholder")
        extra = tf.compat.v1.placeholder(tf.float32, [None, 3], name="extra")
        tf.sigmoid(tf.reduce_mean(images, axis=[1, 2]) + extra, name="final_result")
    path = tmp_path / "two_inputs.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    (tmp_path / "output_labels.txt").write_text("".join(f"{n}\n" for n in LABELS))
    image = write_image(tmp_path / "red.png", RED)
    status, out, err = run(["--graph", str(path), "--image", str(image), "--threshold", "0.5"],
                           capsys)
    assert status == 2
    assert out == ""
    assert err.startswith(f"{ERROR}{path}: running the graph failed")
    assert len(err.splitlines()) == 1
