"""Every entry point goes through one boundary (`multilabel.base.command.run_command`): the
same `NAME: error: MESSAGE` line and exit codes for the same causes, and its default paths
resolve into the project folder wherever it runs from."""

import argparse
import errno
import os
import sys

import pytest

import data_generation
import label_image
import retrain
from multilabel import api, beam_bottlenecks, beam_cluster, beam_label, build_modules
from multilabel.base import arguments, project
from multilabel.base.command import run_command
from multilabel.base.errors import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_OK,
                                    NoSpaceError, UserError, no_space_left)
from multilabel.data import list_generation
from multilabel.features.backbones import module_builder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raising(error):
    def fail(*args, **kwargs):
        raise error

    return fail


# --- the boundary itself ---------------------------------------------------------------

def test_the_work_gives_the_exit_status_none_is_0():
    assert run_command("cmd", lambda a, b: a + b, 1, 2) == 3
    assert run_command("cmd", lambda: None) == EXIT_OK
    with pytest.raises(TypeError, match="not an exit status"):
        run_command("cmd", lambda: {"mAP": 0.9})  # a result, not a status: a bug


def test_a_user_error_is_its_details_then_one_prefixed_line_and_exit_2(capsys):
    error = UserError("2 invalid images", "x.lst", details=["x.lst:1: a.jpg: bad", "x.lst:3:\n b"])
    assert run_command("cmd", raising(error)) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "x.lst:1: a.jpg: bad", "x.lst:3: b", "cmd: error: x.lst: 2 invalid images"]


def test_a_full_disk_exits_1_through_the_writers_mapping(tmp_path, capsys):
    def write():
        with no_space_left(tmp_path / "out.txt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    assert run_command("cmd", write) == EXIT_NO_SPACE == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cmd: error: no space left on /")
    assert line.endswith(f" while writing {tmp_path / 'out.txt'}")


def test_a_full_disk_no_writer_mapped_is_the_same_line(tmp_path, capsys):
    """As when stdout is redirected to a file on a full disk."""
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "labels.jsonl"))
    assert run_command("cmd", raising(full)) == EXIT_NO_SPACE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cmd: error: no space left on /")
    assert line.endswith(f" while writing {tmp_path / 'labels.jsonl'}")
    assert run_command("cmd", raising(OSError(errno.ENOSPC, "No space left on device"))) == 1
    assert capsys.readouterr().err == ("cmd: error: no space left on the device while writing "
                                       "the output\n")


@pytest.mark.parametrize("kept, line", [
    ("", "cmd: interrupted"),
    ("finished shards are kept", "cmd: interrupted; finished shards are kept"),
])
def test_ctrl_c_is_one_line_and_exit_130(capsys, kept, line):
    assert run_command("cmd", raising(KeyboardInterrupt()), interrupted=kept) == 130
    assert capsys.readouterr().err == line + "\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ValueError):
        run_command("cmd", raising(ValueError("a bug")))
    with pytest.raises(OSError):
        run_command("cmd", raising(PermissionError(errno.EACCES, "Permission denied")))


# --- every entry point goes through it --------------------------------------------------

# (name, main, argv, (object, attribute) replaced by the failing work)
ENTRY_POINTS = [
    ("retrain.py", retrain.main, [], (api, "train_with")),
    ("data_generation.py", data_generation.main, [], (list_generation, "generate")),
    ("label_image.py", label_image.main, ["photo.jpg"], (label_image, "label")),
    ("build_modules", build_modules.main, ["efficientnet_lite0"],
     (module_builder, "build_module")),
    ("beam_bottlenecks", beam_bottlenecks.main, [], (beam_bottlenecks, "run")),
    ("beam_label", beam_label.main, ["--image_dir", "photos", "--output", "labels/part"],
     (beam_label, "run")),
    ("beam_cluster", beam_cluster.main, [], (beam_cluster, "run")),
]
IDS = [name for name, *_ in ENTRY_POINTS]


def _fail_inside(monkeypatch, tmp_path, target, error):
    monkeypatch.chdir(tmp_path)  # nothing the command might write lands in the project
    monkeypatch.setattr(*target, raising(error))


@pytest.mark.parametrize("name, main, argv, target", ENTRY_POINTS, ids=IDS)
def test_bad_input_exits_2_with_the_commands_prefix(name, main, argv, target, tmp_path,
                                                    monkeypatch, capsys):
    _fail_inside(monkeypatch, tmp_path, target,
                 UserError("not a list", "x.lst", 3, details=["x.lst:3: first problem"]))
    assert main(argv) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "x.lst:3: first problem", f"{name}: error: x.lst:3: not a list"]


@pytest.mark.parametrize("name, main, argv, target", ENTRY_POINTS, ids=IDS)
def test_a_full_disk_exits_1(name, main, argv, target, tmp_path, monkeypatch, capsys):
    _fail_inside(monkeypatch, tmp_path, target,
                 NoSpaceError("no space left on /mnt (/dev/sdb1) while writing out.lst"))
    assert main(argv) == EXIT_NO_SPACE
    assert capsys.readouterr().err == (f"{name}: error: no space left on /mnt (/dev/sdb1) "
                                       "while writing out.lst\n")


@pytest.mark.parametrize("name, main, argv, target", ENTRY_POINTS, ids=IDS)
def test_ctrl_c_exits_130_with_one_line(name, main, argv, target, tmp_path, monkeypatch,
                                        capsys):
    _fail_inside(monkeypatch, tmp_path, target, KeyboardInterrupt())
    assert main(argv) == EXIT_INTERRUPTED
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"{name}: interrupted" or line.startswith(f"{name}: interrupted; ")


def test_label_image_stops_quietly_when_its_reader_stops(tmp_path, monkeypatch, capsys):
    """`label_image.py photos | head`: no error line, exit 1, stdout sent to /dev/null."""
    monkeypatch.setattr(label_image, "label", raising(BrokenPipeError()))
    redirected = []
    monkeypatch.setattr(os, "dup2", lambda fd, to: redirected.append(to))
    with open(tmp_path / "stdout", "w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert label_image.main(["photo.jpg"]) == 1
        assert redirected == [stdout.fileno()]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("main, argv", [
    (retrain.main, ["--image_dir"]), (data_generation.main, ["--split", "2"]),
    (label_image.main, ["--top_k", "0"]), (build_modules.main, ["no_such_module"]),
    (beam_bottlenecks.main, ["--bottleneck_batch_size", "0"]),
    (beam_label.main, ["--image_dir", "photos"]), (beam_cluster.main, ["--workers", "x"]),
], ids=IDS)
def test_a_bad_flag_is_argparses_usage_error_exit_2(main, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert ": error: " in capsys.readouterr().err


# --- the shared argparse types ----------------------------------------------------------

def test_positive_int():
    assert arguments.positive_int("3") == 3
    for text in ("0", "-2", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="integer of at least 1"):
            arguments.positive_int(text)


def test_positive_int_or_a_word():
    layers = arguments.positive_int_or("all")
    assert layers("all") == "all" and layers("2") == 2
    for text in ("0", "ALL", "some"):
        with pytest.raises(argparse.ArgumentTypeError, match="at least 1 or 'all', got"):
            layers(text)
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=layers)
    assert parser.parse_args(["--layers", "all"]).layers == "all"


def test_names():
    assert arguments.names("a, b,c") == ("a", "b", "c")
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated"):
        arguments.names("a,,b")


# --- default paths -----------------------------------------------------------------------

def test_the_project_is_the_clone_or_for_an_installed_package_the_current_folder(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project.project_folder() == REPO
    assert project.default_path(project.BOTTLENECKS) == os.path.join(
        REPO, "MODEL_DETAILS", "bottlenecks")
    installed = tmp_path / "site-packages" / "multilabel" / "base" / "project.py"
    monkeypatch.setattr(project, "__file__", str(installed))
    assert project.project_folder() == str(tmp_path)


def test_every_commands_defaults_are_in_the_clone_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dataset, models = os.path.join(REPO, "DATASET"), os.path.join(REPO, "MODEL")
    details = os.path.join(REPO, "MODEL_DETAILS")
    bottlenecks = os.path.join(details, "bottlenecks")

    assert data_generation.parse_args([]).image_dir == dataset
    assert label_image.parse_args(["x.jpg"]).model_dir == details
    assert label_image.parse_args(["x.jpg", "--graph", "g.pb"]).model_dir is None  # beside it
    assert build_modules.parse_args([]).model_dir == models
    args, _ = beam_bottlenecks.parse_args([])
    assert (args.image_dir, args.model_dir, args.bottleneck_dir) == (dataset, models, bottlenecks)
    args, _ = beam_label.parse_args(["--image_dir", "photos", "--output", "out"])
    assert args.graph == os.path.join(details, "output_graph.pb")
    args = beam_cluster.parse_args([])
    assert (args.image_dir, args.model_dir, args.bottleneck_dir) == (dataset, models, bottlenecks)


@pytest.mark.parametrize("main, argv", [
    (data_generation.parse_args, []), (label_image.parse_args, []),
    (build_modules.parse_args, []), (beam_bottlenecks.parse_args, []),
    (beam_label.parse_args, []), (beam_cluster.parse_args, []),
])
def test_help_says_defaults_are_in_the_project_folder(main, argv, capsys):
    with pytest.raises(SystemExit):
        main(argv + ["--help"])
    assert "in the project folder" in " ".join(capsys.readouterr().out.split())
