"""Sharded bottleneck records: their format, and the cache reading them beside per-image files."""

import hashlib
import logging

import numpy as np
import pytest

from multilabel.features import bottleneck_shards, bottlenecks


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _write_shard(folder, name, lines):
    shards = folder / bottleneck_shards.SHARDS_FOLDER
    shards.mkdir(parents=True, exist_ok=True)
    (shards / name).write_text("".join(line + "\n" for line in lines))


def test_a_record_gives_back_the_exact_vector():
    vector = np.array([0.1, -2.5e-7, 3e30, 0.0], np.float32)
    digest, back = bottleneck_shards.parse_record(
        bottleneck_shards.format_record(_digest("a"), vector) + "\n", 4)
    assert digest == _digest("a")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, vector)


@pytest.mark.parametrize("line", [
    "",
    "nothex " + "AAAA",
    _digest("a") + " !!!not base64",
    _digest("a") + " " + bottleneck_shards.format_record(_digest("a"), np.ones(3)).split()[1],
    bottleneck_shards.format_record(_digest("a"), [1, np.nan, 3, 4]),
    bottleneck_shards.format_record(_digest("a"), np.ones(4))[:-6],  # torn
])
def test_a_damaged_record_is_refused(line):
    with pytest.raises(ValueError):
        bottleneck_shards.parse_record(line, 4)


def test_the_cache_reads_shards_and_per_image_files(tmp_path, caplog):
    cache = bottlenecks.BottleneckCache(str(tmp_path), "key", 4)
    folder = tmp_path / "key"
    _write_shard(folder, "run1-00000-of-00002.txt",
                 [bottleneck_shards.format_record(_digest("a"), [1, 2, 3, 4])])
    _write_shard(folder, "run1-00001-of-00002.txt",
                 [bottleneck_shards.format_record(_digest("b"), [5, 6, 7, 8]),
                  _digest("c") + " torn"])
    # A run's unfinished temp files lie in a sub-folder; they are not records yet.
    (folder / "shards" / "beam-temp-x").mkdir()
    (folder / "shards" / "beam-temp-x" / "part.txt").write_text(
        bottleneck_shards.format_record(_digest("d"), [9, 9, 9, 9]) + "\n")
    cache.store(_digest("e"), np.array([0, 0, 0, 1], np.float32))

    with caplog.at_level(logging.WARNING):
        assert cache.load(_digest("a")).tolist() == [1, 2, 3, 4]
        assert cache.load(_digest("b")).tolist() == [5, 6, 7, 8]
        assert cache.load(_digest("e")).tolist() == [0, 0, 0, 1]
        assert cache.load(_digest("c")) is None
        assert cache.load(_digest("d")) is None
    assert "Corrupt bottleneck record" in caplog.text and "00001-of-00002.txt:2" in caplog.text


def test_cached_bottlenecks_computes_none_that_a_shard_holds(tmp_path):
    images = []
    for i in range(3):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(bytes([i + 1] * 4))
        images.append(str(path))
    digests = [bottlenecks.content_hash(p) for p in images]
    _write_shard(tmp_path / "cache" / "key", "run-00000-of-00001.txt",
                 [bottleneck_shards.format_record(d, [i] * 4) for i, d in enumerate(digests[:2])])
    computed = []

    def compute(paths):
        computed.extend(paths)
        yield np.full((len(paths), 4), 7, np.float32)

    cache = bottlenecks.BottleneckCache(str(tmp_path / "cache"), "key", 4)
    result = bottlenecks.cached_bottlenecks(images, cache, compute)
    assert computed == images[2:]
    assert result.tolist() == [[0] * 4, [1] * 4, [7] * 4]


def test_the_cache_works_in_a_remote_folder():
    """Through tf.io.gfile, as a gs:// folder would be: TensorFlow's ram:// stands in."""
    import tensorflow as tf

    root = "ram://bottlenecks-test"
    tf.io.gfile.makedirs(f"{root}/key/shards")
    with tf.io.gfile.GFile(f"{root}/key/shards/run-00000-of-00001.txt", "w") as f:
        f.write(bottleneck_shards.format_record(_digest("a"), [1, 2, 3, 4]) + "\n")
    cache = bottlenecks.BottleneckCache(root, "key", 4)
    cache.store(_digest("b"), np.array([5, 6, 7, 8], np.float32))
    assert tf.io.gfile.exists(f"{root}/key/{_digest('b')[:2]}/{_digest('b')}.npy")

    again = bottlenecks.BottleneckCache(root, "key", 4)
    assert again.load(_digest("a")).tolist() == [1, 2, 3, 4]
    assert again.load(_digest("b")).tolist() == [5, 6, 7, 8]
    assert again.load(_digest("c")) is None


def test_a_dataset_in_a_remote_folder_is_listed():
    """beam_bottlenecks reads a gs:// dataset's lists like a local one's (ram:// stands in)."""
    import tensorflow as tf

    from multilabel.data import dataset

    root = "ram://dataset-test"
    lines = {"dataset_train.lst": "".join(f"{i}\t1\t0\timages/{i}.jpg\n" for i in range(1, 11)),
             "dataset_test.lst": "11\t0\t1\timages/11.jpg\n",
             "class_names.txt": "cat\ndog\n"}
    for name, text in lines.items():
        with tf.io.gfile.GFile(f"{root}/{name}", "w") as f:
            f.write(text)
    data = dataset.load_dataset(root)
    assert data.class_names == ("cat", "dog")
    assert data.test.paths == (f"{root}/images/11.jpg",)
    assert len(data.train) + len(data.validation) == 10
