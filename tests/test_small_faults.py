"""Issue 38 cases 6 to 8 outside the output paths (tests/test_run_guard.py has those):
tracebacks turned into one line, flags that grew memory, names printed raw."""

import io
import json
import logging
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

import label_image
import retrain
from multilabel.base.errors import UserError
from multilabel.data import dataset
from multilabel.data.images import ImageError
from multilabel.evaluation.thresholds import read_thresholds
from multilabel.labelling import label_report, run_folder
from multilabel.labelling.classifier import Classifier, LoadOptions
from tests.test_dataset import write_dataset
from tests.test_hardening import tiny_full_tmpfs  # noqa: F401 (a fixture)
from tests.test_label_image import model, write_image  # noqa: F401 (model: a fixture)



@pytest.mark.parametrize("flags, message", [
    (["--random_seed", "-1"], "--random_seed must be in [0, 2**63)"),
    (["--random_scale", "100000"], "--random_crop and --random_scale must be in [0, 100]"),
    (["--random_crop", "100000"], "--random_crop and --random_scale must be in [0, 100]"),
])
def test_flags_that_gave_a_traceback_or_grew_memory_are_refused(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        retrain.parse_args(flags)
    assert exit_info.value.code == 2
    assert f": error: {message}" in capsys.readouterr().err


def test_a_nul_byte_in_a_list_path_is_one_line(tmp_path):
    folder = write_dataset(tmp_path, train_count=6, test_count=2)
    train = folder / "dataset_train.lst"
    train.write_text(train.read_text().replace("images/3.jpg", "images/3\0.jpg"))
    with pytest.raises(UserError, match=r"dataset_train.lst:4: image path 'images/3\\x00.jpg' "
                                        "contains a NUL byte$"):
        dataset.load_dataset(folder)


def test_testing_percentage_beside_a_test_list_is_said_to_be_ignored(tmp_path, caplog):
    folder = write_dataset(tmp_path, train_count=6, test_count=2)
    with caplog.at_level(logging.WARNING):
        data = dataset.load_dataset(folder, testing_percentage=99)
    assert len(data.test) == 2
    assert (f"--testing_percentage 99 is ignored: {folder / 'dataset_test.lst'} is the test "
            "part") in caplog.text


def test_a_5000_digit_threshold_is_named_as_written_not_as_inf(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("9" * 5000 + "\n")
    with pytest.raises(UserError) as error:
        read_thresholds(path, 1)
    assert str(error.value) == (f"{path}:1: threshold '{'9' * 40}'... (5,000 characters) is "
                                "outside [0, 1]")


def test_terminal_escapes_in_class_names_and_run_id_are_never_printed_raw(tmp_path):
    report = label_report.Report("text", ("sea\x1b[31m", "sky"), np.array([0.5, 0.5]))
    text = report.record("a.jpg", np.array([0.9, 0.1], np.float32))
    assert "\x1b" not in text and "sea\\x1b[31m" in text
    (tmp_path / run_folder.MANIFEST).write_text(json.dumps(
        {"run_id": "\x1b[32mOK\x1b[0m", "files": {}}))
    with pytest.raises(UserError, match="not a run manifest"):
        run_folder.read_manifest(tmp_path)


def _classifier(model_flags):  # noqa: F811
    return Classifier.open(run_folder.model_files(graph=model_flags[1]), LoadOptions(engine="tf"))


def test_a_0_by_0_image_is_refused_and_jpeg_bytes_are_decoded(tmp_path, model):  # noqa: F811
    classifier = _classifier(model)
    with pytest.raises(ImageError, match="image is 0 x 0 pixels: nothing to label"):
        classifier.predict(Image.new("RGB", (0, 0)))
    photo = write_image(tmp_path / "red.jpg", (255, 0, 0))
    raw = photo.read_bytes()
    from_bytes, = classifier.predict(raw)  # was "an array of shape ()"
    from_path, = classifier.predict(str(photo))
    assert from_bytes.probabilities == from_path.probabilities
    buffer = io.BytesIO()
    Image.new("RGB", (3, 3)).save(buffer, "BMP")
    broken = buffer.getvalue()[:30]
    with pytest.raises(ImageError, match="cannot decode image"):
        classifier.predict(broken)


@pytest.mark.parametrize("output_format", ["text", "json", "csv"])
def test_label_image_on_a_full_disk_is_one_line(tmp_path, model, monkeypatch, capsys,
                                                output_format):  # noqa: F811
    """Case 6: stdout on a full disk (/dev/full) was a traceback in every format; what is
    still buffered then goes nowhere, so Python's flush at exit cannot fail again."""
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        status = label_image.main(model + ["--output_format", output_format, str(image), "-q"])
        assert os.readlink(f"/proc/self/fd/{full.fileno()}") == os.devnull
    assert status == 1
    assert capsys.readouterr().err == ("label_image.py: error: no space left on the device "
                                       "while writing the output\n")


def test_csv_writes_a_name_that_is_not_utf8_as_its_bytes(tmp_path, model, monkeypatch):  # noqa: F811
    """Case 8, a documented behaviour: the CSV names the file as it is, so a script can
    open it; a strict UTF-8 stdout no longer refuses it with a traceback."""
    name = os.path.join(os.fsencode(tmp_path), b"\xff.png")
    os.rename(write_image(tmp_path / "odd.png", (255, 0, 0)), name)
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8"))
    assert label_image.main(model + ["--output_format", "csv", os.fsdecode(name), "-q"]) == 0
    sys.stdout.flush()
    assert name in raw.getvalue()


@pytest.mark.timeout(300)
def test_beam_label_on_a_full_disk_is_one_line_and_leaves_no_temp_folder(
        tmp_path, model, tiny_full_tmpfs, capsys):  # noqa: F811
    """Case 6: three tracebacks and `beam-temp-*` folders left."""
    from multilabel import beam_label

    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "red.png", (255, 0, 0))
    status = beam_label.main(["--graph", model[1], "--image_dir", str(photos),
                              "--output", str(tiny_full_tmpfs / "labels")])
    assert status == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch(rf"beam_label: error: no space left on {re.escape(str(tiny_full_tmpfs))}"
                        rf"( \(\S+\))? while writing {re.escape(str(tiny_full_tmpfs))}/labels-\*",
                        last), last
    assert sorted(os.listdir(tiny_full_tmpfs)) == ["filler", "old_graph.pb"]
