"""The on-disk cache of bottleneck vectors, and filling it.

A bottleneck is the feature module's output for one image. Computing it is the slow
part of a run, so each is computed once and kept in `<bottleneck_dir>/<module key>/`,
one `.npy` file per image named by the SHA-256 of the image's bytes, or as records in
the sharded files the Beam pipeline writes there (see bottleneck_shards; both are read,
and the folder may be a gs:// or other URL, see storage). Keying on content
(not on the path) means an edited image is never served a stale vector and a moved
folder keeps its cache; the module key separates modules and preprocessing.

Each entry is written atomically (temp file + rename), so an interrupted run or two
runs sharing the folder never leave a broken file. An entry that does not read back
as a finite vector of the right length is reported and recomputed.
"""

import hashlib
import io
import logging

import numpy as np

from multilabel.features import bottleneck_shards
from multilabel.base import storage
from multilabel.base.errors import file_error

logger = logging.getLogger(__name__)

# Bump when the image preprocessing changes, so old vectors are not reused.
PREPROCESSING_VERSION = "pil-bilinear-v1"


def module_key(module_fingerprint, height, width):
    """The cache sub-folder name for one module at one input size."""
    text = f"{module_fingerprint}|{height}x{width}|{PREPROCESSING_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_hash(path):
    """SHA-256 of a file's bytes: the cache key of its bottleneck."""
    try:
        with storage.open_regular(path) as f:  # a FIFO swapped in since the check: no hang
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:  # e.g. removed since it was checked
        raise file_error(e, path, "image file") from e


def bytes_hash(data):
    """SHA-256 of an image's bytes already in memory: the same key as `content_hash`."""
    return hashlib.sha256(data).hexdigest()


class BottleneckCache:
    """Vectors of one module, stored one file per image content hash (and read from shards)."""

    def __init__(self, root, key, dim):
        self.folder = storage.join(root, key)
        self.dim = dim
        self._sharded = None  # digest -> vector of the shard files, read on first use

    def _path(self, digest):
        return storage.join(self.folder, digest[:2], digest + ".npy")

    def load(self, digest):
        """The cached vector, or None when it is absent or corrupt."""
        if self._sharded is None:
            self._sharded = bottleneck_shards.read_shards(self.folder, self.dim)
        vector = self._sharded.get(digest)
        return vector if vector is not None else self.load_file(digest)

    def load_file(self, digest):
        """The vector of the image's own file, or None when it is absent or corrupt."""
        path = self._path(digest)
        try:
            data = storage.read_bytes(path)
            if data is None:
                return None
            vector = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            logger.warning("Corrupt bottleneck %s (%s); recomputing it", path, e)
            return None
        if vector.shape != (self.dim,) or not np.all(np.isfinite(vector)):
            logger.warning("Corrupt bottleneck %s (shape %s or non-finite values); recomputing it",
                           path, vector.shape)
            return None
        return vector.astype(np.float32, copy=False)

    def store(self, digest, vector):
        # Not synced to disk: an entry torn by a power cut fails `load`'s checks and
        # is recomputed, and syncing each one cost a tenth of the pipeline's time.
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        storage.write_bytes(self._path(digest), buffer.getvalue(), durable=False)


def cached_bottlenecks(paths, cache, compute_batches, report_duplicates=True):
    """All bottlenecks for `paths` as one `[len(paths), dim]` float32 array.

    Cached vectors are read; the rest are computed by `compute_batches(paths)`, which
    yields arrays of vectors in the order of the paths it was given, and each is stored
    as soon as it arrives so that an interrupted run keeps its progress. Identical
    images (same content) are computed once, and with `report_duplicates` counted in a
    warning: copies of one photo weigh more in training and, across parts, let a test
    image be one the model was trained on.
    """
    digests = [content_hash(p) for p in paths]
    copies = len(digests) - len(set(digests))
    if copies and report_duplicates:
        logger.warning("%d of the %d images are byte-for-byte copies of another listed "
                       "image; each copy counts as one more image", copies, len(paths))
    result = np.empty((len(paths), cache.dim), dtype=np.float32)
    missing = {}  # digest -> indices of paths with that content
    for i, digest in enumerate(digests):
        vector = cache.load(digest)
        if vector is None:
            missing.setdefault(digest, []).append(i)
        else:
            result[i] = vector
    if missing:
        logger.info("%d of %d bottlenecks cached; computing %d",
                    len(paths) - sum(map(len, missing.values())), len(paths), len(missing))
        todo = list(missing)
        done = 0
        for batch in compute_batches([paths[missing[d][0]] for d in todo]):
            for vector in batch:
                digest = todo[done]
                cache.store(digest, vector)
                result[missing[digest]] = vector
                done += 1
    else:
        logger.info("All %d bottlenecks cached", len(paths))
    return result
