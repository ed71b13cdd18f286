"""Near-duplicate images from their bottleneck vectors: leaks between parts, copies within
one, and copies labelled differently. Pure numpy.

The same photo re-encoded, resized, slightly cropped or recoloured is a different file
(the cache's content hash differs) but nearly the same feature vector. Once in the
training part and once in the test part, it makes every test measure too good; twice in
training, it weighs double; labelled two ways, one of the two is a label issue.

The search is exact cosine similarity, done in blocks of rows against all rows, keeping
each row's `k` most similar others: memory is `block x N` floats, never `N x N`, so
100,000 images take about 400 MB at a time and no index library. Pairs at or above
`THRESHOLD` are near-duplicates. The threshold comes from a measurement
(bench/experiments/near_duplicate_threshold.py, docs/data.md#near-duplicates): copies of
photos made by re-encoding, resizing, cropping and recolouring are found, distinct photos
of the same kind of scene are not.
"""

import csv
import dataclasses
import io

import numpy as np

from multilabel.base import atomic

# Cosine similarity of MobileNetV2 bottlenecks at and above which two images are called
# near-duplicates; measured in docs/data.md#near-duplicates.
THRESHOLD = 0.87
NEIGHBOURS = 10  # most similar others kept per image: a photo rarely has more copies
BLOCK_ROWS = 1024  # rows compared with all at once: BLOCK_ROWS x N floats of memory
CSV_HEADER = ("image", "other_image", "similarity", "part", "other_part", "same_labels")
TRAINING_PARTS = ("train", "validation")  # the parts a model learns from


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two images whose vectors are near; `first < second` in the run's order."""

    first: int
    second: int
    similarity: float


@dataclasses.dataclass(frozen=True)
class Found:
    """The near-duplicates of one run's images, and what they mean for it."""

    paths: tuple
    parts: tuple  # each image's part: "train", "validation" or "test"
    labels: np.ndarray  # [N, C] of 0/1
    pairs: tuple  # Pair, most similar first

    def same_labels(self, pair):
        return bool(np.array_equal(self.labels[pair.first], self.labels[pair.second]))

    def leaked_test(self):
        """Indices of the test images with a near-duplicate in a training part, sorted."""
        leaked = set()
        for pair in self.pairs:
            kinds = (self.parts[pair.first], self.parts[pair.second])
            if "test" in kinds and any(k in TRAINING_PARTS for k in kinds):
                leaked.add(pair.first if kinds[0] == "test" else pair.second)
        return sorted(leaked)

    def counts(self):
        """{"leaked_test", "within_training", "different_labels"}: the log line's counts."""
        within = sum(self.parts[p.first] in TRAINING_PARTS and self.parts[p.second]
                     in TRAINING_PARTS for p in self.pairs)
        return {"leaked_test": len(self.leaked_test()), "within_training": within,
                "different_labels": sum(not self.same_labels(p) for p in self.pairs)}


def unit_rows(vectors):
    """`vectors` [N, D] scaled to unit length (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def nearest_neighbours(vectors, k=NEIGHBOURS, block_rows=BLOCK_ROWS):
    """`(indices, similarities)`, each [N, min(k, N - 1)]: each row's most cosine-similar
    other rows, most similar first (ties: lower index first). Memory: block_rows x N."""
    unit = unit_rows(vectors)
    n = len(unit)
    k = min(k, n - 1)
    indices = np.zeros((n, max(k, 0)), np.int64)
    similarities = np.zeros((n, max(k, 0)), np.float32)
    if k <= 0:
        return indices, similarities
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        block = unit[start:stop] @ unit.T  # [rows, N]
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
        # The k largest, unordered, then ordered; a stable sort on -similarity keeps
        # the lower index first among ties.
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top.sort(axis=1)
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(top, order, axis=1)
        similarities[start:stop] = np.take_along_axis(block, indices[start:stop], axis=1)
    return indices, similarities


def find_pairs(vectors, threshold=THRESHOLD, k=NEIGHBOURS, block_rows=BLOCK_ROWS):
    """The `Pair`s of rows at least `threshold` cosine-similar, each once, most similar
    first (ties in index order); each row contributes at most its `k` nearest."""
    indices, similarities = nearest_neighbours(vectors, k, block_rows)
    found = {}
    for i, j in zip(*np.nonzero(similarities >= threshold)):
        other = int(indices[i, j])
        key = (min(i, other), max(i, other))
        found[key] = max(found.get(key, -np.inf), float(similarities[i, j]))
    return tuple(Pair(a, b, s) for (a, b), s in
                 sorted(found.items(), key=lambda item: (-item[1], item[0])))


def find_near_duplicates(parts, vectors, threshold=THRESHOLD):
    """The `Found` near-duplicates among `parts` (data.dataset.Part, their vectors
    stacked in the same order in `vectors`)."""
    paths = tuple(p for part in parts for p in part.paths)
    names = tuple(part.name for part in parts for _ in part.paths)
    labels = np.concatenate([np.asarray(part.labels) for part in parts])
    return Found(paths, names, labels, find_pairs(vectors, threshold))


def csv_text(found):
    """`near_duplicates.csv`'s text: a header, then one row per pair, most similar first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for pair in found.pairs:
        writer.writerow((found.paths[pair.first], found.paths[pair.second],
                         f"{pair.similarity:.4f}", found.parts[pair.first],
                         found.parts[pair.second], "yes" if found.same_labels(pair) else "no"))
    return out.getvalue()


def write_near_duplicates(path, found):
    """Atomically write `near_duplicates.csv` for `found`."""
    atomic.write_text(path, csv_text(found))
