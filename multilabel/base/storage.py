"""Files that may live on an object store (gs://, s3://, hdfs://) as well as on disk.

The bottleneck cache and its TFLite conversion can sit in a bucket that many workers
share. Remote paths go through `tf.io.gfile`, TensorFlow's own file layer: retrain.py
has TensorFlow anyway, and the same paths then work with or without Apache Beam
installed (Beam's `FileSystems` would make Beam a dependency of retrain.py). Local
paths keep plain `open` and `multilabel.base.atomic`, so no TensorFlow is imported for them.

An object store publishes an object whole when its writer closes it, which gives a
remote write the all-or-nothing behaviour `atomic` gives a local one.
"""

import errno
import glob as local_glob
import os
import stat

from multilabel.base import atomic
from multilabel.base.errors import UserError, file_error


def is_remote(path):
    """Whether `path` is a URL (`gs://bucket/x`) rather than a local path."""
    return "://" in os.fspath(path)


def join(folder, *names):
    """`os.path.join` for local folders, `/` between the parts of a URL."""
    if is_remote(folder):
        return "/".join([os.fspath(folder).rstrip("/"), *names])
    return os.path.join(folder, *names)


def open_file(path, mode="r", **open_kwargs):
    """A file object for `path`, local or remote; FileNotFoundError when it is absent,
    and for reading a local one, `check_regular`'s errors when it is not a file.

    `open_kwargs` (encoding, newline) apply to local files; a remote one is read as
    UTF-8 with its line ends kept.
    """
    if not is_remote(path):
        if "r" in mode:
            check_regular(path)  # a FIFO would block the read forever
        return open(path, mode, **open_kwargs)
    import tensorflow as tf

    if "r" in mode and not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    return tf.io.gfile.GFile(path, mode)


class NotRegularFileError(OSError):
    """A path that names a FIFO, a socket or a device rather than a file."""


def _kind(mode):
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def open_regular(path):
    """A local regular file, opened for reading in binary; anything else is refused
    before it is read.

    Reading a FIFO blocks until something writes to it, forever if nothing does; a
    device can stream without end. So the kind is checked first (`stat`, following
    symlinks), and again on the opened descriptor, opened without blocking, in case
    the path was swapped in between. A folder raises `IsADirectoryError`, the other
    kinds `NotRegularFileError`, whose `strerror` names the kind.
    """
    path = os.fspath(path)
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _refuse_kind(os.fstat(fd).st_mode, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path):
    """`os.stat(path)` (following symlinks) of a regular file; `IsADirectoryError` or
    `NotRegularFileError` for another kind, and `os.stat`'s own errors."""
    info = os.stat(path)
    _refuse_kind(info.st_mode, path)
    return info


def _refuse_kind(mode, path):
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(errno.EINVAL, f"not a regular file but {_kind(mode)}", path)


def isfile(path):
    """Whether `path` is an existing file (not a folder), local or remote."""
    if not is_remote(path):
        return os.path.isfile(path)
    import tensorflow as tf

    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)


def glob(pattern):
    """The sorted paths matching `pattern` (`*` within one folder level)."""
    if not is_remote(pattern):
        return sorted(local_glob.glob(pattern))
    import tensorflow as tf

    return sorted(tf.io.gfile.glob(pattern))


# How much of a file the tools read whole at most, by default: far beyond any list,
# class names, thresholds or manifest the project writes, and small enough that a
# file swapped for a huge one (or a device that streams without end) cannot fill memory.
TEXT_LIMIT = 256 * 2**20
# A model file read whole (a frozen graph, a TFLite model): protobuf and FlatBuffers
# both stop at 2 GiB.
MODEL_LIMIT = 2 * 2**30


class TooLargeError(OSError):
    """A file larger than what its reader reads whole."""


def read_regular(path, limit=TEXT_LIMIT):
    """The bytes of the local regular file at `path`, at most `limit` of them: the one
    check every file the tools read goes through.

    A FIFO, a device (/dev/zero), a socket or a folder is refused before it is read
    (`open_regular`, following links; a dangling link is FileNotFoundError), and a file
    longer than `limit` raises `TooLargeError` after reading `limit + 1` bytes, never
    more. Raises OSError subclasses only: `file_error` turns each into one line.
    """
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(errno.EFBIG, f"larger than the {limit:,} bytes read at most",
                            os.fspath(path))
    return data


def read_bytes(path, limit=MODEL_LIMIT):
    """The bytes of `path` (local: `read_regular`), or None when there is no such file."""
    try:
        if not is_remote(path):
            return read_regular(path, limit)
        with open_file(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_text(path, what="file"):
    """The text of the UTF-8 file at `path`, a `what` ("list file"), any byte-order mark
    kept; a local one through `read_regular` (no FIFO, device or file over TEXT_LIMIT).

    Raises `UserError` naming the path when the file cannot be read, and the line and
    column of the first byte that is not UTF-8: the whole file is decoded at once, since a
    text file object decodes in chunks and reports a position within one of them.
    """
    try:
        if is_remote(path):
            with open_file(path, "rb") as f:
                data = f.read()
        else:
            data = read_regular(path)
    except OSError as e:
        raise file_error(e, path, what) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        raise UserError(f"not UTF-8 text: byte 0x{data[e.start]:02x} at column "
                        f"{e.start - line_start + 1} ({e.reason})", path,
                        data.count(b"\n", 0, e.start) + 1) from e


def write_bytes(path, data, durable=True):
    """Replace `path` with `data` so that no reader ever sees part of it."""
    if not is_remote(path):
        with atomic.atomic_output(path, "wb", durable=durable) as f:
            f.write(data)
        return
    import tensorflow as tf

    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)
