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
