"""Atomic writes: a reader sees the old file or the new one, never a part of either."""

import os
import signal
import subprocess
import sys
import threading

import pytest

from multilabel.base import atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "output_graph.pb"
    target.write_bytes(b"old graph" * 1000)
    child = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {REPO!r})
from multilabel.base import atomic
with atomic.atomic_output({str(target)!r}, "wb") as f:
    f.write(b"half of a new graph")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert target.read_bytes() == b"old graph" * 1000


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "labels.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_output(target) as f:
            f.write("new\n")
            raise RuntimeError("disk full, say")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["labels.txt"]


def test_racing_writers_each_leave_a_whole_file(tmp_path):
    target = tmp_path / "entry.npy"
    contents = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=atomic.write_bytes, args=(target, c)) for c in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in contents
    assert os.listdir(tmp_path) == ["entry.npy"]


def _folder_with(path, name):
    path.mkdir()
    (path / name).write_text(name)


def test_a_finished_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "model"
    _folder_with(target, "old.txt")
    (target / atomic.MARKER).write_text("model\n")  # an earlier run's output of the kind
    with atomic.atomic_folder(target, kind="model") as staging:
        open(os.path.join(staging, "new.txt"), "w").close()
        assert sorted(os.listdir(target)) == [atomic.MARKER, "old.txt"]  # still the old one
    assert sorted(os.listdir(target)) == [atomic.MARKER, "new.txt"]
    assert (target / atomic.MARKER).read_text() == "model\n"
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no staging or old folder left
    assert target.stat().st_mode & 0o777 == 0o777 & ~atomic._UMASK  # not mkdtemp's 0700


def test_an_error_in_a_folder_keeps_the_old_one_and_removes_the_staging(tmp_path):
    target = tmp_path / "model"
    _folder_with(target, "old.txt")
    (target / atomic.MARKER).write_text("model\n")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic.atomic_folder(target, kind="model") as staging:
            open(os.path.join(staging, "new.txt"), "w").close()
            raise RuntimeError("half way")
    assert sorted(os.listdir(target)) == [atomic.MARKER, "old.txt"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


@pytest.mark.parametrize("marker", [None, "other_kind\n"])
def test_a_folder_this_tool_did_not_write_as_that_kind_is_never_replaced(tmp_path, marker):
    """Issue 38 case 1: a user's folder named as an output is refused, before the block
    runs, and kept whole; so is one marked as another kind of output."""
    target = tmp_path / "photos"
    _folder_with(target, "holiday.jpg")
    if marker:
        (target / atomic.MARKER).write_text(marker)
    ran = []
    for kind in ("model", None):
        with pytest.raises(atomic.NotOurOutputError, match="not replaced|never replaced"):
            with atomic.atomic_folder(target, kind=kind):
                ran.append(kind)
    assert ran == [] and (target / "holiday.jpg").exists()
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_a_users_folder_that_appears_during_the_work_is_kept(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(atomic.NotOurOutputError):
        with atomic.atomic_folder(target, kind="model") as staging:
            open(os.path.join(staging, "new.txt"), "w").close()
            _folder_with(target, "theirs.txt")
    assert sorted(os.listdir(target)) == ["theirs.txt"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_recording_hashes_the_bytes_written_not_what_is_on_disk_later(tmp_path):
    """Issue 38 case 2: the manifest's hash is of this run's bytes, even after another
    process replaced the file."""
    import hashlib

    text_path, bytes_path = tmp_path / "labels.txt", tmp_path / "graph.pb"
    with atomic.recording() as written:
        atomic.write_text(text_path, "sea\nsky\n")
        atomic.write_bytes(bytes_path, b"\x00\x01" * 70000)  # past one buffer
        bytes_path.write_bytes(b"another run's graph")
        assert atomic.written_sha256(bytes_path) == hashlib.sha256(b"\x00\x01" * 70000).hexdigest()
    assert written[str(text_path)] == hashlib.sha256(b"sea\nsky\n").hexdigest()
    with pytest.raises(LookupError):
        atomic.written_sha256(text_path)  # outside any recording: nothing vouched for


def test_keep_existing_keeps_a_good_folder_and_refuses_to_replace_another(tmp_path):
    target = tmp_path / "cache"
    _folder_with(target, "theirs.txt")
    with atomic.atomic_folder(target, keep_existing=lambda p: True) as staging:
        open(os.path.join(staging, "ours.txt"), "w").close()
    assert sorted(os.listdir(target)) == ["theirs.txt"]
    with pytest.raises(FileExistsError):
        with atomic.atomic_folder(target, keep_existing=lambda p: False) as staging:
            open(os.path.join(staging, "ours.txt"), "w").close()
    assert sorted(os.listdir(target)) == ["theirs.txt"]
    assert sorted(os.listdir(tmp_path)) == ["cache"]
