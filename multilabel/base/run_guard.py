"""What a training run may write, settled before any work: `guarded(options)`.

A run writes a dozen files and a folder or two, each where its flag says, and takes
minutes to hours. Whatever is wrong with those places must stop it before the first
bottleneck, not after training, and nothing the run did not write may be lost:

- every output path is checked first (`check_outputs`): a file output may replace only
  a file (a folder, FIFO or device there is refused, as is a path under a file); the
  run folder must be a folder and not a file system's root; a folder that a swap would
  replace (--saved_model_dir) must be one this tool wrote as that kind of output, which
  `base.atomic` recognizes by the marker file it leaves in it (`atomic.MARKER`);
- one run at a time per run folder: an exclusive `flock` on `LOCK` in the folder, held
  for the whole run. The kernel releases it when the process ends, however it ends
  (SIGKILL, a crash), so no lock outlives its run; the empty file itself stays;
- temporary files a killed run left beside its outputs (`.output_graph.tflite.*.tmp`)
  are removed, under the lock, so no other run is writing them;
- every byte the run writes through `base.atomic` is hashed as it is written
  (`atomic.recording`), for the run's manifest (`labelling.run_folder.RunSet`).
"""

import contextlib
import fcntl
import glob
import logging
import os
import shutil

from multilabel.base import atomic
from multilabel.base.errors import UserError
from multilabel.base.options import output_files

logger = logging.getLogger(__name__)

LOCK = ".retrain.lock"
SAVED_MODEL = "saved_model"  # the kind atomic_folder marks a SavedModel folder with
# Output options that name a folder or a path prefix, not one file.
_FOLDERS = ("intermediate_output_graphs_dir", "summaries_dir")
_PREFIXES = ("checkpoint_path",)


@contextlib.contextmanager
def guarded(options, extra_files=()):
    """Check `options`' outputs (a resolved TrainOptions), lock their run folders, clear
    what killed runs left, and record the bytes written while the block runs; yield the
    recording ({absolute path: SHA-256}). `extra_files` are more output files ({flag:
    path}) that the options do not list (the thresholds' rule beside them)."""
    check_outputs(options, extra_files)
    with contextlib.ExitStack() as stack:
        for folder in _run_folders(options):
            stack.enter_context(locked(folder))
        remove_leftovers([getattr(options, name) for name in _files(options)]
                         + list(dict(extra_files).values()) + [options.saved_model_dir])
        yield stack.enter_context(atomic.recording())


def check_outputs(options, extra_files=()):
    """Raise UserError naming the flag for an output path the run could not write, or
    would write over something that is not its own (see the module docstring)."""
    check_folder(options.output_dir, "--output_dir")
    for name in _FOLDERS:
        if getattr(options, name):
            check_folder(getattr(options, name), f"--{name}")
    for name in _PREFIXES:
        if getattr(options, name):
            check_folder(os.path.dirname(os.path.abspath(getattr(options, name))),
                         f"--{name}'s folder")
    for flag, path in [(f"--{name}", getattr(options, name)) for name in _files(options)] \
            + list(dict(extra_files).items()):
        check_file(path, flag)
    if options.saved_model_dir:
        atomic.check_replaceable(options.saved_model_dir, SAVED_MODEL)


def check_folder(path, flag):
    """UserError unless `path` is, or can be made, a folder other than a file system root."""
    path = os.path.abspath(path)
    if os.path.dirname(path) == path:
        raise UserError(f"{flag} {path} is the root of the file system; name a folder for "
                        "the run's outputs")
    _check_ancestors(path, flag)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} names {_kind(path)}, not a folder", path)


def check_file(path, flag):
    """UserError unless `path` is absent or a regular file (replaced atomically), and its
    folder is, or can be made, a folder."""
    path = os.path.abspath(path)
    _check_ancestors(os.path.dirname(path), flag)
    if os.path.lexists(path) and not (os.path.isfile(path) and not _is_dangling(path)):
        raise UserError(f"{flag} names {_kind(path)}, not a file this run can replace", path)


def _check_ancestors(folder, flag):
    """The nearest existing ancestor of `folder` (itself included) must be a folder."""
    probe = folder
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if probe != folder and not os.path.isdir(probe):
        raise UserError(f"{flag} lies under {probe}, which is {_kind(probe)}, not a folder",
                        folder)


def _is_dangling(path):
    return os.path.islink(path) and not os.path.exists(path)


def _kind(path):
    if _is_dangling(path):
        return "a dangling link"
    if os.path.isdir(path):
        return "a folder"
    if os.path.isfile(path):
        return "a file"
    return "something that is neither a file nor a folder"


def _files(options):
    return [name for name in output_files()
            if name not in _FOLDERS + _PREFIXES and getattr(options, name)]


def _run_folders(options):
    """The folders whose lock a run holds: the run folder, and the manifest's folder
    (that of the graph) where a flag puts it elsewhere."""
    folders = [os.path.abspath(options.output_dir),
               os.path.dirname(os.path.abspath(options.output_graph))]
    return sorted(set(folders))  # one order for every run: no two runs wait on each other


@contextlib.contextmanager
def locked(folder):
    """Hold the run lock of `folder` (made if absent) for the block; UserError when
    another live process holds it. A folder made here that holds only the lock at the
    end (a run refused on its input) is removed again."""
    made = not os.path.lexists(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise UserError(f"another run (process {holder}) is writing into this folder; "
                            "wait for it to end, or give another --output_dir",
                            folder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            if made and os.listdir(folder) == [LOCK]:
                os.remove(path)
                os.rmdir(folder)
    finally:
        os.close(fd)  # releases the lock; the kernel does the same when a process dies


def remove_leftovers(paths):
    """Remove the temporary siblings (`.NAME.*.tmp`) of each output path in `paths`
    that a killed run left; call it only under the run lock."""
    for path in filter(None, paths):
        path = os.path.abspath(path)
        pattern = os.path.join(glob.escape(os.path.dirname(path)),
                               glob.escape(atomic.tmp_prefix(path)) + "*.tmp")
        for leftover in glob.glob(pattern):
            logger.info("Removing %s, left by a run that was stopped", leftover)
            if os.path.isdir(leftover) and not os.path.islink(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)
