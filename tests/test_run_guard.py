"""Issue 38, cases 1, 2 and the output paths of 6 and 8: what a run may write is settled
before any work (base/run_guard.py), one run at a time per folder, and the manifest
vouches only for the bytes the run itself wrote."""

import json
import os
import signal
import subprocess
import sys

import pytest

import retrain
from multilabel.base import atomic, run_guard
from multilabel.base.errors import UserError
from multilabel.base.options import TrainOptions, resolve
from multilabel.labelling import run_folder
from tests.test_retrain import make_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard")
    make_dataset(folder / "data", per_set=2)
    return folder / "data"


def flags(data, out, *extra):
    # No module is ever built: every case here is refused before any work.
    return ["--image_dir", str(data), "--tfhub_module", "no_such_module_is_loaded",
            "--output_dir", str(out), *extra]


def refused(capsys, argv):
    assert retrain.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("retrain.py: error: "), err
    return err


def test_a_users_folder_as_saved_model_dir_is_refused_before_any_work(tmp_path, data, capsys):
    """Case 1: it used to be swapped out for the SavedModel, the user's files deleted."""
    mine = tmp_path / "my_photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    err = refused(capsys, flags(data, tmp_path / "run", "--saved_model_dir", str(mine)))
    assert f"{mine}: exists and is a folder this tool did not write as a saved_model" in err
    assert (mine / "holiday.jpg").read_bytes() == b"precious"
    assert not (tmp_path / "run").exists()  # no bottleneck, no folder: nothing was done


def test_a_saved_model_folder_this_tool_wrote_may_be_replaced(tmp_path):
    ours = tmp_path / "saved"
    with atomic.atomic_folder(ours, kind=run_guard.SAVED_MODEL) as staging:
        open(os.path.join(staging, "saved_model.pb"), "wb").close()
    assert (ours / atomic.MARKER).read_text() == "saved_model\n"
    run_guard.check_outputs(resolve(TrainOptions(output_dir=str(tmp_path / "run"),
                                                 saved_model_dir=str(ours))))


@pytest.mark.parametrize("make, flag, message", [
    # Case 6: each used to be a traceback, the output flags only after training.
    (lambda t: (t / "run").write_text("a file"), ["--output_dir", "{t}/run"],
     "--output_dir names a file, not a folder"),
    (lambda t: (t / "file").write_text("x"), ["--output_dir", "{t}/file/run"],
     "--output_dir lies under {t}/file, which is a file, not a folder"),
    (lambda t: (t / "g").mkdir(), ["--output_graph", "{t}/g"],
     "--output_graph names a folder, not a file this run can replace"),
    (lambda t: (t / "l").mkdir(), ["--output_labels", "{t}/l"],
     "--output_labels names a folder"),
    (lambda t: (t / "m").mkdir(), ["--tflite_output_file", "{t}/m"],
     "--tflite_output_file names a folder"),
    (lambda t: os.mkfifo(t / "f"), ["--metrics_file", "{t}/f"],
     "--metrics_file names something that is neither a file nor a folder"),
    (lambda t: os.symlink(t / "nowhere", t / "d"), ["--label_issues", "{t}/d"],
     "--label_issues names a dangling link"),
    (lambda t: (t / "x.json").mkdir(), ["--output_thresholds", "{t}/x.txt"],
     "--output_thresholds' rule file names a folder"),
    # Case 8: it used to write into /.
    (lambda t: None, ["--output_dir", "/"], "--output_dir / is the root of the file system"),
])
def test_output_paths_that_cannot_be_written_are_refused_before_any_work(
        tmp_path, data, capsys, make, flag, message):
    make(tmp_path)
    extra = [f.format(t=tmp_path) for f in flag]
    out = extra[1] if extra[0] == "--output_dir" else str(tmp_path / "run")
    argv = flags(data, out, *extra) if extra[0] != "--output_dir" else [
        "--image_dir", str(data), "--tfhub_module", "no_such_module_is_loaded", *extra]
    assert message.format(t=tmp_path) in refused(capsys, argv)


HOLD_LOCK = """
import sys, time
from multilabel.base import run_guard
with run_guard.locked(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.timeout(60)
def test_one_run_at_a_time_per_folder_and_a_killed_run_holds_nothing(tmp_path, data, capsys):
    """Case 2: two runs in one folder made a manifest vouch for the other run's graph."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        err = refused(capsys, flags(data, out))
        assert err == (f"retrain.py: error: {out}: another run (process {holder.pid}) is "
                       "writing into this folder; wait for it to end, or give another "
                       "--output_dir\n")
    finally:
        holder.send_signal(signal.SIGKILL)  # as a crash would end it
        holder.wait(30)
    with run_guard.locked(str(out)):  # the kernel let go of the dead run's lock
        pass


def test_a_run_refused_on_its_input_leaves_no_folder_it_made(tmp_path):
    options = resolve(TrainOptions(output_dir=str(tmp_path / "new")))
    with pytest.raises(UserError):
        with run_guard.guarded(options):
            raise UserError("bad list")
    assert os.listdir(tmp_path) == []


def test_temporary_files_a_killed_run_left_are_removed_under_the_lock(tmp_path):
    """Case 8: `.output_graph.tflite.*.tmp` used to stay for ever."""
    out = tmp_path / "run"
    out.mkdir()
    left = [out / ".output_graph.tflite.k2j3.tmp", out / ".output_graph.pb.x.tmp"]
    for path in left:
        path.write_bytes(b"half")
    (out / ".saved.abc.tmp").mkdir()
    kept = out / ".other.tmp"  # not a sibling of an output: not ours to remove
    kept.write_bytes(b"theirs")
    with run_guard.guarded(resolve(TrainOptions(output_dir=str(out),
                                                saved_model_dir=str(out / "saved")))):
        pass
    assert sorted(os.listdir(out)) == [".other.tmp", run_guard.LOCK]


def test_the_manifest_records_the_bytes_this_run_wrote(tmp_path):
    """Case 2: another run's graph written over this one's before the manifest is refused
    by readers, instead of being vouched for."""
    graph, labels = tmp_path / "output_graph.pb", tmp_path / "output_labels.txt"
    with atomic.recording():
        atomic.write_bytes(graph, b"run A's graph")
        atomic.write_text(labels, "a\nb\n")
        graph.write_bytes(b"run B's graph")  # B wrote here meanwhile
        run_set = run_folder.RunSet(tmp_path, "A")
        run_set.add("graph", graph)
        run_set.add("labels", labels)
        run_set.write_manifest()
    files = run_folder.model_files(model_dir=str(tmp_path))
    with pytest.raises(UserError, match="output_graph.pb is not the file run A wrote"):
        files.check_set(["graph", "labels"])
    with pytest.raises(LookupError):  # an output never written through base.atomic
        run_folder.RunSet(tmp_path, "A").add("notes", tmp_path / "elsewhere.txt")


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.txt", "."])
def test_a_manifest_path_outside_its_folder_is_never_opened(tmp_path, path):
    """Case 4/8: a tampered manifest named /etc/passwd as the class names."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / run_folder.MANIFEST).write_text(json.dumps(
        {"run_id": "x", "files": {"labels": {"path": path, "sha256": "0" * 64}}}))
    files = run_folder.model_files(model_dir=str(folder))
    assert files.labels == str(folder / run_folder.LABELS)
