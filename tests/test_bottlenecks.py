"""The bottleneck cache: content keys, reuse, corruption, deduplication."""

import logging

import numpy as np
import pytest

from multilabel.features import bottlenecks
from multilabel.base.errors import UserError


def _images(tmp_path, contents):
    paths = []
    for i, content in enumerate(contents):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(content)
        paths.append(str(path))
    return paths


class CountingEngine:
    """Stands in for a feature module: the vector is the file's first bytes as numbers."""

    def __init__(self, dim=4):
        self.dim = dim
        self.computed = []

    def __call__(self, paths):
        self.computed.extend(paths)
        for start in range(0, len(paths), 2):  # batches of two, like a real pipeline
            yield np.array([[b for b in open(p, "rb").read(self.dim)] for p in paths[start:start + 2]],
                           dtype=np.float32)


@pytest.fixture
def cache(tmp_path):
    return bottlenecks.BottleneckCache(str(tmp_path / "cache"), "key", 4)


def test_computes_once_then_reads_everything_from_the_cache(tmp_path, cache):
    paths = _images(tmp_path, [b"\1\2\3\4", b"\5\6\7\10", b"\11\12\13\14"])
    engine = CountingEngine()
    first = bottlenecks.cached_bottlenecks(paths, cache, engine)
    assert first.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert len(engine.computed) == 3

    again = CountingEngine()
    second = bottlenecks.cached_bottlenecks(paths, cache, again)
    assert again.computed == []
    np.testing.assert_array_equal(first, second)


def test_an_edited_image_is_never_served_its_old_vector(tmp_path, cache):
    paths = _images(tmp_path, [b"\1\1\1\1"])
    bottlenecks.cached_bottlenecks(paths, cache, CountingEngine())
    with open(paths[0], "wb") as f:
        f.write(b"\2\2\2\2")
    assert bottlenecks.cached_bottlenecks(paths, cache, CountingEngine()).tolist() == [[2, 2, 2, 2]]


def test_identical_images_are_computed_once(tmp_path, cache):
    paths = _images(tmp_path, [b"\1\2\3\4", b"\1\2\3\4"])
    engine = CountingEngine()
    result = bottlenecks.cached_bottlenecks(paths, cache, engine)
    assert len(engine.computed) == 1
    assert result.tolist() == [[1, 2, 3, 4], [1, 2, 3, 4]]


@pytest.mark.parametrize("damage", ["truncate", "wrong_length", "nan", "garbage"])
def test_a_corrupt_entry_is_recomputed_with_a_warning(tmp_path, cache, caplog, damage):
    paths = _images(tmp_path, [b"\1\2\3\4"])
    bottlenecks.cached_bottlenecks(paths, cache, CountingEngine())
    entry = cache._path(bottlenecks.content_hash(paths[0]))
    if damage == "truncate":
        data = open(entry, "rb").read()
        open(entry, "wb").write(data[: len(data) - 5])
    elif damage == "wrong_length":
        np.save(entry, np.zeros(3, np.float32))
    elif damage == "nan":
        np.save(entry, np.array([1, np.nan, 3, 4], np.float32))
    else:
        open(entry, "wb").write(b"not a numpy file")

    engine = CountingEngine()
    with caplog.at_level(logging.WARNING):
        result = bottlenecks.cached_bottlenecks(paths, cache, engine)
    assert result.tolist() == [[1, 2, 3, 4]]
    assert len(engine.computed) == 1
    assert "Corrupt bottleneck" in caplog.text
    assert bottlenecks.cached_bottlenecks(paths, cache, CountingEngine()).tolist() == [[1, 2, 3, 4]]


def test_an_interrupted_run_keeps_the_vectors_it_finished(tmp_path, cache):
    paths = _images(tmp_path, [bytes([i] * 4) for i in range(1, 6)])

    def dies_after_first_batch(todo):
        yield from ()  # a generator, like the real one
        engine = CountingEngine()
        batches = engine(todo)
        yield next(batches)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bottlenecks.cached_bottlenecks(paths, cache, dies_after_first_batch)
    engine = CountingEngine()
    bottlenecks.cached_bottlenecks(paths, cache, engine)
    assert len(engine.computed) == 3


def test_module_key_separates_modules_and_sizes():
    keys = {bottlenecks.module_key("a", 224, 224), bottlenecks.module_key("b", 224, 224),
            bottlenecks.module_key("a", 192, 192)}
    assert len(keys) == 3
    assert bottlenecks.module_key("a", 224, 224) == bottlenecks.module_key("a", 224, 224)


def test_an_image_removed_since_its_check_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="image file not found"):
        bottlenecks.content_hash(str(tmp_path / "gone.jpg"))
