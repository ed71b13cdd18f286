"""Issue 22's cases outside the graph checks (tests/test_graph_routes.py has those):
file kinds, tracebacks turned into one line, input bounds, duplicates, flags, escaping.
"""

import contextlib
import os
import socket
import threading

import pytest
from PIL import Image

import data_generation
import label_image
from multilabel.base.errors import UserError
from multilabel.data import dataset
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
