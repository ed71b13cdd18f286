"""Write files so that a reader never sees a partial one.

Every output of the project (list files, bottlenecks, graphs, metrics) goes through
here: the content is written to a temporary file in the same folder, flushed to disk,
then renamed over the target. A crash or a SIGKILL leaves either the old file or the
new one, never a mix, and two writers racing on one path each leave a whole file.
"""

import contextlib
import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: reading it means setting it, which is not thread-safe


@contextlib.contextmanager
def atomic_output(path, mode="w", durable=True, **open_kwargs):
    """Open a temporary sibling of `path`; rename it onto `path` on success.

    On an exception the temporary file is removed and `path` is left untouched. The
    rename alone protects against a killed process; `durable` also syncs the data to
    disk first, so that a power cut can't leave an empty file behind the new name. A
    cache whose entries are checked on reading can skip that cost.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise




def write_text(path, text):
    """Atomically replace `path` with `text` (UTF-8)."""
    with atomic_output(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_bytes(path, data):
    """Atomically replace `path` with `data`."""
    with atomic_output(path, "wb") as f:
        f.write(data)
