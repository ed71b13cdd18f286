"""Write files so that a reader never sees a partial one.

Every output of the project (list files, bottlenecks, graphs, metrics) goes through
here: the content is written to a temporary file in the same folder, flushed to disk,
then renamed over the target. A crash or a SIGKILL leaves either the old file or the
new one, never a mix, and two writers racing on one path each leave a whole file.
"""

import contextlib
import errno
import os
import shutil
import tempfile

from multilabel.base.errors import no_space_left


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
    cache whose entries are checked on reading can skip that cost. A full disk raises
    `NoSpaceError` naming the device and `path`, the temporary file removed.
    """
    path = os.fspath(path)
    with no_space_left(path):  # "no space left on DEVICE while writing PATH", one line
        with _replacing(path, mode, durable, open_kwargs) as f:
            yield f


@contextlib.contextmanager
def _replacing(path, mode, durable, open_kwargs):
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


@contextlib.contextmanager
def atomic_folder(path, keep_existing=None):
    """Yield an empty staging folder beside `path`; on success it becomes `path`.
    A full disk raises `NoSpaceError` naming the device and `path`.

    Readers see the old folder or the new one, never a part: an old folder is moved
    aside in one rename, the new one renamed into place, then the old one deleted.
    With `keep_existing`, a folder that already stands at `path` when the new one is
    done is never replaced: where `keep_existing(path)` is true it is kept and the new
    one dropped (for caches that a concurrent run may fill first with the same content),
    else FileExistsError is raised. On an exception the staging folder is removed and
    `path` is left untouched.
    """
    path = os.path.abspath(os.fspath(path))
    with no_space_left(path):  # whatever writes into the staging folder (TensorFlow too)
        with _staged_folder(path, keep_existing) as staging:
            yield staging


@contextlib.contextmanager
def _staged_folder(path, keep_existing):
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp's 0700 would stick after the rename
        yield staging
        if keep_existing is not None and os.path.lexists(path):
            if keep_existing(path):
                return
            raise FileExistsError(errno.EEXIST, "a folder that is not kept stands there", path)
        _swap_in(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # already gone after a successful swap


def _swap_in(new, path):
    old = None
    if os.path.lexists(path):
        old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".old.")
        os.replace(path, os.path.join(old, "x"))
    os.replace(new, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_text(path, text):
    """Atomically replace `path` with `text` (UTF-8)."""
    with atomic_output(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_bytes(path, data):
    """Atomically replace `path` with `data`."""
    with atomic_output(path, "wb") as f:
        f.write(data)
