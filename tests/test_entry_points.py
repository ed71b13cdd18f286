"""Every command runs from any working directory, and from a Python without the project's
packages says in one line which Python to use instead of a ModuleNotFoundError."""

import io
import logging
import os
import subprocess
import sys

import pytest

from multilabel import api
from multilabel.base import environment, progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["retrain.py", "label_image.py", "data_generation.py"]
MODULES = ["multilabel.beam_label", "multilabel.beam_bottlenecks", "multilabel.beam_cluster",
           "multilabel.build_modules"]
# Those whose --help starts no TensorFlow (retrain.py's lists the built modules,
# build_modules starts it on import): seconds each instead of tens.
LIGHT = ["label_image.py", "data_generation.py", "multilabel.beam_label",
         "multilabel.beam_bottlenecks", "multilabel.beam_cluster"]


def command(entry):
    """The argv that runs `entry`, a script of the clone or a `python -m` module."""
    if entry.endswith(".py"):
        return [os.path.join(REPO, entry)]
    return ["-m", entry]


def run(python_flags, entry, cwd, *args):
    # PYTHONPATH stands for the editable install `make` does (the test's venv may hold
    # another checkout's); -S drops the venv's site-packages: a Python without the packages.
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, *python_flags, *command(entry), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("entry", SCRIPTS + MODULES)
def test_a_python_without_the_packages_gets_one_line_naming_the_environment(entry, tmp_path):
    done = run(["-S"], entry, tmp_path, "--help")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    name = entry if entry.endswith(".py") else f"python -m {entry}"
    assert line.startswith(f"{name}: error: this Python ({sys.executable}) has no numpy")
    assert os.path.join(REPO, ".venv", "bin", "python") in line
    assert "ModuleNotFoundError" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("entry", LIGHT)
def test_every_command_runs_from_another_folder(entry, tmp_path):
    done = run([], entry, tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")


def test_data_generation_from_another_folder_writes_into_the_data_folder(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rows = ["image,cat,dog"]
    for k in range(6):
        (data / "images" / f"{k}.jpg").write_bytes(b"not read here")
        rows.append(f"{k}.jpg,{k % 2},{1 - k % 2}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run([], "data_generation.py", elsewhere, "--image_dir", str(data), "--labels",
               str(data / "labels.csv"))
    assert done.returncode == 0, done.stderr
    assert (data / "dataset_train.lst").is_file() and not list(elsewhere.iterdir())


def test_the_advice_without_an_environment_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(environment.project, "project_folder", lambda: str(tmp_path))
    line = environment.advice("retrain.py", ["numpy"])
    assert line.startswith("retrain.py: error: this Python (") and "has no numpy" in line
    assert f"`make demo` (or `make test`) in {tmp_path} creates it" in line
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    assert "creates it" not in environment.advice("retrain.py", ["numpy"])


def test_this_python_has_every_package():
    assert environment.missing(environment.BEAM) == []
    assert environment.missing(["numpy", "no_such_package_here"]) == ["no_such_package_here"]


# --- multilabel.train's progress ---------------------------------------------------------

def test_train_shows_its_progress_where_the_caller_set_up_no_logging(monkeypatch, capsys):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    late = io.StringIO()
    with api.progress_shown():
        # A library's logging.info() during the run gives the root logger a handler.
        logging.getLogger().addHandler(logging.StreamHandler(late))
        logging.getLogger("multilabel.retraining").info("Step 100: train loss 0.1850")
    assert capsys.readouterr().err.count("INFO Step 100: train loss 0.1850") == 1
    assert late.getvalue() == ""  # not printed twice
    package = logging.getLogger("multilabel")
    assert package.handlers == [] and package.propagate  # nothing left behind


def test_quiet_shows_no_progress_and_no_bar(monkeypatch, capsys):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with api.progress_shown(quiet=True):
        logging.getLogger("multilabel.retraining").info("Step 100")
        logging.getLogger("multilabel.retraining").warning("a rare class")
        with progress.progress(10, "Bottlenecks", stream=stream) as shown:
            shown.update(10)
    err = capsys.readouterr().err
    assert "Step 100" not in err and "a rare class" in err  # Python's last resort: warnings
    assert stream.getvalue() == ""


def test_the_callers_own_logging_decides(monkeypatch, capsys):
    own = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.getLogger(), "handlers", [own])
    with api.progress_shown():
        assert logging.getLogger("multilabel").handlers == []


# --- make train: the demo's steps on any data ----------------------------------------------

def make_train(tmp_path, *variables):
    """What `make train` runs with `variables`, through a stand-in Python that prints
    each command it is given, one a line."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\necho \"$*\"\n")
    python.chmod(0o755)
    (venv / ".installed").write_text("")
    done = subprocess.run(["make", "--no-print-directory", "-s", "-C", REPO, "train",
                           f"VENV={venv}", "-o", f"{venv}/.installed", *variables],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_train_reads_the_classes_from_the_labels_and_labels_a_test_photo(tmp_path):
    data = tmp_path / "my photos"
    data.mkdir()
    (data / "dataset_test.lst").write_text("7\t1\t0\t0\t0\t0\t0\t1\timages/2024/05/IMG 7.jpg\n"
                                           "9\t0\t1\t0\t0\t0\t0\t0\timages/9.jpg\n")
    generate, train, label = make_train(tmp_path, f"DATA={data}",
                                        f"LABELS=--labels {data}/labels.csv", "OUT=runs/mine")
    assert generate == (f"data_generation.py --image_dir {data} --labels {data}/labels.csv "
                        "--split 0.8 --seed 1")
    assert train == f"retrain.py --image_dir {data} --output_dir runs/mine"  # no --num_classes
    assert label == (f"label_image.py --model_dir runs/mine --image "
                     f"{data}/images/2024/05/IMG 7.jpg")


def test_make_demo_names_the_demo_data_classes_only_for_it(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "dataset_test.lst").write_text("1\t1\timages/1.jpg\n")
    generate = make_train(tmp_path, f"DATA={tmp_path / 'other'}")[0]
    assert "--class_names" not in generate
    demo = make_train(tmp_path / "demo", "DATA=./DATASET")[0]  # as `make demo` gives it
    assert demo == ("data_generation.py --image_dir ./DATASET --class_names "
                    "desert,mountains,sea,sunset,trees --split 0.8 --seed 1")


# --- help that tells the truth ---------------------------------------------------------

def help_text(parse_args, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    return " ".join(capsys.readouterr().out.split())


def test_retrains_help_says_what_each_flag_applies_to(capsys):
    import retrain

    text = help_text(retrain.parse_args, capsys)
    for truth in ("the head's learning rate, constant", "the head's optimizer (fine-tuning "
                  "always uses Adam)", "training steps of the new layer (the head)",
                  "drawn at random (by --random_seed) from the test list",
                  "which sets --tfhub_module mobilenet_v2_100_224,places365_resnet18 "
                  "--fine_tune --fine_tune_layers 4 --fine_tune_epochs 4",
                  "mirror half of the training images (default: off)",
                  "by default the image and its mirror"):
        assert truth in text
    from multilabel.base.options import PRESETS

    assert PRESETS["best"] == {"tfhub_module": ("mobilenet_v2_100_224", "places365_resnet18"),
                               "fine_tune": True, "fine_tune_layers": 4, "fine_tune_epochs": 4}


def test_label_images_engine_help_names_every_flag_that_switches_to_the_graph(capsys):
    import dataclasses

    import label_image
    from multilabel.labelling.classifier import LoadOptions

    def other_value(field):  # any value but the default, of the field's type
        kind = str(field.type)
        return ("x" if "str" in kind else 9 if "int" in kind else 0.5 if "float" in kind
                else True if "bool" in kind else ("ReadFile",))

    graph_only = [f.name for f in dataclasses.fields(LoadOptions)
                  if LoadOptions(**{f.name: other_value(f)}).graph_only()]
    assert "input_layer" in graph_only and "engine" not in graph_only
    text = help_text(label_image.parse_args, capsys)
    start = text.index("--engine {auto,tflite,tf} what runs")
    engine = text[start:text.index("--labels LABELS class names", start)]
    assert all(f"--{name}" in engine for name in graph_only)
    assert "stopped as stuck, on either engine" in text  # base.deadline covers both
