"""The one error type that reaches the user.

Library code raises `UserError` (or a subclass) for anything the user can fix: a bad
list file, a missing image, a wrong flag value. Every command's boundary
(`multilabel.base.command.run_command`) catches it, prints `NAME: error: str(error)` as
one line and exits with `error.exit_code`: `EXIT_BAD_INPUT`. Anything else is a bug and
keeps its traceback. A full disk is not the input's fault: `NoSpaceError` carries exit
status 1 instead.
"""

import contextlib
import errno
import os

EXIT_OK = 0
EXIT_SOME_FAILED = 1  # a batch where some items failed and the rest succeeded
EXIT_NO_SPACE = 1  # a write failed for want of disk space: the input was fine
EXIT_BAD_INPUT = 2  # bad usage or bad input: nothing useful was done
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT), the shell's 128 + 2


class UserError(Exception):
    """An error caused by input, reported as `path:line: message` on one line.

    `details` are one-line messages naming each of several problems found at once (every
    broken image of a list); the boundary prints them, one a line, before the error's line,
    so that one run shows the user everything to fix.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message, path=None, line=None, details=()):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.details = tuple(" ".join(str(d).split()) for d in details)

    def __reduce__(self):
        # Pickled whole (a Beam worker's error reaches the command): path and line kept.
        return (type(self), (self.message, self.path, self.line, self.details))

    def __str__(self):
        where = self.path or ""
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = " ".join(str(self.message).split())  # always one line
        return f"{where}: {text}" if where else text


def file_error(error, path, what="file"):
    """The `UserError` for an `OSError` met opening or reading `path`, a `what` ("list file").

    A folder where a file was expected, a path through a file, a file without read
    permission: all are the user's to fix, so none may reach them as a traceback.
    """
    if isinstance(error, FileNotFoundError):
        return UserError(f"{what} not found", path)
    if isinstance(error, IsADirectoryError):
        return UserError(f"is a folder, not a {what}", path)
    return UserError(f"cannot read the {what}: {error.strerror or error}", path)


class NoSpaceError(UserError):
    """A write failed because its file system is full (or the user's quota is spent)."""

    exit_code = EXIT_NO_SPACE


# TensorFlow's file layer reports ENOSPC in its own exception types, by strerror's text.
_NO_SPACE_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


@contextlib.contextmanager
def no_space_left(path):
    """Turn a full disk met inside into `NoSpaceError`: "no space left on DEVICE while
    writing PATH", one line, whatever raised it (an `OSError` from Python, an `OpError`
    from TensorFlow's checkpoint or SavedModel writers). Every writer of the project runs
    inside this one mapping (`multilabel.base.atomic` and the TensorFlow writers)."""
    try:
        yield
    except NoSpaceError:
        raise
    except Exception as e:
        if not is_no_space(e):
            raise
        raise NoSpaceError(f"no space left on {device_of(path)} while writing "
                           f"{os.fspath(path)}") from e


def is_no_space(error):
    """Whether `error` (an `OSError`, or TensorFlow's error for one) means a full disk."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(error) for text in _NO_SPACE_TEXTS)


def device_of(path):
    """The mount point holding `path`, with its device or file system type from
    /proc/mounts where there is one: `/mnt/data (/dev/sdb1)`."""
    folder = os.path.abspath(os.fspath(path))
    while not os.path.ismount(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            sources = {fields[1]: fields[0] for fields in (line.split() for line in f)
                       if len(fields) > 1}
    except OSError:
        return folder
    source = sources.get(folder.replace(" ", "\\040"))
    return f"{folder} ({source})" if source else folder
