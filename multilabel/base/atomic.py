"""Write files so that a reader never sees a partial one.

Every output of the project (list files, bottlenecks, graphs, metrics) goes through
here: the content is written to a temporary file in the same folder, flushed to disk,
then renamed over the target. A crash or a SIGKILL leaves either the old file or the
new one, never a mix, and two writers racing on one path each leave a whole file.

Two more promises are kept here, since every write passes through:
- `recording()`: the SHA-256 of the bytes handed to each write, hashed as they are
  written (not read back from disk, where another process may have replaced them), so
  that a run's manifest vouches only for what the run itself wrote;
- a folder swap (`atomic_folder`) never removes a folder this tool did not write: the
  folders it writes hold a marker file (`MARKER`) naming their kind, and only a folder
  with the marker of the same kind is replaced (`check_replaceable`).
"""

import contextlib
import errno
import hashlib
import io
import os
import shutil
import tempfile
import threading

from multilabel.base.errors import UserError, no_space_left

# In every folder `atomic_folder(kind=...)` writes: its kind, one line ("saved_model").
MARKER = ".multilabel-output"


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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=tmp_prefix(path), suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        raw = _HashingFile(fd)
        with _layered(raw, mode, open_kwargs) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(raw.fileno())
        os.replace(tmp, path)
        _record(path, raw.sha256.hexdigest())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def tmp_prefix(path):
    """The name a temporary sibling of `path` starts with (it ends with ".tmp")."""
    return "." + os.path.basename(path) + "."


class _HashingFile(io.RawIOBase):
    """A file descriptor opened for writing that hashes every byte written through it."""

    def __init__(self, fd):
        super().__init__()
        self._fd = fd
        self.sha256 = hashlib.sha256()

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def write(self, data):
        written = os.write(self._fd, data)
        self.sha256.update(memoryview(data)[:written])
        return written

    def close(self):
        if not self.closed:
            os.close(self._fd)
        super().close()


def _layered(raw, mode, open_kwargs):
    """What `open(fd, mode, **open_kwargs)` returns ("w" or "wb"), over `raw`."""
    if set(mode) - set("wbt"):
        raise ValueError(f"atomic_output writes a new file: mode 'w' or 'wb', not {mode!r}")
    buffered = io.BufferedWriter(raw)
    if "b" in mode:
        return buffered
    return io.TextIOWrapper(buffered, write_through=False, **open_kwargs)


# The dicts of `recording()`s open now: {absolute path: SHA-256 of the bytes written}.
_recorders = []
_recorders_lock = threading.Lock()


@contextlib.contextmanager
def recording():
    """Yield a dict that gets, for each file written through `atomic_output` (by any
    thread) until the block ends, its absolute path and the SHA-256 of the bytes this
    process wrote into it, the last write of a path winning."""
    written = {}
    with _recorders_lock:
        _recorders.append(written)
    try:
        yield written
    finally:
        with _recorders_lock:
            _recorders.remove(written)


def written_sha256(path):
    """The SHA-256 of the bytes last written to `path` through `atomic_output` within
    the innermost `recording()` that saw it; LookupError when none did (a bug: the
    caller vouches for a file it did not write)."""
    path = os.path.abspath(os.fspath(path))
    with _recorders_lock:
        for written in reversed(_recorders):
            if path in written:
                return written[path]
    raise LookupError(f"{path} was not written through base.atomic within recording()")


def _record(path, sha256):
    with _recorders_lock:
        for written in _recorders:
            written[os.path.abspath(path)] = sha256


class NotOurOutputError(UserError):
    """An output path where something stands that this tool did not write."""


def check_replaceable(path, kind):
    """Raise `NotOurOutputError` unless `path` is absent or a folder that this tool wrote
    as a `kind` output (it holds `MARKER` saying `kind`): what a swap may remove."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path) and _marked(path) == kind:
        return
    what = "a folder" if os.path.isdir(path) else "a file"
    raise NotOurOutputError(
        f"exists and is {what} this tool did not write as a {kind} (no {MARKER} file "
        f"saying {kind!r}), so it is not replaced; remove it or name another path", path)


def _marked(folder):
    try:
        with open(os.path.join(folder, MARKER), "rb") as f:
            return f.read(100).decode("utf-8", "replace").strip()
    except OSError:
        return None


@contextlib.contextmanager
def atomic_folder(path, keep_existing=None, kind=None):
    """Yield an empty staging folder beside `path`; on success it becomes `path`.
    A full disk raises `NoSpaceError` naming the device and `path`.

    Readers see the old folder or the new one, never a part: an old folder is moved
    aside in one rename, the new one renamed into place, then the old one deleted.
    Only a folder this tool wrote as a `kind` output is replaced (`check_replaceable`,
    checked before anything is written and again before the swap); the new folder gets
    the marker. Without a `kind`, whatever stands at `path` is never replaced.
    With `keep_existing`, a folder that already stands at `path` when the new one is
    done is never replaced: where `keep_existing(path)` is true it is kept and the new
    one dropped (for caches that a concurrent run may fill first with the same content),
    else FileExistsError is raised. On an exception the staging folder is removed and
    `path` is left untouched.
    """
    path = os.path.abspath(os.fspath(path))
    if keep_existing is None:
        _check_swap(path, kind)
    with no_space_left(path):  # whatever writes into the staging folder (TensorFlow too)
        with _staged_folder(path, keep_existing, kind) as staging:
            yield staging


def _check_swap(path, kind):
    if kind is None and os.path.lexists(path):
        raise NotOurOutputError("exists, and this folder is never replaced; remove it or "
                                "name another path", path)
    if kind is not None:
        check_replaceable(path, kind)


@contextlib.contextmanager
def _staged_folder(path, keep_existing, kind):
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=tmp_prefix(path), suffix=".tmp")
    try:
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp's 0700 would stick after the rename
        yield staging
        if keep_existing is not None and os.path.lexists(path):
            if keep_existing(path):
                return
            raise FileExistsError(errno.EEXIST, "a folder that is not kept stands there", path)
        if kind is not None:
            with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as f:
                f.write(kind + "\n")
        if keep_existing is None:
            _check_swap(path, kind)  # a user's folder may have appeared meanwhile
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
