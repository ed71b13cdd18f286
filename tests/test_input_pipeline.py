"""The bottleneck pipeline's batches: decoded in worker threads, handed back in order."""

import threading

import numpy as np
from PIL import Image

from multilabel.features.input_pipeline import mapped_batches


def test_batches_come_back_in_order_from_the_worker_threads(tmp_path):
    paths = []
    for i in range(11):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (6, 4), (20 * i, 0, 0)).save(path)
        paths.append(str(path))
    threads = set()

    def red(images):  # a stand-in for several engines fed one decoded batch
        threads.add(threading.get_ident())
        return images[:, 0, 0, 0]

    batches = list(mapped_batches(red, paths, 3, 3, batch_size=2, workers=3))
    assert [len(b) for b in batches] == [2, 2, 2, 2, 2, 1]
    np.testing.assert_allclose(np.concatenate(batches), np.arange(11) * 20 / 255, rtol=1e-6)
    assert threading.get_ident() not in threads
