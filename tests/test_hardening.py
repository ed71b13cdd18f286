"""Issue 22's cases outside the graph checks (tests/test_graph_routes.py has those):
file kinds, tracebacks turned into one line, input bounds, duplicates, flags, escaping.
"""

import contextlib
import errno
import io
import logging
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
import retrain
from multilabel.base import atomic, storage
from multilabel.base.errors import NoSpaceError, UserError
from multilabel.data import dataset, labels_json, listfile
from multilabel.data.images import ImageError, decode_image
from multilabel.export import formats
from multilabel.features import bottlenecks
from multilabel.labelling.frozen_graph import load_frozen_graph
from multilabel.report import plots
from multilabel.training import head, loop, summaries
from tests.test_dataset import write_dataset
from tests.test_label_image import model, write_image  # noqa: F401 (model: a fixture)


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
    assert capsys.readouterr().err.splitlines() == [
        f"data_generation.py: error: {images / '2.jpg'}: {message}"]


# A full disk: every writer's failure is one line, "no space left on DEVICE while writing
# PATH", exit 1, the old file whole and no temporary file left. The patched writes run
# everywhere; the real tiny tmpfs only where the test may mount one (root, no sandbox).

_NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def full_writes(monkeypatch):
    """Every write through the project's atomic writes fails, as on a full disk."""
    def write(self, data):
        raise _NO_SPACE

    monkeypatch.setattr(atomic._HashingFile, "write", write)


def _no_space_message(path, prefix=""):
    return re.compile(rf"^{re.escape(prefix)}no space left on /\S*( \(\S+\))? while writing "
                      rf"{re.escape(str(path))}$")


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
    assert len(err) == 1 and _no_space_message(tmp_path / "dataset.lst",
                                               "data_generation.py: error: ").match(err[0])


def _resource_exhausted(*args, **kwargs):
    raise tf.errors.ResourceExhaustedError(None, None, "x.tempstate1; No space left on device")


def test_a_full_disk_while_writing_a_checkpoint_or_the_saved_model(tmp_path, monkeypatch,
                                                                   tiny_module):
    checkpoints = loop.Checkpoints(str(tmp_path / "ck" / "r"), w=tf.Variable(np.zeros(4)))
    monkeypatch.setattr(checkpoints._manager, "save", _resource_exhausted)
    with pytest.raises(NoSpaceError, match=_no_space_message(tmp_path / "ck" / "r")):
        checkpoints.save(1)
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
    checkpoints = loop.Checkpoints(str(folder / "ck" / "r"),
                                   w=tf.Variable(np.zeros(100_000, np.float32)))
    with pytest.raises(NoSpaceError, match=_no_space_message(folder / "ck" / "r")):
        checkpoints.save(1)
    with pytest.raises(NoSpaceError, match=_no_space_message(folder / "saved")):
        formats.write_saved_model(str(folder / "saved"), tiny_module, 32, 32,
                                  np.zeros((24, 2), np.float32), np.zeros(2, np.float32))
    assert _leftovers(folder) == [] and not (folder / "saved").exists()


def _summaries_failing(monkeypatch):
    """TensorFlow's record writer as on a full disk: its flush fails."""
    class FullRecordWriter:
        def __init__(self, path):
            self.path = path

        def write(self, record):
            pass

        def flush(self):
            raise tf.errors.ResourceExhaustedError(None, None,
                                                   f"{self.path}; No space left on device")

        close = flush
    monkeypatch.setattr(tf.io, "TFRecordWriter", FullRecordWriter)


def test_a_full_disk_under_summaries_dir_is_one_warning_of_ours(tmp_path, monkeypatch, caplog):
    _summaries_failing(monkeypatch)
    writers = summaries.writers(str(tmp_path / "logs"))
    for step in range(3):
        writers.train.add_summary(tf.compat.v1.Summary(), step)
        writers.train.flush()
        writers.validation.flush()
    writers.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert re.fullmatch(rf"Cannot write TensorBoard summaries to {re.escape(writers.folder)} "
                        r"\(no space left on /\S*( \(\S+\))?\); training goes on without them",
                        warnings[0])


def test_summaries_on_a_real_full_tmpfs(tiny_full_tmpfs, caplog, capfd):
    writers = summaries.writers(str(tiny_full_tmpfs / "logs"))
    for step in range(3):
        writers.train.add_summary(tf.compat.v1.Summary(), step)
        writers.train.flush()
    writers.close()
    assert [r.getMessage()[:40] for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"Cannot write TensorBoard summaries to {tiny_full_tmpfs}"[:40]]
    assert "E0000" not in capfd.readouterr().err  # TensorFlow's own line is gone too


# Numbers Python will not read, nesting it cannot follow: one line each, not a traceback.

@pytest.mark.parametrize("text, line, message", [
    ("[1, -1]\n[1, " + "9" * 5000 + "]\n", 2, "not a JSON list: a number with more than 4300 "
                                               "digits"),
    ("[[1, -1],\n [1, " + "9" * 5000 + "]]", 2, "bad JSON: a number with more than 4300 digits"),
    ("[1]\n" + "[" * 100_000 + "]" * 100_000, 2, "not a JSON list: lists nested too deeply"),
    ("[[1],\n" + "[" * 100_000 + "]" * 100_000 + "]", 2, "bad JSON: lists nested too deeply"),
], ids=["long_number", "long_number_array", "deep", "deep_array"])
def test_labels_json_beyond_what_python_reads(text, line, message):
    with pytest.raises(UserError) as error:
        labels_json.parse_labels(text, source="labels.json")
    assert str(error.value) == f"labels.json:{line}: {message}"


def test_labels_json_with_a_long_flag_names_it_briefly(tmp_path, capsys):
    _scene(tmp_path)
    (tmp_path / "labels.json").write_text("[1, -1]\n[1, " + "7" * 4000 + "]")
    assert data_generation.main(["--image_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"data_generation.py: error: {tmp_path / 'labels.json'}"
                                       f":2: flag {'7' * 40}... is not 1 (present) or -1/0 "
                                       "(absent)\n")


def test_a_list_index_of_thousands_of_digits_is_one_line():
    with pytest.raises(UserError) as error:
        listfile.read_list(io.StringIO("1\t1\timages/a.jpg\n" + "9" * 5000 + "\t1\timages/b.jpg\n"),
                           source="x.lst")
    assert str(error.value) == (f"x.lst:2: index '{'9' * 40}...' has 5000 digits, more than the "
                                "18 allowed")


# retrain.py's flag checks.

@pytest.mark.parametrize("flags, message", [
    (["--learning_rate", "nan"], "--learning_rate must be a finite number"),
    (["--learning_rate", "inf"], "--learning_rate must be a finite number"),
    (["--fine_tune_learning_rate", "nan"], "--fine_tune_learning_rate must be a finite number"),
    (["--l2_regularization", "nan"], "--l2_regularization must be a finite number"),
    (["--pos_weight", "nan"], "--pos_weight must be a finite number"),
    (["--pos_weight", "1,inf"], "--pos_weight must be a finite number"),
    (["--final_tensor_name", "out:0"], "--final_tensor_name 'out:0' is not a node name"),
    (["--final_tensor_name", "_hidden"], "--final_tensor_name '_hidden' is not a node name"),
    (["--final_tensor_name", "Placeholder"],
     "--final_tensor_name 'Placeholder' names a node the exported graph already has"),
    (["--final_tensor_name", "final_retrain_ops/logits"],
     "--final_tensor_name 'final_retrain_ops/logits' names a node the exported graph"),
])
def test_retrain_refuses_flags_that_cannot_work(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        retrain.parse_args(flags)
    assert exit_info.value.code == 2
    assert f": error: {message}" in capsys.readouterr().err


def test_an_output_name_taken_by_a_node_of_the_module_is_one_line():
    """As when --final_tensor_name names one of the module's own nodes."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.identity(tf.zeros([1, 3]), name="module_node")
        with pytest.raises(UserError, match="^the output name 'module_node' is taken by "
                                            "another node of the graph; choose another "
                                            "--final_tensor_name$"):
            head.add_final_layer(inputs, 2, "module_node", np.zeros((3, 2), np.float32),
                                 np.zeros(2, np.float32))


def test_testing_percentage_that_leaves_no_training_images(tmp_path):
    folder = write_dataset(tmp_path, train_count=6, test_count=2)
    (folder / "dataset_test.lst").unlink()
    with pytest.raises(UserError) as error:
        dataset.load_dataset(folder, validation_percentage=10, testing_percentage=99)
    assert str(error.value) == (
        f"{folder / 'dataset_train.lst'}: no dataset_test.lst, so the test part is carved "
        "from the training list, but a validation percentage of 10 and a testing percentage "
        "of 99 leave nothing to train on; their sum must be below 100 (or write a test list "
        "with data_generation.py)")


# One image, two spellings.

@pytest.mark.parametrize("spelling", ["images//./3.jpg", "images/link.jpg", "images/hard.jpg"])
def test_one_file_listed_twice_in_any_spelling_is_refused(tmp_path, spelling):
    folder = write_dataset(tmp_path, train_count=6, test_count=2)
    os.symlink("3.jpg", folder / "images" / "link.jpg")
    os.link(folder / "images" / "3.jpg", folder / "images" / "hard.jpg")
    with open(folder / "dataset_train.lst", "a") as f:
        f.write(f"99\t1\t0\t{spelling}\n")
    with pytest.raises(UserError) as error:
        dataset.load_dataset(folder)
    assert str(error.value) == (f"{folder / 'dataset_train.lst'}:7: image {spelling} is the "
                                "same file as images/3.jpg (line 4); list each image once")


def test_a_test_list_that_repeats_training_images_is_warned_about(tmp_path, caplog):
    folder = write_dataset(tmp_path, train_count=6, test_count=2)
    with open(folder / "dataset_test.lst", "a") as f:
        f.write("98\t1\t0\timages/1.jpg\n97\t1\t0\timages/./2.jpg\n")
    data = dataset.load_dataset(folder)
    assert len(data.test) == 4
    assert (f"2 of the 4 images of {folder / 'dataset_test.lst'} are also in "
            f"{folder / 'dataset_train.lst'} (the same files)") in caplog.text


def test_byte_for_byte_copies_are_counted_where_the_cache_hashes_them(tmp_path, caplog):
    paths = []
    for i, content in enumerate([b"\1\2\3\4", b"\1\2\3\4", b"\5\6\7\10", b"\1\2\3\4"]):
        (tmp_path / f"{i}.bin").write_bytes(content)
        paths.append(str(tmp_path / f"{i}.bin"))
    cache = bottlenecks.BottleneckCache(str(tmp_path / "cache"), "key", 4)
    computed = bottlenecks.cached_bottlenecks(
        paths, cache, lambda todo: [np.ones((len(todo), 4), np.float32)])
    assert computed.shape == (4, 4)
    assert "2 of the 4 images are byte-for-byte copies of another listed image" in caplog.text


# label_image.py's input bounds.

def _graph_of_size(path, height, width):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, height, width, 3], name="Placeholder")
        tf.sigmoid(tf.reduce_mean(images, axis=[1, 2]), name="final_result")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return str(path)


def test_a_graph_declaring_a_huge_input_is_refused_unless_allowed(tmp_path, capsys):
    graph = _graph_of_size(tmp_path / "huge.pb", 100_000, 100_000)
    (tmp_path / "output_labels.txt").write_text("a\nb\nc\n")
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    assert label_image.main(["--graph", graph, str(image), "-q"]) == 2
    assert capsys.readouterr().err == (
        f"label_image.py: error: {graph}: input layer 'Placeholder' takes images of height "
        "100000, more than the 4096 allowed; if the graph really needs it, pass "
        "--max_input_size\n")
    model = load_frozen_graph(_graph_of_size(tmp_path / "big.pb", 5000, 300),
                              max_input_size=5000)
    assert (model.height, model.width) == (5000, 300)
    open_graph = _graph_of_size(tmp_path / "open.pb", None, None)
    with pytest.raises(UserError, match="takes images of width 9999, more than the 4096"):
        load_frozen_graph(open_graph, height=10, width=9999)


def _endless_graph(path):
    """A classifier whose output waits on a While loop of allowed ops that never ends."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 3], name="Placeholder")
        count = tf.while_loop(lambda i: i >= 0, lambda i: i * 1, [tf.constant(0)])
        means = tf.reduce_mean(images, axis=[1, 2]) + tf.cast(count, tf.float32)
        tf.sigmoid(means, name="final_result")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    (path.parent / "output_labels.txt").write_text("a\nb\nc\n")
    return str(path)


def test_an_endless_loop_is_stopped_by_the_timeout(tmp_path, capsys):
    graph = _endless_graph(tmp_path / "endless.pb")
    image = write_image(tmp_path / "red.png", (255, 0, 0))
    assert label_image.main(["--graph", graph, str(image), "--timeout", "0.5", "-q"]) == 2
    assert capsys.readouterr().err == (
        f"label_image.py: error: {graph}: running the graph on one batch took longer than "
        "the 0.5 s allowed (--timeout); does it loop forever? Stopped\n")


# Names shown as they are.

def test_a_class_name_with_mathtext_is_drawn_as_plain_text():
    png = plots.precision_recall("$\\badcmd{$", np.array([1.0, 0.5]), np.array([0.5, 1.0]),
                                 0.75, (0.5, 0.5, 1.0))
    assert png.startswith(b"\x89PNG")


def test_a_newline_in_an_image_name_is_escaped_in_the_text_output(tmp_path, model, capsys):  # noqa: F811
    odd = write_image(tmp_path / "new\nline\x1b.png", (255, 0, 0))
    plain = write_image(tmp_path / "plain.png", (255, 0, 0))
    assert label_image.main(model + [str(odd), str(plain), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"==> {tmp_path}/new\\nline\\x1b.png <==" in out.splitlines()
    assert len(out.splitlines()) == 2 * 6  # name, 3 labels, predicted, blank


def test_a_fifo_given_as_a_list_or_labels_file_is_one_line(tmp_path):
    with unblocked(tmp_path / "list.lst") as fifo:
        with pytest.raises(UserError, match="cannot read the list file: not a regular file "
                                            "but a FIFO$"):
            listfile.read_list_file(str(fifo))
        with pytest.raises(UserError, match="cannot read the labels file: not a regular file "
                                            "but a FIFO$"):
            labels_json.read_labels_file(str(fifo))
