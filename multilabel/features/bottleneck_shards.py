"""Bottlenecks kept as records in a few large files: the cache layout for big runs.

retrain.py keeps one `.npy` file per image (see bottlenecks), which is right for a few
thousand images on a disk. At a million images on an object store, a file per image
is slow to write, to list and to read back: every file is a request. The Beam
pipeline (beam_bottlenecks) therefore writes its vectors as records in sharded files
beside the per-image ones, under the same module key:

    <bottleneck_dir>/<module key>/shards/<run id>-00000-of-00004.txt

one line per image, `<sha256 of the image bytes> <base64 of the float32 vector,
little-endian>`. Text lines are what every runner's text sink shards and finalises
(temp files, then renames) on any file system, and read back with nothing but the
standard library; a vector costs a third more than in binary. A run adds new shard
files and never rewrites old ones, so runs sharing a cache never race on a file.
A line that does not parse (a torn copy, a hand edit) is skipped with a warning and
its image is computed again, as a corrupt per-image file is.
"""

import base64
import binascii
import logging
import re

import numpy as np

from multilabel.base import storage

logger = logging.getLogger(__name__)

SHARDS_FOLDER = "shards"
SHARD_SUFFIX = ".txt"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_LITTLE_ENDIAN_FLOAT32 = np.dtype("<f4")


def shards_folder(cache_folder):
    """Where a module's shard files go, inside its cache folder."""
    return storage.join(cache_folder, SHARDS_FOLDER)


def format_record(digest, vector):
    """One record line (without its newline) for the vector of the image `digest`."""
    data = np.asarray(vector, _LITTLE_ENDIAN_FLOAT32).tobytes()
    return f"{digest} {base64.b64encode(data).decode('ascii')}"


def parse_record(line, dim):
    """`(digest, float32 vector)` of a record line; ValueError when it is not one."""
    digest, _, encoded = line.strip().partition(" ")
    if not _DIGEST.fullmatch(digest):
        raise ValueError("no SHA-256 digest at the start of the line")
    try:
        data = base64.b64decode(encoded, validate=True)
    except binascii.Error as e:
        raise ValueError(f"the vector is not base64: {e}") from None
    if len(data) != 4 * dim:
        raise ValueError(f"{len(data) // 4} values, not {dim}")
    vector = np.frombuffer(data, _LITTLE_ENDIAN_FLOAT32).astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise ValueError("non-finite values")
    return digest, vector


def shard_files_pattern(cache_folder):
    """The glob pattern of a module's shard files (not the temp folders of a run)."""
    return storage.join(shards_folder(cache_folder), "*" + SHARD_SUFFIX)


def shard_files(cache_folder):
    """The shard files of a module's cache folder, sorted; none when there is no folder."""
    return storage.glob(shard_files_pattern(cache_folder))


def count_records(cache_folder, run_name):
    """The lines of the shard files one run wrote (`<run_name>-*`): what it computed."""
    pattern = storage.join(shards_folder(cache_folder), f"{run_name}-*{SHARD_SUFFIX}")
    total = 0
    for path in storage.glob(pattern):
        with storage.open_file(path, "r") as f:
            total += sum(1 for _ in f)
    return total


def read_shards(cache_folder, dim):
    """Every well-formed record of the folder's shards, as a dict digest -> vector."""
    vectors = {}
    for path in shard_files(cache_folder):
        with storage.open_file(path, "r") as f:
            for number, line in enumerate(f, start=1):
                try:
                    digest, vector = parse_record(line, dim)
                except ValueError as e:
                    logger.warning("Corrupt bottleneck record %s:%d (%s); recomputing it",
                                   path, number, e)
                    continue
                vectors[digest] = vector
    if vectors:
        logger.info("Read %d bottlenecks from the shards in %s", len(vectors),
                    shards_folder(cache_folder))
    return vectors
