"""Issue 22's cases outside the graph checks (tests/test_graph_routes.py has those):
file kinds, tracebacks turned into one line, input bounds, duplicates, flags, escaping.
"""

import contextlib
import errno
import os
import re
import socket
import subprocess
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import data_generation
import label_image
from multilabel.base import atomic, storage
from multilabel.base.errors import NoSpaceError, UserError
from multilabel.data import dataset
from multilabel.export import formats
from multilabel.training import trainer
from multilabel.data.images import ImageError, decode_image
from multilabel.features import bottlenecks
from tests.test_dataset import write_dataset
from tests.test_label_image import model, write_image  # noqa: F401 (a fixture)


@contextlib.contextmanager
def unblocked(path):
    """A FIFO at `path`; should a reader block on it after all, a writer opens and
    closes it after 30 s, so that a regression fails the test instead of hanging it."""
    os.mkfifo(path)
    def unblock():
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    timer = threading.Timer(30, unblock)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()


@pytest.fixture
def odd_files(tmp_path):
    """A FIFO, a socket and a device (a link to /dev/zero), each named like a photo."""
    folder = tmp_path / "odd"
    folder.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "socket.jpg"))
    os.symlink("/dev/zero", folder / "device.jpg")
    with unblocked(folder / "fifo.jpg"), server:
        yield {"fifo.jpg": "a FIFO", "socket.jpg": "a socket", "device.jpg": "a device"}, folder


def test_anything_but_a_regular_file_is_an_image_error_before_it_is_opened(odd_files):
    kinds, folder = odd_files
    for name, kind in kinds.items():
        with pytest.raises(ImageError) as error:
            decode_image(str(folder / name))
        assert str(error.value) == f"{folder / name}: not a regular file but {kind}"
    # Swapped in after the check, it is refused by the cache's read too.
    with pytest.raises(UserError, match="cannot read the image file: not a regular file but a "
                                        "FIFO$"):
        bottlenecks.content_hash(str(folder / "fifo.jpg"))


def test_label_image_reports_each_odd_file_and_labels_the_rest(odd_files, model, capsys):  # noqa: F811
    kinds, folder = odd_files
    write_image(folder / "red.png", (255, 0, 0))
    (folder / "list.lst").write_text("1\t0\tfifo.jpg\n2\t1\tred.png\n")
    for images in ([str(folder)], [str(folder / "fifo.jpg"), str(folder / "red.png")],
                   ["--image_list", str(folder / "list.lst")]):
        assert label_image.main(model + images + ["-q"]) == 1
        out, err = capsys.readouterr()
        assert out.count("predicted: red") == 1
        named = [line.split(": ")[0] for line in err.splitlines()]
        assert named == sorted(str(folder / n) for n in kinds if str(folder / n) in err)
        assert f"{folder / 'fifo.jpg'}: not a regular file but a FIFO" in err.splitlines()


def test_retrain_lists_naming_a_fifo_stop_or_skip_it(tmp_path):
    folder = write_dataset(tmp_path, train_count=6, test_count=2)
    fifo = folder / "images" / "3.jpg"
    fifo.unlink()
    with unblocked(fifo):
        data = dataset.load_dataset(folder, validation_percentage=0)
        with pytest.raises(UserError, match=r":4: .*3\.jpg: not a regular file but a FIFO"):
            dataset.drop_invalid_images(data, skip_invalid=False)
        kept = dataset.drop_invalid_images(data, skip_invalid=True)
        assert str(fifo) not in kept.train.paths and len(kept.train) == 5


def _scene(folder, count=2):
    images = folder / "images"
    images.mkdir(parents=True)
    for i in range(1, count + 1):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(images / f"{i}.jpg")
    (folder / "labels.json").write_text("\n".join(["[1, -1]"] * count))
    return images


@pytest.mark.parametrize("make, message", [
    (lambda p: os.symlink(p.name, p), "symlink loop (the link leads back to itself)"),
    (lambda p: os.symlink("gone.jpg", p), "dangling symlink (to 'gone.jpg', which does not "
                                          "exist)"),
    (lambda p: os.mkfifo(p), "not a regular file but a FIFO"),
], ids=["loop", "dangling", "fifo"])
def test_data_generation_names_a_bad_link_or_file_kind_on_one_line(tmp_path, capsys, make,
                                                                   message):
    images = _scene(tmp_path)
    (images / "2.jpg").unlink()
    make(images / "2.jpg")
    assert data_generation.main(["--image_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"{images / '2.jpg'}: {message}"]


# A full disk: every writer's failure is one line, "no space left on DEVICE while writing
# PATH", exit 1, the old file whole and no temporary file left. The patched writes run
# everywhere; the real tiny tmpfs only where the test may mount one (root, no sandbox).

_NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullFile:
    """A file open for writing whose writes fail as on a full disk."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        raise _NO_SPACE

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._file.close()


@pytest.fixture
def full_writes(monkeypatch):
    """Every file Python opens with `os.fdopen` (the project's atomic writes) fails to
    write, as on a full disk."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        file = real(fd, mode, *args, **kwargs)
        return _FullFile(file) if "w" in mode else file

    monkeypatch.setattr(os, "fdopen", fdopen)


def _no_space_message(path):
    return re.compile(rf"^no space left on /\S*( \(\S+\))? while writing {re.escape(str(path))}$")


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def test_a_full_disk_while_writing_the_graph_a_bottleneck_or_the_tflite_cache(tmp_path,
                                                                             full_writes):
    graph = tmp_path / "output_graph.pb"
    graph.write_bytes(b"the old graph")
    with pytest.raises(NoSpaceError, match=_no_space_message(graph)) as error:
        atomic.write_bytes(graph, b"the new graph")  # as formats.write_graph_def does
    assert error.value.exit_code == 1
    assert graph.read_bytes() == b"the old graph"
    cache = bottlenecks.BottleneckCache(str(tmp_path / "bottlenecks"), "key", 2)
    digest = "ab" * 32
    with pytest.raises(NoSpaceError, match=_no_space_message(cache._path(digest))):
        cache.store(digest, [1.0, 2.0])
    tflite = tmp_path / "tflite" / "module.tflite"
    with pytest.raises(NoSpaceError, match=_no_space_message(tflite)):
        storage.write_bytes(str(tflite), b"flatbuffer")  # as engines.make_engine does
    assert _leftovers(tmp_path) == []


def test_data_generation_on_a_full_disk_exits_1_with_one_line(tmp_path, capsys, full_writes):
    _scene(tmp_path, count=5)
    assert data_generation.main(["--image_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and _no_space_message(tmp_path / "dataset.lst").match(err[0])


def _resource_exhausted(*args, **kwargs):
    raise tf.errors.ResourceExhaustedError(None, None, "x.tempstate1; No space left on device")


def test_a_full_disk_while_writing_a_checkpoint_or_the_saved_model(tmp_path, monkeypatch,
                                                                   tiny_module):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("w", initializer=np.zeros(4, np.float32))
        saver = tf.compat.v1.train.Saver()
        monkeypatch.setattr(saver, "save", _resource_exhausted)
        with tf.compat.v1.Session(graph=graph) as sess:
            with pytest.raises(NoSpaceError, match=_no_space_message(tmp_path / "ck" / "r")):
                trainer._save(sess, saver, str(tmp_path / "ck" / "r"), 1)
    monkeypatch.setattr(tf.saved_model, "save", _resource_exhausted)
    with pytest.raises(NoSpaceError, match=_no_space_message(tmp_path / "saved")):
        formats.write_saved_model(str(tmp_path / "saved"), tiny_module, 32, 32,
                                  np.zeros((24, 2), np.float32), np.zeros(2, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no staging folder left


@pytest.fixture
def tiny_full_tmpfs(tmp_path):
    """A 64 KiB tmpfs filled to the last byte; skipped where mounting is not allowed."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot mount a tmpfs here; the patched writes above cover the mapping")
    try:
        (folder / "old_graph.pb").write_bytes(b"the old graph")
        with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_tmpfs_gives_the_same_one_line(tiny_full_tmpfs, tiny_module):
    folder = tiny_full_tmpfs
    with pytest.raises(NoSpaceError, match=_no_space_message(folder / "old_graph.pb")) as error:
        atomic.write_bytes(folder / "old_graph.pb", b"new" * 10000)
    assert f"no space left on {folder} (tmpfs)" in str(error.value)
    assert (folder / "old_graph.pb").read_bytes() == b"the old graph"
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("w", initializer=np.zeros(100_000, np.float32))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            with pytest.raises(NoSpaceError, match=_no_space_message(folder / "ck" / "r")):
                trainer._save(sess, saver, str(folder / "ck" / "r"), 1)
    with pytest.raises(NoSpaceError, match=_no_space_message(folder / "saved")):
        formats.write_saved_model(str(folder / "saved"), tiny_module, 32, 32,
                                  np.zeros((24, 2), np.float32), np.zeros(2, np.float32))
    assert _leftovers(folder) == [] and not (folder / "saved").exists()
