"""Every bad input of issue 7, run through the three scripts as a user runs them.

Each case either works (a real image in an odd format, an odd but valid list file) or
ends with exit status 2 (1 for a label_image.py batch where some images failed) and
ONE line on stderr naming the file, the line where there is one, and what is wrong;
never a traceback. The scripts run as subprocesses with real command lines; the
TensorFlow ones start in parallel, since each spends seconds importing TensorFlow.
"""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from multilabel.data import listfile
from multilabel.base.errors import UserError
from multilabel.features.input_pipeline import image_batches
from tests.fake_images import png_header
from tests.tf_start_up import start_up_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACED = "with space é.jpg"

# Real images in odd formats: each must decode and be used.
ODD = {
    "gray.jpg": lambda: _save(Image.new("L", (40, 30), 128), "JPEG"),
    "cmyk.jpg": lambda: _save(Image.new("CMYK", (40, 30), (0, 100, 200, 0)), "JPEG"),
    "sixteen.png": lambda: _save(Image.fromarray(np.full((30, 40), 40000, np.uint16)), "PNG"),
    "rgba.png": lambda: _save(Image.new("RGBA", (40, 30), (10, 200, 10, 128)), "PNG"),
    "anim.gif": lambda: _animated_gif(),
    "one.png": lambda: _save(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"),
    "png_named.jpg": lambda: _save(Image.new("RGB", (40, 30), (200, 50, 20)), "PNG"),
    SPACED: lambda: _save(Image.new("RGB", (40, 30), (20, 50, 200)), "JPEG"),
}
# Files that are not usable images, with the words their one error line must hold.
BAD = {
    "zero.jpg": (lambda: b"", "cannot identify image file"),
    "truncated.jpg": (lambda: _truncated_jpeg(), "truncated"),
    "text.jpg": (lambda: b"hello, I am not an image\n", "cannot identify image file"),
    "bomb.png": (lambda: png_header(10_000, 10_000), "decompression bomb"),
    "hugebomb.png": (lambda: png_header(100_000, 100_000), "decompression bomb"),
}


def _save(img, fmt):
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def _animated_gif():
    frames = [Image.new("P", (40, 30), i) for i in (10, 20, 30)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def _truncated_jpeg():
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(pixels), "JPEG")
    return data[: len(data) // 2]


def write_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        make = ODD[name] if name in ODD else BAD[name][0]
        (folder / name).write_bytes(make())


def start(script, *args, cwd):
    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *map(str, args)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    """`(exit status, stdout, stderr lines)`; stderr holds no TensorFlow start-up line."""
    # Only a guard against a hang: ten TensorFlow processes started at once on two cores
    # that other jobs share have taken over two minutes.
    out, err = process.communicate(timeout=600)
    assert "Traceback" not in err, err
    assert not start_up_lines(err), err
    return process.returncode, out, err.splitlines()


def run(script, *args, cwd):
    return finish(start(script, *args, cwd=cwd))


class Started(dict):
    """Processes started together, by case name; `[name]` waits for one and keeps its result."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, subprocess.Popen):
            value = finish(value)
            self[name] = value
        return value

    def stop(self):
        """Kill the processes no test waited for (a test failed before)."""
        for value in self.values():
            if isinstance(value, subprocess.Popen):
                value.kill()
                value.communicate()


def one_error_line(result, status=2):
    code, _, err = result
    assert code == status, err
    assert len(err) == 1, err
    return err[0]


def error_message(result, command):
    """The one error line's message, after the `COMMAND: error: ` every command prints."""
    line = one_error_line(result)
    assert line.startswith(f"{command}: error: "), line
    return line.removeprefix(f"{command}: error: ")


# data_generation.py: no TensorFlow, so one process per case is cheap.

def _scene(folder, labels_text, images=("1.jpg", "2.jpg")):
    (folder / "images").mkdir(parents=True)
    for name in images:
        (folder / "images" / name).write_bytes(ODD["gray.jpg"]())
    (folder / "labels.json").write_text(labels_text)


def test_data_generation_labels_that_are_not_json(tmp_path):
    _scene(tmp_path / "data", "[1, -1]\n{oops\n")
    line = error_message(run("data_generation.py", "--image_dir", "data", cwd=tmp_path),
                         "data_generation.py")
    assert line.startswith("data/labels.json:2: not a JSON list")


def test_data_generation_labels_file_that_is_a_folder(tmp_path):
    _scene(tmp_path / "data", "[1]\n[1]")
    line = error_message(run("data_generation.py", "--image_dir", "data",
                             "--labels", "images", cwd=tmp_path), "data_generation.py")
    assert line.startswith("data/images: is a folder, not a labels file; for images/<label>/")


def test_data_generation_image_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    line = error_message(run("data_generation.py", "--image_dir", "file", cwd=tmp_path),
                         "data_generation.py")
    assert line.startswith("file: not a folder; --image_dir names the dataset folder")


def test_data_generation_zero_byte_image(tmp_path):
    _scene(tmp_path / "data", "[1]\n[1]")
    (tmp_path / "data" / "images" / "2.jpg").write_bytes(b"")
    line = error_message(run("data_generation.py", "--image_dir", "data", cwd=tmp_path),
                         "data_generation.py")
    assert line == "data/images/2.jpg: empty image file"


def test_data_generation_missing_image(tmp_path):
    _scene(tmp_path / "data", "[1]\n[1]\n[1]", images=("1.jpg", "3.jpg"))
    line = error_message(run("data_generation.py", "--image_dir", "data", cwd=tmp_path),
                         "data_generation.py")
    assert line == "data/labels.json:2: label line for image 2, but data/images has no image 2"


# label_image.py: one batch holds every image kind; the rest run at the same time.

@pytest.fixture(scope="module")
def label_runs(tmp_path_factory, retrain_runs):
    """Every label_image.py case, started at once (and with retrain.py's): results by name."""
    root = tmp_path_factory.mktemp("label")
    write_images(root / "images", [*ODD, *BAD])
    graph = tf.Graph()
    with graph.as_default():  # class c: sigmoid of the mean of colour channel c
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="Placeholder")
        tf.sigmoid(tf.reduce_mean(images, axis=[1, 2]), name="final_result")
    (root / "output_graph.pb").write_bytes(graph.as_graph_def().SerializeToString())
    (root / "output_labels.txt").write_text("red\ngreen\nblue\n")
    model = ["-q", "--graph", "output_graph.pb", "--threshold", "0.5"]

    batch = [f"images/{name}" for name in [*ODD, *BAD]] + ["images/missing.jpg"]
    good_list = "".join(f"{i}\t1\t0\t0\timages/{name}\r\n" for i, name in enumerate(ODD))
    (root / "crlf_bom.lst").write_bytes(("\ufeff" + good_list).encode())
    for name, path in [("escape", "../images/gray.jpg"), ("absolute", root / "images/gray.jpg")]:
        (root / f"{name}.lst").write_text(f"1\t1\t0\t0\timages/one.png\n2\t1\t0\t0\t{path}\n")
    (root / "duplicate.lst").write_text("1\t1\t0\t0\timages/one.png\n1\t0\t1\t0\timages/gray.jpg\n")
    cases = {
        "batch": [*model, "--output_format", "json", *batch, "--image_list", "crlf_bom.lst"],
        "all_bad": [*model, "images/text.jpg", "images/zero.jpg"],
        "labels_folder": [*model, "--labels", "images", "images/gray.jpg"],
        "list_folder": [*model, "--image_list", "images"],
        "escape": [*model, "--image_list", "escape.lst"],
        "absolute": [*model, "--image_list", "absolute.lst"],
        "duplicate": [*model, "--image_list", "duplicate.lst"],
    }
    started = Started({name: start("label_image.py", *args, cwd=root)
                       for name, args in cases.items()})
    yield started
    started.stop()


def test_label_image_labels_odd_formats_and_reports_each_bad_image_on_one_line(label_runs):
    code, out, err = label_runs["batch"]
    assert code == 1  # some images of the batch failed, the others were labelled
    records = [json.loads(line) for line in out.splitlines()]
    # The images given one by one, then those of the list file (CRLF and a BOM).
    assert [r["image"] for r in records] == [f"images/{name}" for name in ODD] * 2
    assert all(np.isfinite(r["probabilities"]).all() for r in records)
    expected = {f"images/{name}": words for name, (_, words) in BAD.items()}
    expected["images/missing.jpg"] = "image file not found"
    assert len(err) == len(expected), err
    for line, (path, words) in zip(err, expected.items()):
        assert line.startswith(f"{path}: ") and words in line, line


def test_label_image_with_no_image_labelled_exits_2(label_runs):
    code, out, err = label_runs["all_bad"]
    assert code == 2 and out == ""
    assert [line.split(":")[0] for line in err] == ["images/text.jpg", "images/zero.jpg"]


@pytest.mark.parametrize("case, expected", [
    ("labels_folder", "images: is a folder, not a class names file"),
    ("list_folder", "images: is a folder, not a list file"),
    ("escape", "escape.lst:2: image path '../images/gray.jpg' leaves the dataset folder"),
    ("absolute", "absolute.lst:2: image path '/"),
    ("duplicate", "duplicate.lst:2: duplicate index 1 (first on line 1)"),
])
def test_label_image_bad_model_or_list_files(label_runs, case, expected):
    assert error_message(label_runs[case], "label_image.py").startswith(expected)


# retrain.py: a dataset holding every image kind, with lists as an editor might leave them.

@pytest.fixture(scope="module")
def retrain_runs(tmp_path_factory, tiny_module):
    """Start every retrain.py case at once; results and the working folder."""
    root = tmp_path_factory.mktemp("retrain")
    data = root / "data"
    plain = [f"plain{i}.png" for i in range(12)]
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for name in plain:
        colour = rng.integers(0, 256, 3)
        Image.new("RGB", (40, 30), tuple(int(c) for c in colour)).save(data / "images" / name)
        rows.append([1 if c > 127 else -1 for c in colour[:2]])
    # data_generation.py refuses an empty image, so the zero-byte one is added by hand later.
    odd_and_bad = [*ODD, *(name for name in BAD if name != "zero.jpg")]
    write_images(data / "images", odd_and_bad)
    rows += [[1, -1] if i % 2 else [-1, 1] for i in range(len(odd_and_bad))]
    (data / "labels.json").write_text("\n".join(json.dumps(r) for r in rows))
    assert run("data_generation.py", "--image_dir", "data", "--split", "0.6", cwd=root)[0] == 0
    write_images(data / "images", ["zero.jpg"])
    for name in (listfile.TRAIN_LIST, listfile.TEST_LIST):  # as a Windows editor saves them
        text = (data / name).read_text()
        if name == listfile.TEST_LIST:
            text += "900\t1\t0\timages/zero.jpg\n901\t0\t1\timages/missing.jpg\n"
        (data / name).write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode())

    def flags(out, *extra):
        o = root / out
        return ["--image_dir", "data", "--tfhub_module", tiny_module, "--model_dir", o / "model",
                "--bottleneck_dir", o / "bottlenecks", "--output_graph", o / "output_graph.pb",
                "--output_labels", o / "labels.txt", "--output_thresholds", o / "thresholds.txt",
                "--metrics_file", o / "metrics.json", "--test_predictions", o / "predictions.jsonl",
                "--summaries_dir", o / "logs", "--checkpoint_path", o / "checkpoints" / "retrain",
                "--intermediate_output_graphs_dir", o / "intermediate",
                "--report_page", o / "report.html",
                "--how_many_training_steps", "20", "--eval_step_interval", "10", *extra]

    # One bad list line: the others (duplicate index, absolute path) go through the same
    # list reader, checked above with label_image.py --image_list at no TensorFlow cost.
    (root / "escape" / "images").mkdir(parents=True)
    (root / "escape" / listfile.TRAIN_LIST).write_text(
        "1\t1\t0\timages/plain0.png\n2\t0\t1\t../outside.jpg\n")
    escape = flags("escape", "--logging_verbosity", "WARN")
    escape[1] = "escape"  # --image_dir
    cases = {"stop": flags("stop", "--logging_verbosity", "WARN"),
             "skip": flags("skip", "--skip_invalid_images"), "escape": escape}
    started = Started({name: start("retrain.py", *args, cwd=root) for name, args in cases.items()})
    yield root, started
    started.stop()


def _line_of(list_path, name):
    for entry in listfile.read_list_file(list_path):
        if entry.path == f"images/{name}":
            return entry.line
    raise AssertionError(f"{name} not in {list_path}")


def test_retrain_names_every_invalid_image_before_any_work(retrain_runs):
    root, results = retrain_runs
    code, _, err = results["stop"]
    assert code == 2, err
    expected = {name: words for name, (_, words) in BAD.items()}
    expected["missing.jpg"] = "image file not found"
    *named, last = err
    assert last == (f"retrain.py: error: {len(expected)} invalid images; fix the list or pass "
                    "--skip_invalid_images")
    places = []
    for line in named:  # one line each: LIST:LINE: PATH: reason
        match = re.fullmatch(r"(data/dataset_\w+\.lst):(\d+): data/images/(.+?): (.+)", line)
        assert match, line
        list_path, number, name, reason = match.groups()
        assert int(number) == _line_of(root / list_path, name)
        assert expected.pop(name) in reason
        places.append((list_path != "data/dataset_train.lst", int(number)))
    assert not expected  # every one named
    assert places == sorted(places)  # in list order: the training list first
    assert not (root / "stop" / "bottlenecks").exists()


def test_retrain_skips_invalid_images_naming_each_and_trains_on_every_odd_format(retrain_runs):
    root, results = retrain_runs
    code, _, err = results["skip"]
    assert code == 0, err
    skipped = {}
    for line in err:
        match = re.search(r"Skipping (data/dataset_\w+\.lst):(\d+): data/images/(.+?): (.+)$", line)
        if match:
            skipped[match[3]] = match[1], int(match[2]), match[4]
    expected = {name: words for name, (_, words) in BAD.items()}
    expected["missing.jpg"] = "image file not found"
    assert set(skipped) == set(expected)
    for name, (list_path, number, message) in skipped.items():
        assert number == _line_of(root / list_path, name)
        assert expected[name] in message
    sizes = next(re.search(r"(\d+) training, (\d+) validation and (\d+) test images", line)
                 for line in err if "training, " in line)
    assert sum(map(int, sizes.groups())) == 12 + len(ODD)  # every odd format is used
    predictions = (root / "skip" / "predictions.jsonl").read_text()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((root / "skip" / "output_graph.pb").read_bytes())
    assert any(node.name == "final_result" for node in graph_def.node)
    assert predictions.count("\n") == int(sizes[3])


def test_retrain_list_line_that_leaves_the_dataset_folder(retrain_runs):
    line = one_error_line(retrain_runs[1]["escape"])
    assert line == ("retrain.py: error: escape/dataset_train.lst:2: image path '../outside.jpg' "
                    "leaves the dataset folder")


def test_an_image_that_goes_bad_after_the_check_stops_caching_with_its_own_error(tmp_path):
    # Checked images can still change before their bottleneck is computed (a long run,
    # a shared folder); the error must come out as itself, not inside tf.data's.
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    good.write_bytes(ODD["one.png"]())
    bad.write_bytes(b"not an image")
    batches = image_batches([str(good), str(bad)], 8, 8, batch_size=1)
    with pytest.raises(UserError, match=f"^{re.escape(str(bad))}: cannot decode image"):
        list(batches)
